"""What a notebook's test cell runs: ``check("attention.sdpa")``.

The student's kernel only starts ``python -m grader check <exercise> <notebook>`` in a new process
and prints what it prints: the exercise is graded from the *saved* notebook, in the grader's
sandbox, exactly as the command grades it from a terminal, and nothing of the student's kernel
(its variables, its patched IPython) takes part.
"""

import os
import subprocess
import sys
from pathlib import Path

from grader import ROOT, rubric

#: How long the self-check of one exercise may take before it gives up (the grader's own limits are shorter).
TIMEOUT_S = 600


def notebook_for(exercise: str, notebook: str | os.PathLike[str] | None = None) -> Path:
    """The notebook to grade for ``exercise``: ``notebook`` when given, else ``<module>.ipynb`` in
    the working folder (a Jupyter kernel starts in its notebook's folder).

    Raises ``ValueError`` for an unknown exercise and ``FileNotFoundError`` when there is no such notebook.
    """
    if exercise not in rubric.BY_ID:
        raise ValueError(f"unknown exercise {exercise!r} (exercises: {', '.join(rubric.BY_ID)})")
    module = rubric.BY_ID[exercise].module
    path = Path(notebook) if notebook is not None else Path.cwd() / f"{module}.ipynb"
    if not path.is_file():
        raise FileNotFoundError(
            f"{exercise}: no notebook {path}: save this notebook as {module}.ipynb, or call "
            f'check("{exercise}", "path/to/{module}.ipynb")'
        )
    return path


def command(exercise: str, notebook: Path) -> list[str]:
    """The grader command the self-check runs."""
    return [sys.executable, "-m", "grader", "check", exercise, str(notebook.resolve())]


def check(exercise: str, notebook: str | os.PathLike[str] | None = None) -> None:
    """Grade ``exercise`` of the saved notebook with ``python -m grader check`` and print its report.

    Save the notebook first: the grader reads the file, not the kernel's memory.
    """
    path = notebook_for(exercise, notebook)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    print(f"Grading {exercise} from {path.name} as saved (save the notebook first to grade your latest edits).\n")
    sys.stdout.flush()
    try:
        done = subprocess.run(
            command(exercise, path),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        print(f"{exercise}: the check took more than {TIMEOUT_S} s and was stopped")
        return
    print(done.stdout.rstrip())
    if done.stderr.strip():
        print(done.stderr.rstrip())
