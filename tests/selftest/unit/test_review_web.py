"""The review round's pages through Flask's test client, on a round planned from a small
synthetic batch (results.json files written here, no grading): who may open what, escaping,
drafts and resubmissions, the reveal after the round closes, and the round's bad inputs."""

import json
import sqlite3

import pytest

from grader import ROOT
from grader.cli import main
from grader.review import rounds, web
from grader.review.store import StoreError

REFERENCE = (ROOT / "solutions" / "attention.py").read_text()
HOSTILE = REFERENCE.replace(
    "def scaled_dot_product_attention(q, k, v, mask=None):\n",
    'def scaled_dot_product_attention(q, k, v, mask=None):\n    # </pre><script>alert("owned")</script>\n'
    "    # by Zed Quux zed@uni.example\n",
)
FAILURE = (
    "weights differ from softmax(q k^T / sqrt(d_k)) over the keys\n"
    "  max |diff| = 0.987 at index (0, 0, 2, 1)\n"
    "  yours    weights[0, 0, 2]: [0.6668, 1, 0, 0, 0.7181]\n"
    "  expected weights[0, 0, 2]: [0.059, 0.01275, 0, 0, 0.9282]\n"
    "  smallest failing input: q: float32 (1, 3, 4, 6), k: float32 (1, 3, 5, 6)\n"
    "  hint: your code matches a softmax over the query axis (dim=-2) instead of the keys (dim=-1)"
)
PROPERTY = "weights = softmax(q k^T / sqrt(d_k)) over the keys, masked keys removed"
HIDDEN = "scaled dot-product attention works on any number of leading dimensions"


def _result(ident, passed):
    """A results.json like `grader batch` writes, for attention.sdpa only."""
    record = {"property": PROPERTY, "status": "passed" if passed else "failed", "message": "" if passed else FAILURE}
    status = "passed" if passed else "failed"
    return {
        "score": 10.0 if passed else 0.0,
        "max_score": 10.0,
        "tests": [
            {
                "name": "attention.sdpa: Scaled dot-product attention",
                "score": 9.0 if passed else 0.0,
                "max_score": 9.0,
                "status": status,
                "output": f"status: {status}",
                "tags": ["attention", "attention.sdpa"],
                "extra_data": {"outcome": status, "tests": [record]},
            },
            {
                "name": "attention.sdpa: Scaled dot-product attention (hidden tests)",
                "score": 1.0 if passed else 0.0,
                "max_score": 1.0,
                "status": status,
                "output": f"{status}: {HIDDEN}",
                "tags": ["attention", "attention.sdpa", "hidden"],
                "extra_data": {"outcome": status, "tests": [{"property": HIDDEN, "status": status, "hidden": True}]},
            },
        ],
        "extra_data": {"source": {"name": ident, "kind": "folder"}, "status": "graded"},
    }


STUDENTS = {"zed_quux": (HOSTILE, True), "amy": (REFERENCE, True), "bo": (REFERENCE, False), "cy": (REFERENCE, False)}


@pytest.fixture
def round_dir(tmp_path):
    """A planned round of four students, k = 2, with staff member ``ta``."""
    subs, out = tmp_path / "subs", tmp_path / "out"
    for ident, (code, passed) in STUDENTS.items():
        (subs / ident).mkdir(parents=True)
        (subs / ident / "attention.py").write_text(code)
        (out / ident).mkdir(parents=True)
        (out / ident / "results.json").write_text(json.dumps(_result(ident, passed)))
    folder = tmp_path / "round"
    rounds.make_round(out, subs, folder, unit="attention.sdpa", k=2, seed="7", staff=["ta"], staff_load=1)
    return folder


@pytest.fixture
def app(round_dir):
    app = web.create_app(round_dir)
    app.config["TESTING"] = True
    yield app
    app.extensions["review_store"].close()


def _store(app):
    return app.extensions["review_store"]


def _token(app, ident):
    return _store(app).person(ident).token


def test_each_link_opens_only_its_owners_pages(app):
    store, client = _store(app), app.test_client()
    amy, bo = store.person("amy"), store.person("bo")
    assert client.get(f"/r/{amy.token}").status_code == 200
    assert client.get("/r/" + "x" * 32).status_code == 404
    assert client.get("/r/").status_code == 404
    assert client.get(f"/s/{amy.token}").status_code == 404  # a student's token is not staff
    assert client.get(f"/r/{amy.token}/task/3").status_code == 404  # amy has 2 tasks
    # bo's token opens bo's task 1, which is not amy's task 1
    page = client.get(f"/r/{bo.token}/task/1").get_data(as_text=True)
    assert store.task("bo", 1).author != "bo"
    assert client.get(f"/s/{_token(app, 'staff')}").status_code == 200
    assert "Solution 1" in page and "amy" not in page.replace("Scaled", "")


def test_pages_escape_the_submission_and_hide_names(app):
    store, client = _store(app), app.test_client()
    reviewer = next(t.reviewer for t in store.tasks_for_author("zed_quux") if t.role == "student")
    number = next(t.number for t in store.tasks_of(reviewer) if t.author == "zed_quux")
    page = client.get(f"/r/{_token(app, reviewer)}/task/{number}").get_data(as_text=True)
    assert "<script>" not in page
    assert "alert" in page  # the rest of the comment is shown, escaped
    assert "Zed" not in page and "Quux" not in page and "zed@uni.example" not in page and "zed_quux" not in page
    assert "softmax over the query axis" not in page  # zed passed: no failure shown
    headers = client.get(f"/r/{_token(app, reviewer)}").headers
    assert (
        headers["Referrer-Policy"] == "no-referrer" and "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    )


def test_the_task_page_shows_the_graders_evidence(app):
    store, client = _store(app), app.test_client()
    task = next(t for t in store.tasks_for_author("bo") if t.role == "student")
    page = client.get(f"/r/{_token(app, task.reviewer)}/task/{task.number}").get_data(as_text=True)
    for shown in (
        PROPERTY,
        "[0.6668, 1, 0, 0, 0.7181]",
        "[0.059, 0.01275, 0, 0, 0.9282]",
        "(1, 3, 5, 6)",
        "query axis",
    ):
        assert shown.replace("'", "&#39;") in page, shown
    assert HIDDEN in page and "failed" in page  # a hidden test: its name and its status


def _review(client, token, number, **scores):
    form = {f"item-{k}": str(v) for k, v in scores.items()}
    return client.post(f"/r/{token}/task/{number}", data={**form, "summary": "clear shapes", "action": "submit"})


ALL = {"correctness": 2, "shapes": 1, "readability": 2, "vectorized": 2, "edge_cases": 0}


def test_a_draft_is_kept_and_the_last_submission_counts(app):
    store, client = _store(app), app.test_client()
    token, task = _token(app, "amy"), store.task("amy", 1)
    client.post(f"/r/{token}/task/1", data={"item-correctness": "1", "summary": "half", "action": "draft"})
    assert store.latest(task.id).state == "draft" and store.submitted(task.id) is None
    page = client.get(f"/r/{token}/task/1").get_data(as_text=True)
    assert 'value="1" checked' in page and "half" in page
    # submitting with an item left empty saves a draft and says which item
    reply = client.post(f"/r/{token}/task/1", data={"item-correctness": "2", "action": "submit"}, follow_redirects=True)
    assert "shapes" in reply.get_data(as_text=True) and store.submitted(task.id) is None
    _review(client, token, 1, **ALL)
    _review(client, token, 1, **{**ALL, "shapes": 2})
    assert store.submitted(task.id).scores["shapes"] == 2
    assert [v.state for v in store.history(task.id)] == ["draft", "draft", "submitted", "submitted"]


def test_authors_see_their_reviews_only_after_the_round_closes(app, round_dir):
    store, client = _store(app), app.test_client()
    task = next(t for t in store.tasks_for_author("bo") if t.role == "student")
    token = _token(app, task.reviewer)
    client.post(
        f"/r/{token}/task/{task.number}", data={"action": "comment", "start": "2", "end": "3", "text": "why -inf?"}
    )
    _review(client, token, task.number, **ALL)
    bo = _token(app, "bo")
    assert "why -inf?" not in client.get(f"/r/{bo}/mine").get_data(as_text=True)
    assert client.post(f"/s/{bo}/close").status_code == 404  # only staff close a round
    client.post(f"/s/{_token(app, 'staff')}/close")
    mine = client.get(f"/r/{bo}/mine").get_data(as_text=True)
    assert "why -inf?" in mine and "clear shapes" in mine and task.reviewer not in mine
    others = [p.id for p in store.people() if p.id not in ("bo", task.reviewer) and p.role == "student"]
    for other in others:  # nobody else's page shows bo's review
        assert "why -inf?" not in client.get(f"/r/{_token(app, other)}/mine").get_data(as_text=True)
    client.post(f"/r/{bo}/mine", data={"task": str(task.id), "helpful": "2"})
    assert store.rating(task.id) == 2
    other_task = next(t for t in store.tasks_of("bo"))
    assert client.post(f"/r/{bo}/mine", data={"task": str(other_task.id), "helpful": "-2"}).status_code == 404
    # a closed round takes no more reviews
    client.post(f"/r/{token}/task/{task.number}", data={"action": "comment", "start": "1", "text": "late"})
    assert all(c.text != "late" for c in store.comments(task.id))
    _store(app).close()
    assert main(["review", "score", str(round_dir)]) == 0
    consensus = (round_dir / "scores" / "consensus.csv").read_text()
    assert "bo" in consensus and "correctness" in consensus


def test_plan_errors_name_their_cause(round_dir, tmp_path, capsys):
    subs, out = tmp_path / "subs", tmp_path / "out"
    args = ["review", "plan", str(subs), "--results", str(out), "--unit", "attention.sdpa", "--seed", "1"]
    assert main([*args, "--k", "4", "--out", str(tmp_path / "r1")]) == 2
    assert "k + 1" in capsys.readouterr().err
    bad = tmp_path / "rubric.toml"
    bad.write_text('[[item]]\nid = "x"\ntext = "t"\nlevels = "not a list"\n')
    assert main([*args, "--rubric", str(bad), "--out", str(tmp_path / "r2")]) == 2
    assert "rubric.toml:4:" in capsys.readouterr().err
    assert main([*args, "--unit", "attention.nope", "--out", str(tmp_path / "r3")]) == 2
    assert "unknown unit" in capsys.readouterr().err
    assert main([*args, "--leave-out", "failing", "--k", "1", "--out", str(tmp_path / "r4")]) == 0
    plan = rounds.load_plan(tmp_path / "r4")
    assert sorted(p["id"] for p in plan["people"] if p["role"] == "student") == ["amy", "zed_quux"]


def test_the_same_seed_and_key_give_the_same_round(round_dir, tmp_path):
    before = {name: (round_dir / name).read_bytes() for name in ("plan.json", "solutions.json", "assignments.csv")}
    rounds.make_round(
        tmp_path / "out", tmp_path / "subs", round_dir, unit="attention.sdpa", k=2, seed="7", staff=["ta"], staff_load=1
    )
    assert {name: (round_dir / name).read_bytes() for name in before} == before
    assert (round_dir / "key").stat().st_mode & 0o077 == 0


def test_a_database_from_a_newer_grader_is_refused_with_a_message(round_dir, capsys):
    web.create_app(round_dir).extensions["review_store"].close()
    with sqlite3.connect(round_dir / "review.db") as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.close()
    with pytest.raises(StoreError, match="99"):
        web.create_app(round_dir)
    assert main(["review", "score", str(round_dir)]) == 2
    assert "review.db" in capsys.readouterr().err


def test_links_are_private_and_one_per_person(app, round_dir):
    links = (round_dir / "links.csv").read_text().splitlines()
    assert links[0] == "id,role,alias,link"
    assert len(links) - 1 == len(_store(app).people())
    assert (round_dir / "links.csv").stat().st_mode & 0o077 == 0
    assert any(line.startswith("staff,staff,") and "/s/" in line for line in links)
