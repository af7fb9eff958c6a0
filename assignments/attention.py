# Generated from solutions/attention.py by `python -m grader generate`: fill in the TODOs.
# Check your work with `python -m grader check attention`.
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
    # TODO(attention.sdpa): write scaled_dot_product_attention (delete this raise).
    raise NotImplementedError("attention.sdpa: scaled_dot_product_attention is not implemented yet")


def causal_mask(length, device=None):
    """The causal (look-ahead) mask of a decoder.  Exercise ``attention.causal_mask``.

    Args:
        length: sequence length ``L``.
        device: where to create the mask (``None``: the default device).

    Returns:
        bool ``(L, L)`` on ``device``: entry ``[t, s]`` is True where key position
        ``s <= t`` (query ``t`` may look at itself and the past, never the future).
    """
    # TODO(attention.causal_mask): write causal_mask (delete this raise).
    raise NotImplementedError("attention.causal_mask: causal_mask is not implemented yet")


def padding_mask(lengths, max_len):
    """The key-padding mask of a padded batch.  Exercise ``attention.padding_mask``.

    Args:
        lengths: long ``(B,)``, the true length of each sequence, each in ``[0, max_len]``.
        max_len: padded length ``L``.

    Returns:
        bool ``(B, L)`` on ``lengths.device``: True for real tokens (position < length),
        False for padding.  To mask keys, index it as ``mask[:, None, None, :]``.
    """
    # TODO(attention.padding_mask): write padding_mask (delete this raise).
    raise NotImplementedError("attention.padding_mask: padding_mask is not implemented yet")


def split_heads(x, num_heads):
    """Split the feature axis into heads.  Exercise ``attention.heads``.

    Args:
        x: ``(B, L, E)`` with ``E`` divisible by ``num_heads``.
        num_heads: ``H``.

    Returns:
        ``(B, H, L, E // H)``; head ``h`` holds features ``h*d:(h+1)*d`` with ``d = E // H``.
    """
    # TODO(attention.heads): write split_heads (delete this raise).
    raise NotImplementedError("attention.heads: split_heads is not implemented yet")


def merge_heads(x):
    """Merge heads back into the feature axis, the inverse of ``split_heads``.
    Exercise ``attention.heads``.

    Args:
        x: ``(B, H, L, d)``.

    Returns:
        ``(B, L, H * d)``, with head ``h`` in features ``h*d:(h+1)*d``.
    """
    # TODO(attention.heads): write merge_heads (delete this raise).
    raise NotImplementedError("attention.heads: merge_heads is not implemented yet")


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
        # TODO(attention.mha): write MultiHeadAttention.__init__ (delete this raise).
        raise NotImplementedError("attention.mha: MultiHeadAttention.__init__ is not implemented yet")

    def forward(self, query, key, value, mask=None):
        """Attend from ``query`` to ``key``/``value``; returns ``(out, weights)``."""
        # TODO(attention.mha): write MultiHeadAttention.forward (delete this raise).
        raise NotImplementedError("attention.mha: MultiHeadAttention.forward is not implemented yet")


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
    # TODO(attention.positional_encoding): write sinusoidal_positional_encoding (delete this raise).
    raise NotImplementedError("attention.positional_encoding: sinusoidal_positional_encoding is not implemented yet")
