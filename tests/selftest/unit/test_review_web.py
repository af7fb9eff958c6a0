"""The review round's pages through Flask's test client, on a round planned from a small
synthetic batch (results.json files written here, no grading): who may open what, escaping,
drafts and resubmissions, the reveal after the round closes, and the round's bad inputs."""

import json
import logging
import re
import sqlite3
import time

import pytest

from grader import ROOT
from grader.cli import main
from grader.review import form, rounds, web
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
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)  # the CSRF tests turn it back on
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
    assert HIDDEN not in page and "Hidden tests: 0 of 1 passed" in page  # a count, never a name


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
    assert client.post(f"/s/{bo}/round", data={"action": "close", "confirm": "yes"}).status_code == 404
    client.post(f"/s/{_token(app, 'staff')}/round", data={"action": "close", "confirm": "yes"})
    mine = client.get(f"/r/{bo}/mine").get_data(as_text=True)
    assert "why -inf?" in mine and "clear shapes" in mine and task.reviewer not in mine
    others = [p.id for p in store.people() if p.id not in ("bo", task.reviewer) and p.role == "student"]
    for other in others:  # nobody else's page shows bo's review
        assert "why -inf?" not in client.get(f"/r/{_token(app, other)}/mine").get_data(as_text=True)
    assert f'name="review" value="{task.public}"' in mine and f'name="review" value="{task.id}"' not in mine
    client.post(f"/r/{bo}/mine", data={"review": task.public, "helpful": "2"})
    assert store.rating(task.id) == 2
    other_task = next(t for t in store.tasks_of("bo"))
    assert client.post(f"/r/{bo}/mine", data={"review": other_task.public, "helpful": "-2"}).status_code == 404
    assert client.post(f"/r/{bo}/mine", data={"review": str(task.id), "helpful": "-2"}).status_code == 404
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


def _task_of(app, author="bo"):
    store = _store(app)
    task = next(t for t in store.tasks_for_author(author) if t.role == "student")
    return store, task, f"/r/{_token(app, task.reviewer)}/task/{task.number}"


def _close(app):
    app.test_client().post(f"/s/{_token(app, 'staff')}/round", data={"action": "close", "confirm": "yes"})


def test_no_page_carries_a_row_id_that_orders_reviewers(app):
    store, client = _store(app), app.test_client()
    for task in store.all_tasks():
        client.post(f"/r/{_token(app, task.reviewer)}/task/{task.number}", data={"action": "submit", **_levels()})
    _close(app)
    for person in store.people():
        for url in (f"/r/{person.token}", f"/r/{person.token}/mine"):
            page = client.get(url).get_data(as_text=True)
            values = re.findall(r'name="(?:review|task|comment)" value="([^"]*)"', page)
            assert all(not v.isdigit() for v in values), (url, values)
            for task in store.tasks_for_author(person.id):
                assert f'name="review" value="{task.id}"' not in page and f'id="review-{task.id}"' not in page


def _levels(**scores):
    return {f"item-{k}": str(v) for k, v in {**ALL, **scores}.items()} | {"summary": "clear shapes"}


def test_a_comment_saves_the_levels_and_summary_typed_with_it(app):
    store, task, url = _task_of(app)
    data = _levels(correctness=1) | {"summary": "typed, not saved yet", "start": "2", "end": "3", "text": "why?"}
    assert client_post(app, url, data | {"action": "comment"}).status_code == 302
    latest = store.latest(task.id)
    assert latest.summary == "typed, not saved yet" and latest.scores["correctness"] == 1
    assert [c.text for c in latest.comments] == ["why?"]
    comment = store.comments(task.id)[0]
    client_post(app, url, _levels() | {"summary": "still here", "action": f"delete:{comment.public}"})
    assert store.comments(task.id) == [] and store.latest(task.id).summary == "still here"


def client_post(app, url, data):
    return app.test_client().post(url, data=data)


def test_the_author_reads_exactly_the_last_submitted_version(app):
    store, task, url = _task_of(app)
    client_post(app, url, _levels() | {"action": "comment", "start": "1", "text": "submitted comment"})
    client_post(app, url, _levels() | {"summary": "the submitted summary", "action": "submit"})
    first = store.comments(task.id)[0]
    client_post(app, url, _levels() | {"action": f"delete:{first.public}"})
    client_post(app, url, _levels() | {"summary": "a later draft", "action": "comment", "start": "2", "text": "draft"})
    assert store.latest(task.id).state == "draft"
    page = app.test_client().get(url).get_data(as_text=True)
    assert "submitted, newer draft" in page and "a later draft" in page
    _close(app)
    mine = app.test_client().get(f"/r/{_token(app, 'bo')}/mine").get_data(as_text=True)
    assert "submitted comment" in mine and "the submitted summary" in mine
    assert "a later draft" not in mine and ">draft<" not in mine


def test_a_refused_post_shows_what_was_typed_and_saves_nothing(app):
    store, task, url = _task_of(app)
    lines = len(store.solution(task.author).code.splitlines())
    for start, end in (("1", "1000000000"), ("1", str(10**24)), ("0", "1"), ("x", "2"), (str(lines + 1), "")):
        reply = client_post(
            app,
            url,
            _levels() | {"summary": "my words", "action": "comment", "start": start, "end": end, "text": "long range"},
        )
        page = reply.get_data(as_text=True)
        assert reply.status_code == 422 and "my words" in page and "long range" in page, (start, end)
        assert f"between 1 and {lines}" in page
    too_long = "x" * (web.MAX_COMMENT_CHARS + 1)
    reply = client_post(app, url, _levels() | {"action": "comment", "start": "1", "text": too_long})
    assert reply.status_code == 422 and f"limit is {web.MAX_COMMENT_CHARS}" in reply.get_data(as_text=True)
    reply = client_post(app, url, _levels() | {"summary": "y" * (web.MAX_SUMMARY_CHARS + 1), "action": "draft"})
    assert reply.status_code == 422 and f"limit is {web.MAX_SUMMARY_CHARS}" in reply.get_data(as_text=True)
    assert store.comments(task.id) == [] and store.latest(task.id) is None


def test_malformed_ids_are_404_never_500(app):
    store, task, url = _task_of(app)
    client, token = app.test_client(), _token(app, task.reviewer)
    for path in (
        f"/r/{token}/task/99999999999999999999999",
        f"/r/{token}/task/-1",
        f"/r/{token}/task/0",
        f"/r/{token}/task/1e3",
        f"/s/{_token(app, 'staff')}/review/abc",
        f"/s/{_token(app, 'staff')}/review/{'x' * 500}",
        "/r/" + "x" * 5000,
    ):
        assert client.get(path).status_code == 404, path
    assert client_post(app, url, _levels() | {"action": "delete:abc"}).status_code == 302
    assert client_post(app, url, _levels() | {"action": "delete:"}).status_code == 302
    assert client.post(f"/s/{_token(app, 'staff')}/reassign", data={"review": "abc", "to": "amy"}).status_code == 404


def test_a_huge_stored_range_does_not_slow_the_page(app):
    store, task, url = _task_of(app)
    with sqlite3.connect(store.path) as db:  # a comment stored before ranges were checked
        db.execute(
            'INSERT INTO comments (task, start, "end", text, created_at, public) VALUES (?, 1, ?, ?, ?, ?)',
            (task.id, 10**9, "everything", "t", "legacy-comment"),
        )
    started = time.perf_counter()
    page = app.test_client().get(url).get_data(as_text=True)
    assert time.perf_counter() - started < 5 and "everything" in page  # bounded by the code's lines, not 10^9
    assert page.count('class="marked"') == len(store.solution(task.author).code.splitlines())


def test_cross_site_posts_are_refused(round_dir):
    app = web.create_app(round_dir)  # CSRF on, as served
    try:
        store = _store(app)
        task = store.task("amy", 1)
        url, client = f"/r/{store.person('amy').token}/task/1", app.test_client()
        data = _levels() | {"action": "submit"}
        assert client.post(url, data=data).status_code == 400  # no CSRF token
        assert client.post(url, data=data, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
        assert store.latest(task.id) is None
        page = client.get(url).get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        assert client.post(url, data=data | {"csrf_token": token}).status_code == 302
        assert store.submitted(task.id) is not None
    finally:
        _store(app).close()


def test_only_the_owner_closes_with_a_confirmation_and_reopens(app):
    store, client = _store(app), app.test_client()
    ta, owner = _token(app, "ta"), _token(app, "staff")
    assert client.get(f"/s/{ta}").status_code == 200 and "close-round" not in client.get(f"/s/{ta}").get_data(
        as_text=True
    )
    assert client.post(f"/s/{ta}/round", data={"action": "close", "confirm": "yes"}).status_code == 404
    reply = client.post(f"/s/{owner}/round", data={"action": "close"}, follow_redirects=True)
    assert "confirm" in reply.get_data(as_text=True) and not store.closed()
    client.post(f"/s/{owner}/round", data={"action": "close", "confirm": "yes"})
    assert store.closed()
    client.post(f"/s/{owner}/round", data={"action": "reopen", "deadline": "2999-01-01T10:00+09:00"})
    assert not store.closed() and store.deadline().year == 2999
    client.post(f"/s/{owner}/round", data={"action": "deadline", "deadline": "2000-01-01T00:00"})
    assert store.deadline().year == 2999  # a past deadline is refused
    assert [e.action for e in store.events()] == ["closed", "reopened"]


def test_staff_read_hide_and_reassign(app):
    store, client, owner = _store(app), app.test_client(), _token(app, "staff")
    store_, task, url = _task_of(app)
    client_post(app, url, _levels() | {"summary": "rude words", "action": "submit"})
    page = client.get(f"/s/{owner}/review/{task.public}").get_data(as_text=True)
    assert "rude words" in page
    client.post(f"/s/{owner}/review/{task.public}", data={"action": "hide", "note": "rude"})
    assert store.hidden(task.id)
    no_show = next(t for t in store.all_tasks() if t.role == "student" and store.latest(t.id) is None)
    staff_page = client.get(f"/s/{owner}").get_data(as_text=True)
    assert no_show.public in staff_page
    client.post(f"/s/{owner}/reassign", data={"review": no_show.public, "to": "staff"})
    assert store.withdrawn_of(no_show.reviewer) and any(t.author == no_show.author for t in store.tasks_of("staff"))
    _close(app)
    mine = client.get(f"/r/{_token(app, task.author)}/mine").get_data(as_text=True)
    assert "rude words" not in mine


def test_a_rubric_changed_after_the_first_start_is_refused_and_restored(app, round_dir):
    _store(app).close()
    rubric_file = round_dir / "rubric.toml"
    original = rubric_file.read_text()
    rubric_file.write_text(original + '\n[[item]]\nid = "extra"\ntext = "new"\nlevels = ["a", "b"]\n')
    with pytest.raises(rounds.RoundError, match="'extra' added.*--restore-rubric"):
        web.create_app(round_dir)
    assert main(["review", "serve", str(round_dir), "--restore-rubric"]) == 0
    assert rubric_file.read_text() == original
    web.create_app(round_dir).extensions["review_store"].close()


def test_a_rubric_that_is_not_utf8_names_its_file_and_line(tmp_path):
    path = tmp_path / "rubric.toml"
    path.write_bytes(b'[[item]]\nid = "x"\ntext = "caf\xe9"\nlevels = ["a", "b"]\n')
    with pytest.raises(form.RubricError, match=r"rubric.toml:3: not UTF-8"):
        form.load(path)


def test_links_follow_the_base_url_of_every_start(app, round_dir):
    _store(app).close()
    web.create_app(round_dir, "https://review.example.edu/").extensions["review_store"].close()
    links = (round_dir / "links.csv").read_text()
    assert (
        links.count("https://review.example.edu/r/") + links.count("https://review.example.edu/s/")
        == len(links.splitlines()) - 1
    )
    assert (round_dir / "links.csv").stat().st_mode & 0o077 == 0


def test_tokens_never_reach_the_log(app, caplog, monkeypatch):
    store, task, url = _task_of(app)
    app.config.update(TESTING=False, PROPAGATE_EXCEPTIONS=False)
    monkeypatch.setattr(store, "solution", lambda author: 1 / 0)
    with caplog.at_level(logging.ERROR):
        reply = app.test_client().get(url)
    assert reply.status_code == 500 and "went wrong" in reply.get_data(as_text=True)
    token = _token(app, task.reviewer)
    assert caplog.records and all(token not in r.getMessage() for r in caplog.records)
    assert "/r/<token>/task/" in caplog.text


def test_the_task_page_puts_comments_beside_their_lines_and_loads_only_our_script(app):
    store, task, url = _task_of(app)
    client_post(app, url, _levels() | {"action": "comment", "start": "3", "end": "4", "text": "beside line three"})
    page = app.test_client().get(url).get_data(as_text=True)
    row = re.search(r'<tr id="L3"[^>]*>.*?</tr>', page, re.S).group(0)
    assert "beside line three" in row and 'data-line="3"' in row
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/review.js" defer>']
    assert "script-src 'self'" in app.test_client().get(url).headers["Content-Security-Policy"]
    assert app.test_client().get("/static/review.js").status_code == 200
