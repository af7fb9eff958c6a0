"""Canonical code for stacking student solutions (OverCode-style, static): cut, normalize, label.

* :func:`exercise_source` cuts one exercise out of a student's module: the top-level functions
  and classes the exercise covers (``Exercise.names`` in :mod:`grader.rubric`), the module-level
  helpers they call, transitively (Caesar's complaint #28: a helper shown apart from its
  caller), and the import statements that bind a name they use (so ``fn.softmax`` still says
  which ``fn``), in file order.
* :func:`normalize` gives a canonical text of code, so that two solutions that differ only by
  names, comments, docstrings, annotations, formatting or a known synonym give the same text;
  :func:`stack_key` is a short hash of it.  OverCode renames variables by their runtime values;
  for tensor code a static, scope-aware renaming in binding order suffices.
* :func:`approach` labels the main technique (einsum, matmul, mul-sum, loop), for routing
  contrasting solutions to a reviewer and for the gallery's cards.

The synonyms :func:`normalize` rewrites to one form (the first of each line):

* ``a @ b`` = ``torch.matmul(a, b)`` = ``a.matmul(b)``;
* ``x.mT`` = ``x.transpose(-2, -1)`` = ``x.transpose(-1, -2)`` = ``x.swapaxes(-2, -1)`` =
  ``x.swapdims(-2, -1)`` = ``torch.transpose(x, -2, -1)``;
* ``torch.where(m, s, v)`` = ``s.masked_fill(~m, v)`` (and ``s.masked_fill(m, v)`` =
  ``torch.where(~m, s, v)``); ``~~m`` = ``m``; ``~m`` = ``m.logical_not()`` =
  ``torch.logical_not(m)``;
* ``torch.softmax(x, dim=d)`` = ``torch.softmax(x, d)`` = ``F.softmax(x, dim=d)`` =
  ``x.softmax(d)`` = ``torch.nn.Softmax(dim=d)(x)`` (and the same for ``log_softmax``);
* ``d ** 0.5`` = ``math.sqrt(d)``;
* ``x.size(i)`` = ``x.shape[i]`` = ``x.size()[i]`` = ``x.size(dim=i)``;
* ``float('-inf')`` = ``-float('inf')`` = ``-math.inf`` = ``-torch.inf`` (and ``float('inf')`` =
  ``math.inf`` = ``torch.inf``);
* import aliases: every global name bound by an import is written as the full dotted path
  (``F.softmax`` and ``fn.softmax`` after ``import torch.nn.functional as fn`` both become
  ``torch.nn.functional.softmax``); without an import, ``F``, ``nn`` and ``np`` are taken as
  the usual ``torch.nn.functional``, ``torch.nn`` and ``numpy``;
* keyword arguments of a call in name order; arithmetic on two number literals folded.

Every catalogued mistake of ``grader/mistakes/`` normalizes differently from the reference
(``tests/selftest/unit/test_review_gallery.py``): the gallery never stacks a mistake with the
right answer.
"""

import ast
import builtins
import hashlib
import operator
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from grader import rubric

#: The length of a :func:`stack_key`, in hex digits.
KEY_CHARS = 12

#: Global names taken as these modules when the code does not import them itself.
DEFAULT_ALIASES = {"F": "torch.nn.functional", "nn": "torch.nn", "np": "numpy"}

#: Dotted names that are modules (a call ``<module>.softmax(x)`` is a function, not a method).
MODULES = frozenset(
    {"torch", "torch.nn", "torch.nn.functional", "torch.special", "torch.linalg", "numpy", "math", "einops"}
)

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_BUILTINS = frozenset(dir(builtins))


# ---- cutting one exercise out of a module ------------------------------------------------------


def _defined_name(node: ast.stmt) -> str | None:
    """The name a top-level ``def``/``class`` statement binds (``None`` for other statements)."""
    return node.name if isinstance(node, (*_FUNCTIONS, ast.ClassDef)) else None


def _import_names(node: ast.Import | ast.ImportFrom) -> set[str]:
    """The names an import statement binds."""
    out = set()
    for alias in node.names:
        if alias.name != "*":
            out.add(alias.asname or alias.name.split(".")[0])
    return out


def _used_names(nodes: Iterable[ast.AST]) -> set[str]:
    """Every name loaded anywhere inside ``nodes``."""
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name)}


def exercise_source(module_source: str, exercise_id: str) -> str:
    """The source of exercise ``exercise_id`` in a student's ``module_source``.

    The top-level functions and classes named by ``rubric.BY_ID[exercise_id].names``, the
    module-level functions and classes they use, transitively (not those of the module's
    other exercises: those are reviewed on their own), and the top-level import statements
    that bind a name any of them uses, each as its exact text (decorators and comments
    inside included), in file order, separated by blank lines.  Names the module lacks are
    skipped (``""`` when it has none of them); a source that does not parse gives ``""``.
    Raises ``KeyError`` for an unknown exercise ID.
    """
    exercise = rubric.BY_ID[exercise_id]
    try:
        tree = ast.parse(module_source)
    except (SyntaxError, ValueError):  # ValueError: a null byte in the source
        return ""
    others = {name for ex in rubric.exercises_of(exercise.module) if ex is not exercise for name in ex.names}
    defs: dict[str, list[ast.stmt]] = {}
    for node in tree.body:
        name = _defined_name(node)
        if name is not None:
            defs.setdefault(name, []).append(node)
    chosen: set[str] = set()
    todo = [name for name in exercise.names if name in defs]
    while todo:
        name = todo.pop()
        if name in chosen:
            continue
        chosen.add(name)
        todo += sorted(n for n in _used_names(defs[name]) if n in defs and n not in chosen and n not in others)
    if not chosen:
        return ""
    picked = [node for node in tree.body if _defined_name(node) in chosen]
    used = _used_names(picked)
    picked += [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)) and _import_names(n) & used]
    lines = re.split(r"\r\n|\r|\n", module_source)  # as the parser counts lines (not str.splitlines)
    parts = []
    for node in sorted(picked, key=lambda n: n.lineno):
        decorators = getattr(node, "decorator_list", [])
        start = min([node.lineno, *(d.lineno for d in decorators)])
        end = node.end_lineno or node.lineno
        parts.append("\n".join(lines[start - 1 : end]))
    return "\n\n".join(parts) + "\n"


# ---- normalization --------------------------------------------------------------------------------


def _dotted(node: ast.AST) -> str | None:
    """``torch.nn.functional`` for the expression ``torch.nn.functional``; ``None`` if not a dotted name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _name_expr(dotted: str) -> ast.expr:
    """The expression for a dotted name (``torch.nn.functional``)."""
    first, *rest = dotted.split(".")
    node: ast.expr = ast.Name(id=first, ctx=ast.Load())
    for attr in rest:
        node = ast.Attribute(value=node, attr=attr, ctx=ast.Load())
    return node


def _bare_string(node: ast.AST) -> bool:
    """A statement that is only a string literal: a docstring or a no-op string."""
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _aliases(tree: ast.AST) -> dict[str, str]:
    """``{name: dotted module or object}`` for every name an import binds (anywhere in ``tree``)."""
    table = dict(DEFAULT_ALIASES)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    table[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    table[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                if alias.name != "*":
                    table[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return table


class _Strip(ast.NodeTransformer):
    """Drops docstrings and other bare strings, annotations, imports and redundant ``pass``."""

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        for field in ("body", "orelse", "finalbody"):
            body = getattr(node, field, None)
            if not isinstance(body, list) or not body or not isinstance(body[0], ast.AST):
                continue
            kept = [s for s in body if not (_bare_string(s) or isinstance(s, (ast.Import, ast.ImportFrom, ast.Pass)))]
            required = field == "body" or (field == "finalbody" and not getattr(node, "handlers", None))
            if not kept and required and not isinstance(node, ast.Module):
                kept = [ast.Pass()]
            setattr(node, field, kept)
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.annotation = None
        node.type_comment = None
        return node

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.AST:
        node.returns = None
        node.type_comment = None
        return self.generic_visit(node)

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST | None:
        if node.value is None:
            return None
        return self.visit(ast.Assign(targets=[node.target], value=node.value))


class _Scope:
    """The local names of one function, lambda or comprehension and their new names."""

    def __init__(self, names: set[str], counter: list[int] | None) -> None:
        self.names = names
        self.counter = counter if counter is not None else [0]
        self.renamed: dict[str, str] = {}

    def rename(self, name: str) -> str:
        """The new name of local ``name``: ``v<n>`` in the order the names are first met."""
        if name not in self.renamed:
            self.renamed[name] = f"v{self.counter[0]}"
            self.counter[0] += 1
        return self.renamed[name]


def _arg_names(args: ast.arguments) -> list[ast.arg]:
    """The parameters of a signature, in order."""
    out = [*args.posonlyargs, *args.args]
    if args.vararg:
        out.append(args.vararg)
    out += args.kwonlyargs
    if args.kwarg:
        out.append(args.kwarg)
    return out


def _local_names(node: ast.AST) -> set[str]:
    """The names local to the function, lambda or comprehension ``node`` (Python's rules:
    parameters and every name bound in its own body, less ``global`` and ``nonlocal`` ones;
    imports are aliases, not locals)."""
    bound: set[str] = set()
    declared: set[str] = set()

    def collect(child: ast.AST) -> None:
        if isinstance(child, ast.Name) and isinstance(child.ctx, (ast.Store, ast.Del)):
            bound.add(child.id)
        elif isinstance(child, (ast.Global, ast.Nonlocal)):
            declared.update(child.names)
        elif isinstance(child, (*_FUNCTIONS, ast.ClassDef)):
            bound.add(child.name)
            parts: list[ast.AST] = [*child.decorator_list]
            if isinstance(child, ast.ClassDef):
                parts += [*child.bases, *child.keywords]
            else:
                parts += [*child.args.defaults, *(d for d in child.args.kw_defaults if d)]
            for item in parts:
                collect(item)
            return
        elif isinstance(child, ast.Lambda):
            for part in [*child.args.defaults, *(d for d in child.args.kw_defaults if d)]:
                collect(part)
            return
        elif isinstance(child, _COMPREHENSIONS):
            collect(child.generators[0].iter)
            return
        elif isinstance(child, ast.ExceptHandler) and child.name:
            bound.add(child.name)
        elif isinstance(child, (ast.MatchAs, ast.MatchStar)) and child.name:
            bound.add(child.name)
        elif isinstance(child, ast.MatchMapping) and child.rest:
            bound.add(child.rest)
        for grandchild in ast.iter_child_nodes(child):
            collect(grandchild)

    if isinstance(node, _COMPREHENSIONS):
        for index, gen in enumerate(node.generators):
            collect(gen.target)
            for part in ([] if index == 0 else [gen.iter]) + gen.ifs:
                collect(part)
        for part in [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]:
            collect(part)
        return bound - declared
    assert isinstance(node, (*_FUNCTIONS, ast.Lambda))
    params = {a.arg for a in _arg_names(node.args)}
    body: list[ast.AST] = [*node.body] if isinstance(node.body, list) else [node.body]
    for stmt in body:
        collect(stmt)
    return (params | bound) - declared


class _Rename(ast.NodeTransformer):
    """Renames the locals of each function to ``v0, v1, ...`` in binding order and writes
    every global name an import bound as its dotted path."""

    def __init__(self, aliases: dict[str, str]) -> None:
        self.aliases = aliases
        self.scopes: list[_Scope] = []

    def _lookup(self, name: str) -> str | None:
        for scope in reversed(self.scopes):
            if name in scope.names:
                return scope.rename(name)
        return None

    def _enter(self, node: ast.AST) -> None:
        counter = self.scopes[-1].counter if self.scopes else None
        self.scopes.append(_Scope(_local_names(node), counter))

    def visit_Name(self, node: ast.Name) -> ast.AST:
        new = self._lookup(node.id)
        if new is not None:
            node.id = new
            return node
        if isinstance(node.ctx, ast.Load) and node.id in self.aliases:
            return ast.copy_location(_name_expr(self.aliases[node.id]), node)
        return node

    def _signature(self, args: ast.arguments) -> None:
        """Visit defaults in the enclosing scope (before entering the new one)."""
        args.defaults = [self.visit(d) for d in args.defaults]
        args.kw_defaults = [None if d is None else self.visit(d) for d in args.kw_defaults]

    def _params(self, args: ast.arguments) -> None:
        for arg in _arg_names(args):
            arg.arg = self.scopes[-1].rename(arg.arg)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.AST:
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        node.name = self._lookup(node.name) or node.name
        self._signature(node.args)
        self._enter(node)
        self._params(node.args)
        node.body = [self.visit(s) for s in node.body]
        self.scopes.pop()
        return node

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        self._signature(node.args)
        self._enter(node)
        self._params(node.args)
        node.body = self.visit(node.body)
        self.scopes.pop()
        return node

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        node.bases = [self.visit(b) for b in node.bases]
        node.keywords = [self.visit(k) for k in node.keywords]
        node.name = self._lookup(node.name) or node.name
        # a class body is no scope of ours: its names are attributes, kept as they are
        node.body = [self.visit(s) for s in node.body]
        return node

    def _comprehension(self, node: ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp) -> ast.AST:
        first = node.generators[0]
        first.iter = self.visit(first.iter)
        self._enter(node)
        for index, gen in enumerate(node.generators):
            gen.target = self.visit(gen.target)
            if index:
                gen.iter = self.visit(gen.iter)
            gen.ifs = [self.visit(i) for i in gen.ifs]
        if isinstance(node, ast.DictComp):
            node.key = self.visit(node.key)
            node.value = self.visit(node.value)
        else:
            node.elt = self.visit(node.elt)
        self.scopes.pop()
        return node

    visit_ListComp = _comprehension
    visit_SetComp = _comprehension
    visit_DictComp = _comprehension
    visit_GeneratorExp = _comprehension

    def visit_Nonlocal(self, node: ast.Nonlocal) -> ast.AST:
        node.names = [self._lookup(n) or n for n in node.names]
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        if node.name:
            node.name = self._lookup(node.name) or node.name
        return self.generic_visit(node)

    def _capture(self, node: ast.MatchAs | ast.MatchStar) -> ast.AST:
        if node.name:
            node.name = self._lookup(node.name) or node.name
        return self.generic_visit(node)

    visit_MatchAs = _capture
    visit_MatchStar = _capture

    def visit_MatchMapping(self, node: ast.MatchMapping) -> ast.AST:
        if node.rest:
            node.rest = self._lookup(node.rest) or node.rest
        return self.generic_visit(node)


def _int(node: ast.AST | None) -> int | None:
    """The value of an integer literal (``-2`` included), else ``None``."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _int(node.operand)
        return None if inner is None else -inner
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    return None


def _invert(node: ast.expr) -> ast.expr:
    """``~node``, with ``~~m`` written ``m``."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Invert):
        return node.operand
    return ast.UnaryOp(op=ast.Invert(), operand=node)


def _infinity(negative: bool) -> ast.expr:
    return ast.Call(
        func=ast.Name(id="float", ctx=ast.Load()), args=[ast.Constant("-inf" if negative else "inf")], keywords=[]
    )


def _inf_sign(node: ast.AST) -> bool | None:
    """``True`` for ``float('-inf')``, ``False`` for ``float('inf')``, else ``None``."""
    if (
        isinstance(node, ast.Call)
        and _dotted(node.func) == "float"
        and len(node.args) == 1
        and not node.keywords
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        text = node.args[0].value.strip().lower()
        if text in ("inf", "+inf", "infinity", "+infinity"):
            return False
        if text in ("-inf", "-infinity"):
            return True
    return None


_FOLD: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def _number(node: ast.AST) -> int | float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    return None


class _Synonyms(ast.NodeTransformer):
    """Rewrites the synonyms of the module doc to their first form, innermost first.

    ``modules`` holds the first part of every imported dotted name (``torch``, ``scipy``): a
    call on such a name (``scipy.special.softmax(x)``) is a function, never a tensor method.
    """

    def __init__(self, modules: Iterable[str] = ()) -> None:
        self.modules = {m.split(".")[0] for m in [*MODULES, *modules]}

    def _method(self, node: ast.Call, *names: str) -> ast.expr | None:
        """The receiver of a method call ``x.<name>(...)`` (not ``<module>.<name>``)."""
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in names:
            dotted = _dotted(func.value)
            if dotted is None or dotted.split(".")[0] not in self.modules:
                return func.value
        return None

    def _function(self, node: ast.Call, *names: str) -> bool:
        return _dotted(node.func) in names

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        named = sorted((k for k in node.keywords if k.arg is not None), key=lambda k: str(k.arg))
        node.keywords = named + [k for k in node.keywords if k.arg is None]
        kw = {k.arg: k.value for k in node.keywords if k.arg is not None}
        args = node.args
        starred = any(isinstance(a, ast.Starred) for a in args) or any(k.arg is None for k in node.keywords)
        if starred:
            return node
        # a @ b
        if self._function(node, "torch.matmul") and len(args) == 2 and not kw:
            return ast.BinOp(left=args[0], op=ast.MatMult(), right=args[1])
        receiver = self._method(node, "matmul")
        if receiver is not None and len(args) == 1 and not kw:
            return ast.BinOp(left=receiver, op=ast.MatMult(), right=args[0])
        # x.mT
        swap = ("transpose", "swapaxes", "swapdims")
        receiver = self._method(node, *swap)
        if receiver is not None and not kw and {_int(a) for a in args} == {-1, -2} and len(args) == 2:
            return ast.Attribute(value=receiver, attr="mT", ctx=ast.Load())
        if self._function(node, *(f"torch.{s}" for s in swap)) and not kw and len(args) == 3:
            if {_int(a) for a in args[1:]} == {-1, -2}:
                return ast.Attribute(value=args[0], attr="mT", ctx=ast.Load())
        # ~m
        receiver = self._method(node, "logical_not")
        if receiver is not None and not args and not kw:
            return _invert(receiver)
        if self._function(node, "torch.logical_not") and len(args) == 1 and not kw:
            return _invert(args[0])
        # torch.where(m, s, v)
        receiver = self._method(node, "masked_fill")
        if receiver is not None and set(kw) <= {"mask", "value"}:
            fill = args + [kw[k] for k in ("mask", "value") if k in kw]
            if len(fill) == 2:
                return self._where(_invert(fill[0]), receiver, fill[1])
        if self._function(node, "torch.masked_fill") and len(args) == 3 and not kw:
            return self._where(_invert(args[1]), args[0], args[2])
        # torch.softmax(x, dim=d)
        for name in ("softmax", "log_softmax"):
            functions = (f"torch.{name}", f"torch.nn.functional.{name}", f"torch.special.{name}")
            receiver = self._method(node, name)
            if receiver is not None and len(args) <= 1 and set(kw) <= {"dim", "dtype"}:
                return self._softmax(name, receiver, args, kw)
            if self._function(node, *functions) and set(kw) <= {"input", "dim", "dtype"}:
                operands = args + ([kw.pop("input")] if "input" in kw else [])
                if 1 <= len(operands) <= 2:
                    return self._softmax(name, operands[0], operands[1:], kw)
            layer = f"torch.nn.{'Softmax' if name == 'softmax' else 'LogSoftmax'}"
            if isinstance(node.func, ast.Call) and _dotted(node.func.func) == layer and len(args) == 1 and not kw:
                inner = node.func
                inner_kw = {k.arg: k.value for k in inner.keywords if k.arg is not None}
                if len(inner.args) <= 1 and set(inner_kw) <= {"dim"} and len(inner.args) + len(inner_kw) == 1:
                    return self._softmax(name, args[0], inner.args, inner_kw)
        # d ** 0.5
        if self._function(node, "math.sqrt") and len(args) == 1 and not kw:
            return ast.BinOp(left=args[0], op=ast.Pow(), right=ast.Constant(0.5))
        # x.size(i)
        receiver = self._method(node, "size")
        if receiver is not None and not args and set(kw) == {"dim"}:
            return self._size(receiver, kw["dim"])
        # float('-inf')
        sign = _inf_sign(node)
        if sign is not None:
            return _infinity(sign)
        return node

    @staticmethod
    def _where(cond: ast.expr, value: ast.expr, fill: ast.expr) -> ast.expr:
        return ast.Call(func=_name_expr("torch.where"), args=[cond, value, fill], keywords=[])

    @staticmethod
    def _softmax(name: str, operand: ast.expr, dims: list[ast.expr], kw: dict[str, ast.expr]) -> ast.expr:
        keywords = dict(kw)
        if dims:
            keywords["dim"] = dims[0]
        ordered = [ast.keyword(arg=k, value=v) for k, v in sorted(keywords.items(), key=lambda kv: kv[0])]
        return ast.Call(func=_name_expr(f"torch.{name}"), args=[operand], keywords=ordered)

    @staticmethod
    def _size(receiver: ast.expr, index: ast.expr) -> ast.expr:
        return ast.Call(func=ast.Attribute(value=receiver, attr="size", ctx=ast.Load()), args=[index], keywords=[])

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.ctx, ast.Load) and _int(node.slice) is not None:
            value = node.value
            if isinstance(value, ast.Attribute) and value.attr == "shape":
                return self._size(value.value, node.slice)
            if (
                isinstance(value, ast.Call)
                and isinstance(value.func, ast.Attribute)
                and value.func.attr == "size"
                and not value.args
                and not value.keywords
                and (_dotted(value.func.value) or "?").split(".")[0] not in self.modules
            ):
                return self._size(value.func.value, node.slice)
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self.generic_visit(node)
        if _dotted(node) in ("math.inf", "torch.inf", "numpy.inf"):
            return _infinity(False)
        return node

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Invert) and isinstance(node.operand, ast.UnaryOp):
            if isinstance(node.operand.op, ast.Invert):
                return node.operand.operand
        if isinstance(node.op, ast.USub):
            sign = _inf_sign(node.operand)
            if sign is not None:
                return _infinity(not sign)
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        left, right, fold = _number(node.left), _number(node.right), _FOLD.get(type(node.op))
        if left is not None and right is not None and fold is not None:
            try:
                return ast.Constant(fold(left, right))
            except ArithmeticError:
                return node
        return node


def _tree(source: str) -> ast.Module | None:
    """The normalized tree of ``source`` (``None`` if it does not parse)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    aliases = _aliases(tree)
    tree = _Strip().visit(tree)
    tree = _Rename(aliases).visit(tree)
    tree = _Synonyms(aliases.values()).visit(tree)
    return ast.fix_missing_locations(tree)


def normalize(source: str) -> str:
    """A canonical text of ``source``: equal for two sources that differ only by names,
    comments, docstrings, annotations, formatting or the synonyms of the module doc.

    Docstrings, other bare strings, comments, annotations, imports and redundant ``pass``
    statements are dropped; the parameters and local variables of each function (lambda,
    comprehension) are renamed ``v0, v1, ...`` in the order they are first met, counting on
    through nested functions; top-level function and class names, attributes, keyword
    argument names and global names are kept, except that a global name an import bound is
    written as its dotted path; synonyms are rewritten to one form.  The result is
    ``ast.unparse`` of that tree.  A source that does not parse gives its own text with
    trailing blanks stripped, so it stacks only with the same text.
    """
    tree = _tree(source)
    if tree is None:
        return "\n".join(line.rstrip() for line in source.strip().splitlines())
    return ast.unparse(tree)


def stack_key(source: str) -> str:
    """A short key of ``normalize(source)``: the first :data:`KEY_CHARS` hex digits of its SHA-256."""
    return hashlib.sha256(normalize(source).encode("utf-8", "surrogatepass")).hexdigest()[:KEY_CHARS]


# ---- approach labels ------------------------------------------------------------------------------

#: The labels :func:`approach` gives, in the order it joins them.
APPROACHES = ("einsum", "matmul", "mul-sum", "loop")

_EINSUM = frozenset({"torch.einsum", "numpy.einsum", "einops.einsum", "opt_einsum.contract"})
_MATMUL = frozenset({"torch.matmul", "torch.bmm", "torch.mm", "torch.baddbmm", "torch.linalg.matmul"})
_SUM = frozenset({"torch.sum", "numpy.sum"})


def _calls(tree: ast.AST) -> Iterator[tuple[str | None, str | None, ast.Call]]:
    """``(dotted function or None, method name or None, call)`` for each call in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            dotted = _dotted(node.func)
            method = None
            if isinstance(node.func, ast.Attribute) and _dotted(node.func.value) not in MODULES:
                method = node.func.attr
            yield dotted, method, node


def _broadcasts(node: ast.AST) -> bool:
    """An ``unsqueeze`` or a ``None`` index inside ``node``: an operand shaped to broadcast."""
    for n in ast.walk(node):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "unsqueeze":
            return True
        if isinstance(n, ast.Subscript):
            parts = n.slice.elts if isinstance(n.slice, ast.Tuple) else [n.slice]
            if any(isinstance(p, ast.Constant) and p.value is None for p in parts):
                return True
    return False


def _loops(tree: ast.AST) -> bool:
    """A ``while`` loop, or a ``for`` loop or comprehension over anything but a literal
    (``for name in ("q", "k")`` does not walk tensor positions)."""
    literal = (ast.Tuple, ast.List, ast.Set, ast.Dict, ast.Constant)
    for node in ast.walk(tree):
        if isinstance(node, ast.While):
            return True
        if isinstance(node, (ast.For, ast.AsyncFor)) and not isinstance(node.iter, literal):
            return True
        if isinstance(node, ast.comprehension) and not isinstance(node.iter, literal):
            return True
    return False


def approach(source: str) -> str:
    """A label of the main technique of ``source``, from the calls and operators it uses.

    The labels, joined with ``+`` in this order when several apply (``""`` when none does,
    or when the source does not parse):

    * ``einsum``: ``torch.einsum`` (``numpy.einsum``, ``einops.einsum``);
    * ``matmul``: ``@``, ``torch.matmul``/``.matmul``, ``bmm``, ``mm``, ``baddbmm``;
    * ``mul-sum``: a broadcast product summed out: a ``*`` with an operand shaped to broadcast
      (``unsqueeze`` or a ``None`` index) and a ``sum`` call (``torch.sum`` or ``.sum``);
    * ``loop``: a Python ``while``, or a ``for`` loop or comprehension over something other than
      a literal tuple or list (over ``range(...)``, a tensor, ``zip``, ...).

    The label is computed on the normalized code, so import aliases (``from torch import
    einsum``) and synonyms do not change it.
    """
    tree = _tree(source)
    if tree is None:
        return ""
    found: set[str] = set()
    sums: list[ast.Call] = []
    for dotted, method, call in _calls(tree):
        if dotted in _EINSUM or method == "einsum":
            found.add("einsum")
        if dotted in _MATMUL or method in ("matmul", "bmm", "mm", "baddbmm"):
            found.add("matmul")
        if dotted in _SUM or method == "sum":
            sums.append(call)
    if any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.MatMult) for n in ast.walk(tree)):
        found.add("matmul")
    products = [n for n in ast.walk(tree) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Mult)]
    if sums and any(_broadcasts(p) for p in products):
        found.add("mul-sum")
    if _loops(tree):
        found.add("loop")
    return "+".join(label for label in APPROACHES if label in found)
