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
the entry the batch graded for the code (a folder, a zip, or a notebook in either:
:func:`submission_sources`).  The cards name their authors by id and hold their code as
written: :func:`for_peers` is a card's code as peers may see it (the gallery command shows
that, and a count of authors, unless staff ask for ``--names``).
"""

import hashlib
import json
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader import rubric
from grader.grading import staging
from grader.notebooks import cells
from grader.outcomes import ERROR, MISSING, PASSED, worst
from grader.review.anonymize import anonymize, identity_of
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
    entry: str = ""  # the name of the entry graded (a folder or a .zip), "" when none was found
    sources: tuple[str, ...] = field(default=(), repr=False)  # its module files (to anonymize with)


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


def submission_entry(submissions_dir: Path, ident: str, result: Mapping[str, Any]) -> Path | None:
    """The entry of ``submissions_dir`` the batch graded as ``ident``.

    The one its results name (``extra_data.source``: ``name``, and ``kind`` folder or zip), else
    the folder ``<ident>`` or the file ``<ident>.zip``.  ``None`` when there is no such entry, when
    it is a link or not of the kind recorded, or when the name is no plain name of one entry
    (empty, ``.``, ``..``, or holding ``/``, ``\\`` or NUL).
    """
    extra = result.get("extra_data")
    source = extra.get("source") if isinstance(extra, dict) else None
    if isinstance(source, dict) and isinstance(source.get("name"), str):
        kind = source.get("kind")
        candidates = [(source["name"], kind if kind in ("folder", "zip") else "either")]
    else:
        candidates = [(ident, "folder"), (f"{ident}.zip", "zip")]
    for name, kind in candidates:
        if not name or name in (".", "..") or any(c in name for c in "/\\\0"):
            return None
        path = submissions_dir / name
        if path.is_symlink():
            continue
        if (kind != "zip" and path.is_dir()) or (kind != "folder" and path.is_file()):
            return path
    return None


def submission_sources(submissions_dir: Path, ident: str, result: Mapping[str, Any]) -> dict[str, str]:
    """``{module: text}`` of every module file in the entry graded as ``ident``
    (:func:`submission_entry`), staged as a Gradescope upload is
    (:func:`grader.notebooks.cells.stage_modules`: regular files only, no links, at most two
    folders deep, size-capped, out of a folder or a zip; a module handed in only as a notebook
    read out of its solution cells).  A module that is missing, unreadable or not UTF-8 is left
    out; no entry, or a zip refused as a whole, gives ``{}``."""
    entry = submission_entry(submissions_dir, ident, result)
    if entry is None:
        return {}
    out = {}
    try:
        with tempfile.TemporaryDirectory(prefix="grader-review-") as tmp:
            cells.stage_modules(entry, Path(tmp))
            for module in rubric.MODULES:
                path = Path(tmp) / f"{module}.py"
                try:
                    if path.is_file():
                        out[module] = path.read_text(encoding="utf-8")
                except (OSError, ValueError):  # ValueError: not UTF-8
                    continue
    except (OSError, ValueError, staging.Rejected):  # ValueError: a notebook that cannot be written back
        return {}
    return out


def submission_module(submissions_dir: Path, ident: str, result: Mapping[str, Any], module: str) -> str:
    """The text of ``<module>.py`` in the entry graded as ``ident``, staged as the batch staged
    it (:func:`submission_sources`); ``""`` when it is missing, unreadable or not UTF-8."""
    return submission_sources(submissions_dir, ident, result).get(module, "")


def solutions_from_batch(
    batch_dir: str | os.PathLike[str], submissions_dir: str | os.PathLike[str], exercise: str
) -> list[Solution]:
    """The solutions of ``exercise`` in a graded batch, one per ``<batch_dir>/<id>/results.json``.

    The behaviour comes from the results (:func:`behaviour_of`), the code from the student's
    module in the entry the batch graded (:func:`submission_entry`: a folder, a zip, a module
    handed in as a notebook), cut with :func:`~grader.review.normalize.exercise_source`.  A
    missing entry, a zip that cannot be read and an unreadable module keep their grader status
    with code ``""``; a results file that cannot be read is skipped.  Sorted by id.  Raises
    ``KeyError`` for an unknown exercise ID.
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
        entry = submission_entry(submissions, ident, result)
        sources = submission_sources(submissions, ident, result) if entry is not None else {}
        code = exercise_source(sources.get(module, ""), exercise)
        out.append(
            Solution(
                ident,
                code,
                status,
                score,
                max_score,
                failed,
                mistake,
                entry=entry.name if entry is not None else "",
                sources=tuple(sources.values()),
            )
        )
    return out


def for_peers(card: Card, solutions: Sequence[Solution]) -> str:
    """The representative code of ``card`` as a peer may see it: anonymized
    (:func:`~grader.review.anonymize.anonymize`) with the identity of every member who wrote
    that very text (:func:`~grader.review.anonymize.identity_of`: their id, entry name and
    module files), the other authors' ids hidden too.  ``solutions``: those the gallery was
    made of."""
    ids = [s.author for s in solutions]
    code = card.representative
    for index, sol in enumerate(solutions):
        if sol.author not in card.authors or sol.code != card.representative:
            continue
        identity = identity_of(
            sol.author,
            folder_name=sol.entry,
            sources=sol.sources,
            roster=(),
            others=ids[:index] + ids[index + 1 :],
        )
        code = anonymize(code, identity)
    return code
