"""Write the mistake fingerprints a student release carries (staff side).

:mod:`grader.testing.fingerprints` reads them; this module makes them.  The public tests
run once on the reference, in this process, with the calls of every example recorded
(the examples a student's local check draws: no staff key).  Per exercise, a few of those
examples become the *cases*: chosen greedily so that as many catalogued mistakes as
possible differ from the reference on them, then so that as many mistakes as possible
differ from each other, the smaller examples first.  Each wrong entry and trivial output
of the catalog is replayed on the cases; the file keeps, for every entry that differs
from the reference there (by the catalog's tolerance and by its signature), its mistake's
description and the signatures of its outcomes (:func:`grader.testing.fingerprints.signature`:
structure and keyed hashes, no value), signed with a random salt of the release kept in
the file.  No output value is written, the reference's or an entry's, nor any patch: of a
case, only its inputs.
"""

import secrets
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

from grader import ROOT, mistakes, rubric
from grader.testing import diagnose, replay
from grader.testing import fingerprints as data
from grader.testing import reference as solutions
from grader.testing.replay import Outcome, Step

#: Cases kept per exercise, at most.
MAX_CASES = 4
#: The recorded examples considered per exercise: the smallest ones (each costs a replay
#: on every catalog entry of the module).
CANDIDATES = 16


class _Collector:
    """A pytest plugin that keeps every ``impl`` recording the run opens."""

    def __init__(self) -> None:
        self.recordings: list[diagnose.Recording] = []

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef: Any, request: Any) -> Generator[None, Any, None]:
        outcome = yield
        value = outcome.get_result()
        if isinstance(value, diagnose.Recording):
            self.recordings.append(value)


def record(modules: Sequence[str] = ()) -> dict[str, list[list[Step]]]:
    """``{exercise: [the steps of each example]}``: the public tests (device tests aside)
    run on the reference in this process, every example's calls recorded."""
    collector = _Collector()
    files = [str(ROOT / "tests" / "exercises" / f"test_{m}.py") for m in (modules or rubric.MODULES)]
    args = [*files, "-p", "no:cacheprovider", "-p", "no:warnings", "--rootdir", str(ROOT)]
    args += ["-c", str(ROOT / "pyproject.toml"), "--submission", str(solutions.SOLUTIONS), "--adapter", "inprocess"]
    args += ["-m", "not device", "-p", "no:terminal"]
    code = pytest.main(args, plugins=[collector])
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        raise RuntimeError(
            f"the public tests fail on the reference (pytest exit {code}): `python -m pytest tests/exercises` shows why"
        )
    found: dict[str, list[list[Step]]] = {}
    for recording in collector.recordings:
        recording.archive()
        for exercise, examples in recording.examples.items():
            if exercise is not None:
                found.setdefault(exercise, []).extend(examples)
    return found


def _size(steps: Sequence[Step]) -> int:
    """The number of tensor elements an example's calls take (smaller examples read better)."""

    def count(value: Any) -> int:
        if isinstance(value, torch.Tensor):
            return value.numel()
        if isinstance(value, (list, tuple)):
            return sum(count(v) for v in value)
        if isinstance(value, dict):
            return sum(count(v) for v in value.values())
        return 0

    return sum(count(s.call.args) + count(s.call.kwargs) for s in steps)


def _same(a: Sequence[Outcome], b: Sequence[Outcome]) -> bool:
    return len(a) == len(b) and all(diagnose.same_outcome(x, y) for x, y in zip(a, b))


def choose(
    examples: Sequence[list[Step]], reference: Sequence[list[Outcome]], entries: dict[str, list[list[Outcome]]]
) -> list[int]:
    """The indices of the examples to keep as cases: each pick adds the most entries told
    apart from the reference, then the most groups of entries told apart from each other,
    then is the smallest; at most :data:`MAX_CASES`, and none that adds nothing."""
    order = sorted(range(len(examples)), key=lambda i: _size(examples[i]))  # ties go to the smaller
    chosen: list[int] = []
    detected: set[str] = set()
    groups: list[list[str]] = [sorted(entries)] if entries else []

    def split(group: list[str], i: int) -> list[list[str]]:
        parts: list[list[str]] = []
        for name in group:
            for part in parts:
                if _same(entries[part[0]][i], entries[name][i]):
                    part.append(name)
                    break
            else:
                parts.append([name])
        return parts

    while len(chosen) < MAX_CASES:
        best: tuple[int, int] = (0, 0)
        pick = None
        for i in order:
            if i in chosen:
                continue
            new = sum(1 for n in entries if n not in detected and not _same(entries[n][i], reference[i]))
            more = sum(len(split(g, i)) - 1 for g in groups if len(g) > 1)
            if (new, more) > best:
                best, pick = (new, more), i
        if pick is None:
            break
        chosen.append(pick)
        detected |= {n for n in entries if not _same(entries[n][pick], reference[pick])}
        groups = [part for g in groups for part in split(g, pick)]
    return chosen


def build(module: str, recorded: dict[str, list[list[Step]]], salt: bytes) -> dict[str, Any]:
    """The fingerprint data of ``module`` from the recorded examples, signed with ``salt``
    (see the module doc)."""
    namespace = solutions.load(module)
    candidates = mistakes.hint_candidates(module)
    exercises: dict[str, Any] = {}
    for ex in rubric.exercises_of(module):
        examples = sorted((steps for steps in recorded.get(ex.id, []) if steps), key=_size)[:CANDIDATES]
        if not examples:
            continue
        reference = [replay.replay(steps, namespace, module) for steps in examples]
        outcomes = {
            m.id: [replay.replay(steps, mistakes.namespace(m), module) for steps in examples] for m in candidates
        }
        picked = choose(examples, reference, outcomes)
        if not picked:
            continue
        steps = [s for i in picked for s in examples[i]]
        expected = [o for i in picked for o in reference[i]]
        signed = [data.signature(o, salt) for o in expected]  # compared with, never written
        entries = []
        for m in candidates:
            theirs = [o for i in picked for o in outcomes[m.id][i]]
            signatures = [data.signature(o, salt) for o in theirs]
            # an entry the signatures cannot tell from the reference would be named for code
            # that is right on the cases
            if not _same(theirs, expected) and not all(map(data.agree, signatures, signed)):
                entries.append({"id": m.id, "exercise": m.exercise, "mistake": m.mistake, "outcomes": signatures})
        exercises[ex.id] = {"steps": [data.step_data(s) for s in steps], "entries": _shared(entries, {})}
    return {"version": data.VERSION, "module": module, "salt": salt.hex(), "exercises": exercises}


def _shared(value: Any, pool: dict[bytes, bytes]) -> Any:
    """``value`` with equal hashes made one object, which the file then stores once (many
    entries give the same outcome on a step: their inputs after the call, say)."""
    if isinstance(value, bytes):
        return pool.setdefault(value, value)
    if isinstance(value, dict):
        return {k: _shared(v, pool) for k, v in value.items()}
    if isinstance(value, list):
        return [_shared(v, pool) for v in value]
    return value


def write(out: Path, modules: Sequence[str] = (), salt: bytes | None = None) -> list[Path]:
    """Write ``tests/fingerprints/<module>.pt`` under ``out`` for every module, signed with
    ``salt`` (default: 16 new random bytes, one salt per release); the files."""
    salt = secrets.token_bytes(16) if salt is None else salt
    recorded = record(modules)
    written = []
    for module in modules or rubric.MODULES:
        target = data.path(module, out / "tests" / "fingerprints")
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.save(build(module, recorded, salt), target)
        written.append(target)
    return written
