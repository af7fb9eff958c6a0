"""A whole peer-review round on a graded class of 12: ``grader batch``, ``review plan``, the pages
in a real headless Chromium (a reviewer comments and scores, staff close the round, the author
reads and rates), and ``review score``.

The class: the reference (with an authorship comment), a renamed copy of it, an einsum and a
``torch.where`` variant, five catalogued mistakes, the untouched stub, a syntax error and a
submission without ``attention.py``.  It is graded once per module (about a minute on 2 cores).
"""

import csv
import json
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

from grader import ROOT, mistakes
from grader.cli import main
from grader.review import gallery, web
from grader.review.plan import STAFF, STUDENT

REFERENCE = (ROOT / "solutions" / "attention.py").read_text()
STUB = (ROOT / "assignments" / "attention.py").read_text()
SDPA_DEF = "def scaled_dot_product_attention"
UNIT = "attention.sdpa"
K = 2
CONFLICT = ("ana_lee", "ben_kim")


def _mistake(entry_id: str) -> str:
    return next(m for m in mistakes.load("attention") if m.id == entry_id).source()


def _renamed(source: str) -> str:
    """The reference with the local variables of its sdpa renamed (a copy that hides)."""
    head, rest = source.split(SDPA_DEF, 1)
    body, sep, tail = rest.partition("\ndef ")
    for old, new in (("scores", "logits"), ("weights", "attn"), ("d_k", "dim")):
        body = re.sub(rf"\b{old}\b", new, body)
    assert body != rest.partition("\ndef ")[0], "the renaming changed nothing"
    return head + SDPA_DEF + body + sep + tail


CLASS = {
    "ana_lee": REFERENCE.replace(
        f"{SDPA_DEF}(q, k, v, mask=None):\n",
        f"{SDPA_DEF}(q, k, v, mask=None):\n    # Author: Ana Lee <ana.lee@uni.example>\n",
    ),
    "ben_kim": _renamed(REFERENCE),
    "cho_park": _mistake("sdpa_einsum"),
    "dan_oh": _mistake("sdpa_torch_where"),
    "eve_jung": _mistake("sdpa_softmax_query_axis"),
    "fay_han": _mistake("sdpa_no_scale"),
    "gus_yoon": _mistake("sdpa_mask_inverted"),
    "hal_song": _mistake("sdpa_fill_zero"),
    "ivy_kang": _mistake("sdpa_manual_softmax"),
    "jon_lim": STUB,
    "kai_seo": f"{SDPA_DEF}(q, k, v, mask=None:\n    return q\n",
    "lea_moon": None,  # handed in lstm.py only: attention is missing
}
PASSING = {"ana_lee", "ben_kim", "cho_park", "dan_oh", "ivy_kang"}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The class's submissions and their batch results (graded once)."""
    base = tmp_path_factory.mktemp("review_class")
    subs, out = base / "subs", base / "out"
    for ident, source in CLASS.items():
        (subs / ident).mkdir(parents=True)
        if source is None:
            (subs / ident / "lstm.py").write_text((ROOT / "assignments" / "lstm.py").read_text())
        else:
            (subs / ident / "attention.py").write_text(source)
    assert main(["batch", str(subs), "--out", str(out), "--device", "cpu"]) == 0
    return base, subs, out


@pytest.fixture(scope="module")
def round_dir(graded):
    """A round planned from the batch: k = 2, one conflict pair, staff member ``ta`` on top."""
    base, subs, out = graded
    conflicts = base / "conflicts.csv"
    conflicts.write_text(",".join(CONFLICT) + "\n")
    roster = base / "roster.csv"
    roster.write_text("id,name,email\nana_lee,Ana Lee,ana.lee@uni.example\nben_kim,Ben Kim,ben@uni.example\n")
    folder = base / "round"
    args = ["review", "plan", str(subs), "--results", str(out), "--unit", UNIT, "--k", str(K), "--seed", "s1"]
    args += ["--out", str(folder), "--conflicts", str(conflicts), "--roster", str(roster), "--staff", "ta"]
    assert main([*args, "--staff-load", "2"]) == 0
    return folder


def _plan(folder: Path) -> dict:
    return json.loads((folder / "plan.json").read_text())


def test_plan_on_the_class_keeps_its_promises(round_dir):
    plan = _plan(round_dir)
    students = [p["id"] for p in plan["people"] if p["role"] == STUDENT]
    assert sorted(students) == sorted(CLASS)  # missing and failing submissions are reviewed by default
    reviews = [(r["reviewer"], r["author"]) for r in plan["reviews"] if r["role"] == STUDENT]
    for ident in students:
        assert sum(a == ident for _, a in reviews) == K, ident
        assert sum(r == ident for r, _ in reviews) == K, ident
    assert all(r != a for r, a in reviews)
    assert not {(a, r) for r, a in reviews} & set(reviews), "a reciprocal pair"
    assert CONFLICT not in reviews and CONFLICT[::-1] not in reviews
    for author in set(CLASS) - PASSING:
        assert any(a == author and r in PASSING for r, a in reviews), f"{author} has no passing reviewer"
    staff = [r for r in plan["reviews"] if r["role"] == STAFF]
    assert len(staff) == 2 and {r["reviewer"] for r in staff} == {"ta"}
    aliases = [p["alias"] for p in plan["people"]]
    assert len(set(aliases)) == len(aliases) and not set(aliases) & set(CLASS)


def test_solutions_are_anonymized_and_carry_the_evidence(round_dir):
    solutions = json.loads((round_dir / "solutions.json").read_text())
    for ident, solution in solutions.items():
        shown = json.dumps({"code": solution["code"], "evidence": solution["evidence"]})
        for secret in ("Ana", "ana.lee", "uni.example", *CLASS):
            assert secret not in shown, (ident, secret)
    assert "def scaled_dot_product_attention" in solutions["ana_lee"]["code"]
    (eve,) = solutions["eve_jung"]["evidence"]["exercises"]
    assert eve["status"] == "failed" and eve["failures"]
    failure = eve["failures"][0]
    assert failure["yours"] and failure["expected"] and failure["smallest"]
    assert any("query" in hint for hint in failure["hints"]), failure["hints"]
    assert {h["status"] for h in eve["hidden"]} <= {"passed", "failed"} and eve["hidden"]
    assert solutions["lea_moon"]["status"] == "missing" and solutions["kai_seo"]["status"] == "error"


def test_gallery_stacks_renamed_copies_and_splits_einsum(graded):
    _, subs, out = graded
    cards = gallery.gallery(UNIT, gallery.solutions_from_batch(out, subs, UNIT))
    card_of = {author: card.key for card in cards for author in card.authors}
    assert card_of["ana_lee"] == card_of["ben_kim"]
    assert card_of["cho_park"] != card_of["ana_lee"]
    assert len({card_of[a] for a in ("eve_jung", "fay_han", "gus_yoon", "hal_song")}) == 4


# -- the round in a real browser (the `browser` fixture: tests/selftest/conftest.py) ---


@pytest.fixture
def server(round_dir, tmp_path):
    """``review serve`` on a copy of the round, in a thread on a free port: (app, base URL)."""
    from werkzeug.serving import make_server

    folder = tmp_path / "round"
    shutil.copytree(round_dir, folder)
    app = web.create_app(folder, "http://127.0.0.1")
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield app, folder, f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    app.extensions["review_store"].close()


def _click_and_wait(browser, element) -> None:
    """Click a link or a submit button and wait until the next page has replaced this one."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    page = browser.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(browser, 30).until(expected_conditions.staleness_of(page))


def test_a_full_round_in_the_browser(server, browser):
    from selenium.webdriver.common.by import By

    app, folder, base = server
    store = app.extensions["review_store"]
    links = {row["id"]: row["link"] for row in csv.DictReader((folder / "links.csv").open())}
    token = {p.id: p.token for p in store.people()}
    assert all(link.endswith(token[ident]) for ident, link in links.items())

    author = "eve_jung"
    task = next(t for t in store.tasks_for_author(author) if t.role == STUDENT)
    other_tasks = [t for t in store.tasks_for_author(author) if t.id != task.id]

    # The reviewer opens their link, goes to the solution, comments on the softmax line and scores it.
    code = store.solution(author).code.splitlines()
    line = next(n for n, text in enumerate(code, 1) if "torch.softmax(" in text)
    browser.get(f"{base}/r/{token[task.reviewer]}")
    assert "Ana Lee" not in browser.page_source and author not in browser.page_source
    _click_and_wait(browser, browser.find_element(By.LINK_TEXT, f"Solution {task.number}"))
    assert "softmax" in browser.find_element(By.ID, "evidence").text
    assert author not in browser.page_source
    comment_form = browser.find_element(By.ID, "comment-form")
    comment_form.find_element(By.NAME, "start").send_keys(str(line))
    comment_form.find_element(By.NAME, "end").send_keys(str(line))
    comment_form.find_element(By.NAME, "text").send_keys("softmax runs over dim=-2 here: the queries, not the keys")
    _click_and_wait(browser, comment_form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    assert "softmax runs over dim=-2" in browser.find_element(By.ID, "code").text
    rubric = app.extensions["review_store"].rubric_items
    for item in rubric:
        browser.find_element(By.CSS_SELECTOR, f"input[name='item-{item}'][value='1']").click()
    browser.find_element(By.ID, "summary").send_keys("Right shapes; the softmax axis is wrong (see my line comment).")
    if os.environ.get("REVIEW_SCREENSHOT"):
        browser.set_window_size(1280, 1500)
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(os.environ["REVIEW_SCREENSHOT"])
    _click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "#review-form button[value=submit]"))
    assert "(submitted)" in browser.find_element(By.TAG_NAME, "h1").text

    saved = store.submitted(task.id)
    assert saved is not None and saved.scores == dict.fromkeys(rubric, 1) and "softmax axis" in saved.summary
    assert [(c.start, c.end) for c in store.comments(task.id)] == [(line, line)]

    # Before the round closes nobody reads the review: not the author, not another reviewer.
    browser.get(f"{base}/r/{token[author]}/mine")
    assert "softmax axis" not in browser.page_source and "when staff close" in browser.page_source
    outsider = next(p for p in store.people() if p.id not in (author, task.reviewer) and p.role == STUDENT)
    for number in range(1, K + 2):
        browser.get(f"{base}/r/{token[outsider.id]}/task/{number}")
        assert "softmax axis" not in browser.page_source and "dim=-2 here" not in browser.page_source
    browser.get(f"{base}/r/{token[task.reviewer][:-2]}xx/task/{task.number}")
    assert "Not found" in browser.title
    browser.get(f"{base}/s/{token[task.reviewer]}")
    assert "Not found" in browser.title  # a student's link is not a staff link

    # The other reviewers of the author submit too (through the test client).
    client = app.test_client()
    for level, other in enumerate(other_tasks):
        data = {f"item-{item}": str(level % 3) for item in rubric} | {"summary": f"review {level}", "action": "submit"}
        client.post(f"/r/{token[other.reviewer]}/task/{other.number}", data=data)
        assert store.submitted(other.id) is not None

    # Staff see the progress and the gallery, and close the round.
    browser.get(f"{base}/s/{token['ta']}")
    progress = browser.find_element(By.ID, "progress").text
    assert task.reviewer in progress and len(browser.find_elements(By.CSS_SELECTOR, ".gallery-card")) >= 8
    _click_and_wait(browser, browser.find_element(By.ID, "close-round"))
    assert store.closed() and "closed" in browser.page_source

    # The author reads the reviews of their code, with the line comment, and rates one.
    browser.get(f"{base}/r/{token[author]}")
    _click_and_wait(browser, browser.find_element(By.ID, "mine"))
    cards = browser.find_elements(By.CSS_SELECTOR, ".review")
    assert len(cards) == len(store.tasks_for_author(author))
    assert "softmax runs over dim=-2" in browser.page_source and "softmax axis is wrong" in browser.page_source
    assert task.reviewer not in browser.page_source
    first = cards[0]
    first.find_element(By.CSS_SELECTOR, "input[name=helpful][value='2']").click()
    _click_and_wait(browser, first.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    assert store.rating(store.tasks_for_author(author)[0].id) == 2

    # Nobody can change a review once the round is closed.
    client.post(f"/r/{token[task.reviewer]}/task/{task.number}", data={"summary": "changed", "action": "submit"})
    assert store.submitted(task.id).summary == saved.summary

    # `review score` turns the database into CSV.
    assert main(["review", "score", str(folder)]) == 0
    consensus = list(csv.DictReader((folder / "scores" / "consensus.csv").open()))
    rows = [r for r in consensus if r["author"] == author]
    assert {r["item"] for r in rows} == set(rubric) and all(int(r["n_reviews"]) == len(cards) for r in rows)
    reviewers = {r["reviewer"]: r for r in csv.DictReader((folder / "scores" / "reviewers.csv").open())}
    assert task.reviewer in reviewers
    assert (folder / "scores" / "flags.csv").exists()
