"""The course notebooks: built from solutions/, read back into modules, bad notebooks named."""

import ast
import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from grader import ROOT, cli, rubric
from grader.grading import runner, staging
from grader.grading.scoring import ExerciseResult, Report
from grader.notebooks import autograde, build, cells, selfcheck

GRADE_ID = re.compile(r"^[a-zA-Z0-9_\-]*$")  # nbgrader's rule: no dots


def _source_nb(module: str) -> dict:
    return json.loads(cells.notebook_path(module).read_text(encoding="utf-8"))


def _grade_id(cell: dict) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _without_docstring(text: str) -> str:
    tree = ast.parse(text)
    if tree.body and isinstance(tree.body[0], ast.Expr):
        tree.body = tree.body[1:]
    return ast.dump(tree)


def test_committed_notebooks_are_up_to_date():
    stale = build.write(check=True)
    assert not stale, f"run `python -m grader notebooks`: out of date: {[str(p) for p in stale]}"


def test_cell_ids_follow_nbgrader_and_map_one_to_one_to_exercise_ids():
    seen: dict[str, str] = {}
    for module in rubric.MODULES:
        for cell in _source_nb(module)["cells"]:
            grade_id = _grade_id(cell)
            if grade_id is None:
                continue
            assert GRADE_ID.match(grade_id), grade_id
            assert grade_id not in seen, f"{grade_id} in {module} and {seen[grade_id]}"
            seen[grade_id] = module
    for ex in rubric.EXERCISES:
        assert cells.exercise_of_test_cell(cells.test_cell_id(ex.id)) == ex.id
        assert cells.test_cell_id(ex.id) in seen
    assert cells.exercise_of_test_cell("attention-sdpa-impl-scaled_dot_product_attention") is None
    with pytest.raises(ValueError, match="unknown exercise"):
        cells.test_cell_id("attention.nope")


@pytest.mark.parametrize("module", rubric.MODULES)
def test_a_notebook_holds_its_module_and_one_pointed_locked_test_cell_per_exercise(module):
    from nbgrader.nbgraderformat import MetadataValidator

    nb = nbformat.read(cells.notebook_path(module), as_version=4)
    nbformat.validate(nb)
    MetadataValidator().validate_nb(nb)
    reference = (ROOT / "solutions" / f"{module}.py").read_text(encoding="utf-8")
    assert _without_docstring(cells.module_source(nb, module)) == _without_docstring(reference)
    tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert [cells.exercise_of_test_cell(c.metadata.nbgrader.grade_id) for c in tests] == [
        ex.id for ex in rubric.exercises_of(module)
    ]
    for cell, ex in zip(tests, rubric.exercises_of(module)):
        assert cell.metadata.nbgrader.locked and cell.metadata.nbgrader.points == ex.points
        assert cell.source == cells.CHECK_CALL.format(exercise=ex.id)
    solutions = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert {c.metadata.nbgrader.grade_id for c in solutions} == set(cells.solution_cell_ids(module))
    assert all("### BEGIN SOLUTION" in c.source for c in solutions)
    intro = " ".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert all(f"`{ex.id}`" in intro for ex in rubric.exercises_of(module))


def _problem(nb, module="attention") -> str:
    with pytest.raises(cells.NotebookProblem) as info:
        cells.module_source(nb, module)
    return info.value.cause


def test_invalid_json_and_foreign_notebooks_are_named():
    assert "invalid JSON" in _problem('{"cells": [')
    assert "not a Jupyter notebook" in _problem("[1, 2]")
    assert "nbformat 5" in _problem(json.dumps({"nbformat": 5, "cells": []}))
    assert "this is a notebook of lstm, not attention" in _problem(_source_nb("lstm"))
    other = _source_nb("attention")
    other["cells"] = [c for c in other["cells"] if c["cell_type"] == "markdown"]
    assert "no cell of attention" in _problem(other)


def test_cells_whose_metadata_an_editor_dropped_are_found_by_their_code():
    """VS Code and Colab may drop nbgrader's metadata: a solution cell is found by the one
    function it defines, and the locked cells are the ones handed out."""
    nb = _source_nb("attention")
    for cell in nb["cells"]:
        cell.get("metadata", {}).pop("nbgrader", None)
    text, notes = cells.read_module(nb, "attention")
    reference = cells.read_module(_source_nb("attention"), "attention")[0]
    for name in ("scaled_dot_product_attention", "split_heads", "merge_heads"):
        assert f"def {name}(" in text
    assert any("attention-setup was deleted" in n for n in notes)  # its metadata went: put back as handed out
    assert _exec(text) >= _exec(reference)


def _exec(text):
    namespace = {}
    exec(compile(text, "<module>", "exec"), namespace)
    return {k for k in namespace if not k.startswith("_")}


def test_edited_and_deleted_locked_cells_are_graded_as_handed_out():
    nb = _source_nb("lstm")
    setup = next(c for c in nb["cells"] if _grade_id(c) == "lstm-setup")
    original = "".join(setup["source"]) if isinstance(setup["source"], list) else setup["source"]
    setup["source"] = original + "\nimport numpy as np  # added by the student\n"
    text, notes = cells.read_module(nb, "lstm")
    assert "import numpy as np  # added" not in text and original.strip() in text
    assert notes == ["lstm.ipynb: the locked cell lstm-setup (cell 2) was edited; it is graded as handed out"]
    deleted = _source_nb("lstm")
    deleted["cells"] = [c for c in deleted["cells"] if _grade_id(c) != "lstm-setup"]
    text, notes = cells.read_module(deleted, "lstm")
    assert text.index(original.strip()) < text.index("def ") and "was deleted" in notes[0]
    assert cells.read_module(_source_nb("lstm"), "lstm")[1] == []  # nothing restored in an untouched notebook


def test_a_scratch_cell_that_raises_is_skipped_not_the_module():
    nb = _source_nb("elbo")
    scratch = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "id": "scratch"}
    nb["cells"].insert(3, dict(scratch, source="x = 1 / 0  # trying something\nprint(x)"))
    text = cells.module_source(nb, "elbo")
    assert "try:\n    x = 1 / 0" in text
    assert _exec(text) == _exec(cells.module_source(_source_nb("elbo"), "elbo"))


def test_a_deleted_or_duplicated_solution_cell_is_named():
    nb = _source_nb("attention")
    deleted = copy.deepcopy(nb)
    deleted["cells"] = [c for c in nb["cells"] if _grade_id(c) != "attention-heads-impl-merge_heads"]
    cause = _problem(deleted)
    assert "attention-heads-impl-merge_heads (exercise attention.heads, merge_heads)" in cause
    assert "deleted" in cause
    doubled = copy.deepcopy(nb)
    doubled["cells"].append(copy.deepcopy(nb["cells"][3]))
    assert "appears more than once" in _problem(doubled) and _grade_id(nb["cells"][3]) in _problem(doubled)


def test_outputs_are_never_read_and_megabytes_of_them_change_nothing():
    nb = _source_nb("elbo")
    clean = cells.module_source(nb, "elbo")
    noisy = copy.deepcopy(nb)
    for cell in noisy["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "x" * (2 << 20)}]
    assert cells.module_source(noisy, "elbo") == clean


def test_too_large_notebooks_and_modules_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "elbo.ipynb"
    path.write_text(json.dumps(_source_nb("elbo")), encoding="utf-8")
    monkeypatch.setattr(cells, "MAX_NOTEBOOK_BYTES", 1000)
    assert "more than the 1000" in _problem(path, "elbo")
    monkeypatch.setattr(cells, "MAX_NOTEBOOK_BYTES", 64 << 20)
    monkeypatch.setattr(cells, "MAX_SOURCE_BYTES", 1000)
    assert "more than the 1000 a module may" in _problem(path, "elbo")


def test_the_module_cap_is_the_staging_cap():
    assert cells.MAX_SOURCE_BYTES == staging.MAX_FILE_BYTES


def test_magics_and_shell_lines_become_comments_and_student_cells_are_kept():
    nb = _source_nb("elbo")
    nb["cells"].insert(2, {"cell_type": "code", "metadata": {}, "outputs": [], "source": "%matplotlib inline\n!ls"})
    nb["cells"].insert(3, {"cell_type": "code", "metadata": {}, "outputs": [], "source": "%%bash\necho hi"})
    nb["cells"].insert(4, {"cell_type": "code", "metadata": {}, "outputs": [], "source": "HELPER = 3"})
    source = cells.module_source(nb, "elbo")
    compile(source, "elbo.py", "exec")
    assert "# %matplotlib inline" in source and "# !ls" in source and "# echo hi" in source
    assert "HELPER = 3" in source


def test_a_folder_of_notebooks_writes_the_good_ones_and_names_the_bad(tmp_path):
    good = tmp_path / "a" / "elbo.ipynb"
    bad = tmp_path / "a" / "lstm.ipynb"
    stray = tmp_path / "a" / "notes.ipynb"
    twice = [tmp_path / "a" / "param_count.ipynb", tmp_path / "b" / "param_count.ipynb"]
    for path in (good, bad, stray, *twice):
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(_source_nb(path.stem if path != stray else "elbo")), encoding="utf-8")
    bad.write_text("not json", encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    ok, problems = cells.submission_folder([good, bad, stray, *twice], out)
    assert ok == {"elbo": []}  # written, nothing restored
    assert sorted(p.name for p in out.iterdir()) == ["elbo.py"]
    assert "lstm.ipynb: not a Jupyter notebook: invalid JSON" in problems["lstm"]
    assert "notes.ipynb: not a notebook of the course" in problems["notes"]
    assert "a second notebook of param_count" in problems["param_count"]


def test_check_of_a_notebook_grades_its_module_from_the_notebook(tmp_path, monkeypatch, capsys):
    nb = tmp_path / "elbo.ipynb"
    nb.write_text(json.dumps(_source_nb("elbo")), encoding="utf-8")
    (tmp_path / "lstm.ipynb").write_text("{", encoding="utf-8")
    seen = {}

    def fake_grade(folder, targets, **options):
        seen["files"] = sorted(p.name for p in Path(folder).iterdir())
        seen["elbo"] = (Path(folder) / "elbo.py").read_text(encoding="utf-8")
        seen["targets"] = list(targets)
        return Report(str(folder), [ExerciseResult(rubric.BY_ID["elbo.kl"], 4, "passed")])

    monkeypatch.setattr(runner, "grade", fake_grade)
    assert cli.main(["check", str(nb)]) == 0
    assert seen["files"] == ["elbo.py"] and seen["targets"] == ["elbo"]
    assert "def gaussian_kl(" in seen["elbo"]
    assert cli.main(["check", "--submission", str(tmp_path), "elbo.kl"]) == 0
    assert seen["targets"] == ["elbo.kl"]
    # the cause is in the report itself (a notebook student reads the report, not stderr)
    assert "lstm.ipynb: not a Jupyter notebook: invalid JSON" in capsys.readouterr().out


def test_the_self_check_runs_the_grader_command_outside_the_kernel(tmp_path, monkeypatch, capsys):
    with pytest.raises(ValueError, match="unknown exercise"):
        selfcheck.check("elbo.nope")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="save this notebook as elbo.ipynb"):
        selfcheck.check("elbo.kl")
    (tmp_path / "elbo.ipynb").write_text("{}", encoding="utf-8")
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append((cmd, kwargs))
        full = {"score": 4, "max_score": 4, "tests": [{"tags": ["elbo", "elbo.kl"], "status": "passed"}]}
        Path(cmd[cmd.index("--json") + 1]).write_text(json.dumps(full), encoding="utf-8")
        return subprocess.CompletedProcess(cmd, 0, "the report\n", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    from grader.notebooks import check

    check("elbo.kl")
    (cmd, kwargs), *_ = calls
    assert cmd[:6] == [sys.executable, "-m", "grader", "check", "elbo.kl", str((tmp_path / "elbo.ipynb").resolve())]
    assert kwargs["cwd"] == ROOT and str(ROOT) in kwargs["env"]["PYTHONPATH"]
    assert "the report" in capsys.readouterr().out


def _result(exercise: str, score: float, status: str) -> ExerciseResult:
    return ExerciseResult(rubric.BY_ID[exercise], score, status)


@pytest.mark.parametrize(("score", "status"), [(7, "passed"), (3.5, "failed"), (0, "failed"), (0, "not implemented")])
def test_a_test_cells_outputs_give_nbgrader_the_grader_score(score, status):
    from nbgrader.utils import determine_grade

    cell = build.test_cell(rubric.BY_ID["lstm.gru"])
    cell.outputs = autograde._outputs(_result("lstm.gru", score, status), "lstm", [])
    assert determine_grade(cell) == (score, 7)
    assert cell.outputs[0].name == "stdout" and "lstm.gru" in cell.outputs[0].text


def test_a_placeholder_or_a_failed_engine_gives_every_test_cell_an_error(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # nbgrader's course root is the working folder: not the repository
    from nbgrader.nbgraderformat import MetadataValidator
    from nbgrader.utils import determine_grade

    resources = {"nbgrader": {"notebook": "elbo"}}
    nb = autograde.placeholder("elbo", "not JSON")
    MetadataValidator().validate_nb(nb)
    graded, _ = autograde.GradeInSandbox().preprocess(nb, resources)
    tests = [c for c in graded.cells if c.cell_type == "code"]
    assert len(tests) == len(rubric.exercises_of("elbo"))
    assert all(determine_grade(c)[0] == 0 and "elbo.ipynb: not JSON" in c.outputs[0].evalue for c in tests)

    def broken(sources, course, key):
        raise RuntimeError("the sandbox is gone")

    monkeypatch.setattr(autograde, "grade_modules", broken)
    monkeypatch.setattr(autograde, "grade_students", broken)
    monkeypatch.setenv("GRADER_STAFF_KEY", "a strong enough staff key for this unit test only")
    nb = nbformat.read(cells.notebook_path("elbo"), as_version=4)
    graded, _ = autograde.GradeInSandbox().preprocess(nb, resources)
    outputs = [c.outputs for c in graded.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert all(o and o[0].output_type == "error" and "the sandbox is gone" in o[0].evalue for o in outputs)


def test_autograde_refuses_without_a_staff_key_and_with_another_one(tmp_path, monkeypatch):
    monkeypatch.delenv("GRADER_STAFF_KEY", raising=False)
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    with pytest.raises(autograde.StaffKeyRequired, match="no staff key.*chmod 600 .staff_key"):
        autograde.course_key(tmp_path)
    key_file = tmp_path / ".staff_key"
    key_file.write_text("0123456789abcdef" * 4 + "\n")
    key_file.chmod(0o644)
    with pytest.raises(autograde.StaffKeyRequired, match="read by others"):
        autograde.course_key(tmp_path)
    key_file.chmod(0o600)
    assert autograde.course_key(tmp_path) == ("0123456789abcdef" * 4).encode()
    assert (tmp_path / ".staff_key_id").is_file()
    monkeypatch.setenv("GRADER_STAFF_KEY", "another key that is long enough to be accepted")
    with pytest.raises(autograde.StaffKeyRequired, match="another staff key"):
        autograde.course_key(tmp_path)


def test_generate_refuses_instructor_cells_the_grader_would_not_run():
    resources = {"nbgrader": {"notebook": "elbo"}}
    nb = nbformat.read(cells.notebook_path("elbo"), as_version=4)
    assert autograde.CheckSource().preprocess(nb, resources)[0] is nb
    hidden = nbformat.read(cells.notebook_path("elbo"), as_version=4)
    test = next(c for c in hidden.cells if c.metadata.get("nbgrader", {}).get("grade"))
    test.source += "\n### BEGIN HIDDEN TESTS\nassert True\n### END HIDDEN TESTS"
    with pytest.raises(ValueError, match="hidden tests in a notebook are not run"):
        autograde.CheckSource().preprocess(hidden, resources)
    extra = nbformat.read(cells.notebook_path("elbo"), as_version=4)
    cell = nbformat.v4.new_code_cell("assert gaussian_kl is not None")
    cell.metadata["nbgrader"] = {
        "grade": True,
        "grade_id": "my-extra-test",
        "locked": True,
        "points": 2,
        "schema_version": 3,
        "solution": False,
    }
    extra.cells.append(cell)
    with pytest.raises(ValueError, match="not one of the course's: its code would never run"):
        autograde.CheckSource().preprocess(extra, resources)


def test_report_lines_are_named_by_the_notebooks_cells():
    nb = _source_nb("param_count")
    index, cell = next(
        (i, c) for i, c in enumerate(nb["cells"], 1) if _grade_id(c) == "param_count-markov-impl-markov_params"
    )
    source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    cell["source"] = source.replace("### BEGIN SOLUTION", "### BEGIN SOLUTION\n    x = undefined_name + 1")
    in_cell = next(n for n, line in enumerate(cell["source"].splitlines(), 1) if "undefined_name" in line)
    text = cells.module_source(nb, "param_count")
    at = next(n for n, line in enumerate(text.splitlines(), 1) if "undefined_name" in line)
    shown = cells.in_cells(f"at param_count.py line {at}: x = undefined_name + 1", "param_count", text)
    assert shown == f"at param_count.ipynb cell {index}, line {in_cell}: x = undefined_name + 1"
    assert cells.in_cells("at elbo.py line 3: x", "param_count", text) == "at elbo.py line 3: x"  # another module
    deleted = _source_nb("param_count")
    deleted["cells"] = [c for c in deleted["cells"] if _grade_id(c) != "param_count-setup"]
    restored = cells.module_source(deleted, "param_count")
    assert "the locked cell param_count-setup (as handed out), line 1" in cells.in_cells(
        "param_count.py line 5", "param_count", restored
    )
