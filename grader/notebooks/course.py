"""The nbgrader course folder of the notebooks: ``python -m grader notebooks --course DIR``.

:func:`setup_course` copies the source notebooks into ``DIR/source/dlbasic/`` and writes the
grader's lines into ``DIR/nbgrader_config.py``, the instructor's file, without taking it over:

* the grader's lines are one block between two marker comments (:data:`BEGIN`, :data:`END`); a
  later run rewrites that block only, and every line outside it (late penalties, the exchange, a
  course id of the instructor's own) stays as the instructor wrote it;
* a config without the markers gets the block appended; one that sets, outside the block, a key
  the block sets (:func:`grader_settings`, e.g. ``c.Autograde.sanitize_preprocessors``) is
  refused, naming the lines, unless ``force`` (the last assignment in the file wins);
* the block holds no path of this machine: nbgrader's ``CourseDirectory.root`` defaults to the
  folder nbgrader runs in, and nbgrader and Jupyter find the grader on ``PYTHONPATH`` (or
  after ``pip install -e`` of the repository), so the folder can move and be shared;
* a source notebook already there that differs from the grader's is not overwritten unless
  ``force``.

Nothing is written unless every check passes (:class:`CourseError` says what failed).
"""

import ast
import os
import re
import secrets
import shutil
import stat
from pathlib import Path
from typing import Any

from grader import ROOT, rubric
from grader.grading import files
from grader.notebooks import cells

#: The nbgrader config file of a course folder.
CONFIG_NAME = "nbgrader_config.py"
#: The first and the last line of the grader's block in it, found by their start (:data:`MARKS`).
BEGIN = "# >>> grader: dlbasic autograding (rewritten by `python -m grader notebooks --course`) >>>"
END = "# <<< grader: dlbasic autograding <<<"
#: How a begin and an end marker start: what finds a block, whatever the rest of the line says.
MARKS = ("# >>> grader: dlbasic autograding", "# <<< grader: dlbasic autograding")
#: nbgrader's course id when none is given.
DEFAULT_COURSE_ID = "dlbasic-course"
#: What a course id may be: it names folders of nbgrader's exchange.
COURSE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: The top of a config this module creates (outside the block: the instructor's to edit).
HEADER = """\
# nbgrader configuration of the course.  Add your own settings (late penalties, the exchange, ...)
# anywhere outside the grader's block below: `python -m grader notebooks --course` rewrites only
# the lines between its two markers.
"""
#: The mutating calls that set a list-valued key (``c.Class.trait.append(...)``).
_MUTATORS = {"append", "extend", "insert", "remove", "pop", "clear", "update", "add"}


class CourseError(Exception):
    """The course folder cannot be set up as asked; the message says what to do (nothing was written)."""


def grader_settings(course_id: str = DEFAULT_COURSE_ID) -> dict[tuple[str, str], Any]:
    """What the grader's block sets: ``{(class, trait): value}``.

    The course id, nbgrader's ``autograde`` steps swapped for the sandbox's
    (:mod:`grader.notebooks.autograde`: the exporter and the two preprocessor lists),
    ``generate_assignment``'s steps with the grader's check of instructor cells first, and
    deleted test cells put back (``OverwriteCells.add_missing_cells``).
    """
    from grader.notebooks import autograde  # imports nbgrader: only when a course is written

    return {
        ("CourseDirectory", "course_id"): course_id,
        ("Autograde", "exporter_class"): f"{autograde.__name__}.{autograde.LenientNotebookExporter.__name__}",
        ("Autograde", "sanitize_preprocessors"): list(autograde.SANITIZE),
        ("Autograde", "autograde_preprocessors"): list(autograde.AUTOGRADE),
        ("GenerateAssignment", "preprocessors"): list(autograde.GENERATE),
        ("OverwriteCells", "add_missing_cells"): True,
    }


def _value(value: Any) -> str:
    """``value`` as Python source; a list one item a line."""
    if isinstance(value, list):
        return "[\n" + "".join(f"    {item!r},\n" for item in value) + "]"
    return repr(value)


def grader_block(course_id: str = DEFAULT_COURSE_ID) -> str:
    """The grader's lines of ``nbgrader_config.py``, markers included (no path of this machine).

    Raises :class:`CourseError` for a course id that is not ``[A-Za-z0-9][A-Za-z0-9._-]*``.
    """
    if not COURSE_ID.fullmatch(course_id):
        raise CourseError(f"course id {course_id!r}: use letters, digits, '.', '_' and '-' (it names folders)")
    comments = {
        ("Autograde", "exporter_class"): "# autograding runs in the grader's sandbox, never in a Jupyter kernel",
        ("OverwriteCells", "add_missing_cells"): (
            "# a deleted test cell comes back (and is graded) instead of leaving a grade without a score"
        ),
    }
    lines = [
        BEGIN,
        "# nbgrader and Jupyter must import `grader`: run them with the grader's repository on",
        f"# PYTHONPATH (`PYTHONPATH=/path/to/repo nbgrader autograde {cells.ASSIGNMENT}`) or after",
        "# `pip install -e /path/to/repo`.",
        "# The course folder is the folder nbgrader runs in (CourseDirectory.root's default).",
        "# See docs/notebooks.md in the grader's repository.",
        "c = get_config()  # noqa: F821 (nbgrader's config loader defines it)",
    ]
    for (cls, trait), value in grader_settings(course_id).items():
        if (cls, trait) in comments:
            lines.append(comments[cls, trait])
        lines.append(f"c.{cls}.{trait} = {_value(value)}")
    lines.append(END)
    return "\n".join(lines) + "\n"


def _key(node: ast.expr) -> tuple[str, str] | None:
    """``(class, trait)`` of ``c.Class.trait`` (any name for ``c``), else ``None``."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
        if isinstance(node.value.value, ast.Name):
            return node.value.attr, node.attr
    return None


def set_keys(text: str, name: str = CONFIG_NAME) -> dict[tuple[str, str], list[int]]:
    """The config keys ``text`` (a config file's source) sets: ``{(class, trait): [line, ...]}``.

    An assignment (``c.Class.trait = ...``, ``+=``) or a mutating call
    (``c.Class.trait.append(...)``) counts; comments never do.  Raises :class:`CourseError`
    when ``text`` is not valid Python.
    """
    try:
        tree = ast.parse(text, filename=name)
    except SyntaxError as exc:
        raise CourseError(
            f"{name} is not valid Python (line {exc.lineno}: {exc.msg}): fix it, then run again"
        ) from None
    found: dict[tuple[str, str], list[int]] = {}

    def note(target: ast.expr, line: int) -> None:
        if isinstance(target, ast.Tuple | ast.List):
            for item in target.elts:
                note(item, line)
        elif (key := _key(target)) is not None:
            found.setdefault(key, []).append(line)

    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                note(target, node.lineno)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            note(node.target, node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _MUTATORS:
            note(node.func.value, node.lineno)
    return found


def _block_span(lines: list[str], name: str) -> tuple[int, int] | None:
    """The indices of the grader's ``BEGIN`` and ``END`` lines in ``lines``, else ``None`` (no block)."""
    begins = [i for i, line in enumerate(lines) if line.strip().startswith(MARKS[0])]
    ends = [i for i, line in enumerate(lines) if line.strip().startswith(MARKS[1])]
    if not begins and not ends:
        return None
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise CourseError(
            f"{name}: the grader's markers are broken ({len(begins)} begin and {len(ends)} end line(s), "
            f"expected one {BEGIN!r} before one {END!r}): fix or remove them by hand, then run again"
        )
    return begins[0], ends[0]


def merge_config(existing: str | None, course_id: str = DEFAULT_COURSE_ID, force: bool = False) -> str:
    """The new text of ``nbgrader_config.py``, from its text now (``existing``; ``None``: no file).

    No file: a short header and the grader's block.  With the block's markers: that block
    rewritten, every other line kept.  Without them: the block appended.  Raises
    :class:`CourseError` when a line outside the block sets a key the block sets (unless
    ``force``), when the markers are broken, and when the file is not valid Python.
    """
    block = grader_block(course_id)
    if existing is None:
        return HEADER + "\n" + block
    lines = existing.splitlines(keepends=True)
    span = _block_span(lines, CONFIG_NAME)
    inside = range(span[0] + 1, span[1] + 2) if span else range(0)  # 1-based line numbers of the block
    ours = set(grader_settings(course_id))
    clashes = sorted(
        (line, f"c.{cls}.{trait}")
        for (cls, trait), where in set_keys(existing).items()
        if (cls, trait) in ours
        for line in where
        if line not in inside
    )
    if clashes and not force:
        listed = ", ".join(f"line {line}: {key}" for line, key in clashes)
        raise CourseError(
            f"{CONFIG_NAME} already sets what the grader's block sets ({listed}): remove those lines "
            f"(for a course id of your own, pass --course-id), or pass --force to write the block anyway "
            f"(the last assignment in the file wins)"
        )
    if span:
        return "".join(lines[: span[0]]) + block + "".join(lines[span[1] + 1 :])
    text = existing if not existing or existing.endswith("\n") else existing + "\n"
    return text + ("\n" if text else "") + block


def _notebook_clashes(source: Path) -> list[Path]:
    """The source notebooks already in ``source`` that are not the grader's (another content, or a link)."""
    clashes = []
    for module in rubric.MODULES:
        target = source / f"{module}.ipynb"
        if target.is_symlink() or (
            target.exists()
            and (not target.is_file() or target.read_bytes() != cells.notebook_path(module).read_bytes())
        ):
            clashes.append(target)
    return clashes


def setup_course(root: str | os.PathLike[str], course_id: str = DEFAULT_COURSE_ID, force: bool = False) -> Path:
    """Make ``root`` an nbgrader course folder for the notebooks; returns it (resolved).

    Copies ``nbgrader/source/dlbasic/<module>.ipynb`` to ``root/source/dlbasic/`` and writes the
    grader's block into ``root/nbgrader_config.py`` (:func:`merge_config`: an existing file keeps
    every line outside the block), with ``course_id`` as nbgrader's ``CourseDirectory.course_id``.
    Raises :class:`CourseError`, writing nothing, when the config already sets the block's keys
    or a source notebook there differs from the grader's (``force``: go ahead anyway), or the
    config cannot be merged.  Staff then run nbgrader in ``root`` with the grader importable
    (:func:`next_steps`).
    """
    root = Path(root).resolve()
    config = root / CONFIG_NAME
    if config.is_symlink() or (config.exists() and not config.is_file()):
        raise CourseError(f"{config} is not a regular file: replace it by one (or remove it), then run again")
    try:
        existing = config.read_text(encoding="utf-8") if config.exists() else None
    except (OSError, UnicodeDecodeError) as exc:
        raise CourseError(f"{config} cannot be read ({exc})") from None
    text = merge_config(existing, course_id, force)
    source = root / "source" / cells.ASSIGNMENT
    clashes = _notebook_clashes(source)
    if clashes and not force:
        raise CourseError(
            f"{', '.join(str(p) for p in clashes)}: already there and not the grader's notebook (edited, or from "
            f"another version): move it away, or pass --force to overwrite it"
        )
    source.mkdir(parents=True, exist_ok=True)
    for module in rubric.MODULES:
        target = source / f"{module}.ipynb"
        if target.is_symlink() or (target.exists() and not target.is_file()):
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
        shutil.copyfile(cells.notebook_path(module), target)
    if text != existing:
        # the config keeps its mode (an instructor's file), a new one is readable as nbgrader writes its own
        files.write_atomic(config, text, stat.S_IMODE(config.stat().st_mode) if config.exists() else 0o644)
    _staff_key(root)
    return root


def _staff_key(root: Path) -> None:
    """The course's staff key, ``root/.staff_key`` (mode 600, 256 random bits), made once: autograde
    reads it whoever starts it (the CLI or the formgrader) and refuses to grade without a key."""
    from grader import staffkey

    path = root / staffkey.KEY_FILE
    if path.exists() or path.is_symlink():
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")


def next_steps(root: str | os.PathLike[str]) -> str:
    """What staff run next in the course folder ``root``: nbgrader with the grader on ``PYTHONPATH``."""
    return (
        f"nbgrader and Jupyter must import the grader: run them with PYTHONPATH={ROOT} "
        f"(or after `pip install -e {ROOT}`), e.g.\n"
        f"  cd {root} && PYTHONPATH={ROOT} nbgrader generate_assignment {cells.ASSIGNMENT}"
    )
