"""``nbgrader autograde`` for the course, graded in the grader's sandbox instead of a Jupyter kernel.

nbgrader's own autograde executes the student's notebook in a kernel next to the test cells: a
student can patch IPython there and print fake results (nbgrader #1324), a warning on stderr
zeroes a test, and hidden tests sit in the notebook.  The course folder this module writes
(:func:`grader.notebooks.course.setup_course`) keeps nbgrader for everything else (the gradebook, ``export``, the
formgrader, late penalties, feedback) and swaps two steps:

* :class:`LenientNotebookExporter` reads a submitted notebook; one that is no notebook (invalid
  JSON, too large) becomes a placeholder holding only the test cells, marked with the cause;
* :class:`CheckSubmission`, the first sanitizing step, turns a notebook that gives no module
  (a deleted or duplicated solution cell, a notebook of another module or assignment,
  corrupt nbgrader metadata) into that placeholder too, the student's code kept in it for
  staff to read; an edited or deleted locked cell is no reason: nbgrader's ``OverwriteCells``
  restores it, the module is read with the cells as handed out (as every other place that
  grades a notebook reads it) and the feedback says what was restored;
* :class:`GradeInSandbox` replaces nbgrader's ``Execute``: the solution cells (found by id)
  become ``<module>.py``, the grader grades it in its sandbox as ``python -m grader check
  --staff`` does, and each test cell gets the feedback of its exercise on stdout and its points
  as the cell's result.  The staff key is required (``GRADER_STAFF_KEY``, or the course's
  ``.staff_key`` file, mode 600): without it nothing is graded, and a course graded with one
  key refuses another (its fingerprint is kept in ``.staff_key_id``).  A student's notebooks
  are graded in one sandboxed run with those of the next students to grade (as a batch).
* :class:`CheckSource`, the first step of ``generate_assignment``, refuses instructor cells the
  grader cannot honour (a test cell of its own, hidden tests in a test cell) with the reason,
  instead of letting them be graded silently.  A placeholder or an engine
  failure gives every test cell an error output (0 points), never an empty one (which
  nbgrader would count as full marks).

Nothing of the student's notebook is executed in this process; see docs/notebooks.md.
"""

import glob
import hashlib
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

import nbformat
from nbconvert.exporters import NotebookExporter
from nbgrader.nbgraderformat import MetadataValidator, ValidationError
from nbgrader.preprocessors import NbGraderPreprocessor

from grader import rubric, staffkey
from grader.grading import report as text_report
from grader.grading import runner
from grader.grading.scoring import ExerciseResult, Report
from grader.notebooks import build, cells

#: The notebook metadata key that marks a placeholder and says why (set only by this module).
PROBLEM_KEY = "dlbasic_problem"
#: The exception name a failed test cell shows.
ERROR_NAME = "GradingError"
#: The notebook metadata key where :class:`CheckSubmission` leaves what it restored (set only here).
RESTORED_KEY = "dlbasic_restored"
#: Where a course keeps its staff key and the key's fingerprint (as a batch's output folder does).
KEY_FILE, ID_FILE = staffkey.KEY_FILE, staffkey.ID_FILE

_PREPROCESSORS = "nbgrader.preprocessors"
SANITIZE = [
    f"{__name__}.CheckSubmission",
    f"{_PREPROCESSORS}.ClearOutput",
    f"{_PREPROCESSORS}.DeduplicateIds",
    f"{_PREPROCESSORS}.OverwriteKernelspec",
    f"{_PREPROCESSORS}.OverwriteCells",
    f"{_PREPROCESSORS}.CheckCellMetadata",
]
GENERATE = [
    f"{__name__}.CheckSource",
    f"{_PREPROCESSORS}.IncludeHeaderFooter",
    f"{_PREPROCESSORS}.InstantiateTests",
    f"{_PREPROCESSORS}.LockCells",
    f"{_PREPROCESSORS}.ClearSolutions",
    f"{_PREPROCESSORS}.ClearOutput",
    f"{_PREPROCESSORS}.CheckCellMetadata",
    f"{_PREPROCESSORS}.ComputeChecksums",
    f"{_PREPROCESSORS}.SaveCells",
    f"{_PREPROCESSORS}.ClearHiddenTests",
    f"{_PREPROCESSORS}.ClearMarkScheme",
    f"{_PREPROCESSORS}.ComputeChecksums",
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


def placeholder(module: str, problem: str, submitted: Any = None) -> nbformat.NotebookNode:
    """A notebook of ``module`` that holds its test cells and says why it replaced the student's;
    the code cells of the ``submitted`` notebook, when there is one, follow as text (for staff
    deciding an override; nothing of it is graded)."""
    nb = nbformat.v4.new_notebook()
    note = nbformat.v4.new_markdown_cell(
        f"**This notebook could not be graded: {problem}.**\n\nEvery exercise of `{module}` scores 0."
    )
    note.id = f"{module}-problem"
    nb.cells = [note] + [build.test_cell(ex) for ex in rubric.exercises_of(module)]
    code = [
        "".join(c.get("source", "")) if isinstance(c.get("source"), list) else str(c.get("source", ""))
        for c in (submitted.get("cells", []) if isinstance(submitted, dict) else [])
        if isinstance(c, dict) and c.get("cell_type") == "code"
    ]
    if code:
        fence = "`" * max(3, 1 + max((len(run) for text in code for run in re.findall(r"`+", text)), default=0))
        kept = nbformat.v4.new_markdown_cell(
            "**The code cells as submitted** (not graded):\n\n"
            + "\n\n".join(f"{fence}python\n{text}\n{fence}" for text in code)
        )
        kept.id = f"{module}-submitted"
        nb.cells.append(kept)
    nb.metadata = {PROBLEM_KEY: f"{module}.ipynb: {problem}"}
    return nb


class LenientNotebookExporter(NotebookExporter):
    """nbconvert's notebook exporter, except that a file that is no notebook becomes a
    :func:`placeholder` (nbgrader would otherwise give up on the student's whole assignment)."""

    def from_filename(self, filename: str, resources: Any = None, **kw: Any) -> Any:
        """Read ``filename``; a file nbformat cannot read gives the placeholder of its module.
        Only the reading is forgiven: an error of a later step (no staff key) stops autograde."""
        path = Path(filename)
        problem = None
        try:
            size = path.stat().st_size
            if size > cells.MAX_NOTEBOOK_BYTES:
                problem = f"{size} bytes, more than the {cells.MAX_NOTEBOOK_BYTES} a notebook may weigh"
            else:
                nbformat.read(filename, as_version=4)
        except Exception as exc:  # nbformat raises many kinds on a file that is no notebook
            problem = f"not a Jupyter notebook nbformat can read ({type(exc).__name__}: {str(exc)[:300]})"
        if problem is None:
            return super().from_filename(filename, resources, **kw)
        self.log.warning("%s: %s", filename, problem)
        return self.from_notebook_node(placeholder(path.stem, problem), resources, **kw)


class CheckSubmission(NbGraderPreprocessor):
    """The first sanitizing step: a notebook that gives no module becomes a :func:`placeholder`;
    the locked cells restored in a notebook that does are noted for its feedback."""

    def preprocess(self, nb: Any, resources: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """Check ``nb`` against its module's cells."""
        module = resources["nbgrader"]["notebook"]
        marked = nb.metadata.get(PROBLEM_KEY) if nb.metadata.get(PROBLEM_KEY) == _placeholder_mark(nb) else None
        nb.metadata.pop(PROBLEM_KEY, None)  # only this module may set them
        nb.metadata.pop(RESTORED_KEY, None)
        problem = marked or self._problem(nb, module)
        if problem is None:
            restored = cells.read_module(nb, module)[1]
            if restored:
                self.log.info("%s: %s", module, "; ".join(restored))
                nb.metadata[RESTORED_KEY] = restored
            return nb, resources
        self.log.warning("%s: %s", module, problem)
        return placeholder(module, problem.removeprefix(f"{module}.ipynb: "), None if marked else nb), resources

    def _problem(self, nb: Any, module: str) -> str | None:
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
        return None


class CheckSource(NbGraderPreprocessor):
    """The first step of ``generate_assignment``: refuse what the grader would not grade as
    written.  The course's test cells are the self-checks; the grader grades each exercise with
    its own tests, so a test cell an instructor adds (it would never run: everyone would get
    its points) and hidden tests put into a test cell (they would never run either) are
    refused with the reason.  Manually graded cells (nbgrader's "manually graded answer" and
    "task" cells) are kept: their answers stay in the notebook for the formgrader."""

    def preprocess(self, nb: Any, resources: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """Raise ``ValueError`` naming the first cell the grader cannot honour."""
        module = resources["nbgrader"]["notebook"]
        for index, cell in enumerate(nb.cells, 1):
            meta = cell.get("metadata", {}).get("nbgrader", {})
            grade_id = meta.get("grade_id", "")
            source = "".join(cell.source) if isinstance(cell.source, list) else cell.source
            if "BEGIN HIDDEN TESTS" in source:
                raise ValueError(
                    f"{module}.ipynb cell {index} ({grade_id or 'no id'}): hidden tests in a notebook are not run by "
                    f"this course's autograder (it grades each exercise with its own hidden tests, tests/hidden/); "
                    f"add the test to tests/hidden/ instead (docs/notebooks.md)"
                )
            if meta.get("grade") and not meta.get("solution"):
                exercise = cells.exercise_of_test_cell(grade_id)
                if exercise is None:
                    raise ValueError(
                        f"{module}.ipynb cell {index} ({grade_id or 'no id'}): an autograded test cell that is not "
                        f"one of the course's: its code would never run and every student would get its points; "
                        f"add the test to tests/ for the grader instead, or make it a manually graded cell"
                    )
                if source.strip() != cells.CHECK_CALL.format(exercise=exercise):
                    raise ValueError(
                        f"{module}.ipynb cell {index} ({grade_id}): the test cell of {exercise} was changed; "
                        f"its code is not what grades it (the grader's tests are): rebuild the notebooks "
                        f"(python -m grader notebooks) and change tests/ instead"
                    )
        return nb, resources


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
        info = resources["nbgrader"]
        module = info["notebook"]
        problem = nb.metadata.get(PROBLEM_KEY)
        restored = nb.metadata.pop(RESTORED_KEY, None)
        results: dict[str, ExerciseResult] = {}
        notes: list[str] = [str(n) for n in restored] if isinstance(restored, list) else []
        module_text = ""
        if problem is None:
            root = course_root(self.config)
            key = course_key(root)  # no key: StaffKeyRequired stops autograde with the reason
            try:
                module_text = cells.module_source(nb, module)
                graded = _STUDENTS.report(self.config, root, key, info, module, module_text)
                results = {r.exercise.id: r for r in graded.results}
                notes += graded.notes
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
                cell.outputs = _outputs(results[exercise], module, notes, module_text)
            else:
                cause = problem or f"{exercise} was not graded: the notebook of {module} holds no such exercise"
                cell.outputs = [_error(f"{exercise}: {cause}")]
        return nb, resources


class StaffKeyRequired(RuntimeError):
    """Autograde without a usable staff key, or with another key than the course was graded with."""


def course_key(root: Path | None) -> bytes:
    """The course's staff key: ``GRADER_STAFF_KEY``, else ``<course>/.staff_key`` (mode 600).

    The key's fingerprint is kept in ``<course>/.staff_key_id`` (a folder with an
    ``nbgrader_config.py``) on first use; another key later
    is refused, so a regrade never draws other examples than the first grading.  Raises
    :class:`StaffKeyRequired` with the remedy when there is no key, the file is readable by
    others, or the key is not the course's."""
    remedy = (
        f"create one with `{staffkey.NEW_KEY} > {KEY_FILE} && chmod 600 {KEY_FILE}` in the course folder "
        f"(autograde reads it whoever starts it, the formgrader included), or set {staffkey.ENV}"
    )
    key = staffkey.from_environment()
    if key is None:
        path = root / KEY_FILE if root is not None else None
        if path is None or not path.is_file():
            raise StaffKeyRequired(
                f"no staff key: autograde refuses to grade with the public examples a student's own check "
                f"draws (replayable); {remedy}"
            )
        if path.is_symlink() or path.stat().st_mode & 0o077:
            raise StaffKeyRequired(f"{path} can be read by others (mode {path.stat().st_mode & 0o777:o}): chmod 600 it")
        key = staffkey.normalize(path.read_bytes())
    staffkey.require_strong(key)
    if root is not None and (root / "nbgrader_config.py").is_file():  # a course folder, nothing else
        try:
            staffkey.for_batch(root, key)  # keeps .staff_key_id; refuses another key
        except staffkey.StaffKeyError as exc:
            raise StaffKeyRequired(str(exc).replace("--out folder", "course")) from None
    return key


class _Students:
    """Students' notebooks graded together: on the first notebook nbgrader hands over for a
    student, that student's submitted notebooks and those of the next students still to grade
    (up to :data:`GROUP` students, in nbgrader's order) are read and graded in one sandboxed run,
    as ``grader batch`` grades a class; each notebook then takes its results from here when its
    module text is the same (else it is graded alone)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: dict[tuple[str, str], dict[str, tuple[str, Report]]] = {}

    def report(
        self, config: Any, root: Path | None, key: bytes, info: dict[str, Any], module: str, text: str
    ) -> Report:
        """The report of ``module`` whose source is ``text`` for the student ``info`` names."""
        student, assignment = str(info.get("student", "")), str(info.get("assignment", ""))
        digest = _digest(text)
        with self._lock:
            done = self._done.setdefault((student, assignment), {})
            if module not in done:
                group = {student: _submitted_modules(config, student, assignment) | {module: text}}
                for other in _pending(config, assignment, student):
                    if (other, assignment) not in self._done and len(group) < GROUP:
                        group[other] = _submitted_modules(config, other, assignment)
                reports = grade_students({s: m for s, m in group.items() if m}, root, key)
                for who, sources in group.items():
                    into = self._done.setdefault((who, assignment), {})
                    for m, report in reports.get(who, {}).items():
                        into[m] = (_digest(sources[m]), report)
            found = done.get(module)
            if found is not None and found[0] == digest:
                return found[1]
        return grade_modules({module: text}, root, key)[module]


#: How many students one sandboxed run grades at most (their notebooks all together).
GROUP = 8


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _pending(config: Any, assignment: str, current: str) -> list[str]:
    """The students after ``current``, in nbgrader's (sorted) order, whose submission of
    ``assignment`` this autograde will grade: those ``--student`` selects, not yet autograded
    (or all of them with ``--force``)."""
    from nbgrader.coursedir import CourseDirectory

    try:
        course = CourseDirectory(config=config)
        submitted = sorted(Path(p) for p in glob.glob(course.format_path("submitted", course.student_id, assignment)))
        force = bool(config.get("BaseConverter", {}).get("force", False))
    except Exception:  # no usable course directory: one student at a time
        return []
    out = []
    for path in submitted:
        student = path.parent.name
        if student <= current:
            continue
        if force or not Path(course.format_path("autograded", student, assignment)).exists():
            out.append(student)
    return out


def grade_students(
    students: dict[str, dict[str, str]], course: Path | None, key: bytes
) -> dict[str, dict[str, Report]]:
    """Grade ``{student: {module: source}}`` in one sandboxed run (``grader batch``'s way:
    :func:`grader.grading.runner.grade_many`) with the hidden tests and ``key``; staff grading
    refuses where a worker could read the repository's staff files or the ``course`` folder
    (``GRADER_WEAK_ISOLATION=1`` accepts it).  ``{student: {module: Report}}``."""
    if not students:
        return {}
    with tempfile.TemporaryDirectory(prefix="grader-notebooks-") as tmp:
        entries = []
        for number, (student, sources) in enumerate(sorted(students.items())):
            folder = Path(tmp) / f"s{number}"
            folder.mkdir()
            for module, source in sources.items():
                (folder / f"{module}.py").write_text(source, encoding="utf-8")
            entries.append((student, folder, sorted(sources)))
        protect = [course] if course is not None else []
        reports = runner.grade_many(entries, staff=True, staff_key=key, protect=protect, fork_files=True)
    return {
        student: {
            module: Report(report.submission, [r for r in report.results if r.exercise.module == module], report.notes)
            for module in students[student]
        }
        for student, report in reports.items()
    }


_STUDENTS = _Students()


def _submitted_modules(config: Any, student: str, assignment: str) -> dict[str, str]:
    """The modules of a student's submitted notebooks that read cleanly (others are graded alone)."""
    from nbgrader.coursedir import CourseDirectory

    out: dict[str, str] = {}
    try:
        folder = Path(CourseDirectory(config=config).format_path("submitted", student, assignment))
    except Exception:  # no usable course directory: grade notebook by notebook
        return out
    for module in rubric.MODULES:
        try:
            out[module] = cells.module_source(folder / f"{module}.ipynb", module)
        except (cells.NotebookProblem, OSError):
            continue
    return out


def course_root(config: Any) -> Path | None:
    """The nbgrader course folder (its sources with the solutions, every student's submission, the
    gradebook): protected from the workers like the repository; ``None`` when it cannot be told."""
    from nbgrader.coursedir import CourseDirectory

    try:
        root = Path(CourseDirectory(config=config).root).resolve()
    except Exception:  # a course without a usable root: only the repository is protected
        return None
    return root if root != Path(root.anchor) else None


def grade_modules(sources: dict[str, str], course: Path | None, key: bytes) -> dict[str, Report]:
    """Grade one student's ``{module: source}`` in one sandboxed run (:func:`grade_students`);
    ``{module: its Report}``."""
    return grade_students({"submission": sources}, course, key)["submission"]


def test_cell_text(result: ExerciseResult, module: str, notes: list[str], module_text: str = "") -> str:
    """The feedback a test cell shows: the report of ``python -m grader check`` for its exercise,
    lines named by the notebook's cells (``module_text``: the module read out of the notebook)."""
    text = text_report.render(Report(f"{module}.ipynb", [result], notes), totals=False)
    return cells.in_cells(text, module, module_text) if module_text else text


def _outputs(result: ExerciseResult, module: str, notes: list[str], module_text: str = "") -> list[Any]:
    text = test_cell_text(result, module, notes, module_text) + "\n"
    stream = nbformat.v4.new_output("stream", name="stdout", text=text)
    if result.score <= 0:
        return [stream, _error(f"{result.exercise.id}: 0 / {result.max_score:g} ({result.status})")]
    score = nbformat.v4.new_output(
        "execute_result", data={"text/plain": repr(float(result.score))}, execution_count=None
    )
    return [stream, score]


def _error(message: str) -> Any:
    return nbformat.v4.new_output("error", ename=ERROR_NAME, evalue=message, traceback=[message])
