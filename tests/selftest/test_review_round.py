"""A whole peer-review round on a class like the trial's: 13 students from
``tests/selftest/review_class.py`` (one with her name, email, student number, handle and home
paths all over her code, a Korean author line, a zip, strings that equal parts of an email)
plus a syntax error and a submission without ``attention.py``; ``grader batch``, ``review
plan`` **without a roster**, every page a student gets checked for identity, and the pages in
a real headless Chromium under waitress (a reviewer comments beside a line, scores and
submits in one record, a later draft changes nothing the author sees, a zip's code on screen,
a cross-site post refused, a no-show's review reassigned, a phone-sized window), then
``review score``.  The class is graded once (about a minute on 2 cores).
"""

import csv
import json
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

from grader import ROOT
from grader.cli import main
from grader.review import gallery, rounds, web
from grader.review.plan import STAFF, STUDENT
from tests.selftest.review_class import UNIT, make_class

K = 2
CONFLICT = ("ana_lee", "ben_kim")
EXTRA = {  # beyond the trial's class: a syntax error and a submission without attention.py
    "kai_seo": "def scaled_dot_product_attention(q, k, v, mask=None:\n    return q\n",
    "lea_moon": None,
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The class's submissions and their batch results (graded once): (info, submissions, out)."""
    base = tmp_path_factory.mktemp("review_class")
    info = make_class(base)
    subs, out = info.submissions, base / "out"
    for ident, source in EXTRA.items():
        (subs / ident).mkdir()
        if source is None:
            (subs / ident / "lstm.py").write_text((ROOT / "assignments" / "lstm.py").read_text())
        else:
            (subs / ident / "attention.py").write_text(source)
    assert main(["batch", str(subs), "--out", str(out), "--device", "cpu"]) == 0
    return info, subs, out


@pytest.fixture(scope="module")
def round_dir(graded, tmp_path_factory):
    """A round planned from the batch without a roster: k = 2, one conflict pair, staff ``ta`` on top."""
    info, subs, out = graded
    base = tmp_path_factory.mktemp("review_round")
    conflicts = base / "conflicts.csv"
    conflicts.write_text(",".join(CONFLICT) + "\n")
    folder = base / "round"
    args = ["review", "plan", str(subs), "--results", str(out), "--unit", UNIT, "--k", str(K), "--seed", "s1"]
    assert main([*args, "--out", str(folder), "--conflicts", str(conflicts), "--staff", "ta", "--staff-load", "2"]) == 0
    return folder


def _plan(folder: Path) -> dict:
    return json.loads((folder / "plan.json").read_text())


def _ids(graded) -> list[str]:
    return [*graded[0].ids, *EXTRA]


def test_plan_on_the_class_keeps_its_promises(graded, round_dir, capsys):
    info = graded[0]
    plan = _plan(round_dir)
    students = [p["id"] for p in plan["people"] if p["role"] == STUDENT]
    assert sorted(students) == sorted(_ids(graded))  # missing and failing submissions are reviewed by default
    passing = {s.id for s in info.students if s.passes_sdpa}
    reviews = [(r["reviewer"], r["author"]) for r in plan["reviews"] if r["role"] == STUDENT]
    for ident in students:
        assert sum(a == ident for _, a in reviews) == K, ident
        assert sum(r == ident for r, _ in reviews) == K, ident
    assert all(r != a for r, a in reviews)
    assert not {(a, r) for r, a in reviews} & set(reviews), "a reciprocal pair"
    assert CONFLICT not in reviews and CONFLICT[::-1] not in reviews
    for author in set(students) - passing:
        assert any(a == author and r in passing for r, a in reviews), f"{author} has no passing reviewer"
    staff = [r for r in plan["reviews"] if r["role"] == STAFF]
    assert len(staff) == 2 and {r["reviewer"] for r in staff} == {"ta"}
    aliases = [p["alias"] for p in plan["people"]]
    assert len(set(aliases)) == len(aliases) and not set(aliases) & set(students)
    for name in ("plan.json", "solutions.json", "assignments.csv", "rubric.toml", "key"):
        assert (round_dir / name).stat().st_mode & 0o077 == 0, name
    assert round_dir.stat().st_mode & 0o077 == 0


def test_solutions_are_anonymized_and_carry_the_evidence(graded, round_dir, tmp_path):
    info = graded[0]
    solutions = json.loads((round_dir / "solutions.json").read_text())
    for ident, solution in solutions.items():
        shown = json.dumps({"code": solution["code"], "evidence": solution["evidence"]}, ensure_ascii=False)
        assert info.leaks(shown) == [], ident
    assert "def scaled_dot_product_attention" in solutions["cho_park"]["code"]  # the zip's code is there
    (eve,) = solutions["eve_jung"]["evidence"]["exercises"]
    assert eve["status"] == "failed" and eve["failures"]
    failure = eve["failures"][0]
    assert failure["yours"] and failure["expected"] and failure["smallest"]
    assert any("query" in hint for hint in failure["hints"]), failure["hints"]
    hidden = eve["hidden"]  # a count only: hidden-test names never reach peers
    assert set(hidden) == {"passed", "total"} and 0 <= hidden["passed"] <= hidden["total"] and hidden["total"] > 0
    assert solutions["lea_moon"]["status"] == "missing" and solutions["kai_seo"]["status"] == "error"
    # the whole module as the unit: jane's NameError on `jdoe_debug` reaches the evidence, scrubbed
    _, subs, out = graded
    whole = rounds.make_round(out, subs, tmp_path / "module", unit="attention", k=K, seed="m")
    jane = next(e for e in whole.entries if e.id.startswith("jane_doe"))
    shown = json.dumps({"code": jane.code, "evidence": jane.evidence}, ensure_ascii=False)
    assert "anon_debug" in shown and info.leaks(shown) == []
    max_mean = next(e for e in whole.entries if e.id == "max_mean").code
    assert '"max"' in max_mean and '"mean"' in max_mean  # strings equal to parts of her email stay


def test_a_wrong_submissions_path_is_refused(graded, tmp_path, capsys):
    _, subs, out = graded
    args = ["review", "plan", str(subs) + "-typo", "--results", str(out), "--unit", UNIT, "--seed", "x"]
    assert main([*args, "--out", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "r" / "plan.json").exists()


def test_gallery_stacks_renamed_copies_and_prints_no_names(graded, capsys):
    info, subs, out = graded
    cards = gallery.gallery(UNIT, gallery.solutions_from_batch(out, subs, UNIT))
    card_of = {author: card.key for card in cards for author in card.authors}
    assert card_of["ana_lee"] == card_of["ben_kim"]  # a renamed copy stacks with the original
    assert card_of["kim.minsu"] != card_of["ana_lee"]  # einsum is another approach
    assert len({card_of[a] for a in ("eve_jung", "fay_han", "gus_yoon", "hal_song")}) == 4
    assert main(["review", "gallery", str(subs), "--results", str(out), "--exercise", UNIT]) == 0
    printed = capsys.readouterr().out
    assert "def scaled_dot_product_attention" in printed and info.leaks(printed) == []
    assert not set(_ids(graded)) & set(re.findall(r"[\w.-]+", printed))


def test_no_page_a_student_gets_shows_who_wrote_or_reviewed(graded, round_dir, tmp_path):
    info = graded[0]
    folder = tmp_path / "round"
    shutil.copytree(round_dir, folder)
    app = web.create_app(folder)
    app.config.update(WTF_CSRF_ENABLED=False)
    store, client = app.extensions["review_store"], app.test_client()
    try:
        students = [p for p in store.people() if p.role == STUDENT]
        levels = {f"item-{item}": "1" for item in store.rubric_items}
        pages = []
        for person in students:
            for task in store.tasks_of(person.id):
                url = f"/r/{person.token}/task/{task.number}"
                reply = client.post(
                    url, data=levels | {"action": "comment", "start": "1", "end": str(10**9), "text": "all"}
                )
                assert reply.status_code == 422  # lines 1..10^9 are refused, and the page still loads
                client.post(url, data=levels | {"action": "submit", "summary": "ok"})
                pages.append(client.get(url).get_data(as_text=True))
            pages.append(client.get(f"/r/{person.token}").get_data(as_text=True))
        client.post(f"/s/{store.person('staff').token}/round", data={"action": "close", "confirm": "yes"})
        for person in students:
            pages.append(client.get(f"/r/{person.token}/mine").get_data(as_text=True))
        for page in pages:
            assert info.leaks(page) == []
            assert not set(_ids(graded)) & set(re.findall(r"[\w.-]+", page.replace("<hidden>", "")))
            assert all(not v.isdigit() for v in re.findall(r'name="(?:review|comment|task)" value="([^"]*)"', page))
    finally:
        store.close()


# -- the round in a real browser (the `browser` fixture: tests/selftest/conftest.py) ---


@pytest.fixture
def server(round_dir, tmp_path):
    """``review serve``'s app under waitress on a copy of the round, in a thread on a free port."""
    from waitress.server import create_server

    folder = tmp_path / "round"
    shutil.copytree(round_dir, folder)
    app = web.create_app(folder, "http://127.0.0.1")
    httpd = create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=httpd.run, daemon=True)
    thread.start()
    yield app, folder, f"http://127.0.0.1:{httpd.effective_port}"
    httpd.close()
    thread.join(timeout=10)
    app.extensions["review_store"].close()


@pytest.fixture
def elsewhere(tmp_path):
    """Another site (``localhost``, not ``127.0.0.1``) serving pages from a folder: (folder, base URL)."""
    import functools
    import http.server

    folder = tmp_path / "elsewhere"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://localhost:{httpd.server_port}"
    httpd.shutdown()


def _click_and_wait(browser, element) -> None:
    """Click a link or a submit button and wait until the next page has replaced this one."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    page = browser.find_element(By.TAG_NAME, "html")

    def replaced(_) -> bool:
        try:
            page.is_enabled()
        except WebDriverException:  # stale; newer Chromium may call it "does not belong to the document"
            return True
        return False

    element.click()
    WebDriverWait(browser, 30).until(replaced)
    _wait_for_page(browser)


def _wait_for_page(browser) -> None:
    from selenium.webdriver.support.wait import WebDriverWait

    WebDriverWait(browser, 30).until(lambda b: b.execute_script("return document.readyState") == "complete")


def test_a_full_round_in_the_browser(graded, server, elsewhere, browser):
    from selenium.webdriver.common.by import By

    info = graded[0]
    app, folder, base = server
    store = app.extensions["review_store"]
    links = {row["id"]: row["link"] for row in csv.DictReader((folder / "links.csv").open())}
    token = {p.id: p.token for p in store.people()}
    assert all(link.endswith(token[ident]) for ident, link in links.items())

    author = "eve_jung"
    task = next(t for t in store.tasks_for_author(author) if t.role == STUDENT)

    # The reviewer opens their link, then the solution; a click on the softmax line's number
    # starts a comment there, and the levels and summary typed meanwhile are saved with it.
    code = store.solution(author).code.splitlines()
    line = next(n for n, text in enumerate(code, 1) if "torch.softmax(" in text)
    browser.get(f"{base}/r/{token[task.reviewer]}")
    assert info.leaks(browser.page_source) == []
    _click_and_wait(browser, browser.find_element(By.LINK_TEXT, f"Solution {task.number}"))
    assert "softmax" in browser.find_element(By.ID, "evidence").text and info.leaks(browser.page_source) == []
    browser.find_element(By.CSS_SELECTOR, f"#L{line} td.ln a").click()
    assert browser.find_element(By.ID, "start").get_attribute("value") == str(line)
    assert browser.switch_to.active_element.get_attribute("id") == "comment-text"
    browser.switch_to.active_element.send_keys("softmax runs over dim=-2 here: the queries, not the keys")
    rubric = store.rubric_items
    for item in rubric:
        browser.find_element(By.CSS_SELECTOR, f"input[name='item-{item}'][value='1']").click()
    browser.find_element(By.ID, "summary").send_keys("Right shapes; the softmax axis is wrong (see my line comment).")
    _click_and_wait(browser, browser.find_element(By.ID, "add-comment"))
    beside = browser.find_element(By.ID, f"L{line}").text
    assert "softmax runs over dim=-2" in beside  # the comment sits beside its line
    assert "softmax axis is wrong" in browser.find_element(By.ID, "summary").get_attribute("value")
    assert all(
        browser.find_element(By.CSS_SELECTOR, f"input[name='item-{item}'][value='1']").is_selected() for item in rubric
    )
    if os.environ.get("REVIEW_SCREENSHOT"):  # the README's picture: REVIEW_SCREENSHOT=docs/review-page.png
        browser.set_window_size(1280, 1100)
        browser.execute_script(f"document.getElementById('L{line - 12}').scrollIntoView()")
        browser.save_screenshot(os.environ["REVIEW_SCREENSHOT"])
    _click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "#review-form button[value=submit]"))
    assert "(submitted)" in browser.find_element(By.TAG_NAME, "h1").text
    saved = store.submitted(task.id)
    assert saved.scores == dict.fromkeys(rubric, 1) and "softmax axis" in saved.summary
    assert [(c.start, c.end, c.text[:7]) for c in saved.comments] == [(line, line, "softmax")]

    # A later draft (a second comment, the first deleted, a new summary) is not what the author reads.
    browser.find_element(By.CSS_SELECTOR, "#L1 td.ln a").click()
    browser.switch_to.active_element.send_keys("draft-only comment")
    summary = browser.find_element(By.ID, "summary")
    summary.clear()
    summary.send_keys("a later draft summary")
    _click_and_wait(browser, browser.find_element(By.ID, "add-comment"))
    first = next(c for c in store.comments(task.id) if c.start == line)
    _click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, f"button[value='delete:{first.public}']"))
    assert "submitted, newer draft" in browser.find_element(By.TAG_NAME, "h1").text
    assert store.submitted(task.id) == saved

    # The pages fit a phone: nothing wider than a 390 px window but the code, which scrolls in its box.
    browser.set_window_size(390, 844)
    _wait_for_page(browser)
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
    browser.set_window_size(1400, 1000)

    # A zip submission's code is on its reviewer's screen.
    zipped = next(t for t in store.tasks_for_author("cho_park") if t.role == STUDENT)
    browser.get(f"{base}/r/{token[zipped.reviewer]}/task/{zipped.number}")
    assert "def scaled_dot_product_attention" in browser.find_element(By.ID, "code").text
    assert "no code for this unit" not in browser.page_source

    # A page on another site that posts a review in the reviewer's name is refused.
    victim = next(t for t in store.tasks_for_author("hal_song") if t.role == STUDENT)
    fields = "".join(f'<input name="item-{item}" value="0">' for item in rubric)
    (elsewhere[0] / "attack.html").write_text(
        f'<form id="f" method="post" action="{base}/r/{token[victim.reviewer]}/task/{victim.number}">{fields}'
        '<input name="summary" value="forged"><input name="action" value="submit"></form>'
        "<script>document.getElementById('f').submit()</script>"
    )
    browser.get(f"{elsewhere[1]}/attack.html")
    _wait_for_page(browser)
    assert "Refused" in browser.title and store.latest(victim.id) is None

    # Staff reassign a no-show's review to a volunteer, who then finds it on their page.
    no_show = next(t for t in store.all_tasks() if t.role == STUDENT and store.latest(t.id) is None)
    volunteer = next(
        p.id
        for p in store.people()
        if p.role == STUDENT
        and p.id not in (no_show.reviewer, no_show.author)
        and all(t.reviewer != p.id for t in store.tasks_for_author(no_show.author))
    )
    browser.get(f"{base}/s/{token['staff']}")
    row = browser.find_element(By.XPATH, f"//input[@name='review'][@value='{no_show.public}']/..")
    row.find_element(By.CSS_SELECTOR, "input[name=to]").send_keys(volunteer)
    _click_and_wait(browser, row.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    assert "Reassigned" in browser.page_source
    moved = next(t for t in store.tasks_of(volunteer) if t.author == no_show.author)
    browser.get(f"{base}/r/{token[volunteer]}")
    _click_and_wait(browser, browser.find_element(By.LINK_TEXT, f"Solution {moved.number}"))
    assert "The code" in browser.page_source and store.task(no_show.reviewer, no_show.number) is None

    # The other reviewers of the author submit too (through the test client).
    client = app.test_client()
    app.config.update(WTF_CSRF_ENABLED=False)
    for level, other in enumerate(t for t in store.tasks_for_author(author) if t.id != task.id):
        data = {f"item-{item}": str(level % 3) for item in rubric} | {"summary": f"review {level}", "action": "submit"}
        client.post(f"/r/{token[other.reviewer]}/task/{other.number}", data=data)
        assert store.submitted(other.id) is not None

    # The owner closes the round, after ticking the confirmation.
    browser.get(f"{base}/s/{token['staff']}")
    _click_and_wait(browser, browser.find_element(By.ID, "close-round"))
    assert not store.closed() and "confirm" in browser.page_source
    browser.find_element(By.ID, "confirm-close").click()
    _click_and_wait(browser, browser.find_element(By.ID, "close-round"))
    assert store.closed() and "closed" in browser.page_source

    # The author reads exactly the submitted review (not the later draft) and rates one.
    browser.get(f"{base}/r/{token[author]}")
    _click_and_wait(browser, browser.find_element(By.ID, "mine"))
    cards = browser.find_elements(By.CSS_SELECTOR, ".review")
    assert len(cards) == len(store.tasks_for_author(author))
    page = browser.page_source
    assert "softmax runs over dim=-2" in page and "softmax axis is wrong" in page
    assert "draft-only comment" not in page and "a later draft summary" not in page
    assert task.reviewer not in page and info.leaks(page) == []
    first_card = cards[0]
    first_card.find_element(By.CSS_SELECTOR, "input[name=helpful][value='2']").click()
    _click_and_wait(browser, first_card.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    assert store.rating(store.tasks_for_author(author)[0].id) == 2

    # Nobody can change a review once the round is closed.
    client.post(f"/r/{token[task.reviewer]}/task/{task.number}", data={"summary": "changed", "action": "submit"})
    assert store.submitted(task.id) == saved

    # `review score` turns the database into CSV.
    assert main(["review", "score", str(folder)]) == 0
    consensus = list(csv.DictReader((folder / "scores" / "consensus.csv").open()))
    rows = [r for r in consensus if r["author"] == author]
    assert {r["item"] for r in rows} == set(rubric) and all(int(r["n_reviews"]) == len(cards) for r in rows)
    reviewers = {r["reviewer"]: r for r in csv.DictReader((folder / "scores" / "reviewers.csv").open())}
    assert task.reviewer in reviewers
    assert (folder / "scores" / "flags.csv").exists()
