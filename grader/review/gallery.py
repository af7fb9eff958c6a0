"""The gallery of one exercise (``python -m grader review gallery``): OverCode-style stacks.

OverCode (Glassman et al., TOCHI 2015) puts two solutions in one stack when their
canonical code is the same *and* they behave the same on the tests.  Here a stack is keyed
by :func:`~grader.review.normalize.stack_key` of the exercise's code plus its behaviour: the
grader's status, the titles of the public properties that failed, and the catalogued mistake
the hint named.  Each stack becomes a :class:`Card`: its size, its members, one representative
code, the approach label and the behaviour.  The cards are the agenda of the peer session:
largest first, passing before failing, then by key, so the order never depends on the order
of the input.

:func:`solutions_from_batch` reads the inputs from a graded batch (``python -m grader
batch``): ``<batch_dir>/<id>/results.json`` for the behaviour and the student's module from
the submission folder for the code.
"""

import hashlib
import json
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader import rubric
from grader.grading import staging
from grader.outcomes import ERROR, MISSING, PASSED, worst
from grader.review.normalize import approach, exercise_source, stack_key

#: Record statuses that are not a failure (a hidden test not yet run is neither way).
NOT_FAILED = (PASSED, "hidden, graded later")

_HINT = re.compile(r"hint: your code matches (.+)$", re.MULTILINE)


@dataclass(frozen=True)
class Solution:
    """One submission's solution of one exercise, with the grader's verdict on it."""

    author: str  # submission id (the web app will alias it)
    code: str  # the exercise's source (exercise_source of the student's module)
    status: str  # the grader's status for the exercise: passed, failed, not implemented, error, missing...
    score: float
    max_score: float
    failed: tuple[str, ...] = ()  # titles of the properties that failed
    mistake: str = ""  # the catalogued mistake the hint named, "" if none


@dataclass
class Card:
    """One stack of the gallery: solutions with the same normalized code and behaviour."""

    key: str  # stack key + behaviour
    exercise: str
    size: int
    authors: list[str]
    representative: str  # the code of one member (the most common raw text, ties broken by author id)
    approach: str
    status: str
    score: float
    max_score: float
    failed: tuple[str, ...]
    mistake: str


def behaviour_key(status: str, failed: Sequence[str], mistake: str) -> str:
    """A short hash of a behaviour: ``status``, the set of ``failed`` titles and ``mistake``."""
    text = json.dumps([status, sorted(set(failed)), mistake])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def gallery(exercise: str, solutions: Sequence[Solution]) -> list[Card]:
    """The cards of ``exercise``: one per stack of ``solutions``.

    Solutions stack when they have the same :func:`~grader.review.normalize.stack_key` of
    their code and the same behaviour (status, set of failed titles, mistake): the same code
    that passed for one student and timed out for another makes two cards.  A card's
    ``key`` is ``<stack key>-<behaviour key>``; its ``authors`` are sorted; its
    ``representative`` is the raw text most members wrote (ties: the text of the smallest
    author id) and its score that author's.  Cards are sorted largest first, then passing
    before the rest, then by key.
    """
    groups: dict[tuple[str, str, tuple[str, ...], str], list[Solution]] = {}
    for sol in solutions:
        failed = tuple(sorted(set(sol.failed)))
        groups.setdefault((stack_key(sol.code), sol.status, failed, sol.mistake), []).append(sol)
    cards = []
    for (stack, status, failed, mistake), members in groups.items():
        members = sorted(members, key=lambda s: s.author)
        counts = Counter(s.code for s in members)
        best = max(counts.values())
        chosen = next(s for s in members if counts[s.code] == best)  # the smallest author of a top text
        cards.append(
            Card(
                key=f"{stack}-{behaviour_key(status, failed, mistake)}",
                exercise=exercise,
                size=len(members),
                authors=[s.author for s in members],
                representative=chosen.code,
                approach=approach(chosen.code),
                status=status,
                score=chosen.score,
                max_score=chosen.max_score,
                failed=failed,
                mistake=mistake,
            )
        )
    cards.sort(key=lambda c: (-c.size, c.status != PASSED, c.key))
    return cards


# ---- reading a graded batch ---------------------------------------------------------------------


def load_result(path: Path) -> dict[str, Any] | None:
    """A results.json as a dict, or ``None`` (missing, unreadable, not an object)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def tests_of(result: dict[str, Any], exercise: str) -> Iterator[dict[str, Any]]:
    """The Gradescope tests of ``exercise`` in ``result`` (its public one and its hidden one)."""
    for test in result.get("tests") or []:
        tags = test.get("tags") if isinstance(test, dict) else None
        if isinstance(tags, list) and len(tags) >= 2 and tags[1] == exercise:
            yield test


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def behaviour_of(result: dict[str, Any], exercise: str) -> tuple[str, float, float, tuple[str, ...], str]:
    """``(status, score, max_score, failed, mistake)`` of ``exercise`` in one results.json.

    ``status`` is the worst of the exercise's public outcome (``extra_data.outcome``) and its
    hidden tests' (passed or failed, never which); ``score`` and ``max_score`` add the public
    and hidden parts.  ``failed`` holds the property titles of the public records that did not
    pass (a hidden test's title is left out: the gallery is shown to peers); ``mistake`` the
    mistakes their hints name (``hint: your code matches ...``), joined with ``"; "``.  An
    exercise without a test is ``missing`` (``error`` when the grader failed on the whole
    submission, ``rejected`` when staging refused it), worth 0 of its points.
    """
    tests = list(tests_of(result, exercise))
    if not tests:
        extra_data = result.get("extra_data")
        overall = str(extra_data.get("status", "")) if isinstance(extra_data, dict) else ""
        status = ERROR if overall.startswith("error") else "rejected" if overall.startswith("rejected") else MISSING
        return status, 0.0, float(rubric.BY_ID[exercise].points), (), ""
    outcomes, failed, mistakes = [], [], []
    score = max_score = 0.0
    for test in tests:
        extra = test.get("extra_data")
        extra = extra if isinstance(extra, dict) else {}
        outcomes.append(str(extra.get("outcome") or test.get("status") or MISSING))
        score += _number(test.get("score"))
        max_score += _number(test.get("max_score"))
        if "hidden" in test.get("tags", [])[2:]:
            continue
        for record in extra.get("tests") or []:
            if not isinstance(record, dict) or record.get("status") in NOT_FAILED:
                continue
            failed.append(str(record.get("property") or record.get("nodeid") or record.get("status")))
            mistakes += [m.strip() for m in _HINT.findall(str(record.get("message") or ""))]
        mistakes += [m.strip() for m in _HINT.findall(str(test.get("output") or ""))]
    status = worst(outcomes)
    return (
        status,
        round(score, 2),
        round(max_score, 2),
        tuple(sorted(set(failed))),
        "; ".join(sorted(set(mistakes))),
    )


def entry_path(submissions_dir: Path, ident: str, result: dict[str, Any]) -> Path | None:
    """The submission folder graded as ``ident`` (``None`` for a zip or a name that is not
    one plain folder name)."""
    extra = result.get("extra_data")
    source = extra.get("source") if isinstance(extra, dict) else None
    name = ident
    if isinstance(source, dict) and isinstance(source.get("name"), str):
        if source.get("kind") == "zip":
            return None
        name = source["name"]
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        return None
    if name.lower().endswith(".zip"):
        return None
    return submissions_dir / name


def module_source(folder: Path, module: str) -> str:
    """The text of ``<module>.py`` in submission ``folder``, staged as the batch staged it
    (:func:`grader.grading.staging.stage_folder`: regular files only, no links, at most
    two folders deep, size-capped); ``""`` when it is missing, unreadable or not UTF-8."""
    try:
        if folder.is_symlink() or not folder.is_dir():
            return ""
        with tempfile.TemporaryDirectory(prefix="grader-review-") as tmp:
            staging.stage_folder(folder, Path(tmp))
            path = Path(tmp) / f"{module}.py"
            return path.read_text(encoding="utf-8") if path.is_file() else ""
    except (OSError, UnicodeDecodeError):
        return ""


def solutions_from_batch(
    batch_dir: str | os.PathLike[str], submissions_dir: str | os.PathLike[str], exercise: str
) -> list[Solution]:
    """The solutions of ``exercise`` in a graded batch, one per ``<batch_dir>/<id>/results.json``.

    The behaviour comes from the results (:func:`behaviour_of`), the code from the student's
    module in the submission folder the batch graded (``extra_data.source.name`` in the
    results, else ``<submissions_dir>/<id>``), cut with
    :func:`~grader.review.normalize.exercise_source`.  A zip submission, a missing folder and
    an unreadable module keep their grader status with code ``""``; a results file that
    cannot be read is skipped.  Sorted by id.  Raises ``KeyError`` for an unknown exercise ID.
    """
    module = rubric.BY_ID[exercise].module
    batch, submissions = Path(batch_dir), Path(submissions_dir)
    out = []
    for folder in sorted(batch.iterdir()) if batch.is_dir() else []:
        if folder.is_symlink() or not folder.is_dir():
            continue
        result = load_result(folder / "results.json")
        if result is None:
            continue
        ident = folder.name
        status, score, max_score, failed, mistake = behaviour_of(result, exercise)
        entry = entry_path(submissions, ident, result)
        code = exercise_source(module_source(entry, module), exercise) if entry is not None else ""
        out.append(Solution(ident, code, status, score, max_score, failed, mistake))
    return out
