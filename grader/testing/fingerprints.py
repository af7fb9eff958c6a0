"""Hints without the answer: name a mistake from shipped fingerprints.

A student release has neither the reference nor the catalog's patches, so the hints of
:mod:`grader.testing.diagnose` (which replay a failing example on them) cannot run there.
Instead the release carries ``tests/fingerprints/<module>.pt``, written by staff
(:mod:`grader.release.fingerprints`): per exercise, a few fixed *cases* (the calls of
public examples, recorded on the reference: their inputs only) and, for every catalogued
wrong entry and trivial output that the cases tell apart from the reference, the
*signature* of what that entry gives on them (:func:`signature`).  No patch, no reference
code, and no output value, the reference's or a mistake's: a signature keeps the structure
(sequence lengths, dictionary keys, tensor shapes, dtypes and devices) and, for every value,
keyed hashes only (HMAC-SHA256 with a random salt of the release, kept in the file):

* a float tensor: each element ``x`` becomes ``asinh(x)`` (about ``x`` near 0, about
  ``log 2|x|`` for large values: float noise is then about the same everywhere, as
  ``allclose(atol, rtol)`` sees it); the positions of NaN and infinities (if any) are
  hashed exactly, the finite values become :data:`PROJECTIONS` sums with salted random
  signs, and each sum is hashed on two grids of step :data:`GRID` offset by half a step.
  Two sums closer than half a step share a cell on at least one of the two grids, so two
  outputs that agree up to float noise always match; two sums further apart than a step
  never do;
* an integer or bool tensor, a number, a string, an exception (type and message): hashed
  exactly (``mistakes.same`` compares them exactly too).

When a public test fails and the reference is absent, :func:`hints` runs the exercise's
cases on a fresh copy of the student's module (through the same adapter, so in the
sandbox), signs what it gives with the file's salt and names the mistake whose signatures
agree on every case (:func:`agree`), and only when exactly one mistake does (entries of
the exercise first), as the catalog's hints do.  The fresh copy keeps the extra calls from
changing any test: the score is the same with or without the fingerprints.
"""

import functools
import hashlib
import hmac
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from grader import ROOT, mistakes
from grader.adapters import Implementation
from grader.execution.calls import Call, CallResult
from grader.outcomes import StudentCodeError, SubmissionProblem
from grader.testing.diagnose import Recording
from grader.testing.replay import Outcome, Step, copy_call, raised

#: Where a release keeps the fingerprints (absent from this repository: ``release`` writes them).
FOLDER = ROOT / "tests" / "fingerprints"
VERSION = 2
#: Random-sign sums kept per float tensor.
PROJECTIONS = 4
#: The grid step of a sum, in asinh units, per dtype: twice the catalog's tolerance
#: (``mistakes.same``: 1e-4 for float64, 1e-3 for the others).
GRID = {torch.float64: 2e-4}
DEFAULT_GRID = 2e-3
#: Bytes kept of each HMAC (64 bits).
DIGEST_BYTES = 8


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


# ----------------------------------------------------------------------------- signatures


def _digest(salt: bytes, *parts: Any) -> bytes:
    return hmac.new(salt, json.dumps(parts).encode(), hashlib.sha256).digest()[:DIGEST_BYTES]


def _signs(salt: bytes, projection: int, n: int) -> torch.Tensor:
    """``n`` random signs (float64 +1/-1) drawn from the salt, the same on every machine."""
    raw = hashlib.shake_256(salt + f"signs:{projection}:{n}".encode()).digest((n + 7) // 8)
    bytes_ = torch.tensor(list(raw), dtype=torch.uint8)
    bits = (bytes_.unsqueeze(1) >> torch.arange(8, dtype=torch.uint8)) & 1
    return bits.flatten()[:n].to(torch.float64) * 2 - 1


def _tensor_signature(salt: bytes, t: torch.Tensor) -> dict[str, Any]:
    # interned, so that the file stores each name once
    head = [list(t.shape), sys.intern(str(t.dtype).removeprefix("torch.")), sys.intern(t.device.type)]
    sig: dict[str, Any] = {"tensor": head[0], "dtype": head[1], "device": head[2]}
    if t.device.type == "meta":  # shapes only: a meta tensor has no values
        return sig
    t = t.detach().cpu()
    if not t.is_floating_point():
        sig["exact"] = _digest(salt, "exact", head, t.flatten().tolist())
        return sig
    x = t.to(torch.float64).flatten()
    finite = torch.isfinite(x)
    special = torch.where(finite, 0, torch.where(torch.isnan(x), 1, torch.where(x > 0, 2, 3)))
    sig["special"] = None if bool(finite.all()) else _digest(salt, "special", head, special.tolist())
    values = torch.asinh(torch.where(finite, x, 0.0))
    step = GRID.get(t.dtype, DEFAULT_GRID)
    cells = b""  # per sum, its cell's hash on grid 0 then on grid 1
    for j in range(PROJECTIONS):
        total = float((_signs(salt, j, values.numel()) * values).sum()) / step
        cells += b"".join(_digest(salt, "sum", head, j, grid, math.floor(total + grid / 2)) for grid in (0, 1))
    sig["cells"] = cells
    return sig


def signature(outcome: Outcome, salt: bytes) -> dict[str, Any]:
    """What a fingerprint keeps of one step's ``outcome``: its structure and keyed hashes of
    its values (see the module doc), as plain data that ``torch.load(weights_only=True)``
    reads; an exception's type and message are hashed together."""
    if outcome[0] == "raised":
        return {"raised": _digest(salt, "raised", [str(v) for v in outcome[1:]])}
    return {"ok": _sign(outcome[1], salt)}


def _sign(value: Any, salt: bytes) -> Any:
    """The signature of a value inside an outcome; lists and tuples sign alike, as
    ``mistakes.same`` compares them alike."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return _tensor_signature(salt, value)
    if isinstance(value, CallResult):
        return {"result": [_sign(v, salt) for v in (value.outputs, value.grads, value.param_grads, value.inputs_after)]}
    if isinstance(value, (list, tuple)):
        return {"seq": [_sign(v, salt) for v in value]}
    if isinstance(value, dict):
        return {"dict": [[repr(k), _sign(v, salt)] for k, v in sorted(value.items(), key=lambda kv: repr(kv[0]))]}
    return {"value": _digest(salt, "value", type(value).__name__, repr(value))}


def agree(stored: Any, mine: Any) -> bool:
    """Whether two signatures (:func:`signature`, with one salt) agree: the same structure and
    hashes, and each sum of a float tensor in the same cell of one of its two grids."""
    if isinstance(stored, dict) and isinstance(mine, dict):
        if stored.keys() != mine.keys():
            return False
        for key, a in stored.items():
            b = mine[key]
            if key == "cells":
                if len(a) != len(b) or not all(_same_cell(a, b, i) for i in range(0, len(a), 2 * DIGEST_BYTES)):
                    return False
            elif not agree(a, b):
                return False
        return True
    if isinstance(stored, list) and isinstance(mine, list):
        return len(stored) == len(mine) and all(agree(a, b) for a, b in zip(stored, mine))
    return type(stored) is type(mine) and stored == mine


def _same_cell(a: bytes, b: bytes, at: int) -> bool:
    """Whether the sums hashed at ``a[at:]`` and ``b[at:]`` share a cell on one of the two grids."""
    one, two = slice(at, at + DIGEST_BYTES), slice(at + DIGEST_BYTES, at + 2 * DIGEST_BYTES)
    return a[one] == b[one] or a[two] == b[two]


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
    """The fingerprinted entries of ``exercise`` whose signatures on its cases agree with
    those of ``outcomes`` (signed with the file's salt)."""
    salt = bytes.fromhex(data["salt"])
    mine = [signature(o, salt) for o in outcomes]
    found = []
    for entry in data["exercises"].get(exercise, {}).get("entries", []):
        theirs = entry["outcomes"]
        if len(theirs) == len(mine) and all(agree(a, b) for a, b in zip(theirs, mine)):
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
