"""``nbgrader autograde`` for the course, graded in the grader's sandbox instead of a Jupyter kernel.

nbgrader's own autograde executes the student's notebook in a kernel next to the test cells: a
student can patch IPython there and print fake results (nbgrader #1324), a warning on stderr
zeroes a test, and hidden tests sit in the notebook.  The course folder this module writes
(:func:`setup_course`) keeps nbgrader for everything else (the gradebook, ``export``, the
formgrader, late penalties, feedback) and swaps two steps:

* :class:`LenientNotebookExporter` reads a submitted notebook; one that is no notebook (invalid
  JSON, too large) becomes a placeholder holding only the test cells, marked with the cause;
* :class:`CheckSubmission`, the first sanitizing step, turns a notebook that gives no module
  (a deleted or duplicated solution cell, an edited locked cell, a notebook of another
  module or assignment, corrupt nbgrader metadata) into that placeholder too;
* :class:`GradeInSandbox` replaces nbgrader's ``Execute``: the solution cells (found by id)
  become ``<module>.py``, the grader grades it in its sandbox as ``python -m grader check
  --staff`` does (with ``GRADER_STAFF_KEY`` when set), and each test cell gets the feedback of
  its exercise on stdout and its points as the cell's result.  A placeholder or an engine
  failure gives every test cell an error output (0 points), never an empty one (which
  nbgrader would count as full marks).

Nothing of the student's notebook is executed in this process; see docs/notebooks.md.
"""

import shutil
import tempfile
from pathlib import Path
from typing import Any

import nbformat
from nbconvert.exporters import NotebookExporter
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.nbgraderformat import MetadataValidator, ValidationError
from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.utils import compute_checksum

from grader import ROOT, rubric, staffkey
from grader.grading import report as text_report
from grader.grading import runner
from grader.grading.scoring import ExerciseResult, Report
from grader.notebooks import build, cells

#: The notebook metadata key that marks a placeholder and says why (set only by this module).
PROBLEM_KEY = "dlbasic_problem"
#: The exception name a failed test cell shows.
ERROR_NAME = "GradingError"

_PREPROCESSORS = "nbgrader.preprocessors"
SANITIZE = [
    f"{__name__}.CheckSubmission",
    f"{_PREPROCESSORS}.ClearOutput",
    f"{_PREPROCESSORS}.DeduplicateIds",
    f"{_PREPROCESSORS}.OverwriteKernelspec",
    f"{_PREPROCESSORS}.OverwriteCells",
    f"{_PREPROCESSORS}.CheckCellMetadata",
]
AUTOGRADE = [
    f"{__name__}.GradeInSandbox",  # instead of nbgrader's Execute
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    f"{_PREPROCESSORS}.LimitOutput",
    f"{_PREPROCESSORS}.SaveAutoGrades",
    f"{_PREPROCESSORS}.AssignLatePenalties",
    f"{_PREPROCESSORS}.CheckCellMetadata",
]

_CONFIG = """\
# nbgrader configuration of the DL Basic course ({assignment}), written by
# `python -m grader notebooks --course {root}`.  Autograding runs in the grader's sandbox,
# never in a Jupyter kernel: see docs/notebooks.md in the grader's repository.
import sys

sys.path.insert(0, {repo!r})  # the grader package

c = get_config()  # noqa: F821 (nbgrader's config loader defines it)
c.CourseDirectory.root = {root!r}
c.CourseDirectory.course_id = {assignment!r}
c.Autograde.exporter_class = "grader.notebooks.autograde.LenientNotebookExporter"
c.Autograde.sanitize_preprocessors = {sanitize!r}
c.Autograde.autograde_preprocessors = {autograde!r}
# a deleted test cell comes back (and is graded) instead of leaving a grade without a score
c.OverwriteCells.add_missing_cells = True
"""


def setup_course(root: str | Path) -> Path:
    """Make ``root`` an nbgrader course folder for the notebooks: ``nbgrader_config.py`` and
    ``source/dlbasic/<module>.ipynb`` (copied from ``nbgrader/source/dlbasic/``).  Returns ``root``.

    Staff then run, in ``root``: ``nbgrader generate_assignment dlbasic``, collect the
    submissions into ``submitted/<student>/dlbasic/``, ``nbgrader autograde dlbasic`` and
    ``nbgrader export``.
    """
    root = Path(root).resolve()
    source = root / "source" / cells.ASSIGNMENT
    source.mkdir(parents=True, exist_ok=True)
    for module in rubric.MODULES:
        shutil.copyfile(cells.notebook_path(module), source / f"{module}.ipynb")
    config = _CONFIG.format(
        assignment=cells.ASSIGNMENT, root=str(root), repo=str(ROOT), sanitize=SANITIZE, autograde=AUTOGRADE
    )
    (root / "nbgrader_config.py").write_text(config, encoding="utf-8")
    return root


def placeholder(module: str, problem: str) -> nbformat.NotebookNode:
    """A notebook of ``module`` that holds only its test cells and says why it replaced the
    student's (nothing in it is the student's code, so nothing of it is graded)."""
    nb = nbformat.v4.new_notebook()
    note = nbformat.v4.new_markdown_cell(
        f"**This notebook could not be graded: {problem}.**\n\nEvery exercise of `{module}` scores 0."
    )
    note.id = f"{module}-problem"
    nb.cells = [note] + [build.test_cell(ex) for ex in rubric.exercises_of(module)]
    nb.metadata = {PROBLEM_KEY: f"{module}.ipynb: {problem}"}
    return nb


class LenientNotebookExporter(NotebookExporter):
    """nbconvert's notebook exporter, except that a file that is no notebook becomes a
    :func:`placeholder` (nbgrader would otherwise give up on the student's whole assignment)."""

    def from_filename(self, filename: str, resources: Any = None, **kw: Any) -> Any:
        """Read ``filename``; a file nbformat cannot read gives the placeholder of its module."""
        path = Path(filename)
        problem = None
        try:
            size = path.stat().st_size
            if size > cells.MAX_NOTEBOOK_BYTES:
                problem = f"{size} bytes, more than the {cells.MAX_NOTEBOOK_BYTES} a notebook may weigh"
            else:
                return super().from_filename(filename, resources, **kw)
        except Exception as exc:  # nbformat raises many kinds on a file that is no notebook
            problem = f"not a Jupyter notebook nbformat can read ({type(exc).__name__}: {str(exc)[:300]})"
        self.log.warning("%s: %s", filename, problem)
        return self.from_notebook_node(placeholder(path.stem, problem), resources, **kw)


class CheckSubmission(NbGraderPreprocessor):
    """The first sanitizing step: a notebook that gives no module becomes a :func:`placeholder`."""

    def preprocess(self, nb: Any, resources: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """Check ``nb`` against its module's cells and the gradebook's locked cells."""
        module = resources["nbgrader"]["notebook"]
        marked = nb.metadata.get(PROBLEM_KEY) if nb.metadata.get(PROBLEM_KEY) == _placeholder_mark(nb) else None
        nb.metadata.pop(PROBLEM_KEY, None)  # only this module may set it
        problem = marked or self._problem(nb, resources, module)
        if problem is None:
            return nb, resources
        self.log.warning("%s: %s", module, problem)
        return placeholder(module, problem.removeprefix(f"{module}.ipynb: ")), resources

    def _problem(self, nb: Any, resources: dict[str, Any], module: str) -> str | None:
        if module not in rubric.MODULES:
            return f"{module}.ipynb is not a notebook of the course (expected {', '.join(rubric.MODULES)})"
        try:
            cells.module_source(nb, module)
        except cells.NotebookProblem as exc:
            return exc.cause
        try:
            MetadataValidator().validate_nb(nb)
        except (ValidationError, KeyError, TypeError, ValueError) as exc:
            return (
                f"its nbgrader cell metadata is corrupted ({str(exc)[:200]}): "
                f"start again from the notebook you were given"
            )
        return self._edited_locked_cell(nb, resources, module)

    @staticmethod
    def _edited_locked_cell(nb: Any, resources: dict[str, Any], module: str) -> str | None:
        """The first locked cell whose checksum differs from the gradebook's (nbgrader's checksums)."""
        with Gradebook(resources["nbgrader"]["db_url"]) as gb:
            try:
                source = gb.find_notebook(module, resources["nbgrader"]["assignment"])
            except MissingEntry:
                return None
            locked = {cell.name: cell.checksum for cell in source.source_cells if cell.locked}
        for cell in nb.cells:
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if grade_id in locked:
                try:
                    same = compute_checksum(cell) == locked[grade_id]
                except (KeyError, TypeError, ValueError, AttributeError):
                    same = False
                if not same:
                    return (
                        f"the locked cell {grade_id} was edited (its checksum differs from the one given out): "
                        f"undo the edit, or start again from the notebook you were given"
                    )
        return None


def _placeholder_mark(nb: Any) -> str | None:
    """The mark of a notebook this module built (test cells only), else ``None``."""
    mark = nb.metadata.get(PROBLEM_KEY)
    ids = [c.get("id") for c in nb.cells]
    return mark if isinstance(mark, str) and ids and str(ids[0]).endswith("-problem") else None


class GradeInSandbox(NbGraderPreprocessor):
    """nbgrader's ``Execute`` replaced: grade the notebook's module in the sandbox, write the results
    into its test cells (feedback on stdout, points as the result, an error output for 0)."""

    def preprocess(self, nb: Any, resources: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """Grade ``nb`` and fill its test cells' outputs."""
        module = resources["nbgrader"]["notebook"]
        problem = nb.metadata.get(PROBLEM_KEY)
        results: dict[str, ExerciseResult] = {}
        notes: list[str] = []
        if problem is None:
            try:
                graded = grade_module(cells.module_source(nb, module), module, course_root(self.config))
                results = {r.exercise.id: r for r in graded.results}
                notes = graded.notes
            except Exception as exc:  # the engine failed: every test cell says so and scores 0
                self.log.exception("grading %s failed", module)
                problem = f"the grader failed ({type(exc).__name__}: {str(exc)[:300]}); tell the course staff"
        count = 0
        for cell in nb.cells:
            exercise = cells.exercise_of_test_cell(cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", ""))
            if cell.get("cell_type") != "code" or exercise is None:
                continue
            count += 1
            cell.execution_count = count
            if exercise in results:
                cell.outputs = _outputs(results[exercise], module, notes)
            else:
                cause = problem or f"{exercise} was not graded: the notebook of {module} holds no such exercise"
                cell.outputs = [_error(f"{exercise}: {cause}")]
        return nb, resources


def course_root(config: Any) -> Path | None:
    """The nbgrader course folder (its sources with the solutions, every student's submission, the
    gradebook): protected from the workers like the repository; ``None`` when it cannot be told."""
    from nbgrader.coursedir import CourseDirectory

    try:
        root = Path(CourseDirectory(config=config).root).resolve()
    except Exception:  # a course without a usable root: only the repository is protected
        return None
    return root if root != Path(root.anchor) else None


def grade_module(source: str, module: str, course: Path | None = None) -> Report:
    """Grade ``source`` as ``<module>.py`` in the sandbox, with the hidden tests and the staff key
    (``GRADER_STAFF_KEY``) as ``python -m grader check --staff`` does; staff grading refuses where a
    worker could read the repository's staff files or the ``course`` folder (``GRADER_WEAK_ISOLATION=1``
    accepts it)."""
    with tempfile.TemporaryDirectory(prefix="grader-notebook-") as tmp:
        (Path(tmp) / f"{module}.py").write_text(source, encoding="utf-8")
        protect = [course] if course is not None else []
        return runner.grade(tmp, [module], staff=True, staff_key=staffkey.from_environment(), protect=protect)


def test_cell_text(result: ExerciseResult, module: str, notes: list[str]) -> str:
    """The feedback a test cell shows: the report of ``python -m grader check`` for its exercise."""
    return text_report.render(Report(f"{module}.ipynb", [result], notes))


def _outputs(result: ExerciseResult, module: str, notes: list[str]) -> list[Any]:
    text = test_cell_text(result, module, notes) + "\n"
    stream = nbformat.v4.new_output("stream", name="stdout", text=text)
    if result.score <= 0:
        return [stream, _error(f"{result.exercise.id}: 0 / {result.max_score:g} ({result.status})")]
    score = nbformat.v4.new_output(
        "execute_result", data={"text/plain": repr(float(result.score))}, execution_count=None
    )
    return [stream, score]


def _error(message: str) -> Any:
    return nbformat.v4.new_output("error", ename=ERROR_NAME, evalue=message, traceback=[message])
