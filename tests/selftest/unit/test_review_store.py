"""The review round's database: what it keeps, what it refuses, the migrations from versions 1
and 2, a review as one record (comments in its versions), opaque ids, moderation, reassigning
and deadlines."""

import os
import sqlite3
import stat
from datetime import UTC, datetime, timedelta

import pytest

from grader.review import store as store_mod
from grader.review.store import FLAG, HIDE, SCHEMA_V1, SCHEMA_V2, SCHEMA_VERSION, SHOW, Solution, Store, StoreError

PEOPLE = [
    ("amy", "Heron-1", "student"),
    ("bo", "Otter-2", "student"),
    ("cy", "Lynx-3", "student"),
    ("ta", "Staff-1", "staff"),
]
TASKS = [
    ("amy", "bo", "student", "approach differs"),
    ("bo", "cy", "student", "passing reviewer"),
    ("cy", "amy", "student", "balanced"),
    ("ta", "bo", "staff", "staff load"),
    ("ta", "cy", "staff", "staff load"),
]
EVIDENCE = {"exercises": [{"id": "attention.sdpa", "status": "failed"}]}


def _solutions():
    return [
        Solution(a, f"def f_{a}():\n    return {i}\n", EVIDENCE, "failed", f"ap{i}")
        for i, a in enumerate("amy bo cy".split())
    ]


@pytest.fixture
def store(tmp_path):
    made = Store.create(
        tmp_path / "review.db",
        round_id="r1",
        unit="attention.sdpa",
        rubric_items=["correct", "clear"],
        people=PEOPLE,
        solutions=_solutions(),
        tasks=TASKS,
    )
    yield made
    made.close()


def test_round_trip_and_private_file(store, tmp_path):
    assert (store.round_id, store.unit, store.rubric_items) == ("r1", "attention.sdpa", ["correct", "clear"])
    assert stat.S_IMODE(os.stat(tmp_path / "review.db").st_mode) == 0o600
    assert [p.id for p in store.people()] == ["amy", "bo", "cy", "ta"]
    assert store.solution("bo") == _solutions()[1]
    assert store.solution("ta") is None
    assert [(t.author, t.number) for t in store.tasks_of("ta")] == [("bo", 1), ("cy", 2)]
    assert [(t.reviewer, t.role) for t in store.tasks_for_author("bo")] == [("amy", "student"), ("ta", "staff")]
    first = store.task("ta", 1)
    assert first is not None and store.task_by_public(first.public) == first and store.task_by_public("x") is None
    task = store.task("ta", 2)
    assert task is not None and store.task_by_id(task.id) == task
    assert store.task("amy", 2) is None and store.task_by_id(999) is None
    with pytest.raises(StoreError, match="already exists"):
        Store.create(tmp_path / "review.db", round_id="x", unit="u", rubric_items=[], people=[], solutions=[], tasks=[])


def test_tokens_are_unguessable_and_name_only_their_owner(store):
    tokens = [p.token for p in store.people()]
    assert len(set(tokens)) == len(tokens) and all(len(t) >= 32 for t in tokens)
    for person in store.people():
        assert store.person_by_token(person.token) == person
    assert store.person_by_token("") is None and store.person_by_token(tokens[0][:-1]) is None


def test_every_save_is_kept_and_the_last_submission_counts(store):
    task = store.task("amy", 1).id
    assert store.latest(task) is None and store.submitted(task) is None
    store.save_review(task, {"correct": 1}, "first", submit=False)
    store.save_review(task, {"correct": 2, "clear": 0}, "second", submit=True)
    store.save_review(task, {"correct": 0}, "third", submit=True)
    store.save_review(task, {"correct": 1}, "later draft", submit=False)
    assert store.latest(task).summary == "later draft"
    assert store.submitted(task).summary == "third" and store.submitted(task).scores == {"correct": 0}
    assert [(v.version, v.state) for v in store.history(task)] == [
        (1, "draft"),
        (2, "submitted"),
        (3, "submitted"),
        (4, "draft"),
    ]
    with pytest.raises(ValueError, match="not an item"):
        store.save_review(task, {"style": 1}, "", submit=True)
    with pytest.raises(ValueError, match="level"):
        store.save_review(task, {"correct": -1}, "", submit=True)


def test_comments_are_soft_deleted_and_belong_to_their_task(store):
    mine, other = store.task("amy", 1).id, store.task("bo", 1).id
    late = store.add_comment(mine, 3, 4, "  later line  ")
    first = store.add_comment(mine, 1, 1, "first line")
    assert [c.text for c in store.comments(mine)] == ["first line", "later line"]
    assert not store.delete_comment(other, first.public)  # not the other task's to delete
    assert not store.delete_comment(mine, str(first.id))  # a row id is no comment id of a page
    assert store.delete_comment(mine, first.public) and not store.delete_comment(mine, first.public)
    assert store.comments(mine) == [late]
    for start, end, text in [(0, 1, "x"), (3, 2, "x"), (1, 1, "   ")]:
        with pytest.raises(ValueError):
            store.add_comment(mine, start, end, text)
    with pytest.raises(ValueError, match="1..2"):  # past the last line of the code
        store.add_comment(mine, 1, 10**9, "everything", lines=2)
    with sqlite3.connect(store.path) as db:  # the deleted one is still in the file
        assert db.execute("SELECT COUNT(*) FROM comments").fetchone() == (2,)


def test_ratings_last_one_wins_in_range(store):
    task = store.task("cy", 1).id
    assert store.rating(task) is None
    store.rate(task, -2)
    store.rate(task, 1)
    assert store.rating(task) == 1
    for bad in (3, -3):
        with pytest.raises(ValueError):
            store.rate(task, bad)


def test_progress_reviews_and_closing(store):
    amy, ta = store.task("amy", 1).id, store.task("ta", 1).id
    store.add_comment(amy, 1, 2, "nice")
    store.save_review(amy, {"correct": 2}, "clear and right", submit=True)
    store.add_comment(amy, 3, 3, "a comment after submitting is not part of the review")
    store.save_review(ta, {}, "", submit=False)
    store.rate(amy, 2)
    progress = {p.id: rest for p, *rest in store.progress()}
    assert progress == {"amy": [1, 0, 1], "bo": [0, 0, 1], "cy": [0, 0, 1], "ta": [0, 1, 2]}
    (review,) = store.reviews()
    assert (review.reviewer, review.author, review.unit, dict(review.scores)) == (
        "amy",
        "bo",
        "attention.sdpa",
        {"correct": 2},
    )
    assert (review.comments, review.text_chars, review.helpful) == (1, len("clear and right") + len("nice"), 2)
    assert not store.closed()
    store.close_round()
    store.close_round()
    assert store.closed()


def test_open_refuses_what_is_not_a_current_review_database(store, tmp_path):
    store.close()
    with pytest.raises(StoreError, match="does not exist"):
        Store.open(tmp_path / "nope.db")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a review round's database"):
        Store.open(junk)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(StoreError, match="not a review round's database"):
        Store.open(other)
    with sqlite3.connect(tmp_path / "review.db") as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}.*up to {SCHEMA_VERSION}"):
        Store.open(tmp_path / "review.db")


def _old_round(path, schema, version, round_id, closed_at, *rows):
    """A round's database of an older schema: the people, the first three tasks, and ``rows``
    (SQL statements) on top."""
    db = sqlite3.connect(path)
    db.executescript(schema)
    meta = {"schema_version": version, "round_id": round_id, "unit": "lstm", "rubric_items": '["correct"]'}
    db.executemany("INSERT INTO meta VALUES (?, ?)", (meta | {"closed_at": closed_at}).items())
    db.executemany(
        "INSERT INTO people VALUES (?, ?, ?, ?)", [(i, a, r, f"token-{i}-" + "x" * 30) for i, a, r in PEOPLE]
    )
    db.executemany("INSERT INTO tasks (reviewer, author, number, role, reason) VALUES (?, ?, 1, ?, ?)", TASKS[:3])
    for row in rows:
        db.execute(row)
    db.commit()
    db.close()


def test_a_version_1_database_is_migrated_after_a_backup(tmp_path):
    path = tmp_path / "review.db"
    _old_round(
        path,
        SCHEMA_V1,
        "1",
        "old",
        "x",
        "INSERT INTO reviews VALUES (1, 'submitted', '{\"correct\": 1}', 'old summary', 't0')",
        "INSERT INTO comments (task, start, \"end\", text, created_at) VALUES (1, 2, 3, 'old comment', 't0')",
        "INSERT INTO ratings VALUES (1, -1)",
    )
    migrated = Store.open(path)
    try:
        with sqlite3.connect(tmp_path / "review.db.v1.bak") as backup:  # the version-1 file as it was
            assert backup.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)
            assert backup.execute("SELECT summary FROM reviews").fetchall() == [("old summary",)]
        backup.close()
        assert stat.S_IMODE(os.stat(tmp_path / "review.db.v1.bak").st_mode) == 0o600
        assert migrated.submitted(1).summary == "old summary" and migrated.submitted(1).scores == {"correct": 1}
        assert [c.text for c in migrated.comments(1)] == ["old comment"] and migrated.rating(1) == -1
        assert [c.text for c in migrated.submitted(1).comments] == ["old comment"]
        assert migrated.closed() and migrated.unit == "lstm"
        migrated.save_review(1, {"correct": 2}, "new", submit=True)  # history continues after version 1
        assert [v.version for v in migrated.history(1)] == [1, 2]
    finally:
        migrated.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    assert set(store_mod.MIGRATIONS) == set(range(1, SCHEMA_VERSION))


def test_a_submitted_review_is_one_record_with_its_comments(store):
    task = store.task("amy", 1).id
    kept = store.add_comment(task, 1, 1, "kept")
    gone = store.add_comment(task, 2, 2, "deleted later")
    submitted = store.save_review(task, {"correct": 1}, "summary", submit=True)
    assert [c.text for c in submitted.comments] == ["kept", "deleted later"]
    store.delete_comment(task, gone.public)
    store.add_comment(task, 3, 3, "draft only")
    draft = store.save_review(task, {"correct": 1}, "summary", submit=False)
    assert [c.text for c in draft.comments] == ["kept", "draft only"]
    assert [c.text for c in store.submitted(task).comments] == ["kept", "deleted later"]  # what the author reads
    assert store.save_review(task, {"correct": 1}, "summary", submit=False) == draft  # nothing new: no version
    (review,) = store.reviews()
    assert review.comments == 2 and kept.public != gone.public


def test_public_ids_are_random_and_say_nothing_about_the_order(store):
    publics = [t.public for p in store.people() for t in store.tasks_of(p.id)]
    assert len(set(publics)) == len(publics) and all(len(p) >= 12 for p in publics)
    assert publics != sorted(publics) or publics[::-1] != sorted(publics)  # not in plan order either way
    assert all(not p.isdigit() for p in publics)


def test_a_no_shows_review_is_reassigned_and_the_old_one_withdrawn(store):
    task = store.task("bo", 1)  # bo reviews cy and never writes a word
    store.save_review(store.task("amy", 1).id, {"correct": 1}, "done", submit=True)
    with pytest.raises(ValueError, match="submitted"):
        store.reassign(store.task("amy", 1), "ta")
    with pytest.raises(ValueError, match="author"):
        store.reassign(task, "cy")
    with pytest.raises(ValueError, match="already reviews"):
        store.reassign(task, "ta")  # ta reviews cy already
    with pytest.raises(ValueError, match="not in this round"):
        store.reassign(task, "nobody")
    new = store.reassign(task, "amy", by="staff")
    assert (new.reviewer, new.author, new.number, new.role) == ("amy", "cy", 2, "student")
    assert store.tasks_of("bo") == [] and [t.author for t in store.withdrawn_of("bo")] == ["cy"]
    assert store.task("bo", 1) is None and store.task("amy", 2) == new
    assert {t.reviewer for t in store.tasks_for_author("cy")} == {"amy", "ta"}
    with pytest.raises(ValueError, match="already reassigned"):
        store.reassign(store.withdrawn_of("bo")[0], "ta")
    assert [(e.by, e.action) for e in store.events()] == [("staff", "reassigned")]


def test_staff_hide_show_and_flag_reviews(store):
    task = store.task("amy", 1).id
    store.save_review(task, {"correct": 0}, "this is rude and useless", submit=True)
    store.moderate(task, FLAG, "tone", "ta")
    assert [r.staff_flags for r in store.reviews()] == [("tone",)]
    store.moderate(task, HIDE, "rude", "staff")
    assert store.hidden(task) and store.reviews() == []
    store.moderate(task, SHOW, "", "staff")
    assert not store.hidden(task) and len(store.reviews()) == 1
    assert [m.action for m in store.moderation(task)] == [FLAG, HIDE, SHOW]
    with pytest.raises(ValueError):
        store.moderate(task, "delete", "", "staff")


def test_a_deadline_closes_the_round_by_itself_and_the_owner_reopens_it(store):
    soon = datetime.now(UTC) + timedelta(hours=1)
    store.set_deadline(soon, "staff")
    assert not store.closed() and store.closed(now=soon + timedelta(seconds=1))
    with pytest.raises(ValueError, match="passed"):
        store.set_deadline(datetime.now(UTC) - timedelta(minutes=1), "staff")
    store.close_round("staff")
    assert store.closed()
    with pytest.raises(ValueError, match="closed"):
        store.set_deadline(soon, "staff")
    store.reopen(soon + timedelta(days=1), "staff")
    assert not store.closed() and store.deadline() == (soon + timedelta(days=1)).replace(microsecond=0)
    assert [e.action for e in store.events()] == ["deadline", "closed", "reopened"]


def test_a_version_2_database_is_migrated_with_snapshots_and_public_ids(tmp_path):
    path = tmp_path / "review.db"
    _old_round(
        path,
        SCHEMA_V2,
        "2",
        "v2",
        "",
        "INSERT INTO review_versions VALUES (1, 1, 'submitted', '{\"correct\": 1}', 'v2 summary', 't0')",
        "INSERT INTO comments (task, start, \"end\", text, created_at) VALUES (1, 2, 3, 'v2 comment', 't0')",
    )

    migrated = Store.open(path)
    try:
        assert stat.S_IMODE(os.stat(tmp_path / "review.db.v2.bak").st_mode) == 0o600
        assert [c.text for c in migrated.submitted(1).comments] == ["v2 comment"]
        publics = [migrated.task_by_id(n).public for n in (1, 2, 3)]
        assert len(set(publics)) == 3 and all(publics)
        assert migrated.comments(1)[0].public and migrated.meta("secret") and not migrated.closed()
    finally:
        migrated.close()
