"""The scoring rule and the Gradescope schema (grader/grading/scoring.py).

A set of tests scores ``points * (V + s * P) / (V_all + P_all)`` with ``s = V / V_all``; an
exercise scores ``min(public, overall)``: the rule over its public tests (what a local check
shows) and over every test that ran; hidden tests not run count neither way; a pending test
is lost; a hidden test shows its name and passed/failed only.
"""

import json

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from grader.grading.scoring import HIDDEN_VISIBILITY, Report, rule_score, score_exercise, value_share
from grader.grading.scoring import TestRecord as Record  # a name pytest does not try to collect
from grader.outcomes import (
    CRASHED,
    ERROR,
    FAILED,
    HIDDEN,
    MISSING,
    NOT_IMPLEMENTED,
    OUT_OF_MEMORY,
    PASSED,
    PROPERTY,
    TIMEOUT,
    VALUE,
)
from grader.rubric import Exercise

EX = Exercise("unit.example", 10, ("f",), "An example")
LOST = [FAILED, ERROR, TIMEOUT, CRASHED, OUT_OF_MEMORY, NOT_IMPLEMENTED, MISSING, "pending"]


def rec(weight, status, kind=VALUE, hidden=False, message="", prop="a property", name="t"):
    """A record of exercise ``EX``."""
    return Record(f"tests/x.py::{name}", EX.id, weight, status, message, prop, hidden, "", kind)


def rule(points, records):
    """The module docstring's rule, written out independently of the code under test."""
    graded = [r for r in records if r.status != HIDDEN]
    v_all = sum(r.weight for r in graded if r.kind == VALUE)
    p_all = sum(r.weight for r in graded if r.kind == PROPERTY)
    v = sum(r.weight for r in graded if r.kind == VALUE and r.status == PASSED)
    p = sum(r.weight for r in graded if r.kind == PROPERTY and r.status == PASSED)
    s = v / v_all if v_all else 0.0
    return points * (v + s * p) / (v_all + p_all) if v_all + p_all else 0.0


def exercise_rule(points, records):
    """An exercise's score: the smaller of its public tests' and all its tests' rounded rule."""
    return min(round(rule(points, [r for r in records if not r.hidden]), 2), round(rule(points, records), 2))


def as_local(records):
    """The same records as a student's check has them: hidden tests never run."""
    return [
        rec(r.weight, HIDDEN, r.kind, True, "", r.property, r.nodeid.split("::")[-1]) if r.hidden else r
        for r in records
    ]


records = st.lists(
    st.builds(
        rec,
        weight=st.integers(1, 5) | st.sampled_from([0.5, 2.5]),
        status=st.sampled_from([PASSED, PASSED, HIDDEN, *LOST]),
        kind=st.sampled_from([VALUE, PROPERTY]),
        hidden=st.booleans(),
        message=st.sampled_from(["", "m1", "m2"]),
        name=st.text("abc", min_size=1, max_size=3),
    ),
    max_size=8,
)
points = st.sampled_from([1, 2, 3, 4, 6, 7, 8, 10])


@settings(max_examples=50)
@given(points, records)
def test_the_score_follows_the_rule_and_stays_within_the_points(pts, recs):
    """The score is the smaller of ``points * (V + s * P) / (V_all + P_all)`` over the public
    tests and over all tests that ran, each rounded to cents, between 0 and the points."""
    ex = Exercise(EX.id, pts, EX.names, EX.title)
    result = score_exercise(ex, recs)
    assert result.score == pytest.approx(exercise_rule(pts, recs), abs=1e-9)
    assert result.public_score == pytest.approx(round(rule(pts, [r for r in recs if not r.hidden]), 2), abs=1e-9)
    assert rule_score(pts, recs) == pytest.approx(rule(pts, recs), abs=1e-9)
    assert 0 <= result.score <= pts


@settings(max_examples=50)
@given(points, records)
def test_the_public_part_is_the_local_checks_score(pts, recs):
    """Whatever the hidden tests did, the public part of a staff grading is the score a local
    check gives the same public results (hidden tests never run there)."""
    ex = Exercise(EX.id, pts, EX.names, EX.title)
    local = score_exercise(ex, as_local(recs))
    assert local.score == local.public_score and local.hidden_score == 0
    assert score_exercise(ex, recs).public_score == local.score


@settings(max_examples=50)
@given(points, records)
def test_hidden_tests_only_take_points_away(pts, recs):
    """A staff score is never above the local score of the same public results; the hidden
    part is 0 or less, and 0 when every hidden test that ran passed."""
    ex = Exercise(EX.id, pts, EX.names, EX.title)
    staff = score_exercise(ex, recs)
    assert staff.score <= score_exercise(ex, as_local(recs)).score
    assert staff.hidden_score <= 0
    assert staff.score == pytest.approx(staff.public_score + staff.hidden_score, abs=1e-9)
    if all(r.status in (PASSED, HIDDEN) for r in recs if r.hidden):
        assert staff.hidden_score == 0


@settings(max_examples=50)
@given(records, st.data())
def test_passing_one_more_test_never_lowers_the_score(recs, data):
    """Turning any lost test into a passed one raises the score or keeps it."""
    lost = [i for i, r in enumerate(recs) if r.status not in (PASSED, HIDDEN)]
    assume(lost)
    i = data.draw(st.sampled_from(lost))
    better = [*recs[:i], rec(recs[i].weight, PASSED, recs[i].kind, recs[i].hidden), *recs[i + 1 :]]
    assert score_exercise(EX, better).score >= score_exercise(EX, recs).score


@settings(max_examples=50)
@given(records)
def test_no_value_test_passed_scores_zero(recs):
    """A constant output passes no value test: whatever property tests it passes, it scores 0."""
    recs = [r if r.kind == PROPERTY or r.status != PASSED else rec(r.weight, FAILED, VALUE, r.hidden) for r in recs]
    assert score_exercise(EX, recs).score == 0
    assert value_share([r for r in recs if r.status != HIDDEN]) == 0


@settings(max_examples=50)
@given(records)
def test_passing_every_graded_test_scores_full_marks(recs):
    """With every test that ran passed (and one value test among them), the score is the points,
    whatever hidden tests did not run."""
    recs = [r if r.status == HIDDEN else rec(r.weight, PASSED, r.kind, r.hidden) for r in recs]
    recs.append(rec(1, PASSED))
    assert score_exercise(EX, recs).score == EX.points


@pytest.mark.parametrize(
    ("pts", "recs", "expected"),
    [
        # 10 * (2 + 2/3 * 1) / 4
        (10, [rec(2, PASSED), rec(1, FAILED), rec(1, PASSED, PROPERTY)], 6.67),
        # s = 0: the property tests earn nothing
        (10, [rec(1, FAILED), rec(3, PASSED, PROPERTY)], 0),
        # 4 * (1 + 1 * 0) / 2
        (4, [rec(1, PASSED), rec(1, FAILED, PROPERTY)], 2),
        # 4 * (1 + 1 * 1) / 2
        (4, [rec(1, PASSED), rec(1, PASSED, PROPERTY)], 4),
        # a hidden test not run counts neither way
        (3, [rec(1, PASSED), rec(5, HIDDEN, hidden=True)], 3),
        # a hidden test that failed takes points away: min(3, 3 * 1 / 3)
        (3, [rec(1, PASSED), rec(2, TIMEOUT, hidden=True)], 1),
        # a hidden test that passed adds none: min(10 * 1 / 2, 10 * 3 / 4) = 5, not 7.5
        (10, [rec(1, PASSED), rec(1, FAILED), rec(2, PASSED, hidden=True)], 5),
        # min(10 * (2 + 1/2 * 1) / 5, 10 * (3 + 3/5 * 1) / 6) = min(5, 6)
        (10, [rec(2, PASSED), rec(2, FAILED), rec(1, PASSED, PROPERTY), rec(1, PASSED, hidden=True)], 5),
        # min(10, 10 * (3 + 3/4 * 1) / 5) = 7.5
        (10, [rec(3, PASSED), rec(1, PASSED, PROPERTY), rec(1, FAILED, hidden=True)], 7.5),
        # min(7 * 2 / 3, 7 * 2 / 4) = min(4.67, 3.5)
        (7, [rec(2, PASSED), rec(1, FAILED), rec(1, ERROR, hidden=True)], 3.5),
        # a test still pending when the run ended is lost
        (10, [rec(1, PASSED), rec(1, "pending")], 5),
        # no value test at all: s = 0
        (2, [rec(1, PASSED, PROPERTY)], 0),
        # 7 * (1 + 1/3 * 2) / 5 = 2.333...
        (7, [rec(1, PASSED), rec(2, ERROR), rec(2, PASSED, PROPERTY)], 2.33),
        (6, [], 0),
    ],
)
def test_closed_form_examples(pts, recs, expected):
    """Worked examples of the rule, computed by hand."""
    assert score_exercise(Exercise(EX.id, pts, EX.names, EX.title), recs).score == expected


@pytest.mark.parametrize(
    ("pts", "recs", "parts"),
    [
        # public 10 * 2 / 3 = 6.67; overall 10 * 2 / 4 = 5: the hidden part takes 1.67
        (10, [rec(2, PASSED), rec(1, FAILED), rec(1, FAILED, hidden=True)], (6.67, -1.67)),
        # the hidden test passed: nothing taken, nothing added
        (10, [rec(2, PASSED), rec(1, FAILED), rec(1, PASSED, hidden=True)], (6.67, 0)),
        # no hidden test ran (a local check): the public part is all of it
        (4, [rec(1, PASSED), rec(1, FAILED, PROPERTY), rec(1, HIDDEN, hidden=True)], (2, 0)),
        # nothing ran at all (a missing module)
        (6, [], (0, 0)),
    ],
)
def test_public_and_hidden_parts(pts, recs, parts):
    """The public part and what the hidden tests took, worked by hand."""
    result = score_exercise(Exercise(EX.id, pts, EX.names, EX.title), recs)
    assert (result.public_score, result.hidden_score) == parts


def test_the_status_is_the_worst_outcome_as_the_student_sees_it():
    """An exercise shows its most telling outcome; a hidden test counts as failed (never as
    timeout or crashed), hidden tests not run do not count, and no graded test is 'missing'."""
    assert score_exercise(EX, [rec(1, PASSED), rec(1, NOT_IMPLEMENTED), rec(1, ERROR)]).status == ERROR
    assert score_exercise(EX, [rec(1, PASSED), rec(1, CRASHED, hidden=True)]).status == FAILED
    assert score_exercise(EX, [rec(1, PASSED), rec(1, HIDDEN, hidden=True)]).status == PASSED
    assert score_exercise(EX, []).status == MISSING
    assert score_exercise(EX, [rec(1, PASSED)], status=ERROR).status == ERROR


def test_redacted_keeps_only_the_name_and_pass_or_fail_of_a_hidden_test():
    """A hidden record loses its message and its exact outcome; a public one is unchanged."""
    secret = rec(2, TIMEOUT, PROPERTY, hidden=True, message="inputs: q=...", prop="masked keys get 0")
    assert secret.redacted() == rec(2, FAILED, PROPERTY, hidden=True, message="", prop="masked keys get 0")
    assert rec(1, PASSED, hidden=True, message="x").redacted().status == PASSED
    assert rec(1, HIDDEN, hidden=True).redacted().status == HIDDEN
    public = rec(1, ERROR, message="boom")
    assert public.redacted() is public


def test_feedback_lists_distinct_public_messages_after_the_note():
    """Feedback is the note, then each distinct message of a lost public test, in order; passed
    tests and hidden tests give none."""
    recs = [
        rec(1, FAILED, message="b"),
        rec(1, PASSED, message="passed"),
        rec(1, FAILED, message="secret", hidden=True),
        rec(1, ERROR, message="a"),
        rec(1, FAILED, message="b"),
        rec(1, FAILED),
    ]
    assert score_exercise(EX, recs, note="the note").feedback() == ["the note", "b", "a"]
    assert score_exercise(EX, recs, note="a").feedback() == ["b", "a"]


def test_report_totals_and_module_scores():
    """A report adds up its exercises, and per module in the order the results come."""
    a = score_exercise(Exercise("lstm.x", 4, ("f",), "X"), [rec(1, PASSED), rec(1, FAILED)])
    b = score_exercise(Exercise("attention.y", 3, ("g",), "Y"), [rec(1, PASSED)])
    c = score_exercise(Exercise("lstm.z", 2.5, ("h",), "Z"), [rec(1, FAILED)])
    report = Report("sub", [a, b, c])
    assert (report.score, report.max_score) == (5, 9.5)
    assert list(report.module_scores().items()) == [("lstm", (2, 6.5)), ("attention", (3, 3))]


# ---- the Gradescope results.json ----------------------------------------------------------


def gradescope(recs, notes=()):
    return Report("alice", [score_exercise(EX, recs)], list(notes)).to_gradescope()


def test_gradescope_public_and_hidden_tests():
    """An exercise with hidden tests that ran is two Gradescope tests: the public one with the
    feedback and the public records, scored as a local check scores them and worth all the
    points, and an ``after_published`` one with each hidden test's name and passed/failed,
    nothing else, worth 0 and scored with the points the hidden tests took; their scores add
    up to the exercise's."""
    recs = [
        rec(2, PASSED, name="a", prop="values match"),
        rec(1, FAILED, PROPERTY, message="dtype kept\n  yours: float64", name="b", prop="dtype kept"),
        rec(1, PASSED, hidden=True, message="", name="c", prop="hidden values"),
        rec(2, TIMEOUT, hidden=True, message="took too long on q=[...]", name="d", prop="hidden causality"),
    ]
    out = gradescope(recs, notes=["sandbox: no cgroup"])
    public, hidden = out["tests"]
    # min(10 * (2 + 1 * 0) / 3, 10 * (3 + 3/5 * 0) / 6) = min(6.67, 5)
    assert out["score"] == 5 and out["max_score"] == 10
    assert out["extra_data"] == {"submission": "alice", "modules": {"unit": (5, 10)}, "notes": ["sandbox: no cgroup"]}
    assert public["name"] == "unit.example: An example"
    assert (public["score"], public["max_score"], public["status"]) == (6.67, 10, "failed")
    assert gradescope(as_local(recs))["tests"][0]["score"] == public["score"]  # the local check's score
    assert public["output"] == "status: failed\n\ndtype kept\n  yours: float64"
    assert public["visibility"] == "visible" and public["tags"] == ["unit", "unit.example"]
    assert [t["nodeid"] for t in public["extra_data"]["tests"]] == ["tests/x.py::a", "tests/x.py::b"]
    assert hidden == {
        "name": "unit.example: An example (hidden tests)",
        "score": -1.67,
        "max_score": 0,
        "status": "failed",
        "output": "passed: hidden values\nfailed: hidden causality",
        "visibility": HIDDEN_VISIBILITY,
        "tags": ["unit", "unit.example", "hidden"],
        "extra_data": {
            "outcome": FAILED,
            "tests": [
                {
                    "nodeid": "tests/x.py::c",
                    "exercise": EX.id,
                    "weight": 1,
                    "status": PASSED,
                    "message": "",
                    "property": "hidden values",
                    "hidden": True,
                    "submission": "",
                    "kind": VALUE,
                },
                {
                    "nodeid": "tests/x.py::d",
                    "exercise": EX.id,
                    "weight": 2,
                    "status": FAILED,
                    "message": "",
                    "property": "hidden causality",
                    "hidden": True,
                    "submission": "",
                    "kind": VALUE,
                },
            ],
        },
    }
    assert HIDDEN_VISIBILITY == "after_published"


def test_gradescope_without_hidden_tests_run():
    """Hidden tests not run (a student's check) add no Gradescope test: the public one is worth
    all the points, and no notes key appears without notes."""
    out = gradescope([rec(1, PASSED), rec(3, HIDDEN, hidden=True)])
    assert [t["name"] for t in out["tests"]] == ["unit.example: An example"]
    assert (out["tests"][0]["score"], out["tests"][0]["max_score"], out["tests"][0]["status"]) == (10, 10, "passed")
    assert "notes" not in out["extra_data"]


def test_a_failed_hidden_test_does_not_show_in_the_public_status():
    """Public tests all passed: the public Gradescope test says passed, whatever the hidden ones did."""
    public, hidden = gradescope([rec(1, PASSED), rec(1, CRASHED, hidden=True, message="segfault")])["tests"]
    assert public["status"] == "passed" and public["extra_data"]["outcome"] == PASSED
    assert hidden["status"] == "failed" and hidden["output"] == "failed: a property"


@settings(max_examples=50)
@given(records)
def test_gradescope_never_shows_a_hidden_message(recs):
    """No message of a hidden test appears anywhere in results.json, and a hidden test's line
    is ``passed: <property>`` or ``failed: <property>``."""
    recs = [rec(r.weight, r.status, r.kind, True, "SECRET", "prop") if r.hidden else r for r in recs]
    out = gradescope(recs)
    assert "SECRET" not in json.dumps(out)
    for test in out["tests"]:
        if test["visibility"] == HIDDEN_VISIBILITY:
            assert set(test["output"].splitlines()) <= {"passed: prop", "failed: prop"}
            assert {t["status"] for t in test["extra_data"]["tests"]} <= {PASSED, FAILED}


@settings(max_examples=50)
@given(records)
def test_gradescope_maxima_are_fixed_and_the_scores_add_up(recs):
    """Whatever the records (graded code, a crash, nothing at all), the public Gradescope test
    is worth the exercise's points and the hidden one 0; the tests' scores add up to the
    score, and the hidden one is never positive."""
    out = gradescope(recs)
    assert [t["max_score"] for t in out["tests"] if t["visibility"] == "visible"] == [EX.points]
    assert all(t["max_score"] == 0 and t["score"] <= 0 for t in out["tests"] if t["visibility"] == HIDDEN_VISIBILITY)
    assert out["max_score"] == EX.points
    assert sum(t["score"] for t in out["tests"]) == pytest.approx(out["score"], abs=1e-9)


def test_gradescope_maxima_are_the_same_for_a_missing_module_a_crash_and_graded_code():
    """The maxima do not depend on how many tests a submission got to run."""
    graded = [rec(2, PASSED), rec(1, PASSED, PROPERTY), rec(1, FAILED, hidden=True)]
    crashed = [rec(2, CRASHED), rec(1, CRASHED, PROPERTY), rec(1, CRASHED), rec(1, CRASHED, hidden=True)]
    missing = Report("alice", [score_exercise(EX, [], "attention.py not found", MISSING)]).to_gradescope()
    maxima = [
        [(t["visibility"], t["max_score"]) for t in out["tests"]] for out in (gradescope(graded), gradescope(crashed))
    ]
    assert maxima == [[("visible", 10), (HIDDEN_VISIBILITY, 0)]] * 2
    assert [(t["visibility"], t["max_score"]) for t in missing["tests"]] == [("visible", 10)]


def test_gradescope_parts_add_up_to_the_score():
    """The Gradescope tests' scores add up to the exercise's score; public tests that all
    failed earn 0 and hidden tests that passed add nothing to them."""
    ex = Exercise(EX.id, 1, EX.names, EX.title)
    recs = [rec(1, FAILED), rec(4, FAILED)] + [rec(1, PASSED, hidden=True) for _ in range(3)]
    out = Report("alice", [score_exercise(ex, recs)]).to_gradescope()
    public, hidden = out["tests"]
    assert public["score"] == hidden["score"] == out["score"] == 0
