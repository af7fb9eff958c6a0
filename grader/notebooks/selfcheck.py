"""What a notebook's test cell runs: ``check("attention.sdpa")``.

The student's kernel only starts ``python -m grader check <exercise> <notebook> --json <file>``
in a new process and prints the report it prints: the exercise is graded from the *saved*
notebook, in the grader's sandbox, exactly as the command grades it from a terminal, and nothing
of the student's kernel (its variables, its patched IPython) takes part.  The score comes from
the command's JSON result (the same grading, not a second one): below the exercise's full points,
or when it could not be graded, :func:`check` raises :class:`NotFullMarks` after the report, so
that the test cell fails (``nbgrader validate`` says so) and passes only at full marks.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from grader import ROOT, rubric

#: How long the self-check of one exercise may take before it gives up (the grader's own limits are shorter).
TIMEOUT_S = 600


class _OneLine:
    """Shown by IPython (and in a notebook's error output) as ``<class name>: <message>`` only: the
    frames of the self-check would tell a student nothing."""

    def _render_traceback_(self) -> list[str]:
        """The lines IPython shows instead of a traceback (its hook for custom exceptions)."""
        return [f"{type(self).__name__}: {self}"]


class NotFullMarks(_OneLine, AssertionError):
    """The exercise earned less than its full points, or could not be graded.

    Its message is one line, such as ``attention.sdpa: 3 / 10 points (failed)`` or
    ``attention.sdpa: not graded (the check took more than 600 s and was stopped)``; ``score``
    and ``max_score`` are ``None`` when it could not be graded.
    """

    def __init__(self, message: str, exercise: str, score: float | None = None, max_score: float | None = None) -> None:
        super().__init__(message)
        self.exercise, self.score, self.max_score = exercise, score, max_score


class NoNotebook(_OneLine, FileNotFoundError):
    """There is no saved notebook to grade (its message says how to give one)."""


def notebook_for(exercise: str, notebook: str | os.PathLike[str] | None = None) -> Path:
    """The notebook to grade for ``exercise``: ``notebook`` when given, else ``<module>.ipynb`` in
    the working folder (a Jupyter kernel starts in its notebook's folder).

    Raises ``ValueError`` for an unknown exercise and :class:`NoNotebook` (a ``FileNotFoundError``)
    when there is no such notebook.  Its advice never asks to edit the test cell, a locked cell
    nbgrader would count as edited.
    """
    if exercise not in rubric.BY_ID:
        raise ValueError(f"unknown exercise {exercise!r} (exercises: {', '.join(rubric.BY_ID)})")
    module = rubric.BY_ID[exercise].module
    path = Path(notebook) if notebook is not None else Path.cwd() / f"{module}.ipynb"
    if not path.is_file():
        raise NoNotebook(missing_notebook_advice(exercise, path))
    return path


def missing_notebook_advice(exercise: str, path: Path) -> str:
    """Why there is nothing to grade at ``path`` and how to give the check a notebook, without
    touching the test cell: save under the course's name, check from a terminal, or from a new cell."""
    module = rubric.BY_ID[exercise].module
    return (
        f"{exercise}: no notebook {path}: save this notebook as {module}.ipynb in {path.parent} "
        f"(the folder this kernel runs in) and run this cell again; "
        f"or check it from a terminal: python -m grader check {exercise} path/to/{module}.ipynb; "
        f"or in a new cell of your own (leave this test cell as it is): "
        f'from grader.notebooks.selfcheck import check; check("{exercise}", "path/to/{module}.ipynb")'
    )


def command(exercise: str, notebook: Path, json_path: Path | None = None) -> list[str]:
    """The grader command the self-check runs (writing its JSON result to ``json_path`` when given)."""
    cmd = [sys.executable, "-m", "grader", "check", exercise, str(notebook.resolve())]
    return cmd + ["--json", str(json_path)] if json_path is not None else cmd


def check(exercise: str, notebook: str | os.PathLike[str] | None = None) -> None:
    """Grade ``exercise`` of the saved notebook with ``python -m grader check`` and print its report.

    Returns at full marks; raises :class:`NotFullMarks` (after the report) below them or when the
    exercise could not be graded.  Save the notebook first: the grader reads the file, not the
    kernel's memory.
    """
    path = notebook_for(exercise, notebook)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    print(f"Grading {exercise} from {path.name} as saved (save the notebook first to grade your latest edits).\n")
    sys.stdout.flush()
    with tempfile.TemporaryDirectory(prefix="grader-selfcheck-") as tmp:
        json_path = Path(tmp) / "results.json"
        try:
            done = subprocess.run(
                command(exercise, path, json_path),
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            raise NotFullMarks(
                f"{exercise}: not graded (the check took more than {TIMEOUT_S} s and was stopped)", exercise
            ) from None
        print(_report_text(done.stdout, json_path))
        if done.stderr.strip():
            print(done.stderr.rstrip())
        sys.stdout.flush()
        result = _read_json(json_path)
    verdict(exercise, result, done.returncode)


def _report_text(stdout: str, json_path: Path) -> str:
    """The command's report without its last line, ``wrote <json_path>`` (a temporary file)."""
    text = stdout.rstrip()
    wrote = f"wrote {json_path}"
    return text[: -len(wrote)].rstrip() if text.endswith(wrote) else text


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) else None


def verdict(exercise: str, result: dict[str, Any] | None, returncode: int = 0) -> None:
    """Return when ``result`` (the command's ``--json`` output, ``None`` when it wrote none) gives
    ``exercise`` its full points; else raise :class:`NotFullMarks`."""
    ungraded = NotFullMarks(
        f"{exercise}: not graded (python -m grader check exited with status {returncode} "
        "and gave no score; see its output above)",
        exercise,
    )
    if result is None:
        raise ungraded
    try:
        score, max_score = float(result["score"]), float(result["max_score"])
        tests = [t for t in result["tests"] if exercise in t.get("tags", []) and "hidden" not in t.get("tags", [])]
    except (KeyError, TypeError, ValueError, AttributeError):  # not the command's schema
        raise ungraded from None
    if not tests or max_score <= 0:
        raise NotFullMarks(f"{exercise}: not graded (the grader's result holds no such exercise)", exercise)
    if score >= max_score - 1e-9:
        return
    status = str(tests[0].get("extra_data", {}).get("outcome") or tests[0].get("status") or "failed")
    raise NotFullMarks(f"{exercise}: {score:g} / {max_score:g} points ({status})", exercise, score, max_score)
