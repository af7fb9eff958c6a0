"""The self-check a notebook's test cell runs (grader/notebooks/selfcheck.py): it fails the cell
below full marks, and its advice never asks to edit the locked test cell."""

import json
import subprocess
import sys

import pytest

from grader import rubric
from grader.notebooks import selfcheck

EXERCISE = "elbo.kl"
POINTS = rubric.BY_ID[EXERCISE].points


def _result(score: float, outcome: str) -> dict:
    """What ``python -m grader check EXERCISE NB --json PATH`` writes for one exercise."""
    test = {
        "name": f"{EXERCISE}: KL",
        "score": score,
        "max_score": POINTS,
        "status": "passed" if outcome == "passed" else "failed",
        "output": f"status: {outcome}",
        "visibility": "visible",
        "tags": ["elbo", EXERCISE],
        "extra_data": {"outcome": outcome, "tests": []},
    }
    return {"score": score, "max_score": POINTS, "tests": [test], "extra_data": {"submission": "elbo.ipynb"}}


@pytest.fixture
def notebook(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "elbo.ipynb"
    path.write_text("{}", encoding="utf-8")
    return path


def _fake_run(monkeypatch, result: dict | None, returncode: int = 0) -> list:
    """Replace ``subprocess.run`` by a grader command that prints a report and writes ``result``."""
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append((cmd, kwargs))
        out = "Submission: elbo.ipynb\n\n  the report\n"
        if result is not None:
            path = cmd[cmd.index("--json") + 1]
            with open(path, "w", encoding="utf-8") as fh:
                json.dump(result, fh)
            out += f"\nwrote {path}\n"
        return subprocess.CompletedProcess(cmd, returncode, out, "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    return calls


def test_full_marks_return_and_print_the_report(notebook, monkeypatch, capsys):
    calls = _fake_run(monkeypatch, _result(POINTS, "passed"))
    selfcheck.check(EXERCISE)  # returns: no exception
    (cmd, kwargs), *_ = calls
    assert cmd[:6] == [sys.executable, "-m", "grader", "check", EXERCISE, str(notebook.resolve())]
    assert cmd[6] == "--json" and len(cmd) == 8 and kwargs["timeout"] == selfcheck.TIMEOUT_S
    out = capsys.readouterr().out
    assert "the report" in out and "wrote" not in out  # the temporary JSON file is not the student's business


@pytest.mark.parametrize(("score", "outcome"), [(POINTS / 2, "failed"), (0, "not implemented"), (0, "missing")])
def test_below_full_marks_raises_one_short_line_after_the_report(notebook, monkeypatch, capsys, score, outcome):
    _fake_run(monkeypatch, _result(score, outcome))
    with pytest.raises(selfcheck.NotFullMarks) as info:
        selfcheck.check(EXERCISE)
    assert str(info.value) == f"{EXERCISE}: {score:g} / {POINTS:g} points ({outcome})"
    assert isinstance(info.value, AssertionError) and (info.value.score, info.value.max_score) == (score, POINTS)
    assert info.value._render_traceback_() == [f"NotFullMarks: {info.value}"]  # what IPython shows: no frames
    assert "the report" in capsys.readouterr().out


def test_no_result_or_a_timeout_is_not_graded_and_raises(notebook, monkeypatch):
    _fake_run(monkeypatch, None, returncode=2)
    with pytest.raises(selfcheck.NotFullMarks, match=r"^elbo\.kl: not graded \(.*status 2"):
        selfcheck.check(EXERCISE)

    def too_slow(cmd, **kwargs):
        raise subprocess.TimeoutExpired(cmd, kwargs["timeout"])

    monkeypatch.setattr(subprocess, "run", too_slow)
    with pytest.raises(selfcheck.NotFullMarks, match="not graded .*stopped") as info:
        selfcheck.check(EXERCISE)
    assert info.value.score is None and "\n" not in str(info.value)


def test_verdict_reads_only_the_exercise_asked_for():
    selfcheck.verdict(EXERCISE, _result(POINTS, "passed"))
    with pytest.raises(selfcheck.NotFullMarks, match="holds no such exercise"):
        selfcheck.verdict("elbo.elbo", _result(POINTS, "passed"))
    with pytest.raises(selfcheck.NotFullMarks, match="gave no score"):
        selfcheck.verdict(EXERCISE, {"tests": "not the schema"})


def test_the_missing_notebook_advice_never_asks_to_edit_the_test_cell(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        selfcheck.check(EXERCISE)
    message = str(info.value)
    assert isinstance(info.value, selfcheck.NoNotebook)
    assert "save this notebook as elbo.ipynb" in message and str(tmp_path) in message
    assert f"python -m grader check {EXERCISE} path/to/elbo.ipynb" in message  # from a terminal
    # the only call with a path is for a new cell, never the test cell (a locked cell nbgrader checksums)
    new_cell = message.index("in a new cell")
    assert message.index(f'check("{EXERCISE}", "path/to/elbo.ipynb")') > new_cell
    assert "leave this test cell as it is" in message
    assert "or call check(" not in message
