"""The cells of a course notebook: their ids, and a student's module read back out of them.

Each module (``attention``, ``lstm``, ...) is one notebook, ``nbgrader/source/dlbasic/<module>.ipynb``
(built by :mod:`grader.notebooks.build`).  Its code cells carry nbgrader ids (``grade_id``, which
nbgrader allows only ``[a-zA-Z0-9_-]``, so an exercise ID's ``.`` becomes ``-``):

* ``<module>-setup``: locked, the module's imports and constants (the code before the first def);
* ``<module>-given-<name>``: locked, a top-level def or class with nothing to write;
* ``<module>-<exercise>-impl-<name>``: a solution cell, one top-level def or class of an exercise
  (``attention-sdpa-impl-scaled_dot_product_attention``);
* ``<module>-<exercise>``: the locked, pointed test cell of an exercise (``attention-sdpa``), whose
  source is the one-line self-check ``check("attention.sdpa")``.

:func:`module_source` turns a saved notebook back into ``<module>.py``: every code cell but the
test cells, in notebook order, the student's own cells included.  The locked cells (setup and
given code) are always the ones handed out (:func:`locked_cells`): an edited one is graded as
it was given and a deleted one is put back, as nbgrader's ``OverwriteCells`` does in
``autograde``, so every place that grades a notebook grades the same code (:func:`read_module`
also says what it restored).  A cell the student added runs inside ``try``: one that raises
is skipped instead of failing the whole module.  Only the cells' sources and
ids are read (never their outputs), and nothing is executed: it is plain text processing, safe
on any notebook.  It imports neither nbgrader nor nbformat (whose import takes a second or more).
"""

import ast
import functools
import json
import os
import re
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from grader import ROOT, rubric
from grader.grading import staging

#: The nbgrader assignment the notebooks make up.
ASSIGNMENT = "dlbasic"
#: Where the source (instructor) notebooks live: ``<module>.ipynb`` for each module.
SOURCE_DIR = ROOT / "nbgrader" / "source" / ASSIGNMENT
#: The most a notebook file may weigh (outputs included) before it is refused unread.
MAX_NOTEBOOK_BYTES = 64 << 20
#: The most the extracted module may weigh: the cap staging puts on a module file
#: (``grader.grading.staging.MAX_FILE_BYTES``, which the student release does not ship; a test keeps them equal).
MAX_SOURCE_BYTES = 1 << 20
#: The source of a test cell, for an exercise ID.
CHECK_CALL = 'from grader.notebooks import check\n\ncheck("{exercise}")'
#: A cell that only runs a self-check (a test cell, or a student's copy of one) is not module code.
_CHECK_CELL = re.compile(r"\s*from\s+grader\.notebooks\s+import\s+check\s*[;\n]\s*check\([^()]*\)\s*;?\s*")
#: Cell magics whose body is Python: only their ``%%`` line is commented out.
_PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun"}
_TEST_CELLS = {ex.id.replace(".", "-"): ex.id for ex in rubric.EXERCISES}


class NotebookProblem(ValueError):
    """A notebook that gives no module: the message names the notebook file and the cause."""

    def __init__(self, notebook: str, cause: str) -> None:
        super().__init__(f"{notebook}: {cause}")
        self.notebook = notebook
        self.cause = cause


def notebook_path(module: str) -> Path:
    """The source notebook of ``module``: ``nbgrader/source/dlbasic/<module>.ipynb``."""
    return SOURCE_DIR / f"{module}.ipynb"


def setup_cell_id(module: str) -> str:
    """The grade_id of the locked cell holding ``module``'s imports and constants."""
    return f"{module}-setup"


def given_cell_id(module: str, name: str) -> str:
    """The grade_id of the locked cell holding ``name``, a def or class of ``module`` with no answer to write."""
    return f"{module}-given-{name}"


def test_cell_id(exercise_id: str) -> str:
    """The grade_id of the test cell of ``exercise_id``: ``attention.sdpa`` -> ``attention-sdpa``.

    Raises ``ValueError`` for an ID the rubric does not know.
    """
    if exercise_id not in rubric.BY_ID:
        raise ValueError(f"unknown exercise {exercise_id!r}")
    return exercise_id.replace(".", "-")


def impl_cell_id(exercise_id: str, name: str) -> str:
    """The grade_id of the solution cell holding ``name`` (a def or class) of ``exercise_id``."""
    return f"{test_cell_id(exercise_id)}-impl-{name}"


def exercise_of_test_cell(grade_id: str) -> str | None:
    """The exercise ID whose test cell has ``grade_id`` (``attention-sdpa`` -> ``attention.sdpa``), else ``None``."""
    return _TEST_CELLS.get(grade_id)


def solution_cell_ids(module: str) -> dict[str, tuple[str, str]]:
    """The solution cells every notebook of ``module`` must hold: ``{grade_id: (exercise ID, name)}``,
    one per name the rubric lists for each of the module's exercises."""
    return {impl_cell_id(ex.id, name): (ex.id, name) for ex in rubric.exercises_of(module) for name in ex.names}


def module_source(path_or_text: str | os.PathLike[str] | Mapping[str, Any], module: str) -> str:
    """The student's ``<module>.py`` read out of a saved notebook of ``module``: the text of
    :func:`read_module` (see there)."""
    return read_module(path_or_text, module)[0]


def read_module(path_or_text: str | os.PathLike[str] | Mapping[str, Any], module: str) -> tuple[str, list[str]]:
    """The student's ``<module>.py`` read out of a saved notebook of ``module``, and notes on what
    was restored.

    ``path_or_text`` is a path to the ``.ipynb`` file, its text (a ``str``) or the parsed
    notebook (a mapping).  The result holds every code cell except the test cells, in notebook
    order, each after a ``# %% [cell N] <grade_id>`` line and two blank lines; IPython magics
    and shell lines (``%...``, ``!...``) of a cell that is not valid Python become comments.
    The locked cells are the ones handed out (an edit is undone, a deleted one put back, each
    with a note); a cell the student added is kept, inside ``try`` so that an error in it skips
    the cell, not the module.  Outputs are never read.

    Raises :class:`NotebookProblem` when the file is no notebook (not JSON, not nbformat 4, too
    large), belongs to another module or assignment (ids of another module only), lacks a
    solution cell of the module (named, with its exercise) or holds one id twice, or when its
    code is larger than 1 MiB.
    """
    if module not in rubric.MODULES:
        raise ValueError(f"unknown module {module!r} (modules: {', '.join(rubric.MODULES)})")
    name, nb = _load(path_or_text, module)
    raw_cells = nb.get("cells")
    if not isinstance(raw_cells, list):
        raise NotebookProblem(name, "not a Jupyter notebook (no list of cells)")
    cells = _identify(module, [_cell(name, index, c) for index, c in enumerate(raw_cells, 1)])
    _check_ids(name, module, cells)
    originals = locked_cells(module)
    notes: list[str] = []
    present = {grade_id for _, _, grade_id, _ in cells if grade_id}
    order = list(originals) + list(solution_cell_ids(module))
    parts: list[tuple[str | None, str]] = []
    for index, cell_type, grade_id, source in cells:
        if cell_type != "code" or exercise_of_test_cell(grade_id or "") or _CHECK_CELL.fullmatch(source):
            continue
        if grade_id in originals:
            if source.strip() != originals[grade_id].strip():
                notes.append(
                    f"{name}: the locked cell {grade_id} (cell {index}) was edited; it is graded as handed out"
                )
            parts.append((grade_id, f"# %% [cell {index}] {grade_id}\n{originals[grade_id].rstrip()}\n"))
            continue
        if not source.strip():
            continue
        code = _comment_magics(source).rstrip()
        if grade_id is None and not _is_definitions(code):
            code = _guarded(code, index)
        label = f" {grade_id}" if grade_id else ""
        parts.append((grade_id, f"# %% [cell {index}]{label}\n{code}\n"))
    for grade_id, original in originals.items():
        if grade_id in present:
            continue
        notes.append(f"{name}: the locked cell {grade_id} was deleted; it is put back as handed out")
        before = order[: order.index(grade_id)]
        at = max((i + 1 for i, (gid, _) in enumerate(parts) if gid in before), default=0)
        parts.insert(at, (grade_id, f"# %% [restored] {grade_id}\n{original.rstrip()}\n"))
    text = f"# {module}.py, read out of {name} (code cells in notebook order, test cells left out)\n\n\n"
    text += "\n\n".join(part for _, part in parts)
    size = len(text.encode("utf-8"))
    if size > MAX_SOURCE_BYTES:
        raise NotebookProblem(name, f"its code cells hold {size} bytes, more than the {MAX_SOURCE_BYTES} a module may")
    return text, notes


def _identify(module: str, cells: list[tuple[int, str, str | None, str]]) -> list[tuple[int, str, str | None, str]]:
    """Give a solution cell whose nbgrader metadata an editor dropped (VS Code, Colab) its id
    back: a code cell without an id that defines exactly the one missing function or class."""
    present = {grade_id for _, _, grade_id, _ in cells if grade_id}
    missing = {name: grade_id for grade_id, (_, name) in solution_cell_ids(module).items() if grade_id not in present}
    if not missing:
        return cells
    out = []
    for index, cell_type, grade_id, source in cells:
        if grade_id is None and cell_type == "code":
            try:
                body = ast.parse(_comment_magics(source)).body
            except SyntaxError:
                body = []
            names = [n.name for n in body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
            if len(names) == 1 and names[0] in missing:
                grade_id = missing.pop(names[0])
        out.append((index, cell_type, grade_id, source))
    return out


@functools.cache
def _locked_cells(module: str) -> tuple[tuple[str, str], ...]:
    stub = ROOT / "assignments" / f"{module}.py"
    if stub.is_file():
        return tuple(locked_cells_of(stub.read_text(encoding="utf-8"), module).items())
    source = notebook_path(module)
    if source.is_file():  # a package without the stubs: the source notebook's locked cells
        nb = json.loads(source.read_text(encoding="utf-8"))
        return tuple(
            (
                c["metadata"]["nbgrader"]["grade_id"],
                "".join(c["source"]) if isinstance(c["source"], list) else c["source"],
            )
            for c in nb["cells"]
            if c.get("metadata", {}).get("nbgrader", {}).get("locked") and not c["metadata"]["nbgrader"].get("grade")
        )
    return ()


def locked_cells(module: str) -> dict[str, str]:
    """The locked code cells of ``module``'s notebook as handed out, ``{grade_id: source}`` in
    notebook order: its setup cell and its given defs (test cells excluded), cut out of the stub
    ``assignments/<module>.py`` by :func:`locked_cells_of` (which also cuts the notebooks that
    :mod:`grader.notebooks.build` writes)."""
    return dict(_locked_cells(module))


def locked_cells_of(text: str, module: str) -> dict[str, str]:
    """The setup cell (the code before the first def, the module docstring left out) and the given
    defs (those of no exercise, each with the statements after it) of a module's ``text``."""
    lines = text.splitlines()
    body = list(ast.parse(text).body)
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        body = body[1:]
    defs = [node for node in body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
    if not defs:
        return {}
    first = def_start(defs[0])
    before = [node for node in body if def_start(node) < first]
    setup_start = min((def_start(node) for node in before), default=first)
    setup_end = max((node.end_lineno or node.lineno for node in before), default=0)
    out = {setup_cell_id(module): cut(lines, setup_start, setup_end)}
    for index, node in enumerate(defs):
        if rubric.exercise_for_name(module, node.name) is None:
            end = def_start(defs[index + 1]) - 1 if index + 1 < len(defs) else len(lines)
            out[given_cell_id(module, node.name)] = cut(lines, def_start(node), end)
    return out


def def_start(node: ast.stmt) -> int:
    """The first line of a statement, its decorators included."""
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


def cut(lines: list[str], start: int, end: int) -> str:
    """Lines ``start``..``end`` (1-based, inclusive) without blank lines around them."""
    return "\n".join(lines[start - 1 : end]).strip("\n")


def _is_definitions(code: str) -> bool:
    """Whether a cell only defines functions and classes: it stays as written (a ``try`` around
    it would only shift its lines)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    return all(isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) for node in tree.body)


def _guarded(code: str, index: int) -> str:
    """A cell the student added, run inside ``try`` so that an error skips the cell (reported on
    stderr), not the whole module."""
    try:
        ast.parse(code)
    except SyntaxError:
        return code  # a syntax error is the module's (and reported as such); try cannot catch it
    body = "\n".join(f"    {line}" if line.strip() else line for line in code.splitlines())
    return (
        f"try:\n{body}\n"
        f"except Exception as _grader_cell_error:  # cell {index} is yours: an error there skips the cell\n"
        f"    import sys as _grader_sys\n\n"
        f'    print(f"cell {index} raised {{_grader_cell_error!r}} and was skipped", file=_grader_sys.stderr)'
    )


_MARKER = re.compile(r"^# %% \[(?:cell (\d+)|restored)\](?: (\S+))?$")


def in_cells(text: str, module: str, module_text: str) -> str:
    """``text`` (a report) with each ``<module>.py line N`` of ``module_text`` (read out of a
    notebook by :func:`read_module`) said as the notebook's cell and line: ``attention.ipynb
    cell 9, line 3``, or the locked cell by id when it was put back."""
    starts: list[tuple[int, str]] = []  # (line of the marker, how the cell is named)
    for number, line in enumerate(module_text.splitlines(), 1):
        match = _MARKER.match(line)
        if match:
            name = f"cell {match[1]}" if match[1] else f"the locked cell {match[2]} (as handed out)"
            starts.append((number, name))

    def where(match: re.Match[str]) -> str:
        line = int(match[1])
        cell = next(((at, name) for at, name in reversed(starts) if at < line), None)
        if cell is None:
            return match[0]
        return f"{module}.ipynb {cell[1]}, line {line - cell[0]}"

    return re.sub(rf"\b{re.escape(module)}\.py line (\d+)", where, text)


def submission_folder(paths: Sequence[Path], into: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Write ``<module>.py`` into ``into`` for each notebook of ``paths`` (named ``<module>.ipynb``).

    Returns ``({module written: its notes on restored locked cells}, {module: problem})``: a
    notebook that gives no module (see
    :func:`module_source`; also a file named after no module, or two notebooks of one module)
    writes nothing and is reported, and the other notebooks are still written.
    """
    ok: dict[str, list[str]] = {}
    problems: dict[str, str] = {}
    seen: dict[str, Path] = {}
    for path in paths:
        path = Path(path)
        module = path.stem
        if module not in rubric.MODULES:
            expected = ", ".join(f"{m}.ipynb" for m in rubric.MODULES)
            problems[module] = f"{path.name}: not a notebook of the course (expected one of {expected})"
            continue
        if module in seen:
            problems[module] = f"{path}: a second notebook of {module} (the first is {seen[module]}): keep one"
            ok.pop(module, None)
            (into / f"{module}.py").unlink(missing_ok=True)
            continue
        seen[module] = path
        try:
            text, restored = read_module(path, module)
        except NotebookProblem as exc:
            problems[module] = str(exc)
            continue
        (into / f"{module}.py").write_text(text, encoding="utf-8")
        ok[module] = restored
    return ok, problems


def _load(path_or_text: str | os.PathLike[str] | Mapping[str, Any], module: str) -> tuple[str, Mapping[str, Any]]:
    """``(name for messages, parsed notebook)``; nbformat 3 and older are converted by nbformat."""
    if isinstance(path_or_text, Mapping):
        return f"{module}.ipynb", path_or_text
    if isinstance(path_or_text, str):
        name, text = f"{module}.ipynb", path_or_text
    else:
        path = Path(path_or_text)
        name = path.name
        try:
            size = path.stat().st_size
            if size > MAX_NOTEBOOK_BYTES:
                raise NotebookProblem(name, f"{size} bytes, more than the {MAX_NOTEBOOK_BYTES} a notebook may weigh")
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise NotebookProblem(name, f"cannot be read ({exc.strerror or exc})") from None
    try:
        nb = json.loads(text)
    except ValueError as exc:
        raise NotebookProblem(name, f"not a Jupyter notebook: invalid JSON ({exc})") from None
    if not isinstance(nb, dict):
        raise NotebookProblem(name, "not a Jupyter notebook (the JSON is not an object)")
    version = nb.get("nbformat")
    if version == 4:
        return name, nb
    if isinstance(version, int) and 1 <= version < 4:
        import nbformat

        try:
            return name, nbformat.reads(text, as_version=4)
        except Exception as exc:  # nbformat raises many kinds on a broken old notebook
            raise NotebookProblem(name, f"not a Jupyter notebook nbformat can read ({exc})") from None
    raise NotebookProblem(name, f"not a Jupyter notebook (nbformat {version!r}, expected 4)")


def _cell(name: str, index: int, cell: Any) -> tuple[int, str, str | None, str]:
    """``(index, cell type, grade_id or None, source)`` of one cell; ``NotebookProblem`` if malformed."""
    if not isinstance(cell, Mapping):
        raise NotebookProblem(name, f"cell {index} is not a JSON object")
    source = cell.get("source", "")
    if isinstance(source, list) and all(isinstance(line, str) for line in source):
        source = "".join(source)
    if not isinstance(source, str):
        raise NotebookProblem(name, f"cell {index} has a source that is not text")
    metadata = cell.get("metadata")
    nbgrader = metadata.get("nbgrader") if isinstance(metadata, Mapping) else None
    grade_id = nbgrader.get("grade_id") if isinstance(nbgrader, Mapping) else None
    return index, str(cell.get("cell_type")), grade_id if isinstance(grade_id, str) and grade_id else None, source


def _check_ids(name: str, module: str, cells: list[tuple[int, str, str | None, str]]) -> None:
    """Refuse a notebook of another module or assignment, or one with a missing or repeated cell."""
    where: dict[str, list[int]] = {}
    for index, _, grade_id, _ in cells:
        if grade_id is not None:
            where.setdefault(grade_id, []).append(index)
    for other in rubric.MODULES:
        foreign = [g for g in where if other != module and g.startswith(f"{other}-")]
        if foreign and not any(g.startswith(f"{module}-") for g in foreign):
            raise NotebookProblem(
                name,
                f"this is a notebook of {other}, not {module} (it holds the cell {foreign[0]}): "
                f"save your {module} work as {module}.ipynb",
            )
    if not any(g.startswith(f"{module}-") for g in where):
        raise NotebookProblem(
            name,
            f"no cell of {module}: not the {module} notebook of the {ASSIGNMENT} assignment "
            f"(start again from the notebook you were given)",
        )
    repeated = [f"{g} (cells {', '.join(map(str, where[g]))})" for g in where if len(where[g]) > 1]
    if repeated:
        raise NotebookProblem(
            name,
            f"the cell id {'; '.join(repeated)} appears more than once: a copied cell keeps its id, so "
            f"delete the copy (or move your code into the original cell)",
        )
    code_ids = {grade_id for _, cell_type, grade_id, _ in cells if cell_type == "code"}
    missing = [
        f"{grade_id} (exercise {exercise}, {def_name})"
        for grade_id, (exercise, def_name) in solution_cell_ids(module).items()
        if grade_id not in code_ids
    ]
    if missing:
        raise NotebookProblem(
            name,
            f"the solution cell {'; '.join(missing)} is missing or no longer a code cell: was it deleted? "
            f"copy it back from the notebook you were given",
        )


def _comment_magics(source: str) -> str:
    """``source`` with IPython magics and shell lines commented out, when it is not valid Python as it is."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(source, "<cell>", "exec", dont_inherit=True)
        return source
    except (SyntaxError, ValueError):
        pass
    lines = source.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None and lines[first].lstrip().startswith("%%"):
        magic = lines[first].lstrip()[2:].split(maxsplit=1)
        if not magic or magic[0] not in _PYTHON_CELL_MAGICS:
            return "\n".join(f"# {line}" if line.strip() else line for line in lines)
    out = []
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            line = f"{line[: len(line) - len(stripped)]}# {stripped}"
        out.append(line)
    return "\n".join(out)


def stage_modules(submission: Path, into: Path) -> list[str]:
    """Stage ``submission`` (a folder or a zip) into the existing folder ``into`` as module files;
    the staging notes.

    Its ``.py`` module files are copied as :func:`grader.grading.staging.stage` copies them; a module submitted only
    as a notebook (``<module>.ipynb``, found as a module file is: at most two folders deep, the
    shallowest first) is read out of its solution cells
    (:func:`submission_folder`, as ``python -m grader check`` does) into
    ``<module>.py``.  A notebook that gives no module is a note ("the module scores 0").
    Raises :class:`grader.grading.staging.Rejected` for a zip that cannot be read as a whole.
    """
    notes = staging.stage(submission, into)
    wanted = {f"{m}.ipynb" for m in rubric.MODULES if not (into / f"{m}.py").exists()}
    if not wanted:
        return notes
    with tempfile.TemporaryDirectory(prefix="grader-notebooks-") as tmp:
        notes += staging.stage(submission, Path(tmp), wanted, MAX_NOTEBOOK_BYTES)
        ok, problems = submission_folder(sorted(Path(tmp).glob("*.ipynb")), into)
    notes += [f"{module}.ipynb: {problem}: the module scores 0" for module, problem in sorted(problems.items())]
    notes += [note for _, restored in sorted(ok.items()) for note in restored]
    return notes
