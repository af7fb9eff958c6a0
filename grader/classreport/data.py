"""A graded batch (``python -m grader batch --out OUT_DIR``) read into plain dataclasses.

Each sub-folder ``OUT_DIR/<id>/`` with a ``results.json`` is one :class:`Submission`; each
exercise's behaviour comes from :func:`grader.review.gallery.behaviour_of`.  Nothing read here
is trusted: a folder without a results.json, a file that is not JSON or does not have the
shape of one, becomes a :class:`Problem` of kind ``unreadable`` and never stops the report.
The batch's own notes are problems too: missing module files, a rejected submission, a
grader error, the sandbox's notes, the id conflicts of ``notes.txt`` and the rows of
``grades.csv`` not graded yet.
"""

import csv
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader import rubric
from grader.review.gallery import behaviour_of, load_result

RESULTS = "results.json"
NOTES = "notes.txt"
GRADES = "grades.csv"

#: Problem kinds, in the order the report lists them.
UNREADABLE = "unreadable"
CONFLICT = "conflict"
NOT_GRADED = "not graded yet"
GRADER_ERROR = "grader error"
REJECTED = "rejected"
MISSING_FILES = "missing files"
NOTE = "note"
KINDS = (UNREADABLE, CONFLICT, NOT_GRADED, GRADER_ERROR, REJECTED, MISSING_FILES, NOTE)

_CONFLICT_ID = re.compile(r"all have the id (['\"])(.*?)\1;")


class ReportError(Exception):
    """The batch folder cannot give a report (missing, not a folder, no results at all)."""


@dataclass(frozen=True)
class ExerciseOutcome:
    """What the grader found for one exercise of one submission (see ``behaviour_of``)."""

    status: str  # the worst outcome: passed, failed, timeout, crashed, out of memory, error, missing...
    score: float
    max_score: float
    failed: tuple[str, ...] = ()  # titles of the public properties that did not pass
    mistake: str = ""  # the catalogued mistake(s) the hints named, "" if none


@dataclass(frozen=True)
class Submission:
    """One graded submission of the batch."""

    ident: str  # the folder name under OUT_DIR (the batch's id)
    score: float
    max_score: float
    status: str  # extra_data.status: graded, "incomplete: missing lstm.py", "rejected: ...", "error: ..."
    modules: dict[str, tuple[float, float]]  # module -> (score, max)
    exercises: dict[str, ExerciseOutcome]  # exercise ID -> outcome, in rubric order
    execution_time: float | None = None  # seconds; None for results written before it was recorded
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Problem:
    """Something staff should look at: ``kind`` is one of :data:`KINDS`."""

    ident: str  # the submission id ("" when the problem names none)
    kind: str
    detail: str


@dataclass
class Batch:
    """Everything the report shows of one ``OUT_DIR``."""

    folder: Path
    submissions: list[Submission] = field(default_factory=list)  # sorted by id
    problems: list[Problem] = field(default_factory=list)  # sorted by kind, then id


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` (a bool, a string, NaN and inf are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def execution_time_of(result: dict[str, Any]) -> float | None:
    """The ``execution_time`` (seconds) of a results.json, or ``None`` when it is absent or not
    a finite number of seconds >= 0."""
    seconds = _number(result.get("execution_time"))
    return seconds if seconds is not None and seconds >= 0 else None


def _modules_of(extra: dict[str, Any], exercises: dict[str, ExerciseOutcome]) -> dict[str, tuple[float, float]]:
    """Per module ``(score, max)``: ``extra_data.modules`` where it holds two numbers, else the
    sum of the module's exercises."""
    given = extra.get("modules")
    given = given if isinstance(given, dict) else {}
    modules = {}
    for module in rubric.MODULES:
        pair = given.get(module)
        numbers = [_number(x) for x in pair] if isinstance(pair, list | tuple) and len(pair) == 2 else []
        if len(numbers) == 2 and numbers[0] is not None and numbers[1] is not None:
            modules[module] = (numbers[0], numbers[1])
        else:
            parts = [exercises[ex.id] for ex in rubric.exercises_of(module)]
            modules[module] = (round(sum(p.score for p in parts), 2), round(sum(p.max_score for p in parts), 2))
    return modules


def submission_of(ident: str, result: dict[str, Any]) -> Submission:
    """The :class:`Submission` ``ident`` of one results.json (already parsed to a dict).

    Raises ``ValueError`` when ``result`` does not have the shape of a batch's results.json
    (``tests`` not a list of objects, ``extra_data`` not an object)."""
    tests = result.get("tests", [])
    extra = result.get("extra_data", {})
    if not isinstance(tests, list) or not all(isinstance(t, dict) for t in tests):
        raise ValueError("'tests' is not a list of objects")
    if not isinstance(extra, dict):
        raise ValueError("'extra_data' is not an object")
    exercises = {}
    for ex in rubric.EXERCISES:
        try:
            exercises[ex.id] = ExerciseOutcome(*behaviour_of(result, ex.id))
        except (TypeError, AttributeError, ValueError, KeyError) as exc:
            raise ValueError(f"the tests of {ex.id} do not have the shape of results ({type(exc).__name__})") from exc
    modules = _modules_of(extra, exercises)
    score = _number(result.get("score"))
    max_score = _number(result.get("max_score"))
    notes = extra.get("notes")
    return Submission(
        ident=ident,
        score=score if score is not None else round(sum(s for s, _ in modules.values()), 2),
        max_score=max_score if max_score is not None else round(sum(m for _, m in modules.values()), 2),
        status=str(extra.get("status") or "graded"),
        modules=modules,
        exercises=exercises,
        execution_time=execution_time_of(result),
        notes=tuple(str(n) for n in notes) if isinstance(notes, list) else (),
    )


def status_problem(submission: Submission) -> Problem | None:
    """The problem a submission's overall status names (missing files, rejected, grader error)."""
    status = submission.status
    for prefix, kind in (
        ("incomplete: missing ", MISSING_FILES),
        ("rejected: ", REJECTED),
        ("error: ", GRADER_ERROR),
    ):
        if status.startswith(prefix):
            return Problem(submission.ident, kind, status[len(prefix) :])
    return None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def conflicts(out_dir: Path) -> list[Problem]:
    """The id conflicts ``notes.txt`` lists (``grader batch`` grades none of their entries)."""
    text = _read_text(out_dir / NOTES)
    found = []
    for line in (text or "").splitlines():
        if line.startswith("conflict:"):
            match = _CONFLICT_ID.search(line)
            found.append(Problem(match.group(2) if match else "", CONFLICT, line))
    return found


def not_graded(out_dir: Path, seen: set[str]) -> list[Problem]:
    """The ids ``grades.csv`` lists as ``not graded yet`` that have no results folder (a batch
    stopped before them)."""
    text = _read_text(out_dir / GRADES)
    found = []
    try:
        rows = list(csv.DictReader((text or "").splitlines()))
    except csv.Error:
        return []
    for row in rows:
        ident = str(row.get("id") or "")
        if ident and ident not in seen and row.get("status") == NOT_GRADED:
            found.append(Problem(ident, NOT_GRADED, "in grades.csv, but no results: run the batch again to grade it"))
    return found


def read_batch(out_dir: str | os.PathLike[str]) -> Batch:
    """Read ``OUT_DIR`` of a graded batch.

    Every sub-folder not starting with ``.`` is a submission; one that is a link, has no
    results.json or has one that cannot be read as results is listed as ``unreadable``.
    Raises :class:`ReportError` when ``out_dir`` is not a folder or no results could be read.
    """
    folder = Path(out_dir)
    if not folder.is_dir():
        raise ReportError(f"{folder} is not a folder (give the OUT_DIR of `python -m grader batch ... --out OUT_DIR`)")
    batch = Batch(folder)
    seen: set[str] = set()
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise ReportError(f"cannot list {folder}: {exc.strerror or exc}") from exc
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        ident = entry.name
        seen.add(ident)
        if entry.is_symlink():
            batch.problems.append(Problem(ident, UNREADABLE, "a link, not followed"))
            continue
        path = entry / RESULTS
        result = load_result(path)
        if result is None:
            why = "not a JSON object (corrupt or unreadable)" if path.is_file() else f"no {RESULTS}"
            batch.problems.append(Problem(ident, UNREADABLE, why))
            continue
        try:
            submission = submission_of(ident, result)
        except ValueError as exc:
            batch.problems.append(Problem(ident, UNREADABLE, str(exc)))
            continue
        batch.submissions.append(submission)
        problem = status_problem(submission)
        batch.problems += [problem] if problem else []
        batch.problems += [Problem(ident, NOTE, note) for note in submission.notes]
    if not batch.submissions:
        unreadable = sum(p.kind == UNREADABLE for p in batch.problems)
        raise ReportError(
            f"no results in {folder}: no <id>/{RESULTS} could be read"
            + (f" ({unreadable} folder{'s' * (unreadable != 1)} unreadable)" if unreadable else "")
            + "; grade the class first with `python -m grader batch SUBMISSIONS --out OUT_DIR`"
        )
    batch.problems += conflicts(folder) + not_graded(folder, seen)
    batch.problems.sort(key=lambda p: (KINDS.index(p.kind), p.ident, p.detail))
    return batch
