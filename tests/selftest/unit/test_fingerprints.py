"""Fingerprints: the data survives ``torch.load(weights_only=True)``, signatures agree up to
float noise and on nothing else and hold no value, the cases are chosen to tell mistakes
apart, and a student's module that behaves like one mistake is named, in process (the
release runs the same code behind the sandbox)."""

import io
import math
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grader import mistakes
from grader.adapters import open_implementation
from grader.execution.calls import Call, CallResult
from grader.release import fingerprints as build
from grader.testing import diagnose, fingerprints
from grader.testing import reference as solutions
from grader.testing.replay import Step, replay


def _reload(value):
    buffer = io.BytesIO()
    torch.save(value, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


SALT = bytes(range(16))


def sig(value, salt=SALT):
    """The signature of a step that returned ``value``."""
    return fingerprints.signature(("ok", value), salt)


def test_steps_and_signatures_survive_a_weights_only_load():
    """A step with tensors, a dtype, gradients and cotangents, and the signature of a
    CallResult outcome, come back equal from the file format the release ships."""
    call = Call(
        "f",
        (torch.arange(6.0).reshape(2, 3), 3, (True, None)),
        {"mask": torch.tensor([True, False])},
        None,
        (0,),
        (torch.ones(2, 3),),
        True,
        torch.float64,
    )
    step = fingerprints.step(_reload(fingerprints.step_data(Step("invoke", call, 7))))
    assert (step.kind, step.oid, step.call.name, step.call.grad_wrt) == ("invoke", 7, "f", (0,))
    assert torch.equal(step.call.args[0], call.args[0]) and step.call.args[1:] == (3, (True, None))
    assert step.call.default_dtype is torch.float64 and step.call.want_inputs_after
    result = CallResult(torch.ones(2), {0: torch.zeros(2, 3)}, {"w": torch.ones(1)}, [torch.ones(2)])
    back = _reload(sig(result))
    assert back == sig(result) and fingerprints.agree(back, sig(result))
    assert not fingerprints.agree(back, sig(CallResult(torch.zeros(2))))
    raised = ("raised", "ValueError", "m must be positive")
    assert _reload(fingerprints.signature(raised, SALT)) == fingerprints.signature(raised, SALT)


def test_a_signature_holds_no_value():
    """Structure and hashes only: no tensor, no float, no number but a tensor's shape, and none
    of the values signed, whatever their type."""
    outcome = CallResult(
        (torch.tensor([[0.25, 1.5], [-3.0, float("nan")]]), 7, 2.5, "secret text"),
        {0: torch.tensor([1.0, float("inf")], dtype=torch.float64)},
        {},
        [torch.tensor([3, 4]), torch.tensor([True])],
    )
    for signed in (sig(outcome), fingerprints.signature(("raised", "ValueError", "got 7 and 2.5"), SALT)):
        text = repr(signed)
        assert "tensor(" not in text and "0.25" not in text and "2.5" not in text and "secret" not in text
        assert "got 7" not in text and "'value': 7" not in text
        for key, leaf in _walk(signed):
            if key == "tensor":
                assert type(leaf) is int  # a dimension of a shape
            elif key == "dtype":
                assert leaf in ("float32", "float64", "int64", "bool")
            elif key == "device":
                assert leaf == "cpu"
            elif key == "dict":
                assert leaf == "0"  # the gradients' keys (argument positions) are structure
            elif key == "cells":  # two hashes per sum
                assert type(leaf) is bytes and len(leaf) == 2 * fingerprints.PROJECTIONS * fingerprints.DIGEST_BYTES
            else:
                assert leaf is None or type(leaf) is bytes and len(leaf) == fingerprints.DIGEST_BYTES, (key, leaf)
    shapes = [leaf for key, leaf in _walk(sig(outcome)) if key == "tensor"]
    assert shapes == [2, 2, 2, 2, 1]  # the shapes (2, 2), (2,), (2,), (1,) only


def _walk(value, key=None):
    """``(the dict key above, leaf)`` for every leaf of plain data."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v, key)
    else:
        yield key, value


def test_signatures_are_keyed_by_the_salt():
    """Another salt, other hashes: nothing signed in one release matches another's."""
    x = torch.linspace(-2, 2, 7)
    assert fingerprints.agree(sig(x), sig(x.clone()))
    assert not fingerprints.agree(sig(x), sig(x, salt=b"another salt...."))
    assert sig(3) != sig(3, salt=b"another salt....")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 300),
    st.integers(0, 2**32 - 1),
    st.sampled_from([1e-2, 1.0, 1e3]),
)
def test_float_noise_always_matches_and_a_real_difference_never(dtype, n, seed, scale):
    """Outputs equal up to float noise (a few ulps of each element, any size, any scale)
    agree; one element moved by 5 grid steps (in asinh units), or one NaN more, does not."""
    g = torch.Generator().manual_seed(seed)
    x = ((torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * scale).to(dtype)
    noise = 1 + (torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * 8 * torch.finfo(dtype).eps
    assert fingerprints.agree(sig(x), sig((x.double() * noise).to(dtype)))
    step = fingerprints.GRID.get(dtype, fingerprints.DEFAULT_GRID)
    moved = x.double().clone()
    i = int(torch.randint(n, (1,), generator=g))
    moved[i] = math.sinh(math.asinh(moved[i]) + 5 * step)
    assert not fingerprints.agree(sig(x), sig(moved.to(dtype)))
    nan = x.clone()
    nan[i] = float("nan")
    assert not fingerprints.agree(sig(x), sig(nan))
    assert fingerprints.agree(sig(nan), sig(nan.clone()))


@settings(max_examples=100, deadline=None)
@given(st.integers(-5_000, 5_000), st.floats(0.0, 0.49), st.booleans())
def test_values_near_a_grid_boundary_match_on_the_other_grid(cell, within, above):
    """Two values less than half a grid step apart, on either side of a boundary of one grid
    (where rounding alone would split them), agree through the other grid; a step apart
    they never do.  One element: its sums are +-asinh(x)."""
    step = fingerprints.DEFAULT_GRID
    boundary = cell * step
    a = math.sinh(boundary - within * step / 2)
    b = math.sinh(boundary + within * step / 2)
    x, y = (torch.tensor([a], dtype=torch.float64).float(), torch.tensor([b], dtype=torch.float64).float())
    if abs(math.asinh(float(y)) - math.asinh(float(x))) < step / 2:
        assert fingerprints.agree(sig(x), sig(y))
    far = torch.tensor([math.sinh(math.asinh(float(x)) + (1.01 if above else -1.01) * step)])
    assert not fingerprints.agree(sig(x), sig(far))


def test_exact_values_shapes_dtypes_and_exceptions():
    """Integers, bools, numbers, strings and exceptions agree only when equal; a tensor of
    another shape or dtype never agrees."""
    ints = torch.tensor([3, 4, 5])
    assert fingerprints.agree(sig(ints), sig(ints.clone()))
    assert not fingerprints.agree(sig(ints), sig(torch.tensor([3, 4, 6])))
    assert not fingerprints.agree(sig(torch.tensor([True, False])), sig(torch.tensor([True, True])))
    assert fingerprints.agree(sig((12, "a", None)), sig([12, "a", None]))  # lists and tuples alike, as same() does
    assert not fingerprints.agree(sig(12), sig(13)) and not fingerprints.agree(sig(12), sig(12.0))
    x = torch.ones(2, 3)
    assert not fingerprints.agree(sig(x), sig(x.reshape(3, 2))) and not fingerprints.agree(sig(x), sig(x.double()))
    err = ("raised", "ValueError", "m must be positive")
    assert fingerprints.agree(fingerprints.signature(err, SALT), fingerprints.signature(err, SALT))
    assert not fingerprints.agree(
        fingerprints.signature(err, SALT), fingerprints.signature(("raised", "TypeError", err[2]), SALT)
    )
    assert not fingerprints.agree(fingerprints.signature(err, SALT), sig(None))


def _ok(*values):
    return [("ok", v) for v in values]


def test_cases_are_chosen_to_detect_then_separate_mistakes():
    """Example 2 alone tells both entries from the reference, but not from each other; example
    1 separates them; example 0 adds nothing and is left out."""
    examples = [[Step("invoke", Call("f", (torch.ones(n),)))] for n in (1, 2, 3)]
    reference = [_ok(0), _ok(0), _ok(0)]
    entries = {"a": [_ok(0), _ok(1), _ok(5)], "b": [_ok(0), _ok(0), _ok(5)]}
    assert build.choose(examples, reference, entries) == [2, 1]
    assert build.choose(examples, reference, {"same": [_ok(0), _ok(0), _ok(0)]}) == []


def test_a_module_that_behaves_like_one_mistake_is_named(tmp_path, monkeypatch):
    """Fingerprints of two catalog entries on a few categorical_params cases: a student module
    equal to one of them gets that entry's hint (on a fresh copy of the module); the
    reference gets none."""
    wrong = {m.id: m for m in mistakes.load("param_count")}["categorical_m"]
    steps = [Step("invoke", Call("categorical_params", (m,))) for m in (1, 2, 7)]
    steps.append(Step("invoke", Call("categorical_params", (0,))))
    expected = replay(steps, solutions.load("param_count"), "param_count")
    entries = [  # as the builder keeps them: those that differ from the reference on the cases
        {"id": m.id, "exercise": m.exercise, "mistake": m.mistake, "outcomes": theirs}
        for m in mistakes.hint_candidates("param_count")
        if m.exercise == "param_count.categorical"
        and not build._same(theirs := replay(steps, mistakes.namespace(m), "param_count"), expected)
    ]
    data = {
        "version": fingerprints.VERSION,
        "module": "param_count",
        "salt": SALT.hex(),
        "exercises": {
            "param_count.categorical": {
                "steps": [fingerprints.step_data(s) for s in steps],
                "entries": [
                    {**e, "outcomes": [fingerprints.signature(o, SALT) for o in e["outcomes"]]} for e in entries
                ],
            }
        },
    }
    monkeypatch.setattr(fingerprints, "load", lambda module, folder=None: _reload(data))
    for name, source in (("wrong", wrong.source()), ("right", solutions.path("param_count").read_text())):
        (tmp_path / name).mkdir()
        (tmp_path / name / "param_count.py").write_text(source)
    opened = []

    def reopen(folder):
        opened.append(folder)
        return open_implementation(str(tmp_path / folder), "param_count", "inprocess")

    recording = diagnose.Recording(SimpleNamespace(module="param_count"), lambda: reopen("wrong"))
    assert fingerprints.hints("param_count.categorical", recording) == [f"your code matches {wrong.mistake}"]
    assert fingerprints.hints("param_count.categorical", recording) == [f"your code matches {wrong.mistake}"]
    assert opened == ["wrong"]  # the cases run once per exercise
    right = diagnose.Recording(SimpleNamespace(module="param_count"), lambda: reopen("right"))
    assert fingerprints.hints("param_count.categorical", right) == []
    assert fingerprints.hints("param_count.markov", right) == []  # no fingerprints for it
