"""``grader batch`` grades a module handed in as a notebook like the same code handed in as a ``.py``
file; a notebook that is no notebook scores 0 with a note that says why; a resumed batch hashes
what it stages from the notebooks (a changed notebook is graded again)."""

import ast
import csv
import json
import os
import subprocess
import sys
import zipfile

import pytest

from grader import ROOT, mistakes
from grader.grading import batch, staging
from grader.notebooks import cells

pytestmark = pytest.mark.slow

MODULE = "param_count"  # the fastest module to grade
MISTAKE = mistakes.load(MODULE)[0].source()  # a catalogued mistake: a score below full, not 0


def _notebook(source: str) -> dict:
    """The source notebook of MODULE with each def of ``source`` in its solution cell, as a student fills it."""
    nb = json.loads(cells.notebook_path(MODULE).read_text(encoding="utf-8"))
    lines = source.splitlines()
    defs = {
        node.name: "\n".join(lines[node.lineno - 1 : node.end_lineno])
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef | ast.ClassDef)
    }
    wanted = cells.solution_cell_ids(MODULE)
    for cell in nb["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in wanted:
            cell["source"] = defs[wanted[grade_id][1]]
    return nb


def _zip(path, nb: dict) -> None:
    with zipfile.ZipFile(path, "w") as zf:  # a zipped folder, as students send it
        zf.writestr(f"hw/{MODULE}.ipynb", json.dumps(nb))


def _batch(subs, out) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "grader", "batch", str(subs), "--out", str(out), "--workers", "2"],
        cwd=ROOT,
        env=dict(os.environ, GRADER_STAFF_KEY="a staff key for the notebook batch"),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_batch_grades_notebooks_like_py_files_and_names_a_broken_notebook(tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "out"
    (subs / "py").mkdir(parents=True)
    (subs / "py" / f"{MODULE}.py").write_text(MISTAKE)
    _zip(subs / "nb.zip", _notebook(MISTAKE))
    (subs / "bad").mkdir()
    (subs / "bad" / f"{MODULE}.ipynb").write_text('{"cells": [ this is not JSON')
    _batch(subs, out)

    results = {i: json.loads(batch.result_path(out, i).read_text()) for i in ("py", "nb", "bad")}
    py, nb, bad = results["py"], results["nb"], results["bad"]
    assert 0 < py["score"] < 20, py["extra_data"]
    assert nb["score"] == py["score"]
    assert [(t["name"], t["score"]) for t in nb["tests"]] == [(t["name"], t["score"]) for t in py["tests"]]
    assert nb["extra_data"]["status"] == py["extra_data"]["status"]  # incomplete: the other modules are missing
    assert bad["score"] == 0 and bad["extra_data"]["status"].startswith("rejected")
    assert any(f"{MODULE}.ipynb" in n and "invalid JSON" in n for n in bad["extra_data"]["notes"]), bad
    with open(out / "grades.csv") as fh:
        rows = {row["id"]: row for row in csv.DictReader(fh)}
    assert rows["nb"][MODULE] == rows["py"][MODULE] and rows["bad"]["total"] == "0"

    # resumed: nothing changed, nothing graded; the notebook stager's hash is what was recorded
    assert "graded 0 submission(s), 3 already done" in _batch(subs, out).stdout
    assert batch.is_done(out, "nb", subs / "nb.zip", cells.stage_modules)
    assert not batch.is_done(out, "nb", subs / "nb.zip", staging.stage)  # .py files only: another hash
    changed = _notebook(MISTAKE)
    changed["cells"].append({"cell_type": "code", "metadata": {}, "source": "EXTRA = 1", "outputs": []})
    _zip(subs / "nb.zip", changed)
    assert not batch.is_done(out, "nb", subs / "nb.zip", cells.stage_modules)  # a changed notebook is regraded


def test_a_stager_must_be_importable_by_name():
    assert batch.stager_name(cells.stage_modules) == "grader.notebooks.cells:stage_modules"
    assert batch.load_stager("grader.grading.staging:stage") is staging.stage
    with pytest.raises(ValueError, match="module-level"):
        batch.stager_name(lambda src, dst: [])
