"""``nbgrader validate`` with nbgrader's own CLI: it fails on the handed-out stubs and passes on
the source notebook (which holds the reference answers).

Each test cell runs ``check("<exercise>")`` in a real Jupyter kernel; below full marks it raises
:class:`grader.notebooks.selfcheck.NotFullMarks` after its report, which nbgrader counts as a
failed test cell.  One module (``param_count``, the fastest to grade) keeps the test short.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from grader import ROOT, rubric

pytestmark = pytest.mark.slow

MODULE = "param_count"
ASSIGNMENT = "dlbasic"


def _env() -> dict[str, str]:
    """The grader importable by nbgrader and by the kernel it starts; no staff key."""
    env = {k: v for k, v in os.environ.items() if k != "GRADER_STAFF_KEY"}
    return {**env, "PYTHONPATH": str(ROOT)}


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A course folder made as staff make one: ``python -m grader notebooks --course``, then
    ``nbgrader generate_assignment``."""
    root = tmp_path_factory.mktemp("course")
    made = _run(ROOT, "grader", "notebooks", "--course", str(root))
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    released = _run(root, "nbgrader", "generate_assignment", ASSIGNMENT)
    assert released.returncode == 0, released.stdout[-3000:] + released.stderr[-3000:]
    return root


def _validate(course: Path, notebook: Path) -> str:
    done = _run(course, "nbgrader", "validate", str(notebook))
    return done.stdout + done.stderr


def test_validate_fails_on_the_stubs_and_names_each_exercise_below_full_marks(course):
    out = _validate(course, course / "release" / ASSIGNMENT / f"{MODULE}.ipynb")
    exercises = rubric.exercises_of(MODULE)
    assert f"VALIDATION FAILED ON {len(exercises)} CELL(S)" in out, out[-3000:]
    assert "passes all the tests" not in out
    for ex in exercises:  # the error nbgrader shows is the one short line, no traceback
        assert f"NotFullMarks: {ex.id}: 0 / {ex.points:g} points (not implemented)" in out, out[-3000:]
    assert "Traceback" not in out and "selfcheck.py" not in out


def test_validate_passes_on_the_reference_answers(course):
    out = _validate(course, course / "source" / ASSIGNMENT / f"{MODULE}.ipynb")
    assert "Success! Your notebook passes all the tests." in out, out[-3000:]
    assert "VALIDATION FAILED" not in out and "NotFullMarks" not in out
