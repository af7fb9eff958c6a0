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

``plan`` makes the folder mode 700 and writes each of its files mode 600, as ``key`` and
``links.csv`` are: they hold real ids beside aliases, or the code before peers see it.  A
folder that existed before is left as it was, with a note when others may list it.

The code is read from the entry the batch graded (a folder, a ``.zip``, a module handed in
as a notebook: :func:`grader.review.gallery.submission_sources`).  A plan is refused when the
submissions folder does not exist, or when no graded submission has code for the unit (a
wrong ``--submissions`` folder or ``--unit``); a submission with results but no readable code
still enters with its grader status, and a note says so.

The evidence beside the code is the batch's own results (``<batch>/<id>/results.json``): per
exercise of the unit its status and score, the public properties that failed with the check
that failed, yours vs expected, the smallest failing input and the hint; of the hidden tests
only how many passed, ``{"passed": n, "total": m}``, never their names.  Everything a peer sees
passes through :func:`~grader.review.anonymize.anonymize` (code) or
:func:`~grader.review.anonymize.redact` (grader messages), with the author's identity
(:func:`~grader.review.anonymize.identity_of`: id, entry name, what the module files say,
roster names, and the other students' ids and names).
"""

import csv
import io
import json
import os
import re
import secrets
import stat
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader import rubric
from grader.grading.files import write_atomic
from grader.outcomes import ERROR, HIDDEN, MISSING, NOT_IMPLEMENTED, PASSED, worst
from grader.review import consensus, form, gallery
from grader.review.anonymize import Identity, anonymize, identity_of, redact
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


def _failure(record: Mapping[str, Any], names: Identity | Collection[str]) -> dict[str, Any]:
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


def evidence_of(result: Mapping[str, Any], unit: str, identity: Identity | Collection[str] = ()) -> dict[str, Any]:
    """The grader's evidence on ``unit`` in one results.json, safe to show a peer: per exercise
    its status and score, the failing public properties (:data:`MAX_FAILURES` at most, one per
    title, redacted with ``identity``: :func:`~grader.review.anonymize.identity_of`), and of the
    hidden tests only a count, ``"hidden": {"passed": n, "total": m}`` (those that ran; never
    their names)."""
    exercises = []
    for exercise in unit_exercises(unit):
        status, score, max_score, _, mistake = gallery.behaviour_of(dict(result), exercise.id)
        failures: dict[str, dict[str, Any]] = {}
        hidden = {"passed": 0, "total": 0}
        for test in gallery.tests_of(dict(result), exercise.id):
            raw = test.get("extra_data")
            extra: dict[str, Any] = raw if isinstance(raw, dict) else {}
            if "hidden" in test.get("tags", [])[2:]:
                for record in extra.get("tests") or []:
                    if isinstance(record, dict) and record.get("status") != HIDDEN:
                        hidden["total"] += 1
                        hidden["passed"] += record.get("status") == PASSED
                continue
            for record in extra.get("tests") or []:
                if not isinstance(record, dict) or record.get("status") in gallery.NOT_FAILED:
                    continue
                failure = _failure(record, identity)
                failures.setdefault(failure["property"], failure)
        exercises.append(
            {
                "id": exercise.id,
                "title": exercise.title,
                "status": status,
                "score": score,
                "max_score": max_score,
                "mistake": redact(mistake, identity),
                "failures": list(failures.values())[:MAX_FAILURES],
                "more_failures": max(0, len(failures) - MAX_FAILURES),
                "hidden": hidden,
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
    """The authors of a graded batch for ``unit``, sorted by id, and notes on what was odd.

    Each author's code is read from the entry the batch graded
    (:func:`~grader.review.gallery.submission_sources`: a folder, a zip, a notebook) and, with
    the evidence, anonymized with their identity (:func:`~grader.review.anonymize.identity_of`:
    id, entry name, module files, roster names; the others' ids and names hidden too).
    Submissions without results are left out (they were never graded); one with results but no
    readable code enters with its grader status and a note.  Raises :class:`RoundError` when
    either folder does not exist.
    """
    exercises = unit_exercises(unit)
    module = exercises[0].module
    batch, submissions = Path(batch_dir), Path(submissions_dir)
    if not batch.is_dir():
        raise RoundError(f"results folder {batch} does not exist: run `python -m grader batch` first")
    if not submissions.is_dir():
        raise RoundError(
            f"submissions folder {submissions} does not exist: give the folder `python -m grader batch` graded"
        )
    roster = roster or {}
    everyone = sorted(p.name for p in batch.iterdir() if p.is_dir() and not p.is_symlink())
    # everyone's names, flat, and where each person's run of them is: the others of one are the rest
    flat: list[str] = []
    span: dict[str, tuple[int, int]] = {}
    for ident in everyone:
        span[ident] = (len(flat), len(flat) + 1 + len(roster.get(ident, ())))
        flat += [ident, *roster.get(ident, ())]
    entries, notes = [], []
    graded = set(everyone)
    for ident in everyone:
        result = gallery.load_result(batch / ident / "results.json")
        if result is None:
            notes.append(f"{ident}: no readable results.json in {batch / ident}, left out")
            continue
        statuses = [gallery.behaviour_of(result, ex.id)[0] for ex in exercises]
        status = worst(statuses)
        entry = gallery.submission_entry(submissions, ident, result)
        sources = gallery.submission_sources(submissions, ident, result) if entry is not None else {}
        if entry is not None:
            graded.add(entry.name)
        text = sources.get(module, "")
        code = _unit_code(text, unit) if text else ""
        if entry is None:
            notes.append(f"{ident}: its submission is not in {submissions}; reviewed with no code ({status})")
        elif not text and status not in NO_CODE:
            notes.append(f"{ident}: no readable {module}.py in {entry.name}; reviewed with no code ({status})")
        start, end = span[ident]
        identity = identity_of(
            ident,
            folder_name=entry.name if entry is not None else "",
            sources=list(sources.values()),
            roster=roster.get(ident, ()),
            others=flat[:start] + flat[end:],
        )
        entries.append(
            Entry(
                id=ident,
                code=anonymize(code, identity) if code else "",
                status=status,
                passed=status == PASSED,
                evidence=evidence_of(result, unit, identity),
                approach=approach(code) if code else "",
            )
        )
    for path in sorted(submissions.iterdir()):
        stem = path.name[:-4] if path.name.lower().endswith(".zip") else path.name
        if stem not in graded and path.name not in graded and not path.name.startswith("."):
            notes.append(f"{path.name}: in the submissions but not in the results, left out (not graded)")
    return entries, notes


def _key(folder: Path) -> bytes:
    """The round's alias key: read from ``folder/key``, made (mode 600, never replaced) on the
    first plan."""
    path = folder / KEY_FILE
    if path.is_file():
        return bytes.fromhex(path.read_text().strip())
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
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

    The folder is made mode 700 (an existing one is kept as it is, with a note when others may
    read it) and each file is written mode 600 (:func:`_write`).

    Raises :class:`RoundError` (unknown unit, no results, no submissions folder, no graded
    submission with code for the unit, a round already served from ``out_dir``),
    :class:`~grader.review.plan.PlanError` (fewer than ``k + 1`` students, conflicts that leave
    no plan) and :class:`~grader.review.form.RubricError`.
    """
    unknown = set(leave_out) - set(LEAVE_OUT)
    if unknown:
        raise RoundError(f"--leave-out takes {' or '.join(LEAVE_OUT)}, not {', '.join(sorted(unknown))}")
    if not Path(rubric_path).is_file():
        raise RoundError(f"rubric {rubric_path} does not exist")
    form.load(Path(rubric_path))  # RubricError with file and line for a file that is no rubric (or not UTF-8)
    rubric_text = Path(rubric_path).read_text(encoding="utf-8-sig")
    unit_exercises(unit)
    folder = Path(out_dir)
    if (folder / DB_FILE).exists():
        raise RoundError(f"{folder / DB_FILE} exists: this round is being served; plan a new round in another folder")
    entries, notes = entries_from_batch(batch_dir, submissions_dir, unit, roster)
    if entries and not any(e.code.strip() for e in entries):
        raise RoundError(
            f"{len(entries)} submission(s) were graded but none has code for {unit} in {submissions_dir}: "
            "give --submissions the folder `python -m grader batch` graded, and a --unit they hand in"
        )
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
    if folder.is_dir():
        mode = stat.S_IMODE(folder.stat().st_mode)
        if mode & 0o077:
            notes.append(
                f"{folder} is mode {mode:o}: others on this machine may list it; its files are mode 600 "
                f"(chmod 700 {folder} to hide the folder too)"
            )
    else:
        folder.mkdir(parents=True, mode=0o700)
        os.chmod(folder, 0o700)  # mkdir's mode is cut by the umask; 700 is what the round needs
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
    write_atomic(folder / PLAN_FILE, json.dumps(payload, indent=1, sort_keys=True) + "\n")
    write_atomic(folder / SOLUTIONS_FILE, json.dumps(solutions, indent=1, sort_keys=True) + "\n")
    write_atomic(folder / ASSIGNMENTS_FILE, to_csv(plan, aliases))
    write_atomic(folder / RUBRIC_FILE, rubric_text)
    return Made(folder, plan, kept, notes)


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


def check_rubric(folder: str | os.PathLike[str], store: Store) -> form.Rubric:
    """The round's rubric, refused (:class:`RoundError`) when it is not the one the round
    started with: reviews saved against the old items would no longer fit.  The text the round
    started with is kept in ``review.db``; :func:`restore_rubric` writes it back."""
    rubric_ = load_rubric(folder)
    path = Path(folder) / RUBRIC_FILE
    started = store.meta("rubric_text")
    before = form.parse(started, f"{path} (as the round started)").items if started else None
    now = [(item.id, len(item.levels)) for item in rubric_.items]
    if before is None:  # a round from before the text was kept: the item ids are
        if [item for item, _ in now] == store.rubric_items:
            store.set_meta("rubric_text", path.read_text(encoding="utf-8"))
            return rubric_
        changed = f"its items are now {', '.join(i for i, _ in now)}, not {', '.join(store.rubric_items)}"
    elif rubric_.items == before:
        return rubric_
    else:
        old = {item.id: item for item in before}
        new = {item.id: item for item in rubric_.items}
        parts = [f"item {i!r} added" for i in new if i not in old] + [
            f"item {i!r} removed" for i in old if i not in new
        ]
        parts += [f"item {i!r} changed" for i in new if i in old and new[i] != old[i]]
        changed = "; ".join(parts) or "its items are in another order"
    raise RoundError(
        f"{path} changed after the round started ({changed}): reviews already saved use the old rubric. "
        f"Put it back with `python -m grader review serve {folder} --restore-rubric`, or plan a new round"
    )


def restore_rubric(folder: str | os.PathLike[str]) -> Path:
    """Write the rubric the round started with (kept in ``review.db``) back to ``rubric.toml``."""
    path = Path(folder) / RUBRIC_FILE
    store = Store.open(Path(folder) / DB_FILE)
    try:
        text = store.meta("rubric_text")
    finally:
        store.close()
    if not text:
        raise RoundError(f"{Path(folder) / DB_FILE} keeps no rubric text (a round started by an older grader)")
    write_atomic(path, text)
    return path


def open_store(folder: str | os.PathLike[str], base_url: str = "") -> tuple[Store, bool]:
    """The round's database and whether this call created it: the first call makes
    ``review.db`` from the plan (tokens for everyone); every call with a ``base_url``
    (re)writes ``links.csv`` with it, so the links follow the address students open."""
    folder = Path(folder)
    path = folder / DB_FILE
    if path.exists():
        store = Store.open(path)
        if base_url:
            write_links(store, folder / LINKS_FILE, base_url)
        return store, False
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
        rubric_text=(folder / RUBRIC_FILE).read_text(encoding="utf-8"),
    )
    write_links(store, folder / LINKS_FILE, base_url)
    return store, True


def write_links(store: Store, path: Path, base_url: str = "") -> None:
    """Each person's private link in a CSV (mode 600): id, role, alias, link."""
    base = base_url.rstrip("/")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("id", "role", "alias", "link"))
    for person in store.people():
        kind = "s" if person.role == STAFF and not store.tasks_of(person.id) else "r"
        writer.writerow((person.id, person.role, person.alias, f"{base}/{kind}/{person.token}"))
    write_atomic(path, buffer.getvalue())


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
