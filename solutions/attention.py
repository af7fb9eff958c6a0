"""Module `attention`: the building blocks of the Transformer (DL Basic, lecture 8).

Conventions (see the exercise contract):

* batch-first tensors, ``(B, L, E)`` for sequences;
* boolean masks follow ``torch.nn.functional.scaled_dot_product_attention``:
  **True means "may attend"**, False means "masked out"; a mask broadcasts against
  the attention scores ``(..., L_q, L_k)``;
* every function keeps the input's dtype and device, keeps autograd working and never
  modifies its inputs in place;
* do not call ``F.scaled_dot_product_attention``, ``nn.MultiheadAttention`` or
  ``F.multi_head_attention_forward``: building blocks (``torch.softmax``, ``nn.Linear``,
  ``torch.einsum``, ...) are fine.
"""

import math

import torch
from torch import nn


def scaled_dot_product_attention(q, k, v, mask=None):
    """Scaled dot-product attention.  Exercise ``attention.sdpa``.

    ``weights = softmax(q k^T / sqrt(d_k))`` over the keys (the last axis) and
    ``out = weights v``.

    Args:
        q: queries, ``(..., L_q, d_k)``.
        k: keys, ``(..., L_k, d_k)``.
        v: values, ``(..., L_k, d_v)``.
        mask: optional bool tensor broadcastable to ``(..., L_q, L_k)``; True means the
            query may attend to that key, False means the key is masked out.

    Returns:
        ``(out, weights)``: ``out`` is ``(..., L_q, d_v)``, ``weights`` is
        ``(..., L_q, L_k)``.  Masked-out keys get weight exactly 0; a query whose keys
        are all masked gets all-zero weights and a zero output (never NaN).
    """
    ### BEGIN SOLUTION
    d_k = q.size(-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
        # A row with every key masked would be softmax(-inf, ..., -inf) = NaN: give it
        # finite scores first, then zero its weights with the mask below.
        scores = scores.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)
    return weights @ v, weights
    ### END SOLUTION


def causal_mask(length, device=None):
    """The causal (look-ahead) mask of a decoder.  Exercise ``attention.causal_mask``.

    Args:
        length: sequence length ``L``.
        device: where to create the mask (``None``: the default device).

    Returns:
        bool ``(L, L)`` on ``device``: entry ``[t, s]`` is True where key position
        ``s <= t`` (query ``t`` may look at itself and the past, never the future).
    """
    ### BEGIN SOLUTION
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()
    ### END SOLUTION


def padding_mask(lengths, max_len):
    """The key-padding mask of a padded batch.  Exercise ``attention.padding_mask``.

    Args:
        lengths: long ``(B,)``, the true length of each sequence, each in ``[0, max_len]``.
        max_len: padded length ``L``.

    Returns:
        bool ``(B, L)`` on ``lengths.device``: True for real tokens (position < length),
        False for padding.  To mask keys, index it as ``mask[:, None, None, :]``.
    """
    ### BEGIN SOLUTION
    positions = torch.arange(max_len, device=lengths.device)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)
    ### END SOLUTION


def split_heads(x, num_heads):
    """Split the feature axis into heads.  Exercise ``attention.heads``.

    Args:
        x: ``(B, L, E)`` with ``E`` divisible by ``num_heads``.
        num_heads: ``H``.

    Returns:
        ``(B, H, L, E // H)``; head ``h`` holds features ``h*d:(h+1)*d`` with ``d = E // H``.
    """
    ### BEGIN SOLUTION
    batch, length, embed = x.shape
    return x.reshape(batch, length, num_heads, embed // num_heads).transpose(1, 2)
    ### END SOLUTION


def merge_heads(x):
    """Merge heads back into the feature axis, the inverse of ``split_heads``.
    Exercise ``attention.heads``.

    Args:
        x: ``(B, H, L, d)``.

    Returns:
        ``(B, L, H * d)``, with head ``h`` in features ``h*d:(h+1)*d``.
    """
    ### BEGIN SOLUTION
    batch, heads, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * head_dim)
    ### END SOLUTION


class MultiHeadAttention(nn.Module):
    """Multi-head attention.  Exercise ``attention.mha``.

    ``__init__(embed_dim, num_heads, bias=True)`` creates four projections ``q_proj``,
    ``k_proj``, ``v_proj`` and ``out_proj``, each ``nn.Linear(embed_dim, embed_dim,
    bias=bias)``, and raises ``ValueError`` (naming ``embed_dim`` and ``num_heads``)
    when ``embed_dim`` is not divisible by ``num_heads``.

    ``forward(query, key, value, mask=None)``:

    1. project: ``q = q_proj(query)``, ``k = k_proj(key)``, ``v = v_proj(value)``;
    2. split each into ``num_heads`` heads of size ``d = embed_dim // num_heads``;
    3. scaled dot-product attention per head (``mask`` broadcastable to
       ``(B, num_heads, L_q, L_k)``, True = may attend);
    4. merge the heads and apply ``out_proj``.

    Shapes: query ``(B, L_q, E)``, key and value ``(B, L_k, E)``.  Returns ``(out
    (B, L_q, E), weights (B, num_heads, L_q, L_k))``, the weights of every head (not
    averaged over heads).
    """

    def __init__(self, embed_dim, num_heads, bias=True):
        super().__init__()
        ### BEGIN SOLUTION
        if embed_dim % num_heads != 0:
            raise ValueError(
                f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})"
            )
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        ### END SOLUTION

    def forward(self, query, key, value, mask=None):
        """Attend from ``query`` to ``key``/``value``; returns ``(out, weights)``."""
        ### BEGIN SOLUTION
        q = split_heads(self.q_proj(query), self.num_heads)
        k = split_heads(self.k_proj(key), self.num_heads)
        v = split_heads(self.v_proj(value), self.num_heads)
        out, weights = scaled_dot_product_attention(q, k, v, mask)
        return self.out_proj(merge_heads(out)), weights
        ### END SOLUTION


def sinusoidal_positional_encoding(max_len, d_model):
    """Sinusoidal positional encoding of "Attention Is All You Need".
    Exercise ``attention.positional_encoding``.

    ``PE[p, 2i] = sin(p / 10000^(2i / d_model))`` and
    ``PE[p, 2i+1] = cos(p / 10000^(2i / d_model))``.

    Args:
        max_len: number of positions ``p = 0 .. max_len - 1``.
        d_model: embedding size (odd sizes allowed: the last column is a sine).

    Returns:
        ``(max_len, d_model)`` in the default dtype (``torch.get_default_dtype()``).
    """
    ### BEGIN SOLUTION
    position = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)
    angle = position / 10000.0 ** (two_i / d_model)
    pe = torch.zeros(max_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return pe.to(torch.get_default_dtype())
    ### END SOLUTION
