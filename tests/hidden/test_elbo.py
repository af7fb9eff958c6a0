"""Hidden tests of module ``elbo``: staff grading only.

They run in staff grading (``grader check --staff``, ``grader batch``, the Gradescope
package) and when the suite tests the reference; the student release holds neither this
folder nor any name from it.  The cases are the public tests' own
(``tests/exercises/test_elbo.py``), loaded by path.  The formula oracle of the Bernoulli
log-likelihood for huge logits lives here: a function that returns the answer from allowed
building blocks could be pasted into the stubs, so it runs in staff grading only (the
public tests check the log-odds, the normalisation and the sum instead, which pin the same
values down).
"""

import pytest
import torch
from hypothesis import given

from grader.testing import strategies as S
from grader.testing.checks import assert_close, describe, expect_tensor
from grader.testing.plugin import implementation_fixture, public_tests

MODULE = "elbo"
impl = implementation_fixture(MODULE)

_public = public_tests(MODULE)
BERN, huge_logits, huge_logits_of, bernoulli_edges = (
    _public.BERN,
    _public.huge_logits,
    _public.huge_logits_of,
    _public.bernoulli_edges,
)


def _bernoulli_formula(x, logits):
    """``sum log Bernoulli(x; sigmoid(logits))`` in float64 by the stable closed form
    ``x l - softplus(l)`` with ``softplus(l) = max(l, 0) + log1p(exp(-|l|))``: staff grading only."""
    x, logits = x.double(), logits.double()
    return (x * logits - logits.clamp(min=0) - torch.log1p(torch.exp(-logits.abs()))).sum(-1)


@pytest.mark.hidden
@pytest.mark.exercise("elbo.bernoulli_ll")
@pytest.mark.oracle("library")
@S.edge_examples("drawn", [huge_logits_of(x, logits, n) for n, (x, logits) in enumerate(bernoulli_edges(scale=3.0))])
@given(huge_logits())
def test_hidden_bernoulli_exact_for_huge_logits(impl, drawn):
    """for logits up to +-1e4 the log-likelihood is x l - softplus(l), summed over the last axis"""
    x, logits = drawn
    io = describe(x=x, logits=logits) + " (logits up to +-1e4)"
    got = impl.call(BERN, x, logits)
    expected = _bernoulli_formula(x, logits).to(x.dtype)
    expect_tensor(got, "log-likelihood", shape=expected.shape, dtype=expected.dtype, inputs=io)
    assert_close(
        got,
        expected,
        "log-likelihood",
        prop="the log-likelihood differs from x l - softplus(l) for large logits",
        inputs=io,
    )
