"""The answer check (grader/release/answers.py) without grading: which functions of a public
test file are candidates and what they carry along, which exercise names they could serve,
what a paste looks like, and that the forbidden-call check refuses a paste of a library
oracle but not the paste machinery itself.  Grading pastes for real (a formula oracle is
reported, the real release is clean) is in tests/selftest/test_release.py."""

import textwrap
import types

import pytest
import torch

from grader import ROOT
from grader.execution import static_check
from grader.release import answers

TESTS = textwrap.dedent(
    '''\
    """A fake public test file."""

    import numpy as np
    import torch
    from torch.distributions import Bernoulli, Normal, kl_divergence

    from grader.testing import strategies as S

    SCALE = 2.0
    UNUSED = object()


    def formula(x, logits):
        """A formula oracle."""
        return _helper(x) * logits * SCALE


    def _helper(x):
        return x.double()


    def library(mu, logvar):
        """A library oracle the forbidden-call check refuses."""
        return kl_divergence(Normal(mu, logvar.exp()), Normal(0.0, 1.0)).sum(-1)


    def gaussian(x, mean, logvar):
        return Normal(mean, (0.5 * logvar).exp()).log_prob(x).sum(-1)


    @S.composite
    def drawn(draw, n=3):
        return draw(n)


    def test_something(impl, case):
        def nested(a):
            return a + case
        check = lambda a, b: a < b
        return nested, check


    def needs_keyword(a, *, b):
        return a


    def table(n):
        return np.ones(n)
    '''
)


def by_name(found):
    """``{qualified name: candidate}``."""
    return {c.name: c for c in found}


def test_every_def_nested_def_and_lambda_is_a_candidate_but_keyword_only_ones():
    """Module-level and nested functions and lambdas are candidates, with their arity; keyword-only ones are not."""
    found = by_name(answers.candidates_of("tests/exercises/test_fake.py", TESTS))
    assert set(found) == {
        "formula",
        "_helper",
        "library",
        "gaussian",
        "drawn",
        "test_something",
        "test_something.<locals>.nested",
        "test_something.<locals>.<lambda>",
        "table",
    }
    assert (found["formula"].required, found["formula"].most) == (2, 2)
    assert (found["drawn"].required, found["drawn"].most) == (1, 2)
    assert found["formula"].path == "tests/exercises/test_fake.py" and found["formula"].line == 13


def test_a_candidate_carries_what_it_uses_in_file_order_with_imports_trimmed():
    """A candidate's code holds the statements it uses, in file order, and imports only the names it uses."""
    found = by_name(answers.candidates_of("tests/exercises/test_fake.py", TESTS))
    source = found["formula"].source
    assert "SCALE = 2.0" in source and "def _helper(x)" in source
    assert source.index("SCALE = 2.0") < source.index("def formula") < source.index("def _helper")
    assert f"\n{answers.ANSWER} = formula\n" in source
    assert "UNUSED" not in source and "import numpy" not in source and "grader" not in source
    gaussian = found["gaussian"].source
    assert "from torch.distributions import Normal\n" in gaussian and "kl_divergence" not in gaussian
    assert "from torch.distributions import Normal, kl_divergence" in found["library"].source


def test_a_candidate_loses_its_decorators_and_a_nested_one_runs_alone():
    """A decorated function is pasted as written; a nested one that needs its enclosing locals fails alone."""
    found = by_name(answers.candidates_of("tests/exercises/test_fake.py", TESTS))
    assert "@" not in found["drawn"].source and "def drawn(draw, n=3)" in found["drawn"].source
    nested = types.ModuleType("nested")
    exec(found["test_something.<locals>.nested"].source, nested.__dict__)
    with pytest.raises(NameError):  # `case` was the enclosing test's local
        getattr(nested, answers.ANSWER)(1)
    lam = types.ModuleType("lam")
    exec(found["test_something.<locals>.<lambda>"].source, lam.__dict__)
    assert getattr(lam, answers.ANSWER)(1, 2) is True


def stub(module):
    """The real stub of ``module``."""
    return (ROOT / "assignments" / f"{module}.py").read_text(encoding="utf-8")


def test_targets_are_the_stub_functions_and_a_class_forward():
    """The exercise names of a stub: its functions, and a class's forward without self."""
    targets = {t.name: t for t in answers.targets_of("attention", stub("attention"))}
    assert set(targets) == {
        "scaled_dot_product_attention",
        "causal_mask",
        "padding_mask",
        "split_heads",
        "merge_heads",
        "MultiHeadAttention",
        "sinusoidal_positional_encoding",
    }
    causal = targets["causal_mask"]
    assert (causal.params, causal.required, causal.signature, causal.method) == (
        ("length", "device"),
        1,
        "length, device=None",
        False,
    )
    mha = targets["MultiHeadAttention"]
    assert (mha.params, mha.required, mha.method, mha.exercise) == (
        ("query", "key", "value", "mask"),
        3,
        True,
        "attention.mha",
    )


def test_pastes_try_every_argument_count_both_signatures_accept(tmp_path):
    """Each candidate is pasted once per number of leading arguments both signatures accept."""
    (tmp_path / "assignments").mkdir()
    (tmp_path / "assignments" / "attention.py").write_text(stub("attention"), encoding="utf-8")
    (tmp_path / "tests" / "exercises").mkdir(parents=True)
    (tmp_path / "tests" / "exercises" / "test_fake.py").write_text(TESTS, encoding="utf-8")
    found = answers.pastes(tmp_path, answers.candidates(tmp_path))
    pairs = {(p.candidate.name, p.target.name, p.count) for p in found}
    assert ("formula", "padding_mask", 2) in pairs and ("formula", "split_heads", 2) in pairs
    assert ("table", "causal_mask", 1) in pairs and ("table", "causal_mask", 2) not in pairs
    assert ("drawn", "causal_mask", 2) in pairs and ("drawn", "causal_mask", 1) in pairs
    # forward(query, key, value, mask=None) gets the state dict first: 4 or 5 arguments
    assert ("test_something.<locals>.<lambda>", "MultiHeadAttention", 3) not in pairs
    assert all(p.target.module == "attention" for p in found)
    assert len({p.id for p in found}) == len(found)


def pasted_module(source):
    """The pasted source imported as a module (trusted code: the test's own candidate)."""
    module = types.ModuleType("pasted")
    exec(compile(source, "<pasted>", "exec"), module.__dict__)
    return module


def test_the_wrapper_casts_to_the_input_dtype_and_device_or_the_default_dtype():
    """The wrapper casts floating outputs to the input's dtype (else the default dtype) and numpy to torch and ints."""
    candidate = answers.Candidate(
        "tests/exercises/test_fake.py",
        1,
        0,
        "f",
        2,
        2,
        "import numpy as np\n\n_answer_candidate = lambda a, b: a + b\n",
    )
    bernoulli = {t.name: t for t in answers.targets_of("elbo", stub("elbo"))}["bernoulli_log_likelihood"]
    module = pasted_module(answers.paste(stub("elbo"), candidate, bernoulli, 2))
    x, logits = torch.ones(2, 3), torch.full((2, 3), 2.0)
    got = module.bernoulli_log_likelihood(x.double(), logits.double())
    assert got.dtype == torch.float64 and torch.equal(got, torch.full((2, 3), 3.0, dtype=torch.float64))
    numpy_candidate = answers.Candidate(
        "t", 1, 0, "g", 2, 2, "import numpy as np\n\n_answer_candidate = lambda n, d: (np.zeros((n, d)), np.int64(n))\n"
    )
    targets = {t.name: t for t in answers.targets_of("attention", stub("attention"))}
    module = pasted_module(answers.paste(stub("attention"), numpy_candidate, targets["padding_mask"], 2))
    out, count = module.padding_mask(2, 3)
    assert out.dtype == torch.get_default_dtype() and out.shape == (2, 3) and type(count) is int


def test_the_forbidden_call_check_refuses_a_library_oracle_and_passes_a_formula():
    """A paste using kl_divergence is refused; the paste machinery itself, around a formula, is not."""
    found = by_name(answers.candidates_of("tests/exercises/test_fake.py", TESTS))
    targets = {t.name: t for t in answers.targets_of("elbo", stub("elbo"))}
    library = answers.paste(stub("elbo"), found["library"], targets["gaussian_kl_standard_normal"], 2)
    refused = static_check.check_source(library, ["gaussian_kl_standard_normal"])
    assert "kl_divergence" in refused["gaussian_kl_standard_normal"][0]["what"]
    formula = answers.paste(stub("elbo"), found["formula"], targets["bernoulli_log_likelihood"], 2)
    assert static_check.check_source(formula, ["bernoulli_log_likelihood"]) == {}
    gaussian = answers.paste(stub("elbo"), found["gaussian"], targets["gaussian_log_likelihood"], 3)
    assert static_check.check_source(gaussian, ["gaussian_log_likelihood"]) == {}


def test_a_module_paste_passes_the_forbidden_call_check_and_calls_the_candidate_with_the_state():
    """A class exercise's paste loads any state dict and calls the candidate with it first."""
    candidate = answers.Candidate(
        "t", 1, 0, "f", 5, 5, "_answer_candidate = lambda state, q, k, v, mask: (q @ state['w'], state['w'])\n"
    )
    target = {t.name: t for t in answers.targets_of("attention", stub("attention"))}["MultiHeadAttention"]
    source = answers.paste(stub("attention"), candidate, target, 4)
    assert static_check.check_source(source, ["MultiHeadAttention"]) == {}
    module = pasted_module(source).MultiHeadAttention(4, 2)
    module.load_state_dict({"w": torch.eye(4, dtype=torch.float64)})
    out, weights = module(torch.ones(1, 2, 4, dtype=torch.float64), None, None)
    assert out.dtype == torch.float64 and torch.equal(weights, torch.eye(4, dtype=torch.float64))
