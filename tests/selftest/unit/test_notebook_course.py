"""``python -m grader notebooks --course DIR``: the course folder written without taking over the
instructor's nbgrader_config.py, with no path of this machine in it."""

from pathlib import Path

import pytest
from traitlets.config.loader import PyFileConfigLoader

from grader import ROOT, cli, rubric
from grader.notebooks import autograde, build, cells, course

INSTRUCTOR = """\
c = get_config()  # noqa: F821
c.LateSubmissionPlugin.penalty_method = "zero"
c.Exchange.root = "/srv/nbgrader/exchange"
"""


def _load(root: Path):
    """The config as nbgrader loads it (its own loader, ``get_config`` defined)."""
    return PyFileConfigLoader(course.CONFIG_NAME, path=str(root)).load_config()


def _grader_values(config, course_id="dlbasic-course"):
    assert config.CourseDirectory.course_id == course_id
    assert config.Autograde.exporter_class == "grader.notebooks.autograde.LenientNotebookExporter"
    assert config.Autograde.sanitize_preprocessors == autograde.SANITIZE
    assert config.Autograde.autograde_preprocessors == autograde.AUTOGRADE
    assert config.OverwriteCells.add_missing_cells is True


def test_a_fresh_course_has_the_notebooks_and_a_config_nbgrader_loads(tmp_path):
    root = course.setup_course(tmp_path / "course")
    for module in rubric.MODULES:
        copied = root / "source" / cells.ASSIGNMENT / f"{module}.ipynb"
        assert copied.read_bytes() == cells.notebook_path(module).read_bytes()
    config = _load(root)
    _grader_values(config)
    assert "root" not in config.CourseDirectory  # nbgrader's default: the folder it runs in
    text = (root / course.CONFIG_NAME).read_text()
    assert text.count(course.BEGIN) == 1 and text.count(course.END) == 1


def test_the_config_holds_no_path_of_this_machine(tmp_path):
    root = course.setup_course(tmp_path / "course")
    text = (root / course.CONFIG_NAME).read_text()
    for path in {str(ROOT), str(ROOT.resolve()), str(root), str(tmp_path)}:
        assert path not in text
    assert "sys.path" not in text and "c.CourseDirectory.root" not in text


def test_a_rerun_keeps_the_instructors_lines_and_rewrites_the_block(tmp_path):
    root = course.setup_course(tmp_path, course_id="first-id")
    config = root / course.CONFIG_NAME
    config.write_text(config.read_text() + "\n" + INSTRUCTOR)
    stale = config.read_text().replace("add_missing_cells = True", "add_missing_cells = False")
    config.write_text(stale)
    course.setup_course(tmp_path, course_id="second-id")
    text = config.read_text()
    assert INSTRUCTOR in text and text.count(course.BEGIN) == 1
    loaded = _load(root)
    _grader_values(loaded, "second-id")
    assert loaded.LateSubmissionPlugin.penalty_method == "zero"
    assert loaded.Exchange.root == "/srv/nbgrader/exchange"
    course.setup_course(tmp_path, course_id="second-id")
    assert config.read_text() == text  # nothing more to change


def test_a_config_without_markers_gets_the_block_appended(tmp_path):
    (tmp_path / course.CONFIG_NAME).write_text(INSTRUCTOR)
    course.setup_course(tmp_path)
    text = (tmp_path / course.CONFIG_NAME).read_text()
    assert text.startswith(INSTRUCTOR) and text.rstrip().endswith(course.END)
    loaded = _load(tmp_path)
    _grader_values(loaded)
    assert loaded.LateSubmissionPlugin.penalty_method == "zero"


@pytest.mark.parametrize(
    "line",
    [
        "c.Autograde.sanitize_preprocessors = []",
        "c.Autograde.autograde_preprocessors.append('nbgrader.preprocessors.Execute')",
        "c.CourseDirectory.course_id = 'mine'",
    ],
)
def test_a_config_that_sets_the_graders_keys_is_refused_unless_forced(tmp_path, line):
    config = tmp_path / course.CONFIG_NAME
    config.write_text(INSTRUCTOR + line + "\n")
    with pytest.raises(course.CourseError, match=r"line 4: c\.(Autograde|CourseDirectory)\.") as refused:
        course.setup_course(tmp_path)
    assert "--force" in str(refused.value)
    assert config.read_text() == INSTRUCTOR + line + "\n"  # nothing written
    assert not (tmp_path / "source").exists()
    course.setup_course(tmp_path, force=True)
    _grader_values(_load(tmp_path))  # the block comes last: its values win
    assert config.read_text().startswith(INSTRUCTOR + line + "\n")


def test_a_key_set_after_the_block_is_refused_too(tmp_path):
    """An override below the block would swap the sandbox back for a kernel: not silently."""
    course.setup_course(tmp_path)
    config = tmp_path / course.CONFIG_NAME
    config.write_text(config.read_text() + "c.Autograde.autograde_preprocessors = []\n")
    with pytest.raises(course.CourseError, match="autograde_preprocessors"):
        course.setup_course(tmp_path)


def test_broken_markers_and_broken_python_are_refused(tmp_path):
    config = tmp_path / course.CONFIG_NAME
    config.write_text(INSTRUCTOR + course.BEGIN + "\n")
    with pytest.raises(course.CourseError, match="markers are broken"):
        course.setup_course(tmp_path)
    config.write_text("c.Exchange.root = (\n")
    with pytest.raises(course.CourseError, match="not valid Python"):
        course.setup_course(tmp_path)


def test_a_source_notebook_that_differs_is_not_overwritten_unless_forced(tmp_path):
    course.setup_course(tmp_path)
    edited = tmp_path / "source" / cells.ASSIGNMENT / f"{rubric.MODULES[0]}.ipynb"
    edited.write_text("{}")
    config_before = (tmp_path / course.CONFIG_NAME).read_text()
    with pytest.raises(course.CourseError, match=edited.name):
        course.setup_course(tmp_path, course_id="other")
    assert edited.read_text() == "{}" and (tmp_path / course.CONFIG_NAME).read_text() == config_before
    course.setup_course(tmp_path, force=True)
    assert edited.read_bytes() == cells.notebook_path(rubric.MODULES[0]).read_bytes()


def test_a_course_id_must_name_a_folder(tmp_path):
    with pytest.raises(course.CourseError, match="course id"):
        course.setup_course(tmp_path, course_id="x'\nimport os")
    assert not (tmp_path / course.CONFIG_NAME).exists()


def test_the_cli_writes_the_course_with_its_id_and_says_how_to_run_nbgrader(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(build, "write", lambda check=False: [])  # the committed notebooks are another test's
    assert cli.main(["notebooks", "--course", str(tmp_path), "--course-id", "dl-2026"]) == 0
    out = capsys.readouterr().out
    assert f"PYTHONPATH={ROOT}" in out
    _grader_values(_load(tmp_path), "dl-2026")
    (tmp_path / course.CONFIG_NAME).write_text(INSTRUCTOR + "c.Autograde.exporter_class = 'x'\n")
    assert cli.main(["notebooks", "--course", str(tmp_path)]) == 2
    assert "--force" in capsys.readouterr().err
    assert cli.main(["notebooks", "--course-id", "x"]) == 2
