"""The database of a review round (``review.db``, SQLite): people, solutions, tasks, reviews.

One file per round, made by :meth:`Store.create` from the round's plan the first time
``review serve`` starts, and opened by :meth:`Store.open` afterwards.  Nothing is ever
overwritten: each save of a review appends a version (the latest submitted one counts, the
drafts and earlier submissions stay), a deleted comment is only marked deleted, and each
rating is a new row (the last one counts).  So a review submitted twice loses nothing.

**A review is one record.**  A version holds the rubric levels, the summary *and* the line
comments as they were when it was saved (a snapshot): the author reads the comments of the
last submitted version, so a comment added or deleted after submitting changes nothing the
author sees until the reviewer submits again.

**Opaque ids.**  Pages and forms never carry a row id (ids run in plan order, which is sorted
by reviewer, so an id would name the reviewer): each task and comment has a random
``public`` id, and a reviewer's tasks are numbered 1..k for that reviewer only.

**Staff actions** are rows too: ``moderation`` (a review hidden from its author and the
consensus, shown again, or flagged, with a note and who did it) and ``events`` (closing,
reopening, deadlines, reassignments).  A task reassigned from a reviewer who never reviewed
is ``withdrawn`` (kept, with its drafts) and a new task goes to the volunteer.  The round is
closed when its owner closed it or its deadline passed.

The schema has a version in the ``meta`` table.  :meth:`Store.open` migrates an older file in
place, after copying it to ``<name>.v<N>.bak``, and refuses a newer one with a message naming
both versions.  Version 1 (the first release of the review app) kept one row per review and
per rating; version 2 keeps their history and soft-deletes comments; version 3 adds the
comment snapshots, the opaque ids, moderation, events, deadlines and the rubric's text.

The web app serves requests from several threads: one connection with
``check_same_thread=False`` behind a lock, every write in one transaction.
"""

import json
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from grader.review.consensus import RATINGS, Review

#: The schema this grader writes and reads.
SCHEMA_VERSION = 3
#: States of a review version.
DRAFT, SUBMITTED = "draft", "submitted"
#: The role whose tasks and people sort last (staff reviewers, on top of the student quota).
STAFF_ROLE = "staff"
#: Moderation actions on a review.
HIDE, SHOW, FLAG = "hide", "show", "flag"
#: The person who owns the round (closes, reopens, sets the deadline): the course lead's id.
OWNER = "staff"

#: The tables both schemas share.
_COMMON = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE people (
    id TEXT PRIMARY KEY, alias TEXT NOT NULL UNIQUE, role TEXT NOT NULL, token TEXT NOT NULL UNIQUE
);
CREATE TABLE solutions (
    author TEXT PRIMARY KEY REFERENCES people(id), code TEXT NOT NULL, evidence TEXT NOT NULL,
    status TEXT NOT NULL, approach TEXT NOT NULL
);
CREATE TABLE tasks (
    id INTEGER PRIMARY KEY, reviewer TEXT NOT NULL REFERENCES people(id),
    author TEXT NOT NULL REFERENCES people(id), number INTEGER NOT NULL, role TEXT NOT NULL,
    reason TEXT NOT NULL, UNIQUE (reviewer, number), UNIQUE (reviewer, author)
);
"""

#: Version 2, kept to test the migration: no snapshots, no opaque ids, no moderation.
SCHEMA_V2 = (
    _COMMON
    + """
CREATE TABLE review_versions (
    task INTEGER NOT NULL REFERENCES tasks(id), version INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('draft', 'submitted')), scores TEXT NOT NULL,
    summary TEXT NOT NULL, saved_at TEXT NOT NULL, PRIMARY KEY (task, version)
);
CREATE TABLE comments (
    id INTEGER PRIMARY KEY, task INTEGER NOT NULL REFERENCES tasks(id), start INTEGER NOT NULL,
    "end" INTEGER NOT NULL, text TEXT NOT NULL, created_at TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE ratings (
    id INTEGER PRIMARY KEY, task INTEGER NOT NULL REFERENCES tasks(id), rating INTEGER NOT NULL,
    rated_at TEXT NOT NULL
);
"""
)

_V3_TABLES = """
CREATE TABLE moderation (
    id INTEGER PRIMARY KEY, task INTEGER NOT NULL REFERENCES tasks(id),
    action TEXT NOT NULL CHECK (action IN ('hide', 'show', 'flag')), note TEXT NOT NULL,
    by TEXT NOT NULL, at TEXT NOT NULL
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY, at TEXT NOT NULL, by TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL
);
"""

SCHEMA_V3 = (
    _COMMON.replace(
        "reason TEXT NOT NULL, UNIQUE (reviewer, number)",
        "reason TEXT NOT NULL, public TEXT NOT NULL UNIQUE, withdrawn TEXT NOT NULL DEFAULT '',\n"
        "    UNIQUE (reviewer, number)",
    )
    + """
CREATE TABLE review_versions (
    task INTEGER NOT NULL REFERENCES tasks(id), version INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('draft', 'submitted')), scores TEXT NOT NULL,
    summary TEXT NOT NULL, saved_at TEXT NOT NULL, comments TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (task, version)
);
CREATE TABLE comments (
    id INTEGER PRIMARY KEY, task INTEGER NOT NULL REFERENCES tasks(id), start INTEGER NOT NULL,
    "end" INTEGER NOT NULL, text TEXT NOT NULL, created_at TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0, public TEXT NOT NULL UNIQUE
);
CREATE TABLE ratings (
    id INTEGER PRIMARY KEY, task INTEGER NOT NULL REFERENCES tasks(id), rating INTEGER NOT NULL,
    rated_at TEXT NOT NULL
);
"""
    + _V3_TABLES
)

#: Version 1, kept to test the migration: one review row and one rating row per task.
SCHEMA_V1 = (
    _COMMON
    + """
CREATE TABLE reviews (
    task INTEGER PRIMARY KEY REFERENCES tasks(id), state TEXT NOT NULL, scores TEXT NOT NULL,
    summary TEXT NOT NULL, saved_at TEXT NOT NULL
);
CREATE TABLE comments (
    id INTEGER PRIMARY KEY, task INTEGER NOT NULL REFERENCES tasks(id), start INTEGER NOT NULL,
    "end" INTEGER NOT NULL, text TEXT NOT NULL, created_at TEXT NOT NULL
);
CREATE TABLE ratings (task INTEGER PRIMARY KEY REFERENCES tasks(id), rating INTEGER NOT NULL);
"""
)


class StoreError(Exception):
    """The database cannot be used: missing, not a review database, or from a newer grader."""


@dataclass(frozen=True)
class Person:
    """Someone in the round: a student or a staff reviewer, with their private token."""

    id: str
    alias: str
    role: str
    token: str


@dataclass(frozen=True)
class Solution:
    """An author's anonymized code for the round's unit and the grader's evidence about it."""

    author: str
    code: str
    evidence: dict[str, Any]
    status: str
    approach: str


@dataclass(frozen=True)
class Task:
    """One review to write: ``reviewer`` reviews ``author``; ``number`` counts from 1 per reviewer.

    ``public`` is the task's id on pages and forms (random); ``withdrawn`` is empty, or says
    when and to whom staff reassigned it."""

    id: int
    reviewer: str
    author: str
    number: int
    role: str
    reason: str
    public: str = ""
    withdrawn: str = ""


@dataclass(frozen=True)
class Comment:
    """A comment on the lines ``start``..``end`` (from 1, inclusive) of the reviewed code;
    ``public`` is its id on pages and forms."""

    id: int
    task: int
    start: int
    end: int
    text: str
    public: str = ""


@dataclass(frozen=True)
class ReviewVersion:
    """One save of a review: a draft or a submission, with its line comments as they were."""

    task: int
    version: int
    state: str
    #: rubric item id -> level index
    scores: dict[str, int]
    summary: str
    saved_at: str
    comments: tuple[Comment, ...] = ()


@dataclass(frozen=True)
class Moderation:
    """A staff action on a review: hidden from its author and the consensus, shown again, or flagged."""

    task: int
    action: str
    note: str
    by: str
    at: str


@dataclass(frozen=True)
class Event:
    """Something staff did to the round (closed, reopened, deadline set, review reassigned)."""

    at: str
    by: str
    action: str
    detail: str


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _v1_to_v2(db: sqlite3.Connection) -> None:
    """Version 1 -> 2: reviews and ratings get a history, comments a ``deleted`` mark."""
    db.executescript(
        """
        CREATE TABLE review_versions (
            task INTEGER NOT NULL REFERENCES tasks(id), version INTEGER NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('draft', 'submitted')), scores TEXT NOT NULL,
            summary TEXT NOT NULL, saved_at TEXT NOT NULL, PRIMARY KEY (task, version)
        );
        INSERT INTO review_versions SELECT task, 1, state, scores, summary, saved_at FROM reviews;
        DROP TABLE reviews;
        ALTER TABLE comments ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE ratings RENAME TO ratings_v1;
        CREATE TABLE ratings (
            id INTEGER PRIMARY KEY, task INTEGER NOT NULL REFERENCES tasks(id),
            rating INTEGER NOT NULL, rated_at TEXT NOT NULL
        );
        INSERT INTO ratings (task, rating, rated_at) SELECT task, rating, '' FROM ratings_v1 ORDER BY task;
        DROP TABLE ratings_v1;
        """
    )


def _v2_to_v3(db: sqlite3.Connection) -> None:
    """Version 2 -> 3: opaque ids for tasks and comments, comment snapshots in every version
    (version 2 showed authors the comments as they are now, so that is what each version
    gets), withdrawn tasks, moderation and events."""
    db.executescript(
        """
        ALTER TABLE tasks ADD COLUMN public TEXT;
        ALTER TABLE tasks ADD COLUMN withdrawn TEXT NOT NULL DEFAULT '';
        ALTER TABLE comments ADD COLUMN public TEXT;
        ALTER TABLE review_versions ADD COLUMN comments TEXT NOT NULL DEFAULT '[]';
        """
        + _V3_TABLES
    )
    for table in ("tasks", "comments"):
        for (row,) in db.execute(f"SELECT id FROM {table}").fetchall():
            db.execute(f"UPDATE {table} SET public = ? WHERE id = ?", (_public_id(), row))
        db.execute(f"CREATE UNIQUE INDEX {table}_public ON {table}(public)")
    for (task,) in db.execute("SELECT DISTINCT task FROM review_versions").fetchall():
        rows = db.execute(_LIVE_COMMENTS, (task,)).fetchall()
        db.execute(
            "UPDATE review_versions SET comments = ? WHERE task = ?", (_comments_json(Comment(*r) for r in rows), task)
        )


#: version -> the step that lifts a database of that version by one.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _v1_to_v2, 2: _v2_to_v3}


class Store:
    """A review round's database; see the module docstring."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        """Wrap an open connection; use :meth:`create` or :meth:`open`."""
        self._db = db
        self._lock = threading.Lock()
        self.path = path
        meta = dict(db.execute("SELECT key, value FROM meta"))
        self._round_id = meta.get("round_id", "")
        self._unit = meta.get("unit", "")
        self._rubric_items: list[str] = json.loads(meta.get("rubric_items", "[]"))

    # -- making and opening -------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        *,
        round_id: str,
        unit: str,
        rubric_items: Sequence[str],
        people: Iterable[tuple[str, str, str]],
        solutions: Iterable[Solution],
        tasks: Iterable[tuple[str, str, str, str]],
        rubric_text: str = "",
    ) -> "Store":
        """Make a new database (mode 600) with a fresh unguessable token per person.

        ``people`` are (id, alias, role); ``tasks`` are (reviewer, author, role, reason), numbered
        per reviewer in the order given; ``rubric_text`` is the rubric file the round started
        with (kept, so that a later edit of the file is noticed).  :class:`StoreError` if
        ``path`` exists.
        """
        path = Path(path)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError as exc:
            raise StoreError(f"{path} already exists: a round's database is made once") from exc
        os.close(fd)
        db = _connect(path)
        try:
            with db:
                db.executescript(SCHEMA_V3)
                meta = (
                    {
                        "schema_version": str(SCHEMA_VERSION),
                        "round_id": round_id,
                        "unit": unit,
                        "rubric_items": json.dumps(list(rubric_items)),
                        "closed_at": "",
                    }
                    | _V3_META
                    | {"secret": secrets.token_hex(32), "rubric_text": rubric_text}
                )
                db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
                db.executemany(
                    "INSERT INTO people VALUES (?, ?, ?, ?)",
                    [(ident, alias, role, secrets.token_urlsafe(24)) for ident, alias, role in people],
                )
                db.executemany(
                    "INSERT INTO solutions VALUES (?, ?, ?, ?, ?)",
                    [
                        (s.author, s.code, json.dumps(s.evidence, sort_keys=True), s.status, s.approach)
                        for s in solutions
                    ],
                )
                numbers: dict[str, int] = {}
                for reviewer, author, role, reason in tasks:
                    numbers[reviewer] = numbers.get(reviewer, 0) + 1
                    db.execute(
                        "INSERT INTO tasks (reviewer, author, number, role, reason, public) VALUES (?, ?, ?, ?, ?, ?)",
                        (reviewer, author, numbers[reviewer], role, reason, _public_id()),
                    )
        except sqlite3.Error as exc:
            db.close()
            path.unlink(missing_ok=True)
            raise StoreError(f"{path}: cannot make the round's database ({exc})") from exc
        return cls(db, path)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> "Store":
        """Open a round's database, migrating an older schema (after a ``.v<N>.bak`` copy)."""
        path = Path(path)
        if not path.is_file():
            raise StoreError(f"{path} does not exist: start `review serve` on the round folder to make it")
        version = _version(path)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{path} was written by a newer grader (schema version {version}); this grader reads "
                f"versions up to {SCHEMA_VERSION}: update the grader"
            )
        if version < SCHEMA_VERSION:
            _backup(path, path.with_name(f"{path.name}.v{version}.bak"))
            db = _connect(path)
            try:
                with db:
                    while version < SCHEMA_VERSION:
                        MIGRATIONS[version](db)
                        version += 1
                    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
                    db.execute("INSERT OR IGNORE INTO meta VALUES ('closed_at', '')")
                    for key, value in (_V3_META | {"secret": secrets.token_hex(32)}).items():
                        db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))
            except (sqlite3.Error, KeyError) as exc:
                db.close()
                raise StoreError(f"{path}: cannot migrate it from schema version {version} ({exc})") from exc
            return cls(db, path)
        return cls(_connect(path), path)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    # -- the round ----------------------------------------------------------------------

    @property
    def round_id(self) -> str:
        """The round's name, from the plan."""
        return self._round_id

    @property
    def unit(self) -> str:
        """The exercise or module under review."""
        return self._unit

    @property
    def rubric_items(self) -> list[str]:
        """The rubric's item ids, in order."""
        return list(self._rubric_items)

    def meta(self, key: str) -> str:
        """One value of the round's metadata (``""`` when unset)."""
        row = self._maybe("SELECT value FROM meta WHERE key = ?", (key,))
        return "" if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Set one value of the round's metadata."""
        self._write("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def deadline(self) -> datetime | None:
        """When the round closes by itself, or None."""
        value = self.meta("deadline")
        return datetime.fromisoformat(value) if value else None

    def closed(self, now: datetime | None = None) -> bool:
        """Whether the round is closed (reviews are final and visible to their authors): its
        owner closed it, or its deadline passed."""
        if self.meta("closed_at"):
            return True
        deadline = self.deadline()
        return deadline is not None and (now or datetime.now(UTC)) >= deadline

    def close_round(self, by: str = OWNER) -> None:
        """Close the round now; closing a closed round keeps the first time."""
        with self._lock, self._db:
            cursor = self._db.execute("UPDATE meta SET value = ? WHERE key = 'closed_at' AND value = ''", (_now(),))
            if cursor.rowcount:
                self._event(by, "closed", "")

    def reopen(self, deadline: datetime | None, by: str = OWNER) -> None:
        """Open a closed round again until ``deadline`` (None: until closed by hand).
        :class:`ValueError` for a deadline that is not in the future."""
        if deadline is not None and deadline <= datetime.now(UTC):
            raise ValueError("the new deadline has passed already")
        with self._lock, self._db:
            self._db.execute("UPDATE meta SET value = '' WHERE key = 'closed_at'")
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'deadline'", (_iso(deadline),))
            self._event(by, "reopened", f"until {_iso(deadline) or 'closed by hand'}")

    def set_deadline(self, deadline: datetime | None, by: str = OWNER) -> None:
        """Set or extend the deadline of an open round (None: no deadline).
        :class:`ValueError` when the round is closed or the deadline has passed."""
        if self.closed():
            raise ValueError("the round is closed: reopen it with a new deadline")
        if deadline is not None and deadline <= datetime.now(UTC):
            raise ValueError("that deadline has passed already")
        with self._lock, self._db:
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'deadline'", (_iso(deadline),))
            self._event(by, "deadline", _iso(deadline) or "none")

    def events(self) -> list[Event]:
        """What staff did to the round, oldest first."""
        return [Event(*row) for row in self._all("SELECT at, by, action, detail FROM events ORDER BY id", ())]

    # -- people and tasks ---------------------------------------------------------------

    def person_by_token(self, token: str) -> Person | None:
        """The owner of a link's token, or None."""
        row = self._maybe("SELECT id, alias, role, token FROM people WHERE token = ?", (token,))
        if row is None or not secrets.compare_digest(row[3], token):
            return None
        return Person(*row)

    def person(self, ident: str) -> Person | None:
        """A person by id, or None."""
        row = self._maybe("SELECT id, alias, role, token FROM people WHERE id = ?", (ident,))
        return None if row is None else Person(*row)

    def people(self) -> list[Person]:
        """Everybody: students by id, then staff by id."""
        rows = self._all("SELECT id, alias, role, token FROM people ORDER BY role = ?, id", (STAFF_ROLE,))
        return [Person(*row) for row in rows]

    def tasks_of(self, reviewer: str) -> list[Task]:
        """The reviews ``reviewer`` has to write (not those reassigned to others), by number."""
        rows = self._all(f"{_TASKS} WHERE reviewer = ? AND withdrawn = '' ORDER BY number", (reviewer,))
        return [Task(*row) for row in rows]

    def withdrawn_of(self, reviewer: str) -> list[Task]:
        """The reviews staff took from ``reviewer`` and gave to someone else."""
        rows = self._all(f"{_TASKS} WHERE reviewer = ? AND withdrawn != '' ORDER BY number", (reviewer,))
        return [Task(*row) for row in rows]

    def task(self, reviewer: str, number: int) -> Task | None:
        """The reviewer's task ``number``, or None (a number that is not theirs, or withdrawn)."""
        if not 0 < number < 1 << 62:
            return None
        row = self._maybe(f"{_TASKS} WHERE reviewer = ? AND number = ? AND withdrawn = ''", (reviewer, number))
        return None if row is None else Task(*row)

    def task_by_id(self, task_id: int) -> Task | None:
        """A task by its row id, or None."""
        row = self._maybe(f"{_TASKS} WHERE id = ?", (task_id,))
        return None if row is None else Task(*row)

    def task_by_public(self, public: str) -> Task | None:
        """A task by its public id, or None."""
        row = self._maybe(f"{_TASKS} WHERE public = ?", (public,))
        return None if row is None else Task(*row)

    def all_tasks(self) -> list[Task]:
        """Every task that is not withdrawn: students' first, then staff, by reviewer and number."""
        rows = self._all(f"{_TASKS} WHERE withdrawn = '' ORDER BY role = ?, reviewer, number", (STAFF_ROLE,))
        return [Task(*row) for row in rows]

    def tasks_for_author(self, author: str) -> list[Task]:
        """The reviews of ``author``'s code: students' first, then staff, each in a random but
        fixed order (by public id), so that the order tells nothing about the reviewers."""
        rows = self._all(
            f"{_TASKS} WHERE author = ? AND withdrawn = '' ORDER BY role = ?, public", (author, STAFF_ROLE)
        )
        return [Task(*row) for row in rows]

    def reassign(self, task: Task, reviewer: str, by: str = OWNER) -> Task:
        """Give ``task`` to ``reviewer`` (a volunteer or staff): the old task is withdrawn (its
        drafts kept) and the new one is the reviewer's next number.  :class:`ValueError` when
        the task was submitted, is withdrawn, or ``reviewer`` is the author, the same reviewer,
        unknown, or already reviews that author."""
        person = self.person(reviewer)
        if person is None:
            raise ValueError(f"{reviewer!r} is not in this round")
        if task.withdrawn:
            raise ValueError("this review was already reassigned")
        if self.submitted(task.id) is not None:
            raise ValueError("this review was submitted: only reviews never submitted are reassigned")
        if reviewer in (task.author, task.reviewer):
            raise ValueError(f"{reviewer} is the author or the reviewer of this review")
        with self._lock, self._db:
            if self._db.execute(
                "SELECT 1 FROM tasks WHERE reviewer = ? AND author = ?", (reviewer, task.author)
            ).fetchone():
                raise ValueError(f"{reviewer} already reviews (or reviewed) this author")
            (last,) = self._db.execute(
                "SELECT COALESCE(MAX(number), 0) FROM tasks WHERE reviewer = ?", (reviewer,)
            ).fetchone()
            cursor = self._db.execute(
                "INSERT INTO tasks (reviewer, author, number, role, reason, public) VALUES (?, ?, ?, ?, ?, ?)",
                (reviewer, task.author, last + 1, person.role, f"reassigned from {task.reviewer}", _public_id()),
            )
            self._db.execute(
                "UPDATE tasks SET withdrawn = ? WHERE id = ?", (f"{_now()} to {reviewer} by {by}", task.id)
            )
            self._event(by, "reassigned", f"{task.reviewer} -> {reviewer} (author {task.author})")
            row = self._db.execute(f"{_TASKS} WHERE id = ?", (cursor.lastrowid,)).fetchone()
        return Task(*row)

    def solution(self, author: str) -> Solution | None:
        """The author's stored solution, or None (staff have none)."""
        row = self._maybe("SELECT author, code, evidence, status, approach FROM solutions WHERE author = ?", (author,))
        if row is None:
            return None
        return Solution(row[0], row[1], json.loads(row[2]), row[3], row[4])

    # -- reviews ------------------------------------------------------------------------

    def save_review(self, task_id: int, scores: Mapping[str, int], summary: str, *, submit: bool) -> ReviewVersion:
        """Append a version of the review (a draft, or a submission if ``submit``) with the
        task's line comments as they are now.  A draft that changes nothing is not appended
        (the latest version is returned).

        :class:`ValueError` for an item not in the rubric or a negative level.
        """
        for item, level in scores.items():
            if item not in self._rubric_items:
                raise ValueError(f"{item!r} is not an item of this round's rubric")
            if not isinstance(level, int) or level < 0:
                raise ValueError(f"level {level!r} of {item!r} is not a level index")
        with self._lock, self._db:
            comments = tuple(Comment(*row) for row in self._db.execute(_LIVE_COMMENTS, (task_id,)).fetchall())
            latest = self._db.execute(
                f"{_VERSIONS} WHERE task = ? ORDER BY version DESC LIMIT 1", (task_id,)
            ).fetchone()
            last = latest[1] if latest else 0
            if latest is not None and not submit:
                before = _review_version(latest)
                if (before.scores, before.summary, before.comments) == (dict(scores), summary, comments):
                    return before
            version = ReviewVersion(
                task_id, last + 1, SUBMITTED if submit else DRAFT, dict(scores), summary, _now(), comments
            )
            self._db.execute(
                "INSERT INTO review_versions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    task_id,
                    version.version,
                    version.state,
                    json.dumps(version.scores, sort_keys=True),
                    summary,
                    version.saved_at,
                    _comments_json(comments),
                ),
            )
        return version

    def latest(self, task_id: int) -> ReviewVersion | None:
        """The last save of the review, draft or submitted; None if never saved."""
        return self._version(task_id, "")

    def submitted(self, task_id: int) -> ReviewVersion | None:
        """The last submitted version (the one that counts); None if never submitted."""
        return self._version(task_id, f"AND state = '{SUBMITTED}'")

    def history(self, task_id: int) -> list[ReviewVersion]:
        """Every save of the review, oldest first."""
        rows = self._all(f"{_VERSIONS} WHERE task = ? ORDER BY version", (task_id,))
        return [_review_version(row) for row in rows]

    def _version(self, task_id: int, condition: str) -> ReviewVersion | None:
        row = self._maybe(f"{_VERSIONS} WHERE task = ? {condition} ORDER BY version DESC LIMIT 1", (task_id,))
        return None if row is None else _review_version(row)

    def add_comment(self, task_id: int, start: int, end: int, text: str, lines: int | None = None) -> Comment:
        """Comment on lines ``start``..``end`` (within ``lines``, the length of the code, when
        given); :class:`ValueError` for a bad range or empty text."""
        last = lines if lines is not None else 1 << 62
        if not 1 <= start <= end <= last:
            raise ValueError(f"lines {start}..{end} are not a range of lines of the code (1..{last}, start <= end)")
        if not text.strip():
            raise ValueError("the comment is empty")
        public = _public_id()
        with self._lock, self._db:
            cursor = self._db.execute(
                'INSERT INTO comments (task, start, "end", text, created_at, public) VALUES (?, ?, ?, ?, ?, ?)',
                (task_id, start, end, text.strip(), _now(), public),
            )
        return Comment(int(cursor.lastrowid or 0), task_id, start, end, text.strip(), public)

    def delete_comment(self, task_id: int, public: str) -> bool:
        """Mark the task's comment ``public`` deleted (kept in the file); False if it is not the task's."""
        with self._lock, self._db:
            cursor = self._db.execute(
                "UPDATE comments SET deleted = 1 WHERE public = ? AND task = ? AND deleted = 0", (public, task_id)
            )
        return cursor.rowcount == 1

    def comments(self, task_id: int) -> list[Comment]:
        """The task's comments as they are now (not deleted), by line then time: the reviewer's
        working copy.  What an author reads is the snapshot in :meth:`submitted`."""
        return [Comment(*row) for row in self._all(_LIVE_COMMENTS, (task_id,))]

    def rate(self, task_id: int, rating: int) -> None:
        """The author's helpfulness rating of a review, -2..+2; rating again replaces it."""
        if rating not in RATINGS:
            raise ValueError(f"rating {rating} is not in {RATINGS.start}..{RATINGS.stop - 1}")
        self._write("INSERT INTO ratings (task, rating, rated_at) VALUES (?, ?, ?)", (task_id, rating, _now()))

    def rating(self, task_id: int) -> int | None:
        """The author's last rating of the review, or None."""
        row = self._maybe("SELECT rating FROM ratings WHERE task = ? ORDER BY id DESC LIMIT 1", (task_id,))
        return None if row is None else int(row[0])

    # -- moderation ---------------------------------------------------------------------

    def moderate(self, task_id: int, action: str, note: str, by: str) -> None:
        """Hide a review from its author and the consensus, show it again, or flag it."""
        if action not in (HIDE, SHOW, FLAG):
            raise ValueError(f"unknown moderation {action!r}")
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO moderation (task, action, note, by, at) VALUES (?, ?, ?, ?, ?)",
                (task_id, action, note.strip(), by, _now()),
            )

    def moderation(self, task_id: int) -> list[Moderation]:
        """The staff actions on a review, oldest first."""
        rows = self._all("SELECT task, action, note, by, at FROM moderation WHERE task = ? ORDER BY id", (task_id,))
        return [Moderation(*row) for row in rows]

    def hidden(self, task_id: int) -> bool:
        """Whether staff hid the review (the last hide or show counts)."""
        row = self._maybe(
            "SELECT action FROM moderation WHERE task = ? AND action != ? ORDER BY id DESC LIMIT 1", (task_id, FLAG)
        )
        return row is not None and row[0] == HIDE

    # -- staff views --------------------------------------------------------------------

    def progress(self) -> list[tuple[Person, int, int, int]]:
        """Per person with tasks: (person, submitted, drafts only, total tasks)."""
        result = []
        for person in self.people():
            tasks = self.tasks_of(person.id)
            if not tasks:
                continue
            submitted = sum(self.submitted(t.id) is not None for t in tasks)
            drafts = sum(self.submitted(t.id) is None and self.latest(t.id) is not None for t in tasks)
            result.append((person, submitted, drafts, len(tasks)))
        return result

    def reviews(self) -> list[Review]:
        """The submitted reviews that staff did not hide, as :mod:`~grader.review.consensus`
        records (with ratings, staff flags and the author's grader status)."""
        result = []
        for task in self.all_tasks():
            version = self.submitted(task.id)
            if version is None or self.hidden(task.id):
                continue
            solution = self.solution(task.author)
            flags = [m.note or "flagged" for m in self.moderation(task.id) if m.action == FLAG]
            result.append(
                Review(
                    reviewer=task.reviewer,
                    author=task.author,
                    unit=self._unit,
                    scores=dict(version.scores),
                    comments=len(version.comments),
                    text_chars=len(version.summary.strip()) + sum(len(c.text) for c in version.comments),
                    helpful=self.rating(task.id),
                    author_status=solution.status if solution else "",
                    staff_flags=tuple(flags),
                )
            )
        return result

    def _event(self, by: str, action: str, detail: str) -> None:
        """Record a staff action; call with the lock held, inside a transaction."""
        self._db.execute(
            "INSERT INTO events (at, by, action, detail) VALUES (?, ?, ?, ?)", (_now(), by, action, detail)
        )

    # -- plumbing -----------------------------------------------------------------------

    def _all(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _maybe(self, sql: str, params: Sequence[Any]) -> Any:
        with self._lock:
            return self._db.execute(sql, params).fetchone()

    def _one(self, sql: str, params: Sequence[Any]) -> Any:
        row = self._maybe(sql, params)
        if row is None:
            raise StoreError(f"{self.path}: the round's metadata is incomplete")
        return row

    def _write(self, sql: str, params: Sequence[Any]) -> None:
        with self._lock, self._db:
            self._db.execute(sql, params)


_TASKS = "SELECT id, reviewer, author, number, role, reason, public, withdrawn FROM tasks"
_VERSIONS = "SELECT task, version, state, scores, summary, saved_at, comments FROM review_versions"
_LIVE_COMMENTS = (
    'SELECT id, task, start, "end", text, public FROM comments WHERE task = ? AND deleted = 0 ORDER BY start, "end", id'
)
#: Metadata a version-3 round has besides its name, unit and rubric.
_V3_META = {"deadline": "", "owner": OWNER, "rubric_text": ""}


def _public_id() -> str:
    """A random id for pages and forms (72 bits, url-safe)."""
    return secrets.token_urlsafe(9)


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).isoformat(timespec="seconds")


def _comments_json(comments: Iterable[Comment]) -> str:
    return json.dumps([[c.id, c.start, c.end, c.text, c.public] for c in comments])


def _review_version(row: Sequence[Any]) -> ReviewVersion:
    comments = tuple(Comment(c[0], row[0], c[1], c[2], c[3], c[4]) for c in json.loads(row[6]))
    return ReviewVersion(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], comments)


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False)
    db.execute("PRAGMA foreign_keys = ON")
    # write-ahead log: a save is one append and no fsync per transaction (durable at checkpoints,
    # safe against a crash of the server); readers such as `review score` never wait for writers
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    return db


def _backup(path: Path, copy: Path) -> None:
    """A consistent copy (mode 600) of the database at ``path``, its write-ahead log included."""
    fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    source, target = sqlite3.connect(path), sqlite3.connect(copy)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()


def _version(path: Path) -> int:
    """The schema version of the file; :class:`StoreError` when it is no review database."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a review round's database ({exc})") from exc
    if row is None or not str(row[0]).isdigit():
        raise StoreError(f"{path} is not a review round's database (no schema version)")
    return int(row[0])
