"""Hidden tests of module ``attention``: staff grading only.

They run in staff grading (``grader check --staff``, ``grader batch``, the Gradescope
package) and when the suite tests the reference; the student release holds neither this
folder nor any name from it.  The cases and library oracles are the public tests' own
(``tests/exercises/test_attention.py``), loaded by path.  The formula oracle of the
positional encoding lives here: a function that returns the answer from allowed building
blocks could be pasted into the stubs, so it runs in staff grading only (the public tests
check the encoding's properties instead).
"""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from grader.execution.calls import Call
from grader.testing import strategies as S
from grader.testing.checks import assert_close, describe, unpack
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


def _pe_formula(max_len, d_model):
    """The sinusoidal encoding by its closed form, in float64 (numpy): staff grading only."""
    p = np.arange(max_len)[:, None]
    i = np.arange(d_model)[None, :]
    angle = p / np.power(10000.0, (i - i % 2) / d_model)
    return torch.from_numpy(np.where(i % 2 == 0, np.sin(angle), np.cos(angle)))


@pytest.mark.hidden
@pytest.mark.exercise("attention.positional_encoding", weight=2)
@pytest.mark.oracle("library")
@S.edge_examples("sizes", [[1, 6], [5, 1]])
@given(S.distinct_sizes(2, lo=2, hi=64))
def test_hidden_positional_encoding_formula(impl, sizes):
    """PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d)), in the default dtype"""
    max_len, d_model = sizes
    got = impl.call("sinusoidal_positional_encoding", max_len, d_model)
    assert_close(
        got,
        _pe_formula(max_len, d_model).float(),
        "PE",
        prop="positional encoding differs from the sin/cos formula",
        atol=1e-4,
        rtol=1e-4,
        inputs=describe(max_len=max_len, d_model=d_model),
    )


@pytest.mark.hidden
@pytest.mark.exercise("attention.positional_encoding")
@pytest.mark.oracle("library")
@S.edge_examples("sizes", [[1, 6], [5, 1]])
@given(S.distinct_sizes(2, lo=2, hi=40))
def test_hidden_positional_encoding_formula_in_float64(impl, sizes):
    """with torch.set_default_dtype(torch.float64) the encoding is the sin/cos formula in float64, exactly"""
    max_len, d_model = sizes
    got = impl.invoke(Call("sinusoidal_positional_encoding", (max_len, d_model), default_dtype=torch.float64)).outputs
    assert_close(
        got,
        _pe_formula(max_len, d_model),
        "PE",
        prop="positional encoding differs from the sin/cos formula in float64",
        inputs=describe(max_len=max_len, d_model=d_model, default_dtype="float64"),
        atol=1e-9,
        rtol=1e-9,
    )
