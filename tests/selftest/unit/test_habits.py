"""Habits of ``grader/`` that ruff and mypy do not check: every public function has a
docstring and type hints on its parameters and its return."""

import ast

import pytest

from grader import ROOT

#: Hook implementations whose signature pytest defines; their names say what they are.
HOOK_PREFIX = "pytest_"


def _public(node):
    """A function whose name does not start with ``_`` and that is not an ``@overload`` stub."""
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or node.name.startswith("_"):
        return False
    return not any(getattr(d, "id", getattr(d, "attr", None)) == "overload" for d in node.decorator_list)


def public_functions(tree):
    """``(qualified name, node)`` for module-level functions and methods of public classes
    whose names do not start with ``_``; functions nested in functions are private."""
    for node in tree.body:
        if _public(node):
            yield node.name, node
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if _public(item):
                    yield f"{node.name}.{item.name}", item


def missing_hints(node):
    """The parameters (and ``return``) of ``node`` without an annotation."""
    args = node.args
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    params += [a for a in (args.vararg, args.kwarg) if a is not None]
    missing = [a.arg for a in params if a.annotation is None and a.arg not in ("self", "cls")]
    if node.returns is None:
        missing.append("return")
    return missing


def _modules():
    return sorted((ROOT / "grader").rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_public_functions_have_docstrings_and_type_hints(path):
    """Each public function of the module says what it does and what it takes and returns."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    problems = []
    for name, node in public_functions(tree):
        if name.startswith(HOOK_PREFIX) or name.split(".")[-1].startswith(HOOK_PREFIX):
            continue
        where = f"{path.relative_to(ROOT)}:{node.lineno} {name}"
        if ast.get_docstring(node) is None and not _overrides(tree, name):
            problems.append(f"{where}: no docstring")
        missing = missing_hints(node)
        if missing:
            problems.append(f"{where}: no type hint for {', '.join(missing)}")
    assert not problems, "\n".join(problems)


def _overrides(tree, name):
    """A method of a subclass that overrides a documented base method keeps its docstring there."""
    if "." not in name:
        return False
    cls_name = name.split(".")[0]
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls_name)
    return bool(cls.bases)


def test_the_habits_check_can_fail():
    """An undocumented, unannotated public function is reported; a private one is not."""
    tree = ast.parse(
        "def f(x, *, y=1):\n    pass\ndef _g(x):\n    pass\nclass C:\n    def m(self, a: int) -> int:\n"
        "        '''Doc.'''\n        return a\n"
    )
    found = {name: missing_hints(node) for name, node in public_functions(tree)}
    assert found == {"f": ["x", "y", "return"], "C.m": []}
