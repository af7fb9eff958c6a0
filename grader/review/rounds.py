"""A review round on disk: what ``python -m grader review plan`` writes and ``serve``/``score`` read.

A round is one folder, kept by staff (students only ever get their link)::

    ROUND_DIR/
      plan.json        the round: unit, k, seed, people (id, alias, role), reviews, notes
      solutions.json   each author's code for the unit, anonymized, with the grader's evidence
      assignments.csv  the plan for staff (real ids and aliases)
      rubric.toml      the rubric of the round (a copy: a later edit of the course's rubric
                       does not change a running round)
      key              the alias key (mode 600): aliases are a keyed hash of the id (RepoBee)
      review.db        SQLite, made by the first ``serve`` from the files above
      links.csv        each person's private link (mode 600), written with review.db
      scores/          consensus.csv, reviewers.csv, flags.csv from ``score``

The evidence beside the code is the batch's own results (``<batch>/<id>/results.json``): per
exercise of the unit its status and score, the public properties that failed with the check
that failed, yours vs expected, the smallest failing input and the hint; the hidden tests
with their name and pass/fail only.  Everything a peer sees passes through
:func:`~grader.review.anonymize.anonymize` (code) or :func:`~grader.review.anonymize.redact`
(grader messages), with the author's id and roster names.
"""

import csv
import json
import os
import re
import secrets
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader import rubric
from grader.outcomes import ERROR, MISSING, NOT_IMPLEMENTED, PASSED, worst
from grader.review import consensus, form, gallery
from grader.review.anonymize import anonymize, redact
from grader.review.normalize import approach, exercise_source
from grader.review.plan import STAFF, STUDENT, Author, Plan, alias, make_plan, to_csv
from grader.review.store import Solution, Store

PLAN_FILE = "plan.json"
SOLUTIONS_FILE = "solutions.json"
ASSIGNMENTS_FILE = "assignments.csv"
RUBRIC_FILE = "rubric.toml"
KEY_FILE = "key"
DB_FILE = "review.db"
LINKS_FILE = "links.csv"
SCORES_DIR = "scores"
#: ``--leave-out`` choices: no code for the unit, or a unit the grader did not pass.
LEAVE_OUT = ("missing", "failing")
#: The statuses that mean "there is no code of the unit to review".
NO_CODE = (MISSING, NOT_IMPLEMENTED, ERROR, "rejected")
#: The id of the course lead, who gets the staff page even without reviews of their own.
LEAD = "staff"
#: At most this many failing properties are shown per exercise (the first ones, by title).
MAX_FAILURES = 6
_FIELDS = (
    ("yours", re.compile(r"^yours\s+(.*)$")),
    ("expected", re.compile(r"^expected\s+(.*)$")),
    ("smallest", re.compile(r"^smallest failing input:\s*(.*)$")),
    ("hint", re.compile(r"^hint:\s*(.*)$")),
)


class RoundError(ValueError):
    """The round cannot be made or opened; the message says why in words."""


@dataclass
class Entry:
    """One author of the round: their code for the unit and the grader's evidence on it."""

    id: str
    code: str
    status: str
    passed: bool
    evidence: dict[str, Any]
    approach: str = ""


@dataclass
class Made:
    """What :func:`make_round` wrote and what it noticed."""

    folder: Path
    plan: Plan
    entries: list[Entry]
    notes: list[str] = field(default_factory=list)


def unit_exercises(unit: str) -> tuple[rubric.Exercise, ...]:
    """The exercises of ``unit``: one exercise ID, or every exercise of a module."""
    if unit in rubric.BY_ID:
        return (rubric.BY_ID[unit],)
    if unit in rubric.MODULES:
        return rubric.exercises_of(unit)
    known = ", ".join(rubric.MODULES)
    raise RoundError(f"unknown unit {unit!r}: give an exercise ID (attention.sdpa) or a module ({known})")


def _failure(record: Mapping[str, Any], names: Collection[str]) -> dict[str, Any]:
    """One failing public property: its title, the check that failed and the labelled lines."""
    lines = [line.strip() for line in str(record.get("message") or "").splitlines()]
    out: dict[str, Any] = {
        "property": redact(str(record.get("property") or record.get("nodeid") or ""), names),
        "status": str(record.get("status") or ""),
        "check": redact(lines[0], names) if lines else "",
        "details": [],
        "hints": [],
    }
    for line in lines[1:]:
        if not line:
            break  # the first failing check is the one to show; the rest repeat it on other outputs
        line = redact(line, names)
        for name, pattern in _FIELDS:
            match = pattern.match(line)
            if match:
                if name == "hint":
                    out["hints"].append(match.group(1))
                else:
                    out[name] = match.group(1)
                break
        else:
            out["details"].append(line)
    return out


def evidence_of(result: Mapping[str, Any], unit: str, names: Collection[str] = ()) -> dict[str, Any]:
    """The grader's evidence on ``unit`` in one results.json, safe to show a peer: per exercise
    its status and score, the failing public properties (:data:`MAX_FAILURES` at most, one per
    title) and the hidden tests by name and pass/fail."""
    exercises = []
    for exercise in unit_exercises(unit):
        status, score, max_score, _, mistake = gallery.behaviour_of(dict(result), exercise.id)
        failures: dict[str, dict[str, Any]] = {}
        hidden = []
        for test in gallery.tests_of(dict(result), exercise.id):
            raw = test.get("extra_data")
            extra: dict[str, Any] = raw if isinstance(raw, dict) else {}
            if "hidden" in test.get("tags", [])[2:]:
                for record in extra.get("tests") or []:
                    if isinstance(record, dict):
                        hidden.append({"name": str(record.get("property") or ""), "status": str(record.get("status"))})
                continue
            for record in extra.get("tests") or []:
                if not isinstance(record, dict) or record.get("status") in gallery.NOT_FAILED:
                    continue
                failure = _failure(record, names)
                failures.setdefault(failure["property"], failure)
        exercises.append(
            {
                "id": exercise.id,
                "title": exercise.title,
                "status": status,
                "score": score,
                "max_score": max_score,
                "mistake": redact(mistake, names),
                "failures": list(failures.values())[:MAX_FAILURES],
                "more_failures": max(0, len(failures) - MAX_FAILURES),
                "hidden": sorted(hidden, key=lambda h: (h["name"], h["status"])),
            }
        )
    return {"unit": unit, "exercises": exercises}


def _unit_code(module_text: str, unit: str) -> str:
    """The code a reviewer reads: the exercise's functions, or the whole module."""
    return exercise_source(module_text, unit) if unit in rubric.BY_ID else module_text


def read_roster(path: str | os.PathLike[str] | None) -> dict[str, list[str]]:
    """``id -> names`` from a CSV with a header naming ``id`` and any of ``name``, ``email``
    (more name columns are welcome); the names are hidden from peers."""
    if path is None:
        return {}
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RoundError(f"roster {path}: cannot read it ({exc})") from exc
    if rows and "id" not in rows[0]:
        raise RoundError(f"roster {path}: the header has no 'id' column")
    return {row["id"]: [v for k, v in row.items() if k != "id" and v] for row in rows if row.get("id")}


def read_conflicts(path: str | os.PathLike[str] | None) -> list[tuple[str, str]]:
    """Conflict pairs, one ``a,b`` per line of a CSV (``#`` comments and an ``a,b`` header allowed)."""
    if path is None:
        return []
    pairs = []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            for number, row in enumerate(csv.reader(handle), 1):
                cells = [cell.strip() for cell in row]
                if not cells or not any(cells) or cells[0].startswith("#"):
                    continue
                if len(cells) != 2 or not all(cells):
                    raise RoundError(f"conflicts {path}, line {number}: expected two ids 'a,b', got {row!r}")
                if number == 1 and cells == ["a", "b"]:
                    continue
                pairs.append((cells[0], cells[1]))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RoundError(f"conflicts {path}: cannot read it ({exc})") from exc
    return pairs


def entries_from_batch(
    batch_dir: str | os.PathLike[str],
    submissions_dir: str | os.PathLike[str],
    unit: str,
    roster: Mapping[str, Sequence[str]] | None = None,
) -> tuple[list[Entry], list[str]]:
    """The authors of a graded batch for ``unit``, sorted by id, and notes on what was odd
    (submissions without results are left out: they were never graded)."""
    exercises = unit_exercises(unit)
    module = exercises[0].module
    batch, submissions = Path(batch_dir), Path(submissions_dir)
    if not batch.is_dir():
        raise RoundError(f"results folder {batch} does not exist: run `python -m grader batch` first")
    roster = roster or {}
    everyone = sorted(p.name for p in batch.iterdir() if p.is_dir() and not p.is_symlink())
    entries, notes = [], []
    for ident in everyone:
        result = gallery.load_result(batch / ident / "results.json")
        if result is None:
            notes.append(f"{ident}: no readable results.json in {batch / ident}, left out")
            continue
        names = [ident, *roster.get(ident, ())]
        statuses = [gallery.behaviour_of(result, ex.id)[0] for ex in exercises]
        status = worst(statuses)
        folder = gallery.entry_path(submissions, ident, result)
        text = gallery.module_source(folder, module) if folder is not None else ""
        code = _unit_code(text, unit) if text else ""
        entries.append(
            Entry(
                id=ident,
                code=anonymize(code, names) if code else "",
                status=status,
                passed=status == PASSED,
                evidence=evidence_of(result, unit, names),
                approach=approach(code) if code else "",
            )
        )
    graded = {e.id for e in entries} | {n.split(":")[0] for n in notes}
    if submissions.is_dir():
        for path in sorted(submissions.iterdir()):
            stem = path.name[:-4] if path.name.lower().endswith(".zip") else path.name
            if stem not in graded and path.name not in graded and not path.name.startswith("."):
                notes.append(f"{path.name}: in the submissions but not in the results, left out (not graded)")
    return entries, notes


def _key(folder: Path) -> bytes:
    """The round's alias key: read from ``folder/key``, made (mode 600) on the first plan."""
    path = folder / KEY_FILE
    if path.is_file():
        return bytes.fromhex(path.read_text().strip())
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex() + "\n")
    return key


def make_round(
    batch_dir: str | os.PathLike[str],
    submissions_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    unit: str,
    k: int,
    seed: str,
    round_id: str = "",
    conflicts: Iterable[tuple[str, str]] = (),
    staff: Sequence[str] = (),
    staff_load: int = 0,
    leave_out: Collection[str] = (),
    rubric_path: str | os.PathLike[str] = form.DEFAULT,
    roster: Mapping[str, Sequence[str]] | None = None,
) -> Made:
    """Plan a review round of ``unit`` over a graded batch and write it to ``out_dir``.

    Raises :class:`RoundError` (unknown unit, no results, a round already served from
    ``out_dir``), :class:`~grader.review.plan.PlanError` (fewer than ``k + 1`` students,
    conflicts that leave no plan) and :class:`~grader.review.form.RubricError`.
    """
    unknown = set(leave_out) - set(LEAVE_OUT)
    if unknown:
        raise RoundError(f"--leave-out takes {' or '.join(LEAVE_OUT)}, not {', '.join(sorted(unknown))}")
    rubric_text = Path(rubric_path).read_text(encoding="utf-8") if Path(rubric_path).is_file() else None
    if rubric_text is None:
        raise RoundError(f"rubric {rubric_path} does not exist")
    form.parse(rubric_text, str(rubric_path))
    unit_exercises(unit)
    folder = Path(out_dir)
    if (folder / DB_FILE).exists():
        raise RoundError(f"{folder / DB_FILE} exists: this round is being served; plan a new round in another folder")
    entries, notes = entries_from_batch(batch_dir, submissions_dir, unit, roster)
    kept = []
    for entry in entries:
        if "missing" in leave_out and (entry.status in NO_CODE or not entry.code.strip()):
            notes.append(f"{entry.id}: {entry.status} for {unit}, left out (--leave-out missing)")
        elif "failing" in leave_out and not entry.passed:
            notes.append(f"{entry.id}: {entry.status} for {unit}, left out (--leave-out failing)")
        else:
            kept.append(entry)
    staff = [s for s in dict.fromkeys(staff) if s]
    clash = sorted(set(staff) & {e.id for e in kept})
    if clash:
        raise RoundError(f"--staff names students of the batch: {', '.join(clash)}")
    if LEAD in {e.id for e in kept} or LEAD in staff:
        raise RoundError(f"the id {LEAD!r} is kept for the course lead's staff page; rename that submission")
    authors = [Author(e.id, e.approach, e.passed) for e in kept]
    round_id = round_id or f"{unit}-{seed}"
    plan = make_plan(authors, k, seed, unit, list(conflicts), staff, staff_load)
    folder.mkdir(parents=True, exist_ok=True)
    key = _key(folder)
    people = [(e.id, STUDENT) for e in kept] + [(s, STAFF) for s in staff] + [(LEAD, STAFF)]
    aliases = {person: alias(key, person, round_id) for person, _ in people}
    if len(set(aliases.values())) != len(aliases):  # 40 bits: practically never; a clear error if it does
        raise RoundError("two people share an alias: plan again with another --round name")
    payload = {
        "round": round_id,
        "unit": unit,
        "k": k,
        "seed": str(seed),
        "people": [{"id": p, "alias": aliases[p], "role": role} for p, role in people],
        "reviews": [
            {"reviewer": a.reviewer, "author": a.author, "role": a.role, "reason": a.reason} for a in plan.assignments
        ],
        "notes": plan.notes,
        "left_out": notes,
    }
    solutions = {
        e.id: {"code": e.code, "status": e.status, "approach": e.approach, "evidence": e.evidence} for e in kept
    }
    _write(folder / PLAN_FILE, json.dumps(payload, indent=1, sort_keys=True) + "\n")
    _write(folder / SOLUTIONS_FILE, json.dumps(solutions, indent=1, sort_keys=True) + "\n")
    _write(folder / ASSIGNMENTS_FILE, to_csv(plan, aliases))
    _write(folder / RUBRIC_FILE, rubric_text)
    return Made(folder, plan, kept, notes)


def _write(path: Path, text: str) -> None:
    """Write ``text`` through a temporary file, so a crash never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def load_plan(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The round's plan.json; :class:`RoundError` when the folder holds no round."""
    path = Path(folder) / PLAN_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RoundError(f"{folder} holds no review round ({PLAN_FILE} missing): run `review plan` first") from exc
    except (OSError, ValueError) as exc:
        raise RoundError(f"{path}: cannot read it ({exc})") from exc
    if not isinstance(data, dict) or not {"round", "unit", "people", "reviews"} <= set(data):
        raise RoundError(f"{path}: not a plan written by `review plan`")
    return data


def load_rubric(folder: str | os.PathLike[str]) -> form.Rubric:
    """The round's rubric (its copy in the round folder)."""
    return form.load(Path(folder) / RUBRIC_FILE)


def open_store(folder: str | os.PathLike[str], base_url: str = "") -> tuple[Store, bool]:
    """The round's database and whether this call created it: the first call makes
    ``review.db`` from the plan (tokens for everyone) and writes ``links.csv``."""
    folder = Path(folder)
    path = folder / DB_FILE
    if path.exists():
        return Store.open(path), False
    plan = load_plan(folder)
    rubric_ = load_rubric(folder)
    try:
        raw = json.loads((folder / SOLUTIONS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RoundError(f"{folder / SOLUTIONS_FILE}: cannot read it ({exc})") from exc
    solutions = [
        Solution(author, s["code"], s["evidence"], s["status"], s["approach"]) for author, s in sorted(raw.items())
    ]
    store = Store.create(
        path,
        round_id=plan["round"],
        unit=plan["unit"],
        rubric_items=[item.id for item in rubric_.items],
        people=[(p["id"], p["alias"], p["role"]) for p in plan["people"]],
        solutions=solutions,
        tasks=[(r["reviewer"], r["author"], r["role"], r["reason"]) for r in plan["reviews"]],
    )
    write_links(store, folder / LINKS_FILE, base_url)
    return store, True


def write_links(store: Store, path: Path, base_url: str = "") -> None:
    """Each person's private link in a CSV (mode 600): id, role, alias, link."""
    base = base_url.rstrip("/")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("id", "role", "alias", "link"))
        for person in store.people():
            kind = "s" if person.role == STAFF and not store.tasks_of(person.id) else "r"
            writer.writerow((person.id, person.role, person.alias, f"{base}/{kind}/{person.token}"))


def score_round(folder: str | os.PathLike[str]) -> tuple[consensus.ScoreReport, list[Path]]:
    """Score a round from its database: consensus, reviewers, flags, written to ``scores/``."""
    folder = Path(folder)
    if not (folder / DB_FILE).exists():
        raise RoundError(f"{folder / DB_FILE} does not exist: nobody has reviewed yet (start `review serve`)")
    plan = load_plan(folder)
    store = Store.open(folder / DB_FILE)
    try:
        reviews = store.reviews()
    finally:
        store.close()
    expected = sorted({(r["author"], plan["unit"]) for r in plan["reviews"]})
    report = consensus.score(reviews, load_rubric(folder), expected)
    return report, consensus.write_csv(report, folder / SCORES_DIR)
