"""The exercises as an nbgrader course: source notebooks, the self-check, autograding in our sandbox.

* :mod:`grader.notebooks.cells`: cell ids, and a student's module read out of a notebook;
* :mod:`grader.notebooks.build`: the source notebooks, from ``solutions/`` (``python -m grader notebooks``);
* :mod:`grader.notebooks.selfcheck`: :func:`check`, what a notebook's test cell runs;
* :mod:`grader.notebooks.autograde`: the course folder and the preprocessors ``nbgrader autograde`` uses.

Nothing here imports nbgrader at import time: a student's kernel imports this package for
:func:`check` only.
"""

from typing import Any


def check(exercise: str, notebook: Any = None) -> None:
    """Grade ``exercise`` of the saved notebook in the grader's sandbox and print the feedback
    (see :func:`grader.notebooks.selfcheck.check`)."""
    from grader.notebooks import selfcheck

    selfcheck.check(exercise, notebook)
