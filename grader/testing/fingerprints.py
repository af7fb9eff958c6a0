"""Hints without the answer: name a mistake from shipped outputs ("fingerprints").

A student release has neither the reference nor the catalog's patches, so the hints of
:mod:`grader.testing.diagnose` (which replay a failing example on them) cannot run there.
Instead the release carries ``tests/fingerprints/<module>.pt``, written by staff
(:mod:`grader.release.fingerprints`): per exercise, a few fixed *cases* (the calls of
public examples, recorded on the reference) and, for every catalogued wrong entry and
trivial output that the cases tell apart from the reference, what that entry gives on
them.  No patch, no reference code and no reference output is in it.

When a public test fails and the reference is absent, :func:`hints` runs the exercise's
cases on a fresh copy of the student's module (through the same adapter, so in the
sandbox) and names the mistake whose fingerprint the student's outputs match on every
case, and only when exactly one mistake does (entries of the exercise first), as the
catalog's hints do.  The fresh copy keeps the extra calls from changing any test: the
score is the same with or without the fingerprints.
"""

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from grader import ROOT, mistakes
from grader.adapters import Implementation
from grader.execution.calls import Call, CallResult
from grader.outcomes import StudentCodeError, SubmissionProblem
from grader.testing.diagnose import Recording, same_outcome
from grader.testing.replay import Outcome, Step, copy_call, raised

#: Where a release keeps the fingerprints (absent from this repository: ``release`` writes them).
FOLDER = ROOT / "tests" / "fingerprints"
VERSION = 1


def path(module: str, folder: Path | None = None) -> Path:
    """The fingerprint file of ``module``."""
    return (folder or FOLDER) / f"{module}.pt"


# ----------------------------------------------------------------------------- data


def _call_data(call: Call) -> dict[str, Any]:
    return {
        "name": call.name,
        "args": list(call.args),
        "kwargs": dict(call.kwargs),
        "obj": call.obj,
        "grad_wrt": list(call.grad_wrt),
        "cotangents": call.cotangents,
        "want_inputs_after": call.want_inputs_after,
        "default_dtype": call.default_dtype,
    }


def _call(data: dict[str, Any]) -> Call:
    return Call(
        data["name"],
        tuple(data["args"]),
        dict(data["kwargs"]),
        data["obj"],
        tuple(data["grad_wrt"]),
        data["cotangents"],
        data["want_inputs_after"],
        data["default_dtype"],
    )


def step_data(step: Step) -> dict[str, Any]:
    """A :class:`Step` (without its outcome) as plain data ``torch.load(weights_only=True)`` reads."""
    return {"kind": step.kind, "call": _call_data(step.call), "oid": step.oid}


def step(data: dict[str, Any]) -> Step:
    """The :class:`Step` of :func:`step_data`."""
    return Step(data["kind"], _call(data["call"]), data["oid"])


def outcome_data(outcome: Outcome) -> list[Any]:
    """An outcome as plain data (a :class:`CallResult` becomes a tagged list)."""
    if outcome[0] == "ok" and isinstance(outcome[1], CallResult):
        r = outcome[1]
        return ["ok", ["CallResult", r.outputs, dict(r.grads), dict(r.param_grads), r.inputs_after]]
    return list(outcome)


def outcome(data: Sequence[Any]) -> Outcome:
    """The outcome of :func:`outcome_data`."""
    value = data[1] if len(data) > 1 else None
    if data[0] == "ok" and isinstance(value, list) and value[:1] == ["CallResult"]:
        return ("ok", CallResult(value[1], value[2], value[3], value[4]))
    return tuple(data)


@functools.cache
def load(module: str, folder: Path | None = None) -> dict[str, Any] | None:
    """The fingerprints of ``module`` (``None`` where there are none, as in this repository)."""
    file = path(module, folder)
    if not file.is_file():
        return None
    data = torch.load(file, weights_only=True)
    return data if isinstance(data, dict) and data.get("version") == VERSION else None


def available(module: str) -> bool:
    """Whether fingerprints of ``module`` are here (a student release has them)."""
    return load(module) is not None


# ----------------------------------------------------------------------------- matching


def run_steps(impl: Implementation, steps: Sequence[Step]) -> list[Outcome]:
    """The outcome of each of ``steps`` run on ``impl`` (the student's code, behind its
    adapter), each on fresh copies of its inputs."""
    handles: dict[Any, Any] = {}
    outcomes: list[Outcome] = []
    for s in steps:
        call = copy_call(s.call)
        try:
            if s.kind == "construct":
                handles[s.oid] = impl.construct(call.name, *call.args, **call.kwargs)
                outcomes.append(("ok", None))
            elif s.kind == "method":
                outcomes.append(("ok", impl.method(handles[s.oid], call.name, *call.args, **call.kwargs)))
            else:
                if call.obj is not None:
                    call.obj = handles[call.obj].oid
                outcomes.append(("ok", impl.invoke(call)))
        except SubmissionProblem as exc:
            outcomes.append(raised(exc))
            if not isinstance(exc, StudentCodeError):  # a timeout or a crash: the worker is gone
                break
        except KeyError:  # a method of an object whose construction failed
            outcomes.append(("raised", "KeyError", ""))
    return outcomes


def matching(data: dict[str, Any], exercise: str, outcomes: Sequence[Outcome]) -> list[mistakes.Mutant]:
    """The fingerprinted entries of ``exercise`` whose outcomes on its cases are ``outcomes``."""
    found = []
    for entry in data["exercises"].get(exercise, {}).get("entries", []):
        theirs = [outcome(o) for o in entry["outcomes"]]
        if len(theirs) == len(outcomes) and all(same_outcome(a, b) for a, b in zip(theirs, outcomes)):
            found.append(mistakes.Mutant(entry["id"], data["module"], entry["exercise"], entry["mistake"], ()))
    return found


def hints(exercise: str, recording: Recording) -> list[str]:
    """Hint lines for a failure of ``exercise``: the one mistake whose fingerprint a fresh
    copy of the student's module (``recording.reopen()``) matches on every case, or none.
    The cases run once per exercise and recording."""
    module = exercise.split(".")[0]
    data = load(module)
    if data is None or exercise not in data["exercises"] or recording.reopen is None:
        return []
    if exercise not in recording.fingerprinted:
        steps = [step(s) for s in data["exercises"][exercise]["steps"]]
        impl = recording.reopen()
        try:
            outcomes = run_steps(impl, steps)
        finally:
            impl.close()
        named = mistakes.precise(matching(data, exercise, outcomes), exercise)
        recording.fingerprinted[exercise] = [f"your code matches {m}" for m in named]
    return list(recording.fingerprinted[exercise])
