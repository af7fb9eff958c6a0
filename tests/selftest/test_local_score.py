"""The local score is a promise: for the same code, the visible part of staff grading (and of
Gradescope's results.json) is what a student's `python -m grader check` gave, hidden tests
only take points away, and every Gradescope test is worth the same whatever the submission.

Compared on code whose pass/fail does not depend on the examples drawn (the staff key draws
others): catalog entries, the -1e9 mask, a syntax error."""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from grader import ROOT, mistakes, rubric
from grader.grading import runner

KEY = "local-score-selftest-key"
#: Entries whose public tests fail while the hidden tests pass (the old rule paid them more in
#: staff grading than in the local check: sdpa_nan_rows 8.33 instead of 8.18), one whose hidden
#: test fails more often than its public ones (1.57 instead of 1.76 on mha), and a trivial one.
ENTRIES = ("sdpa_nan_rows", "split_heads_squeeze", "mha_bias_always", "trivial_zeros_mha")
REFERENCE = (ROOT / "solutions" / "attention.py").read_text(encoding="utf-8")
MASK_FILL = 'scores = scores.masked_fill(~mask, float("-inf"))'


def _visible(results):
    """``{exercise: (score, max_score)}`` of a results.json's visible tests."""
    return {t["tags"][1]: (t["score"], t["max_score"]) for t in results["tests"] if t["visibility"] == "visible"}


def _hidden(results):
    """``{exercise: (score, max_score)}`` of a results.json's hidden tests."""
    return {t["tags"][1]: (t["score"], t["max_score"]) for t in results["tests"] if t["visibility"] != "visible"}


def _check(folder, out, staff):
    """``python -m grader check attention`` on ``folder`` (``--staff`` with the key), its results.json."""
    env = {k: v for k, v in os.environ.items() if k != "GRADER_STAFF_KEY"}
    if staff:
        env["GRADER_STAFF_KEY"] = KEY
    cmd = [sys.executable, "-m", "grader", "check", "attention", "--quiet", "--submission", str(folder)]
    cmd += ["--json", str(out), *(["--staff"] if staff else [])]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """``{name: (local results.json, staff results.json)}`` from the CLI for the -1e9 mask and a
    syntax error."""
    root = tmp_path_factory.mktemp("promise")
    assert REFERENCE.count(MASK_FILL) == 1
    sources = {
        "mask_1e9": REFERENCE.replace(MASK_FILL, "scores = scores.masked_fill(~mask, -1e9)"),
        "syntax": REFERENCE + "\ndef broken(:\n",
    }
    jobs = []
    for name, source in sources.items():
        (root / name).mkdir()
        (root / name / "attention.py").write_text(source, encoding="utf-8")
        jobs += [(name, staff) for staff in (False, True)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = pool.map(lambda job: _check(root / job[0], root / f"{job[0]}-{job[1]}.json", job[1]), jobs)
        results = dict(zip(jobs, done))
    return {name: (results[name, False], results[name, True]) for name in sources}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """``{entry id: (local Report, staff Report)}`` for catalog entries, on their module."""
    root = tmp_path_factory.mktemp("entries")
    by_id = {m.id: m for m in mistakes.load("attention") + mistakes.trivial("attention")}
    plan = []
    for ident in ENTRIES:
        (root / ident).mkdir()
        (root / ident / "attention.py").write_text(by_id[ident].source(), encoding="utf-8")
        plan.append((ident, root / ident, ["attention"]))
    local = runner.grade_many(plan, shrink=False)
    staff = runner.grade_many(plan, shrink=False, staff=True, staff_key=KEY)
    return {ident: (local[ident], staff[ident]) for ident in ENTRIES}


def test_the_mask_and_a_syntax_error_score_alike_locally_and_in_staff_grading(checked):
    """`check` and `check --staff` give the -1e9 mask and a syntax error the same visible
    scores, and the same maxima: each exercise's points for the visible test, 0 for its hidden
    one; the staff total is never above the local one."""
    points = {ex.id: ex.points for ex in rubric.exercises_of("attention")}
    for name, (local, staff) in checked.items():
        assert _visible(staff) == _visible(local), name
        assert {ex: top for ex, (_, top) in _visible(staff).items()} == points, name
        assert _hidden(staff) and all(top == 0 and score <= 0 for score, top in _hidden(staff).values()), name
        assert staff["score"] <= local["score"] and staff["max_score"] == local["max_score"] == 30
        assert sum(t["score"] for t in staff["tests"]) == pytest.approx(staff["score"], abs=1e-9)
    assert checked["syntax"][1]["score"] == 0 and checked["mask_1e9"][0]["score"] == 30


def test_catalog_entries_score_alike_locally_and_in_staff_grading(graded):
    """For catalog entries, the visible part of staff grading (with a key) is the local score,
    exercise by exercise; the total is the smaller of the visible score and the score over all
    tests, so hidden tests that pass add nothing and hidden tests that fail take points."""
    took = added = 0
    for ident, (local, staff) in graded.items():
        tests = staff.to_gradescope()["tests"]
        for mine, theirs in zip(local.results, staff.results, strict=True):
            visible = next(t for t in tests if t["tags"][1] == mine.exercise.id and t["visibility"] == "visible")
            assert (visible["score"], visible["max_score"]) == (mine.score, mine.exercise.points), (ident, mine)
            assert theirs.public_score == mine.score and theirs.score <= mine.score
            hidden = [r for r in theirs.records if r.hidden]
            took += theirs.score < mine.score
            added += bool(hidden) and all(r.status == "passed" for r in hidden) and mine.score < mine.max_score
    assert took and added  # both sides of the rule were exercised
