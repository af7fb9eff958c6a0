"""The database of a review round (``review.db``, SQLite): people, solutions, tasks, reviews.

One file per round, made by :meth:`Store.create` from the round's plan the first time
``review serve`` starts, and opened by :meth:`Store.open` afterwards.  Nothing is ever
overwritten: each save of a review appends a version (the latest submitted one counts, the
drafts and earlier submissions stay), a deleted comment is only marked deleted, and each
rating is a new row (the last one counts).  So a review submitted twice loses nothing.

The schema has a version in the ``meta`` table.  :meth:`Store.open` migrates an older file in
place, after copying it to ``<name>.v<N>.bak``, and refuses a newer one with a message naming
both versions.  Version 1 (the first release of the review app) kept one row per review and
per rating; version 2 keeps their history and soft-deletes comments.

The web app serves requests from several threads: one connection with
``check_same_thread=False`` behind a lock, every write in one transaction.
"""

import json
import os
import secrets
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from grader.review.consensus import RATINGS, Review

#: The schema this grader writes and reads.
SCHEMA_VERSION = 2
#: States of a review version.
DRAFT, SUBMITTED = "draft", "submitted"
#: The role whose tasks and people sort last (staff reviewers, on top of the student quota).
STAFF_ROLE = "staff"

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
    """One review to write: ``reviewer`` reviews ``author``; ``number`` counts from 1 per reviewer."""

    id: int
    reviewer: str
    author: str
    number: int
    role: str
    reason: str


@dataclass(frozen=True)
class ReviewVersion:
    """One save of a review: a draft or a submission."""

    task: int
    version: int
    state: str
    #: rubric item id -> level index
    scores: dict[str, int]
    summary: str
    saved_at: str


@dataclass(frozen=True)
class Comment:
    """A comment on the lines ``start``..``end`` (from 1, inclusive) of the reviewed code."""

    id: int
    task: int
    start: int
    end: int
    text: str


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


#: version -> the step that lifts a database of that version by one.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _v1_to_v2}


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
    ) -> "Store":
        """Make a new database (mode 600) with a fresh unguessable token per person.

        ``people`` are (id, alias, role); ``tasks`` are (reviewer, author, role, reason), numbered
        per reviewer in the order given.  :class:`StoreError` if ``path`` exists.
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
                db.executescript(SCHEMA_V2)
                meta = {
                    "schema_version": str(SCHEMA_VERSION),
                    "round_id": round_id,
                    "unit": unit,
                    "rubric_items": json.dumps(list(rubric_items)),
                    "closed_at": "",
                }
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
                        "INSERT INTO tasks (reviewer, author, number, role, reason) VALUES (?, ?, ?, ?, ?)",
                        (reviewer, author, numbers[reviewer], role, reason),
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
            shutil.copy2(path, path.with_name(f"{path.name}.v{version}.bak"))
            db = _connect(path)
            try:
                with db:
                    while version < SCHEMA_VERSION:
                        MIGRATIONS[version](db)
                        version += 1
                    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
                    db.execute("INSERT OR IGNORE INTO meta VALUES ('closed_at', '')")
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

    def closed(self) -> bool:
        """Whether staff closed the round (reviews are final and visible to their authors)."""
        return bool(self._one("SELECT value FROM meta WHERE key = 'closed_at'", ())[0])

    def close_round(self) -> None:
        """Close the round; closing twice keeps the first time."""
        self._write("UPDATE meta SET value = ? WHERE key = 'closed_at' AND value = ''", (_now(),))

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
        """The reviews ``reviewer`` has to write, by number."""
        return [Task(*row) for row in self._all(f"{_TASKS} WHERE reviewer = ? ORDER BY number", (reviewer,))]

    def task(self, reviewer: str, number: int) -> Task | None:
        """The reviewer's task ``number``, or None (a number that is not theirs)."""
        row = self._maybe(f"{_TASKS} WHERE reviewer = ? AND number = ?", (reviewer, number))
        return None if row is None else Task(*row)

    def task_by_id(self, task_id: int) -> Task | None:
        """A task by its id, or None."""
        row = self._maybe(f"{_TASKS} WHERE id = ?", (task_id,))
        return None if row is None else Task(*row)

    def tasks_for_author(self, author: str) -> list[Task]:
        """The reviews of ``author``'s code: students' first, then staff, each by reviewer's number."""
        rows = self._all(f"{_TASKS} WHERE author = ? ORDER BY role = ?, reviewer, number", (author, STAFF_ROLE))
        return [Task(*row) for row in rows]

    def solution(self, author: str) -> Solution | None:
        """The author's stored solution, or None (staff have none)."""
        row = self._maybe("SELECT author, code, evidence, status, approach FROM solutions WHERE author = ?", (author,))
        if row is None:
            return None
        return Solution(row[0], row[1], json.loads(row[2]), row[3], row[4])

    # -- reviews ------------------------------------------------------------------------

    def save_review(self, task_id: int, scores: Mapping[str, int], summary: str, *, submit: bool) -> ReviewVersion:
        """Append a version of the review (a draft, or a submission if ``submit``).

        :class:`ValueError` for an item not in the rubric or a negative level.
        """
        for item, level in scores.items():
            if item not in self._rubric_items:
                raise ValueError(f"{item!r} is not an item of this round's rubric")
            if not isinstance(level, int) or level < 0:
                raise ValueError(f"level {level!r} of {item!r} is not a level index")
        with self._lock, self._db:
            (last,) = self._db.execute(
                "SELECT COALESCE(MAX(version), 0) FROM review_versions WHERE task = ?", (task_id,)
            ).fetchone()
            version = ReviewVersion(task_id, last + 1, SUBMITTED if submit else DRAFT, dict(scores), summary, _now())
            self._db.execute(
                "INSERT INTO review_versions VALUES (?, ?, ?, ?, ?, ?)",
                (
                    task_id,
                    version.version,
                    version.state,
                    json.dumps(version.scores, sort_keys=True),
                    summary,
                    version.saved_at,
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

    def add_comment(self, task_id: int, start: int, end: int, text: str) -> Comment:
        """Comment on lines ``start``..``end``; :class:`ValueError` for a bad range or empty text."""
        if not 1 <= start <= end:
            raise ValueError(f"lines {start}..{end} are not a range of lines (from 1, start <= end)")
        if not text.strip():
            raise ValueError("the comment is empty")
        with self._lock, self._db:
            cursor = self._db.execute(
                'INSERT INTO comments (task, start, "end", text, created_at) VALUES (?, ?, ?, ?, ?)',
                (task_id, start, end, text.strip(), _now()),
            )
        return Comment(int(cursor.lastrowid or 0), task_id, start, end, text.strip())

    def delete_comment(self, task_id: int, comment_id: int) -> bool:
        """Mark one of the task's comments deleted (kept in the file); False if it is not the task's."""
        with self._lock, self._db:
            cursor = self._db.execute(
                "UPDATE comments SET deleted = 1 WHERE id = ? AND task = ? AND deleted = 0", (comment_id, task_id)
            )
        return cursor.rowcount == 1

    def comments(self, task_id: int) -> list[Comment]:
        """The task's comments that are not deleted, by line then time."""
        rows = self._all(
            'SELECT id, task, start, "end", text FROM comments WHERE task = ? AND deleted = 0'
            ' ORDER BY start, "end", id',
            (task_id,),
        )
        return [Comment(*row) for row in rows]

    def rate(self, task_id: int, rating: int) -> None:
        """The author's helpfulness rating of a review, -2..+2; rating again replaces it."""
        if rating not in RATINGS:
            raise ValueError(f"rating {rating} is not in {RATINGS.start}..{RATINGS.stop - 1}")
        self._write("INSERT INTO ratings (task, rating, rated_at) VALUES (?, ?, ?)", (task_id, rating, _now()))

    def rating(self, task_id: int) -> int | None:
        """The author's last rating of the review, or None."""
        row = self._maybe("SELECT rating FROM ratings WHERE task = ? ORDER BY id DESC LIMIT 1", (task_id,))
        return None if row is None else int(row[0])

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
        """The submitted reviews as :mod:`~grader.review.consensus` records (with ratings)."""
        result = []
        for person in self.people():
            for task in self.tasks_of(person.id):
                version = self.submitted(task.id)
                if version is None:
                    continue
                comments = self.comments(task.id)
                result.append(
                    Review(
                        reviewer=task.reviewer,
                        author=task.author,
                        unit=self._unit,
                        scores=dict(version.scores),
                        comments=len(comments),
                        text_chars=len(version.summary.strip()) + sum(len(c.text) for c in comments),
                        helpful=self.rating(task.id),
                    )
                )
        return result

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


_TASKS = "SELECT id, reviewer, author, number, role, reason FROM tasks"
_VERSIONS = "SELECT task, version, state, scores, summary, saved_at FROM review_versions"


def _review_version(row: Sequence[Any]) -> ReviewVersion:
    return ReviewVersion(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5])


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False)
    db.execute("PRAGMA foreign_keys = ON")
    return db


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
