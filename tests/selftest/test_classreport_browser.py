"""The class report (``python -m grader report``) opened in a real headless Chromium: the plots
are drawn, the tables are there, nothing is loaded from anywhere, and markup in a submission's
id or notes is shown as text and never runs.

The batch is written with the grader's own ``Report.to_gradescope`` (no grading run); the
``browser`` fixture is in ``tests/selftest/conftest.py`` and skips, saying why, where there is
no Chromium.
"""

import json

from grader import rubric
from grader.cli import main
from grader.grading import scoring

HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"
SCRIPT = "<script>document.title='pwned'; window.pwned = true</script>"
MISTAKE = "a softmax over the query axis (dim=-2) instead of the keys (dim=-1)"


def _write(out, ident, wrong=(), notes=(), seconds=None):
    """``out/<ident>/results.json``: every exercise passes but those of ``wrong``, whose second
    public test fails with a hint naming :data:`MISTAKE`."""
    results = []
    for ex in rubric.EXERCISES:
        bad = ex.id in wrong
        message = f"weights do not sum to 1\n  hint: your code matches {MISTAKE}" if bad else ""
        records = [
            scoring.TestRecord(f"t::{ex.id}::a", ex.id, 1.0, "passed", "", "output shape"),
            scoring.TestRecord(f"t::{ex.id}::b", ex.id, 1.0, "failed" if bad else "passed", message, "sums to 1"),
        ]
        results.append(scoring.score_exercise(ex, records))
    result = scoring.Report(ident, results).to_gradescope()
    result["extra_data"].update({"submission": ident, "status": "graded", "notes": list(notes)})
    if seconds is not None:
        result["execution_time"] = seconds
    (out / ident).mkdir(parents=True)
    (out / ident / "results.json").write_text(json.dumps(result), encoding="utf-8")


def test_the_report_in_a_browser(tmp_path, browser):
    from selenium.webdriver.common.by import By

    out = tmp_path / "out"
    _write(out, "ana", seconds=10.0)
    _write(out, "ben", wrong=("attention.sdpa",), seconds=20.0)
    _write(out, HOSTILE, notes=[SCRIPT])
    (out / "broken").mkdir()
    (out / "broken" / "results.json").write_text("{", encoding="utf-8")
    assert main(["report", str(out)]) == 0

    browser.get((out / "report.html").as_uri())
    assert browser.title == "Class report: out"

    # the plots: total, modules, the exercises of each module, grading time; each drawn with bars
    plots = browser.find_elements(By.CSS_SELECTOR, "figure > svg")
    assert len(plots) == 3 + len(rubric.MODULES)
    for svg in plots:
        assert svg.size["width"] > 300 and svg.size["height"] > 100
        assert svg.find_elements(By.CSS_SELECTOR, "path")

    # the tables
    rows = browser.find_elements(By.CSS_SELECTOR, "#submissions-table tr")
    assert [r.find_elements(By.TAG_NAME, "td")[0].text for r in rows[1:]] == [HOSTILE, "ana", "ben"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#scores-table tr")) == 2 + len(rubric.MODULES)
    mistakes = browser.find_element(By.ID, "mistakes-attention.sdpa").find_element(By.XPATH, "following-sibling::table")
    assert f"{MISTAKE} 1" in mistakes.text
    problems = browser.find_element(By.ID, "problems-table").text
    assert "unreadable broken" in problems and f"note {HOSTILE} {SCRIPT}" in problems
    assert [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#slowest-table td")] == ["ben", "20", "ana", "10"]

    # markup from a submission is text: no element made from it, no script ran, nothing fetched
    assert browser.find_elements(By.TAG_NAME, "img") == [] and browser.find_elements(By.TAG_NAME, "script") == []
    assert browser.execute_script("return window.pwned === undefined && document.title !== 'pwned'")
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
