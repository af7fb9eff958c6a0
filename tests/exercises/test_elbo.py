"""Property tests of module ``elbo`` (exercise IDs ``elbo.*``).

Every test reaches the submission through the ``impl`` adapter.  Expected values come from
``torch.distributions`` in float64: ``kl_divergence`` of ``Normal``s and of ``Bernoulli``s
(for binary x, ``log p(x) = -KL(Bernoulli(x) || Bernoulli(sigmoid(l)))``, see
:func:`bernoulli_oracle`), the Gaussian log-density as a cross-entropy (``kl_divergence`` and
``entropy``, see :func:`gaussian_oracle`), ``Bernoulli``'s log-probabilities computed
inline; from closed-form values and gradients computed inline; from properties
(the log-odds and the normalisation of the Bernoulli, for logits up to +-1e4; the sample
moments of the reparameterization; inputs built backwards from a drawn ``z``); and from a
linear-Gaussian model whose evidence ``log p(x)`` and true posterior ``p(z|x)`` are known in
closed form, on which the lecture's identity ``ELBO = log p(x) - KL(q || p(z|x)) <= log p(x)``
is checked.  None of this file's functions can be pasted into the stubs as an answer: the
forbidden-call check refuses ``kl_divergence`` in a submission (``python -m grader release``
grades every function of this file pasted into the stubs, and fails when one earns a
point).  The closed-form Bernoulli log-likelihood for huge logits is checked by hidden
tests, in staff grading.  No test needs the reference in ``solutions/``: every test is
marked ``oracle("library")``, and the file imports without ``solutions/``.
"""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch.distributions import Bernoulli, Normal, kl_divergence

from grader.execution.calls import Call
from grader.testing import strategies as S
from grader.testing.checks import (
    assert_close,
    assert_grad,
    describe,
    expect_inputs_unchanged,
    expect_per_example,
    expect_tensor,
    fail,
    tolerance,
)
from grader.testing.devices import DeviceCase, device_tests
from grader.testing.plugin import implementation_fixture
from grader.testing.replay import cotangents

MODULE = "elbo"
impl = implementation_fixture(MODULE)


# ----------------------------------------------------------------------------- inputs


def tensors_of(lead, k, count, *, dtype=torch.float32, seed=0, scale=2.0):
    """``count`` tensors of shape ``(*lead, K)`` from ``S.generator(seed)``, uniform in
    ``[-scale, scale]``."""
    g = S.generator(seed)
    return [S.uniform(g, *lead, k, dtype=dtype, scale=scale) for _ in range(count)]


@S.composite
def tensors(draw, count, dtype=None, scale=2.0):
    """``count`` tensors of one shape ``(*lead, K)`` with ``lead`` one of ``()``, ``(B,)``,
    ``(B, T)`` and B, T, K distinct; values uniform in ``[-scale, scale]``."""
    b, t, k = draw(S.distinct_sizes(3, lo=2, hi=7))
    lead = draw(st.sampled_from([(), (b,), (b, t)]))
    dtype = dtype or draw(S.dtypes)
    return tensors_of(lead, k, count, dtype=dtype, seed=draw(S.seeds), scale=scale)


def tensors_edges(count, dtype=None, scale=2.0):
    """Explicit inputs for ``tensors``: B = 1 (leads ``(B,)`` and ``(B, T)``), T = 1 and
    K = 1 (leads ``(B,)`` and ``(B, T)``), the other sizes distinct; the dtype alternates."""
    one = dict(zip("btk", S.with_one(dict(b=2, t=3, k=4), "b", "t", "k")))
    specs = [("b", False), ("b", True), ("t", True), ("k", False), ("k", True)]
    cases = []
    for n, (name, with_t) in enumerate(specs):
        sizes = one[name]
        lead = (sizes["b"], sizes["t"]) if with_t else (sizes["b"],)
        cases.append(tensors_of(lead, sizes["k"], count, dtype=dtype or S.FLOAT_DTYPES[n % 2], seed=n, scale=scale))
    return cases


def bernoulli_of(logits, u):
    """Binary ``x`` (where ``u > 0``) in the logits' dtype, and ``logits``."""
    return (u > 0).to(logits.dtype), logits


@S.composite
def bernoulli_inputs(draw, dtype=None, scale=4.0):
    """Binary ``x`` and ``logits`` of one shape ``(*lead, D)``, x in the logits' dtype."""
    return bernoulli_of(*draw(tensors(2, dtype=dtype, scale=scale)))


def bernoulli_edges(dtype=None, scale=4.0):
    """Explicit binary ``x`` and logits: the sizes of one of :func:`tensors_edges`."""
    return [bernoulli_of(*pair) for pair in tensors_edges(2, dtype=dtype, scale=scale)]


def elbo_case(lead, d, k, *, dtype=torch.float32, seed=0):
    """``x (*lead, D)`` binary, ``recon_logits (*lead, D)``, ``mu, logvar (*lead, K)`` from
    ``S.generator(seed)``."""
    g = S.generator(seed)
    x = (torch.rand(*lead, d, generator=g) > 0.5).to(dtype)
    logits = S.uniform(g, *lead, d, dtype=dtype, scale=4.0)
    mu = S.uniform(g, *lead, k, dtype=dtype, scale=2.0)
    logvar = S.uniform(g, *lead, k, dtype=dtype, scale=2.0)
    return x, logits, mu, logvar


@S.composite
def elbo_inputs(draw, dtype=None):
    """``x (*lead, D)`` binary, ``recon_logits (*lead, D)``, ``mu, logvar (*lead, K)``, D != K."""
    b, t, d, k = draw(S.distinct_sizes(4, lo=2, hi=8))
    lead = draw(st.sampled_from([(b,), (b, t)]))
    dtype = dtype or draw(S.dtypes)
    return elbo_case(lead, d, k, dtype=dtype, seed=draw(S.seeds))


def elbo_edges(dtype=None):
    """Explicit inputs with B = 1, T = 1, D = 1 (data) and K = 1 (latent) in turn, the other
    sizes distinct; the lead ``(B,)`` or ``(B, T)`` and the dtype alternate (T = 1 needs T)."""
    cases = []
    for n, sizes in enumerate(S.with_one(dict(b=2, t=3, d=4, k=5), "b", "t", "d", "k")):
        lead = (sizes["b"], sizes["t"]) if n % 2 else (sizes["b"],)
        cases.append(elbo_case(lead, sizes["d"], sizes["k"], dtype=dtype or S.FLOAT_DTYPES[n % 2], seed=n))
    return cases


def _normal(mu, logvar):
    """``Normal(mu, exp(logvar / 2))`` in float64."""
    return Normal(mu.double(), (0.5 * logvar.double()).exp())


def kl_oracle(mu_q, logvar_q, mu_p=None, logvar_p=None):
    """``KL(q || p)`` summed over the last axis, by ``torch.distributions`` in float64."""
    mu_p = torch.zeros_like(mu_q) if mu_p is None else mu_p
    logvar_p = torch.zeros_like(logvar_q) if logvar_p is None else logvar_p
    return kl_divergence(_normal(mu_q, logvar_q), _normal(mu_p, logvar_p)).sum(-1)


def bernoulli_oracle(x, logits):
    """``sum log Bernoulli(x; sigmoid(logits))`` in float64 by ``torch.distributions``: for
    binary ``x`` the log-likelihood is ``-KL(Bernoulli(x) || Bernoulli(logits=l))`` (the
    point mass at ``x`` has no entropy).  Exact for ``|l|`` up to about 30: beyond, the
    sigmoid rounds to 0 or 1 in float64 and the KL becomes inf."""
    return -kl_divergence(Bernoulli(probs=x.double()), Bernoulli(logits=logits.double())).sum(-1)


def gaussian_oracle(x, mean, logvar):
    """``sum log N(x; mean, exp(logvar))`` in float64 by ``torch.distributions``, as a
    cross-entropy: with ``q = N(x, 1)`` and ``p = N(mean, exp(logvar))``,
    ``E_q[log p] = -(KL(q || p) + H(q))``, and ``E_q[log p] = log p(x) - 1 / (2 exp(logvar))``
    because ``log p`` is quadratic."""
    q = Normal(x.double(), torch.ones_like(x, dtype=torch.float64))
    return (-(kl_divergence(q, _normal(mean, logvar)) + q.entropy()) + 0.5 * (-logvar.double()).exp()).sum(-1)


#: How to keep the inputs as they are, for :func:`expect_inputs_unchanged`.
IN_PLACE = ["use out-of-place ops (z = mu + std * eps, not eps.mul_(std) or mu += ...)"]


def _invoke(impl, name, args, grad=False, seed=5):
    """Call ``name(*args)`` keeping the inputs after the call; with ``grad``, also
    back-propagate a random cotangent of the output's shape: one value per example,
    ``args[0].shape[:-1]`` (the functions called with ``grad`` sum over the last axis)."""
    if not grad:
        return impl.invoke(Call(name, tuple(args), want_inputs_after=True)), None
    cot = cotangents(seed, args[0].shape[:-1], dtype=args[0].dtype)
    return impl.invoke(Call(name, tuple(args), grad_wrt=tuple(range(len(args))), cotangents=cot)), cot[0]


# ----------------------------------------------------------------------------- elbo.kl_standard_normal

KL_STD = "gaussian_kl_standard_normal"


@pytest.mark.exercise("elbo.kl_standard_normal", weight=2)
@pytest.mark.oracle("library")
@S.edge_examples("drawn", tensors_edges(2))
@given(tensors(2))
def test_kl_standard_normal_matches_torch(impl, drawn):
    """KL(N(mu, exp(logvar)) || N(0, I)) agrees with torch.distributions.kl_divergence, summed over the last axis"""
    mu, logvar = drawn
    io = describe(mu=mu, logvar=logvar)
    result, _ = _invoke(impl, KL_STD, (mu, logvar))
    expected = kl_oracle(mu, logvar).to(mu.dtype)
    expect_per_example(result.outputs, expected.shape, "KL", inputs=io)
    assert_close(
        result.outputs,
        expected,
        "KL",
        prop="KL differs from torch.distributions.kl_divergence(q, N(0, I)) summed over the latent axis",
        inputs=io,
    )
    expect_inputs_unchanged(result, ("mu", "logvar"), (mu, logvar), KL_STD, inputs=io, hints=IN_PLACE)


def prior_case(b, k, *, dtype=torch.float32, seed=0, on_mu=True):
    """``(mu, logvar, at_prior)`` from ``S.generator(seed)`` (see :func:`prior_or_not`); the
    coordinate away from the prior is in ``mu`` (``on_mu``) or in ``logvar``.  B >= 2: row 0
    is at the prior, row 1 is not."""
    g = S.generator(seed)
    mu, logvar = S.uniform(g, b, k, dtype=dtype, scale=0.3), S.uniform(g, b, k, dtype=dtype, scale=0.3)
    at_prior = torch.rand(b, generator=g) < 0.5
    at_prior[0], at_prior[1] = True, False
    col = torch.randint(0, k, (b,), generator=g)
    away = (torch.rand(b, generator=g, dtype=torch.float64) * 1.5 + 0.5) * torch.where(
        torch.rand(b, generator=g) < 0.5, -1.0, 1.0
    ).double()
    target = mu if on_mu else logvar
    target[torch.arange(b), col] = away.to(dtype)
    mu[at_prior], logvar[at_prior] = 0, 0
    return mu, logvar, at_prior


@S.composite
def prior_or_not(draw, dtype=None):
    """``(mu, logvar, at_prior)``: rows ``(B, K)``, those flagged in ``at_prior`` exactly the
    prior (mu = 0, logvar = 0), the others with one coordinate at least 0.5 away from it."""
    b, k = draw(S.distinct_sizes(2, lo=3, hi=8))
    dtype = dtype or draw(S.dtypes)
    seed = draw(S.seeds)
    return prior_case(b, k, dtype=dtype, seed=seed, on_mu=draw(st.booleans()))


def prior_edges():
    """K = 1, the coordinate away from the prior in mu then in logvar.  No B = 1: a row at
    the prior and a row away from it are both needed."""
    return [
        prior_case(4, 1, dtype=torch.float32, seed=0, on_mu=True),
        prior_case(3, 1, dtype=torch.float64, seed=1, on_mu=False),
    ]


def _check_zero_only_at(got, at_zero, name, io, dtype):
    expect_tensor(got, "KL", shape=at_zero.shape, dtype=dtype, inputs=io)
    atol, _ = tolerance(got.dtype)
    where_zero = got[at_zero].abs().max()
    if bool(where_zero > atol):
        rows = at_zero.nonzero().flatten().tolist()
        fail(
            f"{name} must be 0 when q = p",
            [f"yours is up to {float(where_zero):.4g} for q = p (rows {rows})"],
            io,
            ["KL(q || q) = 1/2 * sum(1 + 0 - 1 - 0) = 0: check the constant -1 and the log term"],
        )
    others = got[~at_zero]
    if bool((others <= 0).any()):
        fail(
            f"{name} must be > 0 when q != p (KL >= 0, with equality only for q = p)",
            [
                f"yours has {int((others <= 0).sum())} value(s) <= 0 where q != p, "
                f"the smallest {float(others.min()):.4g}"
            ],
            io,
            ["is the sign of the log-variance term flipped? the term is exp(logvar) - 1 - logvar >= 0"],
        )


@pytest.mark.exercise("elbo.kl_standard_normal", kind="property")
@pytest.mark.oracle("library")
# K = 1 only: no B = 1, the test needs a row at the prior and a row away from it
@S.edge_examples("drawn", prior_edges())
@given(prior_or_not())
def test_kl_standard_normal_is_zero_only_at_the_prior(impl, drawn):
    """KL >= 0, and KL = 0 exactly for the rows where q is the prior (mu = 0, logvar = 0)"""
    mu, logvar, at_prior = drawn
    io = describe(mu=mu, logvar=logvar)
    got = impl.call(KL_STD, mu, logvar)
    _check_zero_only_at(got, at_prior, "KL(q || N(0, I))", io, mu.dtype)


@pytest.mark.exercise("elbo.kl_standard_normal")
@pytest.mark.oracle("library")
@S.edge_examples("drawn", tensors_edges(2, dtype=torch.float64))
@given(tensors(2, dtype=torch.float64))
def test_kl_standard_normal_gradients(impl, drawn):
    """dKL/dmu = mu and dKL/dlogvar = (exp(logvar) - 1) / 2: autograd reaches both inputs"""
    mu, logvar = drawn
    io = describe(mu=mu, logvar=logvar)
    result, cot = _invoke(impl, KL_STD, (mu, logvar), grad=True)
    assert_grad(result.grads.get(0), cot[..., None] * mu, "dKL/dmu", inputs=io)
    assert_grad(result.grads.get(1), cot[..., None] * 0.5 * (logvar.exp() - 1), "dKL/dlogvar", inputs=io)


# ----------------------------------------------------------------------------- elbo.kl

KL = "gaussian_kl"


@pytest.mark.exercise("elbo.kl", weight=2)
@pytest.mark.oracle("library")
@S.edge_examples("drawn", tensors_edges(4))
@given(tensors(4))
def test_kl_matches_torch(impl, drawn):
    """KL(q || p) between diagonal Gaussians agrees with torch.distributions.kl_divergence, summed over the last axis"""
    mu_q, logvar_q, mu_p, logvar_p = drawn
    io = describe(mu_q=mu_q, logvar_q=logvar_q, mu_p=mu_p, logvar_p=logvar_p)
    result, _ = _invoke(impl, KL, drawn)
    expected = kl_oracle(*drawn).to(mu_q.dtype)
    hints = []
    got = result.outputs
    expect_per_example(got, expected.shape, "KL", inputs=io)
    if isinstance(got, torch.Tensor) and got.shape == expected.shape:
        swapped = kl_oracle(mu_p, logvar_p, mu_q, logvar_q).to(mu_q.dtype)
        if torch.allclose(got.double(), swapped.double(), rtol=1e-4, atol=1e-4):
            hints.append("yours is KL(p || q): the divergence is not symmetric, the arguments are (q, p)")
    assert_close(
        got,
        expected,
        "KL",
        prop="KL(q || p) differs from torch.distributions.kl_divergence summed over the latent axis",
        inputs=io,
        hints=hints,
    )
    expect_inputs_unchanged(result, ("mu_q", "logvar_q", "mu_p", "logvar_p"), drawn, KL, inputs=io, hints=IN_PLACE)


@pytest.mark.exercise("elbo.kl", kind="property")
@pytest.mark.oracle("library")
# K = 1 only: no B = 1, the test needs a row where q = p and a row where q != p
@S.edge_examples(("drawn", "seed"), [(case, n) for n, case in enumerate(prior_edges())])
@given(prior_or_not(), S.seeds)
def test_kl_is_zero_only_when_q_equals_p(impl, drawn, seed):
    """KL(q || p) >= 0, and KL = 0 exactly for the rows where q = p"""
    delta_mu, delta_logvar, same = drawn
    g = S.generator(seed)
    mu_p = S.uniform(g, *delta_mu.shape, dtype=delta_mu.dtype, scale=2.0)
    logvar_p = S.uniform(g, *delta_mu.shape, dtype=delta_mu.dtype, scale=2.0)
    mu_q, logvar_q = mu_p + delta_mu, logvar_p + delta_logvar
    args = (mu_q, logvar_q, mu_p, logvar_p)
    io = describe(mu_q=mu_q, logvar_q=logvar_q, mu_p=mu_p, logvar_p=logvar_p)
    got = impl.call(KL, *args)
    _check_zero_only_at(got, same, "KL(q || p)", io, mu_q.dtype)


@pytest.mark.exercise("elbo.kl")
@pytest.mark.oracle("library")
@S.edge_examples("drawn", tensors_edges(4, dtype=torch.float64))
@given(tensors(4, dtype=torch.float64))
def test_kl_gradients(impl, drawn):
    """dKL/dmu_q = (mu_q - mu_p) / var_p, dKL/dlogvar_q = (var_q / var_p - 1) / 2, and the p side: autograd works"""
    mu_q, logvar_q, mu_p, logvar_p = drawn
    io = describe(mu_q=mu_q, logvar_q=logvar_q, mu_p=mu_p, logvar_p=logvar_p)
    result, cot = _invoke(impl, KL, drawn, grad=True)
    cot = cot[..., None]
    ratio, scaled = (logvar_q - logvar_p).exp(), (mu_q - mu_p) * (-logvar_p).exp()
    expected = (cot * scaled, cot * 0.5 * (ratio - 1), -cot * scaled, cot * 0.5 * (1 - ratio - (mu_q - mu_p) * scaled))
    for i, name in enumerate(("mu_q", "logvar_q", "mu_p", "logvar_p")):
        assert_grad(result.grads.get(i), expected[i], f"dKL/d{name}", inputs=io)


# ----------------------------------------------------------------------------- elbo.reparameterize

REPARAM = "reparameterize"


@pytest.mark.exercise("elbo.reparameterize")
@pytest.mark.oracle("library")
@S.edge_examples("drawn", tensors_edges(3))
@given(tensors(3))
def test_reparameterize_formula(impl, drawn):
    """z = mu + exp(logvar / 2) * eps, in the input's dtype, without modifying mu, logvar or eps"""
    mu, logvar, eps = drawn
    io = describe(mu=mu, logvar=logvar, eps=eps)
    result, _ = _invoke(impl, REPARAM, drawn)
    expected = (mu.double() + (0.5 * logvar.double()).exp() * eps.double()).to(mu.dtype)
    assert_close(
        result.outputs,
        expected,
        "z",
        prop="z differs from mu + exp(logvar / 2) * eps",
        inputs=io,
        hints=["the standard deviation is exp(logvar / 2) = sqrt(exp(logvar))"],
    )
    expect_inputs_unchanged(result, ("mu", "logvar", "eps"), drawn, REPARAM, inputs=io, hints=IN_PLACE)


def samples_case(b, k, *, dtype=torch.float32, seed=0, samples=1000):
    """``mu, logvar (B, K)`` and ``eps (N, B, K)`` standard normal, from ``S.generator(seed)``."""
    g = S.generator(seed)
    mu = S.uniform(g, b, k, dtype=dtype, scale=2.0)
    logvar = S.uniform(g, b, k, dtype=dtype, scale=2.0)
    eps = torch.randn(samples, b, k, generator=g, dtype=torch.float64).to(dtype)
    return mu, logvar, eps


@S.composite
def many_samples(draw, samples=1000):
    """``mu, logvar (B, K)`` and ``eps (N, B, K)`` standard normal from a fixed seed."""
    b, k = draw(S.distinct_sizes(2, lo=2, hi=6))
    dtype = draw(S.dtypes)
    return samples_case(b, k, dtype=dtype, seed=draw(S.seeds), samples=samples)


@pytest.mark.exercise("elbo.reparameterize", weight=2)
@pytest.mark.oracle("library")
@S.edge_examples(
    "drawn", [samples_case(1, 3, dtype=torch.float32, seed=0), samples_case(3, 1, dtype=torch.float64, seed=1)]
)
@given(many_samples())
def test_reparameterize_sample_moments(impl, drawn):
    """1000 reparameterized samples have mean mu and variance exp(logvar), within 6 standard errors"""
    mu, logvar, eps = drawn
    n = eps.shape[0]
    mu_n, logvar_n = mu.expand(n, *mu.shape).clone(), logvar.expand(n, *mu.shape).clone()
    io = describe(mu=mu_n, logvar=logvar_n, eps=eps) + f" ({n} samples of N(0, I) for eps)"
    z = impl.call(REPARAM, mu_n, logvar_n, eps)
    expect_tensor(z, "z", shape=eps.shape, dtype=mu.dtype, inputs=io)
    std = (0.5 * logvar.double()).exp()
    # standard errors: of the mean std / sqrt(n), of the variance ~ var * sqrt(2 / n)
    assert_close(
        z.double().mean(0),
        mu.double(),
        "sample mean",
        prop="the samples' mean differs from mu",
        inputs=io,
        atol=6 * float(std.max()) / math.sqrt(n),
        rtol=0.0,
    )
    assert_close(
        z.double().var(0),
        std.pow(2),
        "sample variance",
        prop="the samples' variance differs from exp(logvar)",
        inputs=io,
        atol=0.0,
        rtol=6 * math.sqrt(2 / n),
        hints=["variance exp(logvar) means standard deviation exp(logvar / 2)"],
    )


@pytest.mark.exercise("elbo.reparameterize")
@pytest.mark.oracle("library")
@S.edge_examples("drawn", tensors_edges(3, dtype=torch.float64))
@given(tensors(3, dtype=torch.float64))
def test_reparameterize_gradients(impl, drawn):
    """dz/dmu = 1 and dz/dlogvar = eps * exp(logvar / 2) / 2: gradients reach mu and logvar"""
    mu, logvar, eps = drawn
    io = describe(mu=mu, logvar=logvar, eps=eps)
    (cot,) = cotangents(3, mu.shape)
    result = impl.invoke(Call(REPARAM, (mu, logvar, eps), grad_wrt=(0, 1), cotangents=(cot,)))
    assert_grad(result.grads.get(0), cot, "dz/dmu", inputs=io)
    assert_grad(result.grads.get(1), cot * eps * 0.5 * (0.5 * logvar).exp(), "dz/dlogvar", inputs=io)


# ----------------------------------------------------------------------------- elbo.bernoulli_ll

BERN = "bernoulli_log_likelihood"


@pytest.mark.exercise("elbo.bernoulli_ll", weight=2)
@pytest.mark.oracle("library")
@S.edge_examples("drawn", bernoulli_edges())
@given(bernoulli_inputs())
def test_bernoulli_matches_torch(impl, drawn):
    """sum over the last axis of log Bernoulli(x; sigmoid(logits)) agrees with torch.distributions.Bernoulli"""
    x, logits = drawn
    io = describe(x=x, logits=logits)
    result, _ = _invoke(impl, BERN, drawn)
    expected = Bernoulli(logits=logits.double()).log_prob(x.double()).sum(-1).to(x.dtype)
    expect_per_example(result.outputs, expected.shape, "log-likelihood", inputs=io)
    assert_close(
        result.outputs,
        expected,
        "log-likelihood",
        prop="log-likelihood differs from Bernoulli(logits=logits).log_prob(x).sum(-1)",
        inputs=io,
    )
    expect_inputs_unchanged(result, ("x", "logits"), drawn, BERN, inputs=io, hints=IN_PLACE)


def huge_logits_of(x, logits, seed):
    """``x`` and ``logits`` with entries of +-1e4, +-1e3, +-100 and +-30 put in, from
    ``S.generator(seed)``."""
    g = S.generator(seed)
    big = torch.tensor([1e4, 1e3, 100.0, 30.0], dtype=torch.float64)[torch.randint(0, 4, logits.shape, generator=g)]
    sign = torch.where(torch.rand(logits.shape, generator=g) < 0.5, -1.0, 1.0).double()
    chosen = torch.rand(logits.shape, generator=g) < 0.6
    logits = torch.where(chosen, (big * sign).to(logits.dtype), logits)
    flat = logits.view(-1)  # always one +1e4 with x = 1 and one -1e4 with x = 1
    flat[0], flat[-1] = 1e4, -1e4
    x = x.clone()
    x.view(-1)[0], x.view(-1)[-1] = 1, 1
    return x, logits


@S.composite
def huge_logits(draw):
    """Binary ``x`` and logits with entries of +-1e4, +-1e3, +-100 and +-30 among moderate ones."""
    x, logits = draw(bernoulli_inputs(scale=3.0))
    return huge_logits_of(x, logits, draw(S.seeds))


@pytest.mark.exercise("elbo.bernoulli_ll", weight=2)
@pytest.mark.oracle("library")
@S.edge_examples("drawn", [huge_logits_of(x, logits, n) for n, (x, logits) in enumerate(bernoulli_edges(scale=3.0))])
@given(huge_logits())
def test_bernoulli_is_stable_for_huge_logits(impl, drawn):
    """for logits up to +-1e4: finite, log p(1) - log p(0) = logit, p(1) + p(0) = 1, summed over the last axis"""
    x, logits = drawn
    io = describe(x=x, logits=logits) + " (logits up to +-1e4)"
    got = impl.call(BERN, x, logits)
    expect_tensor(got, "log-likelihood", shape=x.shape[:-1], dtype=x.dtype, inputs=io, finite=False)
    each = logits[..., None]  # one element per example: log p(x_d) for every d
    io_each = describe(x=torch.ones_like(each), logits=each) + " and the same with x = 0 (logits up to +-1e4)"
    ones = impl.call(BERN, torch.ones_like(each), each)
    zeros = impl.call(BERN, torch.zeros_like(each), each)
    stable = [
        "log(sigmoid(l)) underflows to log(0) = -inf (and 0 * -inf = NaN) for large |l|: use "
        "-F.binary_cross_entropy_with_logits(logits, x, reduction='none') or F.logsigmoid(l), F.logsigmoid(-l)"
    ]
    for name, value, where in (("log p(1)", ones, io_each), ("log p(0)", zeros, io_each), ("log-likelihood", got, io)):
        expect_tensor(
            value, name, shape=x.shape[:-1] if value is got else x.shape, dtype=x.dtype, inputs=where, finite=False
        )
        if not bool(torch.isfinite(value).all()):
            count, first = int((~torch.isfinite(value)).sum()), value.flatten()[:6].tolist()
            fail(
                f"the {name} must stay finite for logits of +-1e4",
                [f"yours has {count} non-finite value(s): {first}"],
                where,
                stable,
            )
    log_odds, log_total = ones - zeros, torch.logaddexp(ones.double(), zeros.double()).to(x.dtype)
    right = torch.allclose(log_odds.double(), logits.double(), rtol=1e-4, atol=1e-4) and bool(
        (log_total.abs() <= 1e-4).all()
    )
    clamping = [] if right else _large_logit_hints(impl, x, logits)  # one more call, only when it fails
    assert_close(
        log_odds,
        logits,
        "log p(1) - log p(0)",
        prop="the log-odds log p(1) - log p(0) of each element must be its logit",
        inputs=io_each,
        hints=clamping,
    )
    assert_close(
        log_total,
        torch.zeros_like(logits),
        "log(p(1) + p(0))",
        prop="the probabilities of each element must sum to 1: log(exp(log p(1)) + exp(log p(0))) = 0",
        inputs=io_each,
        hints=clamping,
    )
    assert_close(
        got,
        (x * ones + (1 - x) * zeros).sum(-1),
        "log-likelihood",
        prop="the log-likelihood must be the sum over the last axis of each element's log p(x_d)",
        inputs=io,
        hints=["sum the per-element log-likelihoods over the last axis (not a mean)"],
    )


def _large_logit_hints(impl, x, logits):
    """When your log-likelihood is right for moderate logits (clamped to +-15, where
    :func:`bernoulli_oracle` is exact), say what goes wrong for large ones."""
    clamped = logits.clamp(-15, 15)
    try:
        moderate = impl.call(BERN, x, clamped)
    except Exception:  # nothing to add
        return []
    want = bernoulli_oracle(x, clamped).to(x.dtype)
    if (
        isinstance(moderate, torch.Tensor)
        and moderate.shape == want.shape
        and torch.allclose(moderate.double(), want.double(), rtol=1e-4, atol=1e-4)
    ):
        return [
            "yours is right for |logits| <= 15 but not beyond: log sigmoid(-1e4) is -1e4, so clamping the "
            "probabilities or adding 1e-8 inside the log (about -18) is wrong there"
        ]
    return []


@pytest.mark.exercise("elbo.bernoulli_ll")
@pytest.mark.oracle("library")
@S.edge_examples("drawn", bernoulli_edges(dtype=torch.float64))
@given(bernoulli_inputs(dtype=torch.float64))
def test_bernoulli_gradient(impl, drawn):
    """d/dlogits of the log-likelihood is x - sigmoid(logits): autograd reaches the logits"""
    x, logits = drawn
    io = describe(x=x, logits=logits)
    (cot,) = cotangents(4, x.shape[:-1])
    result = impl.invoke(Call(BERN, (x, logits), grad_wrt=(1,), cotangents=(cot,)))
    assert_grad(result.grads.get(1), cot[..., None] * (x - torch.sigmoid(logits)), "dLL/dlogits", inputs=io)


# ----------------------------------------------------------------------------- elbo.gaussian_ll

GAUSS = "gaussian_log_likelihood"


@pytest.mark.exercise("elbo.gaussian_ll", weight=2)
@pytest.mark.oracle("library")
@S.edge_examples("drawn", tensors_edges(3))
@given(tensors(3))
def test_gaussian_ll_matches_torch(impl, drawn):
    """sum over the last axis of log N(x; mean, exp(logvar)) agrees with torch.distributions.Normal"""
    x, mean, logvar = drawn
    io = describe(x=x, mean=mean, logvar=logvar)
    result, _ = _invoke(impl, GAUSS, drawn)
    expect_per_example(result.outputs, x.shape[:-1], "log-likelihood", inputs=io)
    assert_close(
        result.outputs,
        gaussian_oracle(x, mean, logvar).to(x.dtype),
        "log-likelihood",
        prop="log-likelihood differs from Normal(mean, exp(logvar / 2)).log_prob(x).sum(-1)",
        inputs=io,
        hints=["-1/2 * (log(2 pi) + logvar + (x - mean)^2 / exp(logvar)) per dimension, summed over the last axis"],
    )
    expect_inputs_unchanged(result, ("x", "mean", "logvar"), drawn, GAUSS, inputs=io, hints=IN_PLACE)


@pytest.mark.exercise("elbo.gaussian_ll")
@pytest.mark.oracle("library")
@S.edge_examples("drawn", tensors_edges(3, dtype=torch.float64))
@given(tensors(3, dtype=torch.float64))
def test_gaussian_ll_gradients(impl, drawn):
    """dLL/dmean = -dLL/dx = (x - mean) / var and dLL/dlogvar = ((x - mean)^2 / var - 1) / 2: autograd works"""
    x, mean, logvar = drawn
    io = describe(x=x, mean=mean, logvar=logvar)
    result, cot = _invoke(impl, GAUSS, drawn, grad=True)
    cot = cot[..., None]
    scaled = (x - mean) * (-logvar).exp()
    expected = (-cot * scaled, cot * scaled, cot * 0.5 * ((x - mean) * scaled - 1))
    for i, name in enumerate(("x", "mean", "logvar")):
        assert_grad(result.grads.get(i), expected[i], f"dLL/d{name}", inputs=io)


@S.composite
def linear_gaussian(draw, samples=64):
    """A linear-Gaussian model ``z ~ N(0, I_K)``, ``x | z ~ N(W z + c, diag(exp(logvar_x)))``,
    a batch of ``x``, a diagonal ``q(z|x) = N(mu, diag(exp(logvar)))`` per example and
    ``eps (N, B, K)``: standard-normal draws whitened per example, so that their sample
    mean is exactly 0 and their sample covariance exactly I.  ``log p(x|z)`` is quadratic
    in ``z``, so the sample average over these ``eps`` equals the expectation under q."""
    b, k, d = draw(S.distinct_sizes(3, lo=2, hi=6))
    dtype = draw(S.dtypes)
    return linear_gaussian_case(b, k, d, dtype=dtype, seed=draw(S.seeds), samples=samples)


def linear_gaussian_case(b, k, d, *, dtype=torch.float32, seed=0, samples=64):
    """The model of :func:`linear_gaussian` for B examples, K latent and D data dimensions,
    from ``S.generator(seed)``."""
    g = S.generator(seed)
    W = S.uniform(g, d, k, scale=1.0)
    c = S.uniform(g, d, scale=1.0)
    logvar_x = S.uniform(g, d, scale=1.0) - 0.5
    z0 = torch.randn(b, k, generator=g, dtype=torch.float64)
    x = z0 @ W.T + c + torch.randn(b, d, generator=g, dtype=torch.float64) * (0.5 * logvar_x).exp()
    mu = S.uniform(g, b, k, scale=1.0)
    logvar = S.uniform(g, b, k, scale=1.0)
    eps = torch.randn(samples, b, k, generator=g, dtype=torch.float64)
    eps = eps - eps.mean(0)
    cov = torch.einsum("nbi,nbj->bij", eps, eps) / samples
    eps = torch.einsum("bij,nbj->nbi", torch.linalg.inv(torch.linalg.cholesky(cov)), eps)
    return dict(W=W, c=c, logvar_x=logvar_x, x=x, mu=mu, logvar=logvar, eps=eps, dtype=dtype)


def mvn_log_prob(x, mean, cov):
    """``log N(x; mean, cov)`` for a full covariance, rows of ``x``."""
    r = x - mean
    return -0.5 * (
        x.shape[-1] * math.log(2 * math.pi)
        + torch.linalg.slogdet(cov)[1]
        + (r * torch.linalg.solve(cov, r.T).T).sum(-1)
    )


def mvn_kl(mean0, cov0, mean1, cov1):
    """``KL(N(mean0, cov0) || N(mean1, cov1))``, batched over the rows of ``mean0``, ``cov0``."""
    k = mean0.shape[-1]
    inv1 = torch.linalg.inv(cov1)
    r = mean1 - mean0
    return 0.5 * (
        torch.einsum("ij,bji->b", inv1, cov0)
        + ((r @ inv1) * r).sum(-1)
        - k
        + torch.linalg.slogdet(cov1)[1]
        - torch.linalg.slogdet(cov0)[1]
    )


def linear_gaussian_truth(m):
    """``(log p(x), KL(q || p(z|x)))`` in closed form, float64: ``p(x) = N(c, W W^T + Psi)``,
    ``p(z|x) = N(S W^T Psi^-1 (x - c), S)`` with ``S = (I + W^T Psi^-1 W)^-1``."""
    W, c, psi = m["W"], m["c"], m["logvar_x"].exp()
    log_px = mvn_log_prob(m["x"], c, W @ W.T + torch.diag(psi))
    cov_post = torch.linalg.inv(torch.eye(W.shape[1], dtype=W.dtype) + W.T @ (W / psi[:, None]))
    mean_post = ((m["x"] - c) / psi) @ W @ cov_post.T
    return log_px, mvn_kl(m["mu"], torch.diag_embed(m["logvar"].exp()), mean_post, cov_post)


@pytest.mark.exercise("elbo.gaussian_ll", weight=2)
@pytest.mark.oracle("library")
@S.edge_examples(
    "model",
    [
        linear_gaussian_case(**sizes, dtype=S.FLOAT_DTYPES[n % 2], seed=n)
        for n, sizes in enumerate(S.with_one(dict(b=2, k=3, d=4), "b", "k", "d"))
    ],
)
@given(linear_gaussian())
def test_gaussian_ll_gives_the_elbo_identity(impl, model):
    """on a linear-Gaussian model, mean_z log p(x|z) - KL(q || p(z)) <= log p(x) and = log p(x) - KL(q || p(z|x))"""
    dt = model["dtype"]
    n, b, _ = model["eps"].shape
    mu, logvar = model["mu"].to(dt), model["logvar"].to(dt)
    q = _normal(mu, logvar)
    z = (q.loc + q.scale * model["eps"].to(dt).double()).to(dt)  # (N, B, K), samples of q(z|x)
    dec_mean = z @ model["W"].T.to(dt) + model["c"].to(dt)
    dec_logvar = model["logvar_x"].to(dt).expand_as(dec_mean).clone()
    x = model["x"].to(dt).expand_as(dec_mean).clone()
    prior_kl = kl_oracle(mu, logvar).to(dt)
    io = describe(x=x, mean=dec_mean, logvar=dec_logvar) + f" ({n} samples z of q(z|x) for {b} examples)"
    ll = impl.call(GAUSS, x, dec_mean, dec_logvar)
    expect_tensor(ll, "log p(x|z)", shape=(n, b), dtype=dt, inputs=io)
    elbo_mc = ll.mean(0) - prior_kl
    log_px, kl_post = (t.to(dt) for t in linear_gaussian_truth(model))
    atol, rtol = (1e-6, 1e-7) if dt == torch.float64 else (2e-3, 1e-4)
    excess = elbo_mc - log_px
    if bool((excess > atol + rtol * log_px.abs()).any()):
        fail(
            "the ELBO must never exceed the evidence: mean_z log p(x|z) - KL(q || p(z)) <= log p(x)",
            [
                f"yours exceeds log p(x) by up to {float(excess.max()):.4g}",
                f"your ELBO: {elbo_mc.tolist()}",
                f"log p(x):  {log_px.tolist()}",
            ],
            io,
            ["is the -1/2 log(2 pi) constant of every dimension missing?"],
        )
    assert_close(
        elbo_mc,
        log_px - kl_post,
        "ELBO",
        prop="the ELBO from your log p(x|z) must equal log p(x) - KL(q || p(z|x)), the lecture's identity",
        inputs=io,
        atol=atol,
        rtol=rtol,
    )


# ----------------------------------------------------------------------------- elbo.elbo

ELBO = "elbo"


def elbo_oracle(x, logits, mu, logvar):
    """``bernoulli_oracle - kl_oracle``: both by ``torch.distributions.kl_divergence``, in float64."""
    return bernoulli_oracle(x, logits) - kl_oracle(mu, logvar)


def _own_pieces_hint(impl, drawn, got, expected):
    """When the ELBO is wrong but equals the student's own bernoulli_log_likelihood minus
    gaussian_kl_standard_normal, the mistake is in those pieces: say so."""
    x, logits, mu, logvar = drawn
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape or got.dtype != expected.dtype:
        return []
    if torch.allclose(got.double(), expected.double(), rtol=1e-4, atol=1e-4):
        return []
    try:
        own = impl.call(BERN, x, logits) - impl.call(KL_STD, mu, logvar)
    except Exception:  # the pieces are missing or raise: nothing to say
        return []
    if isinstance(own, torch.Tensor) and own.shape == got.shape and torch.allclose(got, own, rtol=1e-4, atol=1e-4):
        return [
            "your elbo equals your bernoulli_log_likelihood - gaussian_kl_standard_normal, so the mistake is in "
            "those (see their exercises)"
        ]
    return []


@pytest.mark.exercise("elbo.elbo", weight=2)
@pytest.mark.oracle("library")
@S.edge_examples("drawn", elbo_edges())
@given(elbo_inputs())
def test_elbo_is_reconstruction_minus_kl(impl, drawn):
    """elbo = sum log Bernoulli(x; sigmoid(logits)) - KL(q || N(0, I)), one value per example"""
    x, logits, mu, logvar = drawn
    io = describe(x=x, recon_logits=logits, mu=mu, logvar=logvar)
    result, _ = _invoke(impl, ELBO, drawn)
    got, expected = result.outputs, elbo_oracle(*drawn).to(x.dtype)
    expect_per_example(got, expected.shape, "ELBO", inputs=io)
    hints = ["ELBO = reconstruction - KL (subtract the KL), one value per example (no mean over the batch)"]
    assert_close(
        got,
        expected,
        "ELBO",
        prop="elbo differs from Bernoulli log-likelihood - KL(q || N(0, I))",
        inputs=io,
        hints=_own_pieces_hint(impl, drawn, got, expected) + hints,
    )
    expect_inputs_unchanged(result, ("x", "recon_logits", "mu", "logvar"), drawn, ELBO, inputs=io, hints=IN_PLACE)


@pytest.mark.exercise("elbo.elbo")
@pytest.mark.oracle("library")
@S.edge_examples("drawn", elbo_edges())
@given(elbo_inputs())
def test_elbo_subtracts_the_kl(impl, drawn):
    """elbo(x, l, mu, logvar) = elbo(x, l, 0, 0) - KL(q || N(0, I)) <= elbo(x, l, 0, 0): q = prior has KL 0"""
    x, logits, mu, logvar = drawn
    zeros = torch.zeros_like(mu)
    io = describe(x=x, recon_logits=logits, mu=mu, logvar=logvar) + "; and the same with mu = logvar = 0"
    got = impl.call(ELBO, x, logits, mu, logvar)
    at_prior = impl.call(ELBO, x, logits, zeros, zeros)
    for name, value in (("elbo(x, l, mu, logvar)", got), ("elbo(x, l, 0, 0)", at_prior)):
        expect_per_example(value, x.shape[:-1], name, inputs=io)
        expect_tensor(
            value,
            name,
            shape=x.shape[:-1],
            dtype=x.dtype,
            inputs=io,
            prop=f"{name} must hold one ELBO per example, shape x.shape[:-1], in the input's dtype",
        )
    kl = kl_oracle(mu, logvar).to(x.dtype)
    atol, rtol = tolerance(x.dtype)
    if bool((got > at_prior + atol + rtol * at_prior.abs()).any()):
        fail(
            "the ELBO can never exceed its value at q = prior: elbo = reconstruction - KL with KL >= 0",
            [f"yours exceeds elbo(x, l, 0, 0) by up to {float((got - at_prior).max()):.4g}"],
            io,
            ["subtract the KL from the reconstruction term, do not add it"],
        )
    assert_close(
        at_prior - got,
        kl,
        "elbo(x, l, 0, 0) - elbo(x, l, mu, logvar)",
        prop="moving q away from the prior must lower the ELBO by exactly KL(q || N(0, I))",
        inputs=io,
    )


@pytest.mark.exercise("elbo.elbo")
@pytest.mark.oracle("library")
@S.edge_examples("drawn", elbo_edges(dtype=torch.float64))
@given(elbo_inputs(dtype=torch.float64))
def test_elbo_gradients(impl, drawn):
    """dELBO/dlogits = x - sigmoid(logits), dELBO/dmu = -mu, dELBO/dlogvar = (1 - exp(logvar)) / 2: autograd works"""
    x, logits, mu, logvar = drawn
    io = describe(x=x, recon_logits=logits, mu=mu, logvar=logvar)
    (cot,) = cotangents(6, x.shape[:-1])
    result = impl.invoke(Call(ELBO, drawn, grad_wrt=(1, 2, 3), cotangents=(cot,)))
    cot = cot[..., None]
    expected = (cot * (x - torch.sigmoid(logits)), -cot * mu, cot * 0.5 * (1 - logvar.exp()))
    for i, name in zip((1, 2, 3), ("recon_logits", "mu", "logvar")):
        assert_grad(result.grads.get(i), expected[i - 1], f"dELBO/d{name}", inputs=io)


# ----------------------------------------------------------------------------- devices (cpu, meta, cuda)


def _binary(g, *shape):
    """Binary float64 values of ``shape`` from the generator ``g``."""
    return (torch.rand(*shape, generator=g) > 0.5).double()


def _reparameterize_device_case(g):
    """``(mu, logvar, eps)`` built backwards from a drawn ``z``: ``eps = (z - mu) / exp(logvar / 2)``,
    so that ``z`` is the expected output (no oracle computes it)."""
    mu, logvar, z = S.uniform(g, 3, 4), S.uniform(g, 3, 4), S.uniform(g, 3, 4, scale=2.0)
    return (mu, logvar, (z - mu) * (-0.5 * logvar).exp()), {}, z


DEVICE_CASES = [
    DeviceCase(
        "elbo.kl_standard_normal",
        KL_STD,
        lambda g: ((S.uniform(g, 3, 4, scale=2.0), S.uniform(g, 3, 4, scale=2.0)), {}),
        ("KL",),
        oracle=kl_oracle,
    ),
    DeviceCase(
        "elbo.kl",
        KL,
        lambda g: (tuple(S.uniform(g, 3, 4, scale=2.0) for _ in range(4)), {}),
        ("KL",),
        oracle=kl_oracle,
    ),
    DeviceCase("elbo.reparameterize", REPARAM, _reparameterize_device_case, ("z",), answered=True),
    DeviceCase(
        "elbo.bernoulli_ll",
        BERN,
        lambda g: ((_binary(g, 3, 5), S.uniform(g, 3, 5, scale=4.0)), {}),
        ("log-likelihood",),
        oracle=bernoulli_oracle,
    ),
    DeviceCase(
        "elbo.gaussian_ll",
        GAUSS,
        lambda g: (tuple(S.uniform(g, 3, 5, scale=2.0) for _ in range(3)), {}),
        ("log-likelihood",),
        oracle=gaussian_oracle,
    ),
    DeviceCase(
        "elbo.elbo",
        ELBO,
        lambda g: ((_binary(g, 3, 5), S.uniform(g, 3, 5, scale=4.0), S.uniform(g, 3, 4), S.uniform(g, 3, 4)), {}),
        ("ELBO",),
        oracle=elbo_oracle,
    ),
]
test_devices = device_tests(__name__, DEVICE_CASES)
