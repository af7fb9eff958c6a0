"""Calls run again, each on private copies of its inputs; cotangents for backward passes.

:mod:`grader.testing.diagnose` records the calls of a failing example through the seam
as :class:`Step` objects and replays them here (:func:`replay`) on the reference and on
every catalog entry, trusted code in this process.  Each step runs on fresh copies of its
arguments (:func:`fresh_copy`): an entry that writes into its inputs cannot change them
for the student's record or for the next entry.  An exception is part of a step's
outcome (its type and message), so a student's code that crashes the way a catalogued
mistake does is named like one that returns the mistake's values.

The gradient tests back-propagate fixed random cotangents (:func:`cotangents`).
"""

import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from grader.execution.calls import MODULE_METHODS, Call, construct, module_method, resolve, run_call
from grader.outcomes import StudentCodeError, SubmissionProblem
from grader.testing import strategies as S

#: ``("ok", value)`` or ``("raised", exception type, message)``: what one step gave.
Outcome = tuple[Any, ...]


@dataclass
class Step:
    """One call the test made: ``kind`` is invoke, construct or method; ``oid`` the object
    it constructed or called; ``outcome`` what it gave (see :data:`Outcome`)."""

    kind: str
    call: Call
    oid: Any = None
    outcome: Outcome | None = None


def fresh_copy(value: Any) -> Any:
    """A private copy of a call's inputs: tensors detached and cloned, containers rebuilt,
    anything else shared."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, tuple):
        return tuple(fresh_copy(v) for v in value)
    if isinstance(value, list):
        return [fresh_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: fresh_copy(v) for k, v in value.items()}
    return value


def copy_call(call: Call) -> Call:
    """``call`` with private copies of its arguments and cotangents."""
    return Call(
        call.name,
        fresh_copy(tuple(call.args)),
        fresh_copy(dict(call.kwargs)),
        call.obj,
        tuple(call.grad_wrt),
        fresh_copy(call.cotangents),
        call.want_inputs_after,
        call.default_dtype,
    )


def raised(exc: SubmissionProblem) -> Outcome:
    """The outcome of a call that raised ``exc``: the student's exception type and message,
    or the kind of problem (a timeout, a crash, ...)."""
    if isinstance(exc, StudentCodeError):
        return ("raised", exc.exc_type, exc.message)
    return ("raised", type(exc).__name__, "")


def replay(steps: Sequence[Step], namespace: types.ModuleType, module: str) -> list[Outcome]:
    """The outcome of each of ``steps`` when the calls run on ``namespace`` (trusted code:
    the reference or a catalog entry of ``module``), each on fresh copies."""
    path = Path(getattr(namespace, "__file__", None) or "<entry>")
    objects: dict[Any, Any] = {}
    outcomes: list[Outcome] = []
    for step in steps:
        call = copy_call(step.call)
        try:
            if step.kind == "construct":
                objects[step.oid] = construct(
                    resolve(namespace, module, call.name), call.args, call.kwargs, call.name, path
                )
                outcomes.append(("ok", None))
            elif step.kind == "method":
                if call.name not in MODULE_METHODS:
                    raise ValueError(call.name)
                result = run_call(module_method(objects[step.oid], call.name), call, call.name, path)
                outcomes.append(("ok", result.outputs))
            else:
                obj = objects.get(step.call.obj) if step.call.obj is not None else None
                target = obj if obj is not None else resolve(namespace, module, call.name)
                call.obj = None
                outcomes.append(("ok", run_call(target, call, call.name, path, module_obj=obj)))
        except SubmissionProblem as exc:
            outcomes.append(raised(exc))
        except Exception as exc:
            outcomes.append(("raised", type(exc).__name__, str(exc)))
    return outcomes


def cotangents(
    seed: int, *shapes: Sequence[int] | None, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor | None, ...]:
    """One fixed random cotangent per output of a call, of the given ``shapes`` (``()``
    included), uniform in ``[-1, 1]`` from ``S.generator(seed)`` in order; a ``None`` shape
    gives ``None``, which skips that output in the backward pass."""
    gen = S.generator(seed)
    # the trailing 1 lets torch.rand draw a shape () too; the values are the same
    return tuple(None if s is None else S.uniform(gen, *s, 1, dtype=dtype).reshape(tuple(s)) for s in shapes)
