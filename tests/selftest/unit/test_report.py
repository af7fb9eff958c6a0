"""The terminal report (grader/grading/report.py), pinned as golden text."""

import re

import pytest

from grader.grading.report import render
from grader.grading.scoring import Report, score_exercise
from grader.grading.scoring import TestRecord as Record  # a name pytest does not try to collect
from grader.outcomes import ERROR, FAILED, HIDDEN, PASSED, PROPERTY, TIMEOUT, VALUE
from grader.rubric import BY_ID


def rec(exercise, weight, status, kind=VALUE, hidden=False, message="", prop="a property"):
    return Record(f"tests/x.py::{prop}", exercise, weight, status, message, prop, hidden, "", kind)


def sample_report():
    """Three exercises: one with a failed property and hidden tests not run, one passed with a
    hidden test run by staff, one lost with more messages than the report shows."""
    sdpa = score_exercise(
        BY_ID["attention.sdpa"],
        [
            rec("attention.sdpa", 2, PASSED),
            rec(
                "attention.sdpa", 1, FAILED, PROPERTY, message="masked keys get weight 0\n  yours: 0.25\n  expected: 0"
            ),
            rec("attention.sdpa", 1, HIDDEN, hidden=True),
            rec("attention.sdpa", 1, HIDDEN, hidden=True),
        ],
    )
    causal = score_exercise(
        BY_ID["attention.causal_mask"],
        [
            rec("attention.causal_mask", 1, PASSED),
            rec("attention.causal_mask", 1, PASSED, hidden=True, prop="is causal"),
        ],
    )
    gates = score_exercise(
        BY_ID["lstm.gates"],
        [
            rec("lstm.gates", 1, ERROR, message="lstm.gates: lstm_gates raised ValueError: bad"),
            rec("lstm.gates", 1, FAILED, message="gates in (0, 1)"),
            rec("lstm.gates", 1, FAILED, message="shape"),
            rec("lstm.gates", 1, FAILED, message="dtype kept"),
            rec("lstm.gates", 1, TIMEOUT, hidden=True, message="SECRET input", prop="large inputs"),
        ],
        note="the test did not finish",
    )
    return Report("alice", [sdpa, causal, gates], ["sandbox: no memory cgroup"])


def test_report_golden_text():
    """Table (points as ``6.67 / 10``, hidden tests not run counted), module totals, the hidden
    tests staff ran (passed/failed only), notes, then per lost exercise the note and at most
    three messages, continuation lines indented."""
    assert render(sample_report()).splitlines() == [
        "Submission: alice",
        "",
        "  exercise                      points  status",
        "  ---------------------  -------------  --------------------",
        "  attention.sdpa             6.67 / 10  failed (2 hidden tests, graded later)",
        "  attention.causal_mask          3 / 3  passed",
        "  lstm.gates                     0 / 6  error",
        "  ---------------------  -------------",
        "  attention total            9.67 / 13",
        "  lstm total                     0 / 6",
        "  TOTAL                      9.67 / 19",
        "",
        "Hidden tests",
        "  attention.causal_mask  passed  is causal",
        "  lstm.gates             failed  large inputs",
        "",
        "Notes",
        "  - sandbox: no memory cgroup",
        "",
        "Feedback",
        "",
        "[attention.sdpa] Scaled dot-product attention: failed",
        "  - masked keys get weight 0",
        "      yours: 0.25",
        "      expected: 0",
        "",
        "[lstm.gates] LSTM gates: error",
        "  - the test did not finish",
        "  - lstm.gates: lstm_gates raised ValueError: bad",
        "  - gates in (0, 1)",
        "  ... and 2 more not shown (fixing the ones above often fixes them)",
    ]


def test_report_shows_more_messages_on_request_and_never_a_hidden_one():
    """``max_messages`` raises the number of messages shown; a hidden test's message never appears."""
    text = render(sample_report(), max_messages=5)
    assert text.endswith("  - gates in (0, 1)\n  - shape\n  - dtype kept")
    assert "SECRET" not in text


def test_report_of_one_passed_exercise_with_one_hidden_test():
    """A passed exercise has no feedback section; one hidden test is singular."""
    result = score_exercise(
        BY_ID["attention.heads"], [rec("attention.heads", 3, PASSED), rec("attention.heads", 1, HIDDEN, hidden=True)]
    )
    assert render(Report("solutions", [result])).splitlines() == [
        "Submission: solutions",
        "",
        "  exercise                points  status",
        "  ---------------  -------------  --------------------",
        "  attention.heads          4 / 4  passed (1 hidden test, graded later)",
        "  ---------------  -------------",
        "  attention total          4 / 4",
        "  TOTAL                    4 / 4",
    ]


def test_report_of_hidden_tests_that_took_points():
    """Staff grading: the table shows the exercise's score, and under the hidden tests a line
    says how many points they took from the public tests' score (min(10 * 2 / 3, 10 * 2 / 4))."""
    result = score_exercise(
        BY_ID["attention.sdpa"],
        [
            rec("attention.sdpa", 2, PASSED),
            rec("attention.sdpa", 1, FAILED, message="values differ"),
            rec("attention.sdpa", 1, FAILED, hidden=True, message="SECRET", prop="many leading dims"),
        ],
    )
    assert render(Report("bob", [result])).splitlines()[4:14] == [
        "  attention.sdpa          5 / 10  failed",
        "  ---------------  -------------",
        "  attention total         5 / 10",
        "  TOTAL                   5 / 10",
        "",
        "Hidden tests",
        "  attention.sdpa   failed  many leading dims",
        "  attention.sdpa   -1.67 points: 6.67 from the public tests, 5 with the hidden ones",
        "",
        "Feedback",
    ]


def points_column_ends(text):
    """``{line: where its points column ends}`` for the header, rows and totals of the table."""
    table = text.split("\n\n")[1].splitlines()
    return {line: re.search(r"points|[\d.]+ / [\d.]+", line).end() for line in table if "--" not in line}


def test_the_columns_of_the_sample_report_line_up():
    """The points column ends at the same place on every line of the table."""
    ends = points_column_ends(render(sample_report()))
    assert len(ends) == 7 and len(set(ends.values())) == 1, ends


@pytest.mark.parametrize("exercise", ["elbo.kl", "lstm.gru"])
def test_report_columns_line_up_for_short_exercise_ids(exercise):
    """The points column ends at the same place on the header, every row and every total."""
    result = score_exercise(BY_ID[exercise], [rec(exercise, 1, PASSED)])
    ends = points_column_ends(render(Report("solutions", [result])))
    assert len(set(ends.values())) == 1, ends


def test_report_without_exercises():
    """An empty selection still prints the table frame and a zero total."""
    assert render(Report("empty", [])).splitlines() == [
        "Submission: empty",
        "",
        "  exercise           points  status",
        "  ----------  -------------  --------------------",
        "  ----------  -------------",
        "  TOTAL               0 / 0",
    ]
