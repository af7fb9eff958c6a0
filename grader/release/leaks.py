"""The leak check of a student release: nothing secret may ship to students.

:func:`scan` looks at a release folder (built by :mod:`grader.release.student`) with the
repository it came from, and returns every finding as a :class:`Leak` (an empty list: the
release may be published).  It checks:

1. **Generated files** anywhere outside ``.git/``: ``__pycache__``, ``*.pyc``, ``*.pyo``,
   ``.hypothesis``, ``.ipynb_checkpoints``, ``.pytest_cache``, ``.mypy_cache``,
   ``.ruff_cache``, ``*.egg-info``, ``.DS_Store`` (a generated folder is reported once and
   not looked into), and nested ``.git`` folders (a second history).
2. **Staff-only paths**: ``solutions/``, ``tests/hidden/``, ``tests/selftest/``,
   ``grader/authoring/``, ``grader/mistakes/*.toml``, ``grader/testing/reference.py``,
   ``grader/release/`` and ``nbgrader/source/``.
3. **Marker text** in any text file: ``BEGIN SOLUTION``, ``END SOLUTION``, ``BEGIN HIDDEN
   TESTS``, ``END HIDDEN TESTS``, line by line.
4. **Secret code**, compared as normalized ASTs (:func:`canonical`), so that renaming
   variables, reformatting, or changing comments, docstrings and annotations does not hide
   a copy.  The secrets (:func:`secrets`) are every marked block of ``solutions/*.py``, the
   whole body of every function holding one, and the body of every test function of
   ``tests/hidden/*.py``.  Every ``.py`` file of the release and every code cell of its
   notebooks is parsed (a file that does not parse is a finding: the check cannot vouch
   for it); a window slides over every statement list (module, class and function bodies
   and the bodies of ``if``/``for``/``while``/``with``/``try``/``match``), and a window
   whose canonical form equals a secret's is reported with the secret's label.
5. **Hidden tests**: the name of a ``tests/hidden/`` test function as a word in any text
   file, and any function or class of the release marked ``pytest.mark.hidden`` or
   ``pytest.mark.oracle("reference")`` (directly, through a module-level alias of the mark,
   or through ``pytestmark``).
6. **Git**: the release is a repository (``.git``) whose ``git rev-list --all --count`` is
   1 and whose ``git status --porcelain`` is empty (the user's and the system's git
   configuration are not read).

What these checks compare is text and syntax.  Whether a function of the public tests
*works* as an answer (a formula oracle, which shares no code with the solutions) is the
answer check's question, :mod:`grader.release.answers`, which reports its findings as
:class:`Leak` too; ``python -m grader release`` runs both.

Checks 3 and 5 read text files only: UTF-8, without NUL bytes, at most 2 MB (binary data
such as the fingerprints' ``*.pt`` is skipped).

**Which names count as global.**  :func:`canonical` renames every name to ``_v0``,
``_v1``, ... in order of first appearance, except builtins and the ``known_globals`` it is
given, which stay as written.  The scan gives both sides the *same* set
(:func:`known_globals`): the names bound at the module level of the secrets' own files,
``solutions/*.py`` and ``tests/hidden/*.py`` together (imports such as ``math``,
``torch``, ``nn``, ``F``; the functions and classes they define, such as ``split_heads``
or ``bernoulli_log_likelihood``; module-level assignments).  These names keep the small
secrets specific (``return bernoulli_log_likelihood(x, recon_logits) - ...`` is not any
``return f(a, b) - g(c, d)``), and a copy has to call the same modules and helpers to
work anyway.  Each release file's own globals are not used: a secret's canonical form
then depends on the copied statements alone, so a copy still matches when pasted into a
file that lacks an import or a helper of the solution's module (with file-dependent sets,
``math`` would stay ``math`` on one side and become ``_v3`` on the other).  Out of reach:
a copy that renames a module alias (``import torch as T``) or a helper it calls.
"""

import ast
import builtins
import fnmatch
import json
import os
import re
import subprocess
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: The smallest secret, in AST nodes (:func:`_size`: every node but the expression contexts
#: ``Load``/``Store``/``Del``, after docstrings and annotations are dropped).  The marked
#: blocks of ``solutions/`` weigh 11 to 220: the smallest are one-line answers, ``elbo``'s
#: ``return bernoulli_log_likelihood(x, recon_logits) - gaussian_kl_standard_normal(mu, logvar)``
#: (11), ``causal_mask``'s ``return torch.ones(length, length, dtype=torch.bool,
#: device=device).tril()`` (13), ``bernoulli_log_likelihood``'s (16).  Trivial statements that
#: legitimate code repeats by chance weigh less: ``return x`` 2, ``raise ValueError("...")``
#: and the stubs' ``raise NotImplementedError("...")`` 4, ``x = y + 1`` then ``return x`` 8.
#: 10 keeps every real block and body (none is skipped) and ignores those.
MIN_SIZE = 10
#: Text files larger than this are not read for markers and hidden test names.
MAX_TEXT_BYTES = 2 * 1024 * 1024

#: Generated folders (reported once, not looked into).
GENERATED_DIRS = frozenset(
    {"__pycache__", ".hypothesis", ".ipynb_checkpoints", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
)
#: Generated files and folders, by glob on the name.
GENERATED_GLOBS = ("*.pyc", "*.pyo", "*.egg-info", ".DS_Store")
#: Staff-only folders, relative to the release root.
STAFF_DIRS = ("solutions", "tests/hidden", "tests/selftest", "grader/authoring", "grader/release", "nbgrader/source")
#: Staff-only files, by glob relative to the release root.
STAFF_FILES = ("grader/mistakes/*.toml", "grader/testing/reference.py")
#: Text that marks answers and hidden tests in the staff files.
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")

_BEGIN = re.compile(r"^\s*#+\s*BEGIN SOLUTION\b")
_END = re.compile(r"^\s*#+\s*END SOLUTION\b")
_BUILTINS = frozenset(dir(builtins))
_GIT_ENV_DROP = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
)
#: Statement-list fields: the bodies a window slides over.
_BODIES = ("body", "orelse", "finalbody")


@dataclass(frozen=True, order=True)
class Leak:
    """One finding of :func:`scan`; findings sort by path, then line."""

    path: str  # relative POSIX path in the release ("" for repository-wide findings such as the commit count)
    line: int  # 1-based, 0 when not applicable
    what: str

    def __str__(self) -> str:
        """``path:line: what``."""
        return f"{self.path}:{self.line}: {self.what}"


@dataclass(frozen=True)
class Secret:
    """Code that must not ship: its label, its canonical statements and its size.

    ``names`` (not compared) holds the original names behind ``_v0``, ``_v1``, ...: a copy
    whose names differ is reported as renamed.
    """

    label: str  # e.g. "solutions/attention.py:40-52 (scaled_dot_product_attention)"
    statements: tuple[str, ...]  # canonical form, one string per top-level statement
    size: int  # number of AST nodes
    names: tuple[str, ...] = field(default=(), compare=False, repr=False)


# ---- normalization ---------------------------------------------------------------------


def _bare_string(node: ast.AST) -> bool:
    """A statement that is only a string: a docstring, or a no-op string anywhere."""
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


class _Normalizer(ast.NodeTransformer):
    """Drops docstrings and annotations and passes every binding name through ``rename``."""

    def __init__(self, rename: Callable[[str], str]) -> None:
        self.rename = rename

    def generic_visit(self, node: ast.AST) -> ast.AST:
        for name in _BODIES:
            body = getattr(node, name, None)
            if isinstance(body, list):
                setattr(node, name, [s for s in body if not _bare_string(s)])
        return super().generic_visit(node)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = self.rename(node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = self.rename(node.arg)
        node.annotation = None
        node.type_comment = None
        return node

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.AST:
        node.name = self.rename(node.name)
        node.returns = None
        node.type_comment = None
        return self.generic_visit(node)

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.name = self.rename(node.name)
        return self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST | None:
        if node.value is None:
            return None
        return self.visit(ast.copy_location(ast.Assign(targets=[node.target], value=node.value), node))

    def _names(self, node: ast.Global | ast.Nonlocal) -> ast.AST:
        node.names = [self.rename(n) for n in node.names]
        return node

    visit_Global = _names
    visit_Nonlocal = _names

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        if node.name is not None:
            node.name = self.rename(node.name)
        return self.generic_visit(node)

    def _capture(self, node: ast.MatchAs | ast.MatchStar) -> ast.AST:
        if node.name is not None:
            node.name = self.rename(node.name)
        return self.generic_visit(node)

    visit_MatchAs = _capture
    visit_MatchStar = _capture

    def visit_MatchMapping(self, node: ast.MatchMapping) -> ast.AST:
        if node.rest is not None:
            node.rest = self.rename(node.rest)
        return self.generic_visit(node)


def _copy(node: ast.AST) -> ast.AST:
    """A deep copy of ``node``'s fields (not its positions), much faster than ``copy.deepcopy``."""
    new = node.__class__()
    for name in node._fields:
        value = getattr(node, name, None)
        if isinstance(value, ast.AST):
            value = _copy(value)
        elif isinstance(value, list):
            value = [_copy(v) if isinstance(v, ast.AST) else v for v in value]
        setattr(new, name, value)
    return new


def _normalize(statements: Sequence[ast.stmt], rename: Callable[[str], str]) -> list[ast.stmt]:
    """Normalized deep copies of ``statements`` (bare strings and valueless annotations dropped)."""
    normalizer = _Normalizer(rename)
    out = []
    for stmt in statements:
        if _bare_string(stmt):
            continue
        new = normalizer.visit(_copy(stmt))
        if isinstance(new, ast.stmt):
            out.append(new)
    return out


def _renamer(known: Collection[str]) -> tuple[Callable[[str], str], dict[str, str]]:
    """A renaming to ``_v0``, ``_v1``, ... in order of first request, and its mapping."""
    mapping: dict[str, str] = {}

    def rename(name: str) -> str:
        if name in _BUILTINS or name in known:
            return name
        if name not in mapping:
            mapping[name] = f"_v{len(mapping)}"
        return mapping[name]

    return rename, mapping


def _dump(statements: Sequence[ast.stmt]) -> tuple[str, ...]:
    return tuple(ast.dump(s, annotate_fields=False, include_attributes=False) for s in statements)


def canonical(statements: Sequence[ast.stmt], known_globals: Collection[str] = ()) -> tuple[str, ...]:
    """The canonical form of ``statements``, one string per statement (the inputs are not changed).

    Docstrings (every statement that is only a string), comments and type annotations are
    dropped (an annotated assignment with a value becomes a plain assignment, one without is
    dropped); every name (``Name``, function arguments, and the names that ``def``,
    ``class``, ``except ... as``, ``global``/``nonlocal`` and ``match`` patterns bind) that
    is neither a builtin nor in ``known_globals`` becomes ``_v0``, ``_v1``, ... in order of
    first appearance, consistently across all the statements.  Attribute names, keyword
    names and constants stay.  Each statement is then ``ast.dump``-ed without field names
    and positions.
    """
    return _canonical(statements, frozenset(known_globals))[0]


def _canonical(statements: Sequence[ast.stmt], known: Collection[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """:func:`canonical` and the original names behind ``_v0``, ``_v1``, ..."""
    rename, mapping = _renamer(known)
    dumped = _dump(_normalize(statements, rename))
    return dumped, tuple(mapping)


def _kind(statement: ast.stmt) -> str | None:
    """The node type of ``statement``'s canonical form (None: it has none), read from the AST."""
    if _bare_string(statement) or (isinstance(statement, ast.AnnAssign) and statement.value is None):
        return None
    return "Assign" if isinstance(statement, ast.AnnAssign) else type(statement).__name__


def _size(statements: Sequence[ast.stmt]) -> int:
    """AST nodes of the normalized ``statements``, expression contexts (``Load``, ...) aside."""
    normalized = _normalize(statements, lambda n: n)
    return sum(1 for s in normalized for n in ast.walk(s) if not isinstance(n, ast.expr_context))


# ---- the secrets -----------------------------------------------------------------------


@dataclass
class _Source:
    """One secret before canonicalization."""

    label: str
    statements: list[ast.stmt]
    group: str  # secrets of the same group with the same statements are one secret


def module_globals(tree: ast.Module) -> set[str]:
    """The names bound at the module level of ``tree`` (inside module-level ``if``/``try``/``with``
    too): imports (``import torch.nn.functional as F`` binds ``F``, ``import os.path`` ``os``),
    ``def`` and ``class`` names, and assignment targets."""
    names: set[str] = set()
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import):
            names.update(a.asname or a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.update(a.asname or a.name for a in node.names if a.name != "*")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, ast.If | ast.Try | ast.TryStar | ast.With):
            for name in (*_BODIES, "handlers"):
                for child in getattr(node, name, []):
                    stack.extend(child.body if isinstance(child, ast.ExceptHandler) else [child])
    return names


def _parse_repo_file(path: Path, repo: Path) -> ast.Module:
    try:
        return ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError) as exc:
        raise ValueError(f"{path.relative_to(repo).as_posix()} does not parse: {exc}") from exc


def _secret_files(repo: Path) -> list[tuple[str, Path, ast.Module]]:
    """``(kind, file, tree)`` of ``solutions/*.py`` and ``tests/hidden/*.py`` (either may be absent)."""
    found = []
    for kind, folder in (("solution", repo / "solutions"), ("hidden", repo / "tests" / "hidden")):
        for path in sorted(folder.glob("*.py")) if folder.is_dir() else []:
            found.append((kind, path, _parse_repo_file(path, repo)))
    return found


def known_globals(repo: Path) -> frozenset[str]:
    """The names kept as written on both sides of the comparison: every name bound at the
    module level of ``solutions/*.py`` and ``tests/hidden/*.py`` (:func:`module_globals`);
    see the module docstring."""
    return _known(_secret_files(repo))


def _known(files: list[tuple[str, Path, ast.Module]]) -> frozenset[str]:
    return frozenset().union(*(module_globals(tree) for _, _, tree in files))


def _statement_lists(node: ast.AST) -> Iterator[list[ast.stmt]]:
    """The statement lists directly under ``node``."""
    for name in _BODIES:
        body = getattr(node, name, None)
        if isinstance(body, list):
            yield body
    for handler in getattr(node, "handlers", []):
        yield handler.body
    for case in getattr(node, "cases", []):
        yield case.body


def _marked(
    node: ast.AST, begin: int, end: int, scope: tuple[str, ...] = (), function: ast.AST | None = None
) -> tuple[list[ast.stmt], tuple[str, ...], ast.FunctionDef | ast.AsyncFunctionDef | None] | None:
    """The statements strictly between lines ``begin`` and ``end`` in the outermost statement
    list holding some, with the qualified name of their scope and their innermost function."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        scope = (*scope, node.name)
        if not isinstance(node, ast.ClassDef):
            function = node
    for body in _statement_lists(node):
        inside = [s for s in body if begin < s.lineno and (s.end_lineno or s.lineno) < end]
        if inside:
            fn = function if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef) else None
            return inside, scope, fn
        for stmt in body:
            if stmt.lineno < begin < (stmt.end_lineno or stmt.lineno):  # a compound statement around the block
                found = _marked(stmt, begin, end, scope, function)
                if found:
                    return found
    return None


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    return body[1:] if body and _bare_string(body[0]) else body


def _span(statements: Sequence[ast.stmt]) -> str:
    return f"{statements[0].lineno}-{statements[-1].end_lineno or statements[-1].lineno}"


def _solution_sources(rel: str, text: str, tree: ast.Module) -> list[_Source]:
    """A marked block's statements, then the body of each function holding one."""
    lines = text.splitlines()
    begins = [i for i, line in enumerate(lines, 1) if _BEGIN.match(line)]
    ends = [i for i, line in enumerate(lines, 1) if _END.match(line)]
    sources: list[_Source] = []
    functions: dict[int, tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]] = {}
    for begin in begins:
        end = next((e for e in ends if e > begin), None)
        found = _marked(tree, begin, end) if end is not None else None
        if found is None:
            continue
        statements, scope, function = found
        qualname = ".".join(scope) or "<module>"
        group = f"{rel}:{qualname}"
        sources.append(_Source(f"{rel}:{begin}-{end} ({qualname})", statements, group))
        if function is not None:
            functions.setdefault(id(function), (group, function))
    for group, function in functions.values():
        body = _without_docstring(function.body)
        qualname = group.split(":", 1)[1]
        sources.append(_Source(f"{rel}:{_span(body)} (the body of {qualname})", body, group))
    return sources


def _hidden_tests(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name.startswith("test_")
    ]


def _hidden_sources(rel: str, tree: ast.Module) -> list[_Source]:
    sources = []
    for test in _hidden_tests(tree):
        body = _without_docstring(test.body)
        if body:
            sources.append(_Source(f"{rel}:{_span(body)} (hidden test {test.name})", body, f"{rel}:{test.name}"))
    return sources


def _secrets(repo: Path, files: list[tuple[str, Path, ast.Module]], min_size: int) -> list[Secret]:
    known = _known(files)
    found: list[Secret] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for kind, path, tree in files:
        rel = path.relative_to(repo).as_posix()
        if kind == "solution":
            sources = _solution_sources(rel, path.read_text(encoding="utf-8", errors="replace"), tree)
        else:
            sources = _hidden_sources(rel, tree)
        for source in sources:
            size = _size(source.statements)
            statements, names = _canonical(source.statements, known)
            if size < min_size or not statements or (source.group, statements) in seen:
                continue  # trivial, or a function body that is just its one marked block
            seen.add((source.group, statements))
            found.append(Secret(source.label, statements, size, names))
    return found


def secrets(repo: Path, min_size: int = MIN_SIZE) -> list[Secret]:
    """The secret code of ``repo``, in file order.

    For each ``solutions/*.py``: every marked block (the statements between a ``### BEGIN
    SOLUTION`` line and its ``### END SOLUTION``, in the innermost body holding them), then
    the whole body (docstring aside) of every function or method holding a marked block,
    unless that body is the block itself.  For each ``tests/hidden/*.py`` (the folder may
    not exist): the body of every function named ``test_*``.  Secrets smaller than
    ``min_size`` AST nodes are skipped.  Canonical forms use :func:`known_globals`.
    """
    return _secrets(repo, _secret_files(repo), min_size)


def _hidden_names(repo: Path, files: list[tuple[str, Path, ast.Module]]) -> dict[str, str]:
    """``{test function name: its file}`` of ``tests/hidden/*.py`` (empty without the folder)."""
    return {
        test.name: path.relative_to(repo).as_posix()
        for kind, path, tree in files
        if kind == "hidden"
        for test in _hidden_tests(tree)
    }


# ---- the scan --------------------------------------------------------------------------


def _walk(release: Path) -> tuple[list[Leak], list[tuple[str, Path]]]:
    """Findings of checks 1 and 2, and ``(relative path, file)`` of every regular file to read."""
    found: list[Leak] = []
    files: list[tuple[str, Path]] = []
    for folder, dirs, names in os.walk(release):
        here = Path(folder)
        base = here.relative_to(release).as_posix()
        prefix = "" if base == "." else base + "/"
        keep = []
        for name in sorted(dirs):
            rel = prefix + name
            if name == ".git":
                if prefix:
                    found.append(Leak(rel, 0, "a nested git repository: its history may hold anything"))
                continue
            if name in GENERATED_DIRS or any(fnmatch.fnmatchcase(name, g) for g in GENERATED_GLOBS):
                found.append(Leak(rel, 0, f"generated folder {name}/"))
                continue
            if rel in STAFF_DIRS:
                found.append(Leak(rel, 0, f"staff-only folder {rel}/"))
            keep.append(name)
        dirs[:] = keep
        for name in sorted(names):
            rel = prefix + name
            path = here / name
            if any(fnmatch.fnmatchcase(name, g) for g in GENERATED_GLOBS):
                found.append(Leak(rel, 0, f"generated file {name}"))
                continue
            if any(fnmatch.fnmatchcase(rel, g) for g in STAFF_FILES):
                found.append(Leak(rel, 0, f"staff-only file {rel}"))
            if not path.is_symlink() and path.is_file():
                files.append((rel, path))
    return found, files


def _text(path: Path) -> str | None:
    """The file's text, or None for a binary, non-UTF-8 or oversized file."""
    try:
        if path.stat().st_size > MAX_TEXT_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _text_findings(rel: str, text: str, hidden: re.Pattern[str] | None, names: dict[str, str]) -> list[Leak]:
    """Checks 3 and 5 (names) on one text file."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for marker in MARKERS:
            if marker in line:
                found.append(Leak(rel, number, f"solution marker text {marker!r}"))
        if hidden is not None:
            for name in sorted(set(hidden.findall(line))):
                found.append(Leak(rel, number, f"names the hidden test {name} ({names[name]})"))
    return found


def _dotted(node: ast.AST) -> list[str]:
    """``["pytest", "mark", "hidden"]`` for ``pytest.mark.hidden``; [] for anything else."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id, *reversed(parts)]
    return []


def _staff_mark(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """What staff-only mark ``node`` is (``hidden`` or ``oracle("reference")``), if any."""
    if isinstance(node, ast.List | ast.Tuple):
        return next((m for m in (_staff_mark(e, aliases) for e in node.elts) if m), None)
    call = node if isinstance(node, ast.Call) else None
    chain = _dotted(call.func if call else node)
    if len(chain) == 1 and chain[0] in aliases:
        return aliases[chain[0]]
    if len(chain) < 2 or chain[-2] != "mark":
        return None
    if chain[-1] == "hidden":
        return "hidden"
    if chain[-1] == "oracle" and call is not None:
        values = [*call.args, *(k.value for k in call.keywords)]
        if any(isinstance(v, ast.Constant) and v.value == "reference" for v in values):
            return 'oracle("reference")'
    return None


def _mark_findings(rel: str, tree: ast.Module, where: str = "") -> list[Leak]:
    """Check 5 (marks): functions and classes marked hidden or oracle("reference")."""
    aliases: dict[str, str] = {}
    for stmt in tree.body:  # hidden = pytest.mark.hidden, then @hidden
        if isinstance(stmt, ast.Assign):
            mark = _staff_mark(stmt.value, aliases)
            for target in stmt.targets:
                if mark and isinstance(target, ast.Name) and target.id != "pytestmark":
                    aliases[target.id] = mark
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            for decorator in node.decorator_list:
                mark = _staff_mark(decorator, aliases)
                if mark:
                    found.append(Leak(rel, decorator.lineno, f"{where}{node.name} is marked {mark} (staff only)"))
        elif isinstance(node, ast.Assign) and any(_dotted(t) == ["pytestmark"] for t in node.targets):
            mark = _staff_mark(node.value, aliases)
            if mark:
                found.append(Leak(rel, node.lineno, f"{where}pytestmark marks every test {mark} (staff only)"))
    return found


class _Matcher:
    """Finds the secrets in the statement lists of a tree (check 4)."""

    def __init__(self, found: Sequence[Secret], known: Collection[str]) -> None:
        self.known = known
        #: {window length: {statement kinds: secrets}}: canonical forms are computed only for
        #: the windows whose statements have a secret's kinds.
        self.by_length: dict[int, dict[tuple[str, ...], list[Secret]]] = {}
        for secret in found:
            kinds = tuple(s.split("(", 1)[0] for s in secret.statements)
            self.by_length.setdefault(len(kinds), {}).setdefault(kinds, []).append(secret)

    def findings(
        self, rel: str, tree: ast.Module, where: str = "", line: Callable[[int], int] = lambda n: n
    ) -> list[Leak]:
        """A finding per window of ``tree`` whose canonical form is a secret's; ``where`` prefixes
        the description, ``line`` maps the tree's line numbers to the file's."""
        found: list[Leak] = []
        if not self.by_length:
            return found
        for node in ast.walk(tree):
            for body in _statement_lists(node):
                found += self._windows(rel, body, where, line)
        return found

    def _windows(self, rel: str, body: list[ast.stmt], where: str, line: Callable[[int], int]) -> list[Leak]:
        found: list[Leak] = []
        kinds = [(s, _kind(s)) for s in body]
        body = [s for s, kind in kinds if kind]  # docstrings and bare annotations weigh nothing
        names = [kind for _, kind in kinds if kind]
        for n, by_kinds in self.by_length.items():
            for i in range(len(body) - n + 1):
                candidates = by_kinds.get(tuple(names[i : i + n]))
                if not candidates:
                    continue
                window = body[i : i + n]
                statements, original = _canonical(window, self.known)
                for secret in candidates:
                    if statements == secret.statements:
                        renamed = ", variables renamed" if original != secret.names else ""
                        start, stop = window[0].lineno, window[-1].end_lineno or window[-1].lineno
                        found.append(
                            Leak(rel, line(start), f"{where}lines {start}-{stop} copy {secret.label}{renamed}")
                        )
        return found


def _notebook_cells(text: str) -> list[str]:
    """The sources of a notebook's code cells, IPython magics and shell lines commented out."""
    data = json.loads(text)
    cells = data.get("cells") if isinstance(data, dict) else None
    if not isinstance(cells, list):
        raise ValueError("no list of cells")
    sources = []
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        lines = [("#" + x if x.lstrip().startswith(("%", "!", "?")) else x) for x in source.splitlines()]
        sources.append("\n".join(lines))
    return sources


_PARSE_ERRORS = (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError)


def _code_findings(rel: str, path: Path, text: str | None, matcher: _Matcher) -> list[Leak]:
    """Checks 4 and 5 (marks) on a ``.py`` file or a notebook; a file that cannot be read is a finding."""
    found: list[Leak] = []
    if rel.endswith(".ipynb"):
        if text is None:
            return [Leak(rel, 0, "a notebook that is not UTF-8 text (or is over 2 MB): the leak check cannot read it")]
        try:
            cells = _notebook_cells(text)
        except (ValueError, RecursionError) as exc:  # json.JSONDecodeError is a ValueError
            return [Leak(rel, 0, f"not a readable notebook ({exc}): the leak check cannot read its code")]
        for number, source in enumerate(cells, 1):
            where = f"code cell {number}, "
            try:
                tree = ast.parse(source)
            except _PARSE_ERRORS as exc:
                found.append(Leak(rel, 0, f"{where}does not parse as Python ({exc}): the leak check cannot read it"))
                continue
            found += matcher.findings(rel, tree, where, line=lambda n: 0)
            found += [Leak(leak.path, 0, leak.what) for leak in _mark_findings(rel, tree, where)]
        return found
    try:
        tree = ast.parse(path.read_bytes(), filename=rel)
    except _PARSE_ERRORS as exc:
        number = getattr(exc, "lineno", None) or 0
        return [Leak(rel, number, f"does not parse as Python ({exc}): the leak check cannot read its code")]
    return matcher.findings(rel, tree) + _mark_findings(rel, tree)


def _git(release: Path, *args: str) -> tuple[str | None, str]:
    """``(stdout, "")`` of ``git -C release args``, or ``(None, why it failed)``."""
    env = {k: v for k, v in os.environ.items() if k not in _GIT_ENV_DROP}
    env.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    cmd = ["git", "--no-optional-locks", "-C", str(release), *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"git {args[0]} failed: {exc}"
    if proc.returncode != 0:
        return None, f"git {args[0]} failed (rc {proc.returncode}): {proc.stderr.strip()}"
    return proc.stdout.strip(), ""


def _git_findings(release: Path) -> list[Leak]:
    """Check 6: a repository with one commit and a clean tree."""
    if not (release / ".git").exists():
        return [Leak("", 0, "not a git repository: the release must be a fresh repository with one commit")]
    found = []
    count, why = _git(release, "rev-list", "--all", "--count")
    if count is None:
        found.append(Leak("", 0, why))
    elif count != "1":
        found.append(Leak("", 0, f"{count} commits, not exactly one: the history may hold anything ever committed"))
    status, why = _git(release, "status", "--porcelain")
    if status is None:
        found.append(Leak("", 0, why))
    elif status:
        found.append(Leak("", 0, "uncommitted changes: " + "; ".join(status.splitlines()[:5])))
    return found


def scan(release: Path, repo: Path) -> list[Leak]:
    """Every finding of the leak check on the folder ``release``, built from ``repo``, sorted
    (see the module docstring for the six checks); an empty list: nothing secret ships."""
    release, repo = Path(release), Path(repo)
    staff = _secret_files(repo)
    matcher = _Matcher(_secrets(repo, staff, MIN_SIZE), _known(staff))
    names = _hidden_names(repo, staff)
    hidden = re.compile(r"(?<!\w)(" + "|".join(map(re.escape, sorted(names))) + r")(?!\w)") if names else None
    found, files = _walk(release)
    for rel, path in files:
        text = _text(path)
        if text is not None:
            found += _text_findings(rel, text, hidden, names)
        if rel.endswith((".py", ".pyw", ".pyi", ".ipynb")):
            found += _code_findings(rel, path, text, matcher)
    found += _git_findings(release)
    return sorted(set(found))
