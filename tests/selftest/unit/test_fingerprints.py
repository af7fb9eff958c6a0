"""Fingerprints: the data survives ``torch.load(weights_only=True)``, the cases are chosen to
tell mistakes apart, and a student's module that behaves like one mistake is named, in
process (the release runs the same code behind the sandbox)."""

import io
from types import SimpleNamespace

import torch

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


def test_steps_and_outcomes_survive_a_weights_only_load():
    """A step with tensors, a dtype, gradients and cotangents, and a CallResult outcome, come
    back equal from the file format the release ships."""
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
    back = fingerprints.outcome(_reload(fingerprints.outcome_data(("ok", result))))
    assert diagnose.same_outcome(back, ("ok", result))
    assert not diagnose.same_outcome(back, ("ok", CallResult(torch.zeros(2))))
    raised = ("raised", "ValueError", "m must be positive")
    assert fingerprints.outcome(_reload(fingerprints.outcome_data(raised))) == raised


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
        "exercises": {
            "param_count.categorical": {
                "steps": [fingerprints.step_data(s) for s in steps],
                "entries": [{**e, "outcomes": [fingerprints.outcome_data(o) for o in e["outcomes"]]} for e in entries],
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
