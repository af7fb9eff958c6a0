"""No credit without the values: whole submissions that return zeros, ones, seeded noise or
an echoed input (right shapes, dtypes and devices, never raising) score 0 everywhere."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from grader import mistakes, rubric
from grader.grading import runner
from grader.grading.scoring import PROPERTY, score_exercise
from grader.grading.scoring import TestRecord as Record


@pytest.fixture(scope="module")
def trivial_reports(tmp_path_factory):
    """One submission per trivial kind, every module trivial, graded as a student's check
    and as staff grading with a secret key (hidden tests included)."""
    root = tmp_path_factory.mktemp("trivial")
    entries = []
    for kind in mistakes.TRIVIAL_KINDS:
        folder = root / kind
        folder.mkdir()
        for module in rubric.MODULES:
            (folder / f"{module}.py").write_text(mistakes.trivial_submission(module, kind), encoding="utf-8")
        entries.append((kind, folder, ()))
    with ThreadPoolExecutor(max_workers=2) as pool:  # two grading runs side by side: one per core
        local = pool.submit(runner.grade_many, entries)
        staff = pool.submit(runner.grade_many, entries, staff=True, staff_key="trivial-selftest-key")
        return {"local": local.result(), "staff": staff.result()}


@pytest.mark.parametrize("grading", ["local", "staff"])
@pytest.mark.parametrize("kind", list(mistakes.TRIVIAL_KINDS))
def test_trivial_submission_scores_zero_on_every_exercise(kind, grading, trivial_reports):
    report = trivial_reports[grading][kind]
    paid = {r.exercise.id: r.score for r in report.results if r.score > 0}
    assert not paid, f"{kind} earns points in {grading} grading: {paid}"
    assert len(report.results) == len(rubric.EXERCISES)
    assert all(rec.status != "pending" for r in report.results for rec in r.records)
    if grading == "staff":
        assert any(rec.hidden for r in report.results for rec in r.records), "the hidden tests did not run"


def _rec(kind, status, weight=1):
    return Record("t", "attention.sdpa", weight, status, kind=kind)


def test_property_tests_pay_only_with_the_values():
    ex = rubric.BY_ID["attention.sdpa"]
    # every property passes, no value: nothing
    assert score_exercise(ex, [_rec("value", "failed", 2), _rec(PROPERTY, "passed", 3)]).score == 0
    # all values pass: everything
    assert score_exercise(ex, [_rec("value", "passed", 2), _rec(PROPERTY, "passed", 3)]).score == ex.points
    # half the value weight: properties pay half their weight
    records = [_rec("value", "passed"), _rec("value", "failed"), _rec(PROPERTY, "passed", 2)]
    assert score_exercise(ex, records).score == pytest.approx(ex.points * (1 + 0.5 * 2) / 4, abs=0.01)


def test_hidden_records_are_redacted_in_results_json():
    ex = rubric.BY_ID["attention.sdpa"]
    hidden = Record("h", ex.id, 1, "error", message="secret input q=[1, 2]", property="hidden prop", hidden=True)
    public = Record("p", ex.id, 1, "failed", message="public message")
    from grader.grading.scoring import Report

    data = Report("s", [score_exercise(ex, [public, hidden])]).to_gradescope()
    text = str(data)
    assert "secret" not in text and "public message" in text
    visibility = {t["name"]: t["visibility"] for t in data["tests"]}
    assert visibility == {f"{ex.id}: {ex.title}": "visible", f"{ex.id}: {ex.title} (hidden tests)": "after_published"}
    hidden_entry = next(t for t in data["tests"] if t["visibility"] == "after_published")
    assert hidden_entry["extra_data"]["tests"][0]["status"] == "failed"
    assert sum(t["score"] for t in data["tests"]) == pytest.approx(data["score"])
