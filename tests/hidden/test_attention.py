"""Hidden tests of module ``attention``: staff grading only.

They run in staff grading (``grader check --staff``, ``grader batch``, the Gradescope
package) and when the suite tests the reference; the student release holds neither this
folder nor any name from it.  The cases and oracles are the public tests' own
(``tests/exercises/test_attention.py``), loaded by path.
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from grader.testing import strategies as S
from grader.testing.checks import assert_close, unpack
from grader.testing.plugin import implementation_fixture, public_tests

MODULE = "attention"
impl = implementation_fixture(MODULE)

_public = public_tests(MODULE)
_call_sdpa, sdpa_oracle = _public._call_sdpa, _public.sdpa_oracle
make_mha, mha_state, torch_mha, torch_mask, _mha_io = (
    _public.make_mha,
    _public.mha_state,
    _public.torch_mha,
    _public.torch_mask,
    _public._mha_io,
)


@pytest.mark.hidden
@pytest.mark.exercise("attention.sdpa")
@pytest.mark.oracle("library")
# the sizes are (A, B, C, L_q, L_k, d_k, d_v): each of A, B, L_q, L_k, d_k and d_v set to 1 in turn
@S.edge_examples(
    ("sizes", "seed", "dtype"),
    [
        ([1, 2, 3, 4, 5, 6, 7], 0, torch.float32),
        ([2, 1, 3, 4, 5, 6, 7], 1, torch.float64),
        ([2, 3, 4, 1, 5, 6, 7], 2, torch.float32),
        ([2, 3, 4, 5, 1, 6, 7], 3, torch.float64),
        ([2, 3, 4, 5, 6, 1, 7], 4, torch.float32),
        ([2, 3, 4, 5, 6, 7, 1], 5, torch.float64),
    ],
)
@given(S.distinct_sizes(7, lo=2, hi=8), S.seeds, S.dtypes)
def test_hidden_sdpa_many_leading_dims(impl, sizes, seed, dtype):
    """scaled dot-product attention works on any number of leading dimensions"""
    a, b, c, lq, lk, dk, dv = sizes
    g = S.generator(seed)
    q = S.uniform(g, a, b, c, lq, dk, dtype=dtype, scale=2.0)
    k = S.uniform(g, a, b, c, lk, dk, dtype=dtype, scale=2.0)
    v = S.uniform(g, a, b, c, lk, dv, dtype=dtype, scale=2.0)
    mask = S.random_mask(g, b, 1, lq, lk)
    (out, weights), io = _call_sdpa(impl, q, k, v, mask)
    exp_out, exp_w = sdpa_oracle(q, k, v, mask)
    assert_close(
        weights, exp_w, "weights", prop="weights differ from F.scaled_dot_product_attention's on 5-D inputs", inputs=io
    )
    assert_close(out, exp_out, "out", prop="out differs from F.scaled_dot_product_attention's on 5-D inputs", inputs=io)


@pytest.mark.hidden
@pytest.mark.exercise("attention.mha")
@pytest.mark.oracle("library")
@given(S.seeds, st.booleans())
def test_hidden_mha_long_cross_attention(impl, seed, bias):
    """cross-attention from a short query to a long padded key sequence agrees with nn.MultiheadAttention"""
    g = S.generator(seed)
    b, lq, lk, heads, d = 3, 4, 17, 4, 5
    embed = heads * d
    query = S.uniform(g, b, lq, embed, scale=1.5)
    key, value = S.uniform(g, b, lk, embed, scale=1.5), S.uniform(g, b, lk, embed, scale=1.5)
    lengths = torch.tensor([lk, 9, 1])
    mask = (torch.arange(lk)[None, :] < lengths[:, None])[:, None, None, :]
    case = dict(
        embed=embed,
        heads=heads,
        bias=bias,
        query=query,
        key=key,
        value=value,
        mask=mask,
        state=mha_state(g, embed, bias, torch.float32),
    )
    io = _mha_io(case)
    out, weights = unpack(
        make_mha(impl, case)(query, key, value, mask), ("out", "weights"), "MultiHeadAttention.forward", io
    )
    exp_out, exp_w = torch_mha(case)(
        query, key, value, attn_mask=torch_mask(case), need_weights=True, average_attn_weights=False
    )
    assert_close(weights, exp_w.detach(), "weights", prop="weights differ from nn.MultiheadAttention's", inputs=io)
    assert_close(out, exp_out.detach(), "out", prop="out differs from nn.MultiheadAttention's", inputs=io)
