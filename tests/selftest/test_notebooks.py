"""The nbgrader course end to end, driven by nbgrader's own CLI: generate_assignment, student
notebooks, autograde, export.

Fourteen students submit notebooks: the reference, catalogued mistakes, the stubs, a notebook
that is no JSON, missing notebooks, a hostile one, and the edits VS Code and Colab allow (an
edited or deleted setup cell, an edited or deleted test cell, a scratch cell that raises, a
renamed file, an old-format notebook).  For every student and exercise the gradebook (the
course folder ``python -m grader notebooks --course`` writes) equals ``python -m grader check
--staff`` and the student's own check (what a test cell's self-check runs; one exercise is
also run in a real Jupyter kernel); the hostile notebook earns nothing.  Autograde refuses
without the staff key, and ``generate_assignment`` refuses instructor cells the grader would
not run.
"""

import ast
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from grader import ROOT, mistakes, rubric
from grader.notebooks import autograde, cells
from grader.notebooks import course as course_folder

pytestmark = pytest.mark.slow

KEY = "a staff key for the notebook round trip"
MISTAKES = {m.module: m for m in mistakes.load() if m.id in ("kl_std_no_half",)}
PARAM_MISTAKE = mistakes.load("param_count")[0]

#: What each student hands in, per module: reference, a mistake, the stubs, bad or hostile notebooks.
#: A module left out is a notebook the student never submitted.
PLAN = {
    "alice": {"param_count": "reference", "elbo": "mistake", "attention": "stubs"},
    "bob": {"param_count": "mistake", "elbo": "reference", "attention": "not json", "lstm": "hostile"},
    # edits VS Code and Colab allow: locked cells changed or deleted, a scratch cell that raises, a renamed file
    "carol": {"param_count": "edited setup cell", "elbo": "scratch cell that raises"},
    "dave": {"param_count": "edited test cell"},
    "erin": {"param_count": "deleted test cell", "elbo": "renamed file"},
    "fay": {"param_count": "deleted setup cell"},
    "gus": {"elbo": "old format"},
    "hal": {"param_count": "mistake"},
    "ivy": {"elbo": "stubs"},
    "jon": {"param_count": "not json"},
    "kim": {"elbo": "reference"},
    "lee": {"param_count": "reference", "elbo": "mistake"},
    "max": {"elbo": "scratch cell that raises"},
    "ned": {"param_count": "edited setup cell"},
}

HOSTILE_CELL = """\
# a student's cell that tries what worked against nbgrader's kernel (nbgrader #1324)
try:
    from IPython import get_ipython
    get_ipython().showtraceback = lambda *args, **kwargs: None
except Exception:
    pass
print("lstm.gates 6 / 6 passed")
"""


def _env() -> dict[str, str]:
    return {**os.environ, "GRADER_STAFF_KEY": KEY, "PYTHONPATH": str(ROOT)}


def _nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=course,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _defs(source: str) -> dict[str, str]:
    """``{name: source}`` of the top-level defs and classes of a module's text."""
    lines = source.splitlines()
    tree = ast.parse(source)
    return {
        node.name: "\n".join(lines[node.lineno - 1 : node.end_lineno])
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.ClassDef)
    }


def _fill(nb: nbformat.NotebookNode, module: str, source: str) -> None:
    """Put each def of ``source`` into its solution cell, as a student would."""
    defs = _defs(source)
    wanted = cells.solution_cell_ids(module)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in wanted:
            cell.source = defs[wanted[grade_id][1]]


def _student_notebook(course: Path, module: str, kind: str) -> str:
    """The text of the notebook a student hands in."""
    nb = nbformat.read(course / "release" / cells.ASSIGNMENT / f"{module}.ipynb", as_version=4)
    if kind == "not json":
        return '{"cells": [ this is not JSON'
    if kind == "reference":
        _fill(nb, module, (ROOT / "solutions" / f"{module}.py").read_text(encoding="utf-8"))
    elif kind == "mistake":
        _fill(nb, module, (MISTAKES.get(module) or PARAM_MISTAKE).source())
    elif kind == "old format":  # nbformat 3, as an old Jupyter or a converter writes it
        _fill(nb, module, (ROOT / "solutions" / f"{module}.py").read_text(encoding="utf-8"))
        return nbformat.writes(nbformat.convert(nb, 3), version=3)
    elif kind in (
        "edited setup cell",
        "deleted setup cell",
        "edited test cell",
        "deleted test cell",
        "scratch cell that raises",
    ):
        _fill(nb, module, (ROOT / "solutions" / f"{module}.py").read_text(encoding="utf-8"))
        by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
        first_test = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade"))
        if kind == "edited setup cell":
            by_id[f"{module}-setup"].source += "\nimport numpy as np  # mine"
        elif kind == "deleted setup cell":
            nb.cells.remove(by_id[f"{module}-setup"])
        elif kind == "edited test cell":  # what the old self-check message advised, and more points
            first_test.source = first_test.source.replace('")', f'", "{module}.ipynb")')
            first_test.metadata["nbgrader"]["points"] = 100
        elif kind == "deleted test cell":
            nb.cells.remove(first_test)
        else:
            nb.cells.insert(3, nbformat.v4.new_code_cell("trying = 1 / 0"))
    elif kind == "hostile":
        _fill(
            nb,
            module,
            (ROOT / "assignments" / f"{module}.py")
            .read_text(encoding="utf-8")
            .replace('raise NotImplementedError("', 'return torch.zeros(1)  # ("'),
        )
        nb.cells.insert(2, nbformat.v4.new_code_cell(HOSTILE_CELL))
        for cell in nb.cells:  # fake results in every test cell's output
            if cells.exercise_of_test_cell(cell.metadata.get("nbgrader", {}).get("grade_id", "")):
                cell.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "6.0"})]
    return nbformat.writes(nb)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course folder after generate_assignment, submissions, autograde and export."""
    root = course_folder.setup_course(tmp_path_factory.mktemp("course"))
    _nbgrader(root, "generate_assignment", cells.ASSIGNMENT, "--force")
    for student, modules in PLAN.items():
        folder = root / "submitted" / student / cells.ASSIGNMENT
        folder.mkdir(parents=True)
        for module, kind in modules.items():
            name = f"{module} (1).ipynb" if kind == "renamed file" else f"{module}.ipynb"
            (folder / name).write_text(_student_notebook(root, module, kind), encoding="utf-8")
    _nbgrader(root, "autograde", cells.ASSIGNMENT, "--create")
    _nbgrader(root, "export")
    return root


def _gradebook_scores(course: Path, student: str) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {
            ex.id: gb.find_grade(cells.test_cell_id(ex.id), ex.module, cells.ASSIGNMENT, student).score
            for ex in rubric.EXERCISES
        }


def _check_staff(course: Path, student: str, tmp_path: Path, staff: bool = True) -> dict[str, float]:
    """``python -m grader check --staff --json`` on the student's submitted notebooks (without
    ``staff``: the student's own check, which a test cell's self-check runs)."""
    out = tmp_path / f"{student}-{staff}.json"
    env = _env() if staff else {k: v for k, v in _env().items() if k != "GRADER_STAFF_KEY"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "grader",
            "check",
            *(["--staff"] if staff else []),
            "--quiet",
            "--json",
            str(out),
            "--submission",
            str(course / "submitted" / student / cells.ASSIGNMENT),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    scores: dict[str, float] = {}
    for test in json.loads(out.read_text(encoding="utf-8"))["tests"]:  # an exercise's visible and hidden parts
        scores[test["tags"][1]] = round(scores.get(test["tags"][1], 0.0) + float(test["score"]), 2)
    return scores


def test_the_student_notebooks_are_the_source_without_the_answers(course):
    for module in rubric.MODULES:
        released = (course / "release" / cells.ASSIGNMENT / f"{module}.ipynb").read_text(encoding="utf-8")
        assert "BEGIN SOLUTION" not in released
        nb = nbformat.read(course / "release" / cells.ASSIGNMENT / f"{module}.ipynb", as_version=4)
        source = cells.module_source(nb, module)
        assert source.count("raise NotImplementedError()") == sum(
            1
            for line in (ROOT / "solutions" / f"{module}.py").read_text(encoding="utf-8").splitlines()
            if line.strip() == "### BEGIN SOLUTION"
        )


def test_autograde_and_export_equal_grader_check_staff(course, tmp_path):
    exported = {row["student_id"]: row for row in _csv(course / "grades.csv")}
    for student in PLAN:
        nbgrader_scores = _gradebook_scores(course, student)
        check_scores = _check_staff(course, student, tmp_path)
        assert nbgrader_scores == pytest.approx(check_scores, abs=1e-6), student
        # the student's own check (what each test cell's self-check runs) gives the same scores
        assert _check_staff(course, student, tmp_path, staff=False) == pytest.approx(check_scores, abs=1e-6), student
        assert float(exported[student]["raw_score"]) == pytest.approx(sum(check_scores.values()), abs=1e-3)
    alice = _gradebook_scores(course, "alice")
    assert sum(alice[ex.id] for ex in rubric.exercises_of("param_count")) == 20  # the reference: full marks
    assert all(alice[ex.id] == 0 for ex in rubric.exercises_of("attention"))  # the stubs: nothing
    mistaken = MISTAKES["elbo"].exercise
    assert alice[mistaken] < rubric.BY_ID[mistaken].points  # the mistake loses its exercise's points
    assert sum(alice[ex.id] for ex in rubric.exercises_of("elbo")) < 20


def test_edits_an_editor_allows_are_undone_not_punished(course):
    """The edits VS Code and Colab allow cost nothing: the locked cells are graded as handed out
    (the feedback says so), a scratch cell that raises is skipped, a renamed notebook is missing."""
    full = {m: sum(ex.points for ex in rubric.exercises_of(m)) for m in rubric.MODULES}
    for student, module in (
        ("carol", "param_count"),
        ("carol", "elbo"),
        ("dave", "param_count"),
        ("erin", "param_count"),
        ("fay", "param_count"),
        ("gus", "elbo"),
        ("max", "elbo"),
        ("ned", "param_count"),
    ):
        scores = _gradebook_scores(course, student)
        assert sum(scores[ex.id] for ex in rubric.exercises_of(module)) == full[module], (student, module, scores)
    erin = _gradebook_scores(course, "erin")
    assert sum(erin[ex.id] for ex in rubric.exercises_of("elbo")) == 0  # "elbo (1).ipynb" is not elbo.ipynb
    feedback = nbformat.read(course / "autograded" / "carol" / cells.ASSIGNMENT / "param_count.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in feedback.cells for o in c.get("outputs", []))
    assert "the locked cell param_count-setup (cell" in text and "graded as handed out" in text


def test_autograde_without_the_staff_key_refuses_and_says_how(course, tmp_path):
    import shutil

    copy_ = tmp_path / "course"
    shutil.copytree(course, copy_)
    (copy_ / ".staff_key").unlink(missing_ok=True)
    env = {k: v for k, v in _env().items() if k != "GRADER_STAFF_KEY"}
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", "autograde", cells.ASSIGNMENT, "--student", "dave", "--force"],
        cwd=copy_,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode != 0 and "no staff key" in done.stdout + done.stderr, done.stderr[-2000:]


@pytest.mark.parametrize("cell", ["hidden tests", "an extra test cell"])
def test_generate_refuses_instructor_cells_the_grader_would_not_run(course, tmp_path, cell):
    """Added the nbgrader way in the source notebook, they would never run (everyone would get
    their points): ``generate_assignment`` stops and says why."""
    import shutil

    copy_ = tmp_path / "course"
    shutil.copytree(course, copy_, ignore=shutil.ignore_patterns("release", "autograded", "feedback", "submitted"))
    path = copy_ / "source" / cells.ASSIGNMENT / "elbo.ipynb"
    nb = nbformat.read(path, as_version=4)
    if cell == "hidden tests":
        test = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade"))
        test.source += "\n### BEGIN HIDDEN TESTS\nassert gaussian_kl is not None\n### END HIDDEN TESTS"
        expected = "hidden tests in a notebook are not run"
    else:
        extra = nbformat.v4.new_code_cell("assert gaussian_kl is not None")
        extra.metadata["nbgrader"] = {
            "grade": True,
            "grade_id": "my-test",
            "locked": True,
            "points": 3,
            "schema_version": 3,
            "solution": False,
        }
        nb.cells.append(extra)
        expected = "its code would never run"
    nbformat.write(nb, path)
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", "generate_assignment", cells.ASSIGNMENT, "--force"],
        cwd=copy_,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode != 0 and expected in done.stdout + done.stderr, (done.stdout + done.stderr)[-2000:]


def test_bad_and_hostile_notebooks_earn_nothing_and_say_why(course):
    bob = _gradebook_scores(course, "bob")
    assert all(bob[ex.id] == 0 for ex in rubric.exercises_of("attention"))  # not JSON
    assert all(bob[ex.id] == 0 for ex in rubric.exercises_of("lstm"))  # hostile
    assert sum(bob[ex.id] for ex in rubric.exercises_of("elbo")) == 20  # his other modules are graded
    attention = nbformat.read(course / "autograded" / "bob" / cells.ASSIGNMENT / "attention.ipynb", as_version=4)
    errors = [o for c in attention.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert len(errors) == len(rubric.exercises_of("attention"))
    assert all("not a Jupyter notebook" in e.evalue and "attention.ipynb" in e.evalue for e in errors)
    lstm = nbformat.read(course / "autograded" / "bob" / cells.ASSIGNMENT / "lstm.ipynb", as_version=4)
    shown = "".join(o.get("text", "") for c in lstm.cells for o in c.get("outputs", []))
    assert "lstm.gates 6 / 6 passed" not in shown  # the student's print never ran in a kernel here


def test_feedback_shows_the_check_report_and_never_a_hidden_test(course):
    nb = nbformat.read(course / "autograded" / "alice" / cells.ASSIGNMENT / "elbo.ipynb", as_version=4)
    mistaken = cells.test_cell_id(MISTAKES["elbo"].exercise)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == mistaken)
    text = "".join(o.get("text", "") for o in cell.outputs)
    assert MISTAKES["elbo"].exercise in text and "Feedback" in text
    for hidden in (ROOT / "tests" / "hidden").glob("test_*.py"):
        assert "def test_" not in text and hidden.read_text(encoding="utf-8")[:200] not in text
    assert KEY not in json.dumps(nb)


def _csv(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _edit(nb: nbformat.NotebookNode, case: str) -> str | None:
    """Damage ``nb`` as ``case`` says; the words the placeholder must say (``None``: no problem)."""
    by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
    if case == "edited test cell":  # nbgrader's OverwriteCells puts it back; nothing to refuse
        by_id["param_count-markov"].source = "print(4.0)"
        return None
    if case == "edited setup cell":  # graded as handed out, and the feedback says so
        by_id["param_count-setup"].source += "\nmath.prod = sum"
        return None
    if case == "deleted solution cell":
        nb.cells.remove(by_id["param_count-markov-impl-markov_params"])
        return "param_count-markov-impl-markov_params (exercise param_count.markov, markov_params) is missing"
    if case == "duplicated solution cell":
        nb.cells.append(copy.deepcopy(by_id["param_count-markov-impl-markov_params"]))
        return "param_count-markov-impl-markov_params (cells"
    if case == "another module":
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader")
            if meta:
                meta["grade_id"] = meta["grade_id"].replace("param_count-", "lstm-", 1)
        return "this is a notebook of lstm, not param_count"
    if case == "corrupt metadata":
        by_id["param_count-markov"].metadata.nbgrader.pop("points")
        return "its nbgrader cell metadata is corrupted"
    assert case == "megabytes of output"
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="x" * (1 << 20))]
    return None


@pytest.mark.parametrize(
    "case",
    [
        "edited test cell",
        "edited setup cell",
        "deleted solution cell",
        "duplicated solution cell",
        "another module",
        "corrupt metadata",
        "megabytes of output",
    ],
)
def test_a_bad_notebook_becomes_a_placeholder_that_says_why(course, case):
    nb = nbformat.read(course / "release" / cells.ASSIGNMENT / "param_count.ipynb", as_version=4)
    expected = _edit(nb, case)
    resources = {
        "nbgrader": {
            "notebook": "param_count",
            "assignment": cells.ASSIGNMENT,
            "student": "carol",
            "db_url": f"sqlite:///{course / 'gradebook.db'}",
        }
    }
    checked, _ = autograde.CheckSubmission().preprocess(nb, resources)
    if expected is None:
        assert checked is nb and autograde.PROBLEM_KEY not in checked.metadata
        restored = checked.metadata.get(autograde.RESTORED_KEY, [])
        assert (case == "edited setup cell") == any("param_count-setup" in note for note in restored), restored
        return
    problem = checked.metadata[autograde.PROBLEM_KEY]
    assert problem.startswith("param_count.ipynb: ") and expected in problem
    assert [c.metadata.nbgrader.grade_id for c in checked.cells if c.cell_type == "code"] == [
        cells.test_cell_id(ex.id) for ex in rubric.exercises_of("param_count")
    ]


def test_a_test_cell_run_in_jupyter_prints_what_grader_check_prints(course, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    work = tmp_path / "work"
    work.mkdir()
    (work / "param_count.ipynb").write_text(_student_notebook(course, "param_count", "mistake"), encoding="utf-8")
    cell = nbformat.v4.new_code_cell(cells.CHECK_CALL.format(exercise=PARAM_MISTAKE.exercise))
    runner_nb = nbformat.v4.new_notebook(cells=[cell])
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.delenv("GRADER_STAFF_KEY", raising=False)
    client = NotebookClient(
        runner_nb, timeout=600, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(work)}}
    )
    client.execute()
    shown = "".join(o.get("text", "") for o in runner_nb.cells[0].outputs)
    errors = [o for o in runner_nb.cells[0].outputs if o.output_type == "error"]
    # below full marks the cell raises (so `nbgrader validate` fails), in one line
    assert [(e.ename, e.evalue.split(":")[0]) for e in errors] == [("NotFullMarks", PARAM_MISTAKE.exercise)]
    done = subprocess.run(
        [sys.executable, "-m", "grader", "check", PARAM_MISTAKE.exercise, str(work / "param_count.ipynb")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if k != "GRADER_STAFF_KEY"},
    )
    assert done.stdout.strip() and done.stdout.strip() in shown
    assert "0 / " in done.stdout or "failed" in done.stdout  # the mistake is caught, in the kernel too
