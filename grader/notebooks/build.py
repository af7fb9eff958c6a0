"""Write the nbgrader source notebooks, ``nbgrader/source/dlbasic/<module>.ipynb``, from ``solutions/``.

``solutions/<module>.py`` stays the single source: each notebook is rebuilt from it with nbformat
(``python -m grader notebooks``; ``--check`` reports stale ones, and a self-test runs it).  A
notebook holds, in the file's order:

* a markdown cell with the module's docstring (the conventions: shapes, the mask convention);
* the locked ``<module>-setup`` cell with the imports;
* per exercise, a markdown introduction made of its functions' docstrings, one solution cell per
  def or class (the answer between ``### BEGIN SOLUTION`` / ``### END SOLUTION``, which
  ``nbgrader generate_assignment`` clears), then the exercise's locked test cell worth the
  rubric's points, whose source is the self-check ``check("<exercise ID>")``.

The cell ids (nbgrader's ``grade_id`` and nbformat's cell ``id``) come from
:mod:`grader.notebooks.cells`; the JSON is written with sorted keys and no random ids, so the
same solutions give the same bytes.
"""

import ast
import inspect
import re
from pathlib import Path
from typing import Any

import nbformat
from nbformat import v4

from grader import ROOT, rubric
from grader.notebooks import cells

_LITERAL = re.compile(r"``(.+?)``")
_SECTION = re.compile(r"^(Args|Arguments|Returns|Raises|Yields|Example|Examples|Note|Notes):\s*$")
_ITEM = re.compile(r"^    (\S[^:]*):\s*(.*)$")


def notebook(module: str, solutions: str | Path | None = None) -> nbformat.NotebookNode:
    """The source notebook of ``module`` built from ``solutions/<module>.py``."""
    path = Path(solutions or ROOT / "solutions") / f"{module}.py"
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    tree = ast.parse(text)
    body = list(tree.body)
    docstring = ast.get_docstring(tree) or ""
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        body = body[1:]
    defs = [node for node in body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
    if not defs:
        raise ValueError(f"solutions/{module}.py defines no function or class")
    locked = cells.locked_cells_of(text, module)  # the setup cell and the given defs, cut as every reader cuts them

    nb = v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    title = f"# `{module}`\n\n" + _markdown(docstring)
    nb.cells.append(_markdown_cell(f"{module}-intro", title + _HOW_TO_CHECK.format(module=module)))
    nb.cells.append(_code_cell(cells.setup_cell_id(module), locked[cells.setup_cell_id(module)], locked=True))

    last_of = {ex.id: max(i for i, d in enumerate(defs) if d.name in ex.names) for ex in rubric.exercises_of(module)}
    introduced: set[str] = set()
    for index, node in enumerate(defs):
        exercise = rubric.exercise_for_name(module, node.name)
        if exercise is None:
            nb.cells.append(
                _code_cell(
                    cells.given_cell_id(module, node.name), locked[cells.given_cell_id(module, node.name)], locked=True
                )
            )
            continue
        end = cells.def_start(defs[index + 1]) - 1 if index + 1 < len(defs) else len(lines)
        source = cells.cut(lines, cells.def_start(node), end)  # the def and any statement after it
        if exercise.id not in introduced:
            introduced.add(exercise.id)
            nb.cells.append(_markdown_cell(f"{cells.test_cell_id(exercise.id)}-intro", _introduction(exercise, defs)))
        nb.cells.append(_code_cell(cells.impl_cell_id(exercise.id, node.name), source, solution=True))
        if last_of[exercise.id] == index:
            nb.cells.append(test_cell(exercise))
    missing = [name for ex in rubric.exercises_of(module) for name in ex.names if name not in {d.name for d in defs}]
    if missing:
        raise ValueError(f"solutions/{module}.py lacks {', '.join(missing)}, which grader/rubric.py lists")
    return nb


def write(check: bool = False, out: str | Path | None = None, solutions: str | Path | None = None) -> list[Path]:
    """Write (or, with ``check``, only compare) every module's notebook; return the out-of-date paths."""
    folder = Path(out or cells.SOURCE_DIR)
    stale: list[Path] = []
    for module in rubric.MODULES:
        text = nbformat.writes(notebook(module, solutions)) + "\n"
        path = folder / f"{module}.ipynb"
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not check:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    return stale


def test_cell(exercise: rubric.Exercise) -> nbformat.NotebookNode:
    """The locked test cell of ``exercise``, worth its points: the self-check ``check("<ID>")``."""
    source = cells.CHECK_CALL.format(exercise=exercise.id)
    return _code_cell(cells.test_cell_id(exercise.id), source, locked=True, points=exercise.points)


_HOW_TO_CHECK = """

## How to work in this notebook

Write your answers in the cells that say `raise NotImplementedError()`, keeping each function's name
and signature. Leave the grey (locked) cells as they are: the setup cell and the test cells.

Each test cell grades its exercise with the course's autograder, outside this notebook's kernel:
**save the notebook first** (Ctrl-S), then run the test cell. The same check runs from a terminal:
`python -m grader check path/to/{module}.ipynb`.
"""


def _introduction(exercise: rubric.Exercise, defs: list[Any]) -> str:
    points = f"{exercise.points:g} point{'s' if exercise.points != 1 else ''}"
    parts = [f"## {exercise.title} (`{exercise.id}`, {points})"]
    for node in defs:
        if node.name in exercise.names:
            kind = "class" if isinstance(node, ast.ClassDef) else "def"
            parts.append(f"### `{kind} {node.name}`\n\n" + _markdown(ast.get_docstring(node) or ""))
    return "\n\n".join(parts)


def _markdown(docstring: str) -> str:
    """A Google-style docstring as markdown: ``literals`` in backticks, sections as bullet lists."""
    out: list[str] = []
    for line in inspect.cleandoc(docstring).splitlines():
        line = _LITERAL.sub(lambda m: f"`{m[1]}`", line)
        section = _SECTION.match(line)
        item = _ITEM.match(line)
        if section:
            out.append(f"\n**{section[1]}**\n")
        elif item:
            out.append(f"- `{item[1]}`: {item[2]}")
        elif line.startswith("        ") and out and out[-1].startswith("- "):
            out[-1] += " " + line.strip()
        else:
            out.append(line.strip() if line.startswith("    ") else line)
    return "\n".join(out).strip()


def _markdown_cell(cell_id: str, text: str) -> nbformat.NotebookNode:
    cell = v4.new_markdown_cell(text)
    cell.id = cell_id
    return cell


def _code_cell(
    grade_id: str, source: str, *, locked: bool = False, solution: bool = False, points: float | None = None
) -> nbformat.NotebookNode:
    """A code cell with nbgrader's metadata (schema 3: exactly grade, grade_id, locked, solution
    and, for a test cell, points)."""
    cell = v4.new_code_cell(source)
    cell.id = grade_id[:64]  # nbformat's cell ids are 1-64 characters; the grade_id has no such limit
    meta: dict[str, Any] = {
        "grade": points is not None,
        "grade_id": grade_id,
        "locked": locked,
        "schema_version": 3,
        "solution": solution,
    }
    if points is not None:
        meta["points"] = points
    cell.metadata = {"nbgrader": meta}
    if locked:
        cell.metadata.update({"deletable": False, "editable": False})
    return cell
