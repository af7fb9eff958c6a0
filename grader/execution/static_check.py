"""The static half of the forbidden-call check: what each exercise function can reach.

:func:`check_source` parses a submission's source text (it never runs it) and returns,
for each public name (a function, or a class with all its methods), the forbidden
references it makes, directly or through the other top-level functions, classes and
module-level bindings of the same file that it uses (transitively).  Import aliases
(``import torch.nn.functional as F``, ``from torch import nn``, ``from ... import x as y``),
assignments (``X = torch.nn.functional``, ``attend = F.scaled_dot_product_attention``),
attribute chains, parameter defaults and ``getattr`` with a constant name are followed.

Flagged, with a kind that picks the message (:func:`describe`):

* ``forbidden``: the library's own implementation of an exercise, public or private,
  under any path: a torch name with ``attention``, ``multihead``, ``lstm``, ``gru``,
  ``transformer``, ``rnnbase`` or ``kl_divergence`` in it (``F.scaled_dot_product_attention``,
  ``torch.ops.aten.lstm_cell``, ``nn.LSTMCell``, ``torch._VF.gru_cell``, ...), every private
  name of ``torch.distributions.kl`` (``_kl_normal_normal``, ``_dispatch_kl``, ``_KL_REGISTRY``);
  also such a name read from an object the checker cannot resolve (``[F][0].scaled_dot_product_attention``);
* ``guard``: what switches the runtime trip-wire off (``torch._C.DisableTorchFunction``,
  ``torch.overrides._pop_mode_temporarily``, anything in ``torch.overrides``, ...);
* ``private``: any other private torch name (``torch._C...``): the exercises need none;
* ``dynamic``: a name looked up in a way no reader can follow: ``eval``, ``exec``,
  ``compile``, ``__import__``, ``importlib``, ``globals()``, ``vars()``, ``__dict__``,
  ``getattr``/``setattr`` with a computed name (except on ``self``), ``sys.modules``,
  frames, ``gc.get_objects``, ``inspect``, ``pickle``, ``torch.load``, subprocesses;
* ``grader``: the grader's own modules.

Module-level code counts for a function when it binds or patches a name the function
uses (``attend = F.scaled_dot_product_attention``, ``torch.softmax = ...``,
``MultiHeadAttention.forward = f``, ``TABLE.update(...)``, ``from torch import *`` after a
``def``); code that runs at import and is ``dynamic``, ``guard`` or ``grader`` counts for
every public name (it can rebind any of them).  A sanity check at module level that calls
a forbidden function without binding it to a name does not count, and
``if __name__ == "__main__":`` blocks are skipped (they do not run when graded); comments,
strings and docstrings are never read as code.

Hostile input gives a clean answer: a file that does not parse gives no findings (its
import fails with the real error); one the parser cannot build (nesting too deep, out of
memory) or too large to check in time flags every public name (``unreadable``).  The
walk is iterative, resolution is memoized and capped, and the whole check has a node
budget and a deadline.  Standard library only: it runs in the sandboxed worker, which
answers the ``check`` request before it loads (runs) any of the student's code.
"""

import ast
import builtins
import gc
import re
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Literal, cast

FORBIDDEN, GUARD, PRIVATE, DYNAMIC, GRADER = "forbidden", "guard", "private", "dynamic", "grader"
UNREADABLE = "unreadable"

#: A torch name with one of these in any component (lower case) is the library's own implementation.
LIBRARY_FRAGMENTS = ("attention", "multihead", "multi_head", "lstm", "gru", "transformer", "rnnbase", "kl_divergence")
#: Private names that switch off torch-function handling (the runtime guard's mode).
GUARD_NAMES = frozenset(
    {
        "_pop_mode",
        "_pop_mode_temporarily",
        "_push_mode",
        "_disable_current_modes",
        "_pop_torch_function_stack",
        "_push_on_torch_function_stack",
        "_disabled_torch_function_impl",
        "_set_torch_function_state",
        "_skip_one_hop_torch_function",
        "_set_skip_next_torch_function",
        "_EnableTorchFunction",
    }
)
#: The same, as the last name of a chain the checker cannot resolve (``[F][0].scaled_dot_product_attention``).
DISTINCTIVE = re.compile(
    r"(?i)(scaled_dot_product|multi_?head|lstm|gru|kl_divergence|torch_?function)"
    r"|^_kl_|^_dispatch_kl$|^_KL_|^_VF$|^_VariableFunctions$|^_pop_mode"
)
DYNAMIC_BUILTINS = frozenset({"eval", "exec", "compile", "__import__", "globals", "vars"})
ATTR_BUILTINS = frozenset({"getattr", "setattr", "delattr", "hasattr"})
DYNAMIC_MODULES = frozenset(
    {
        "importlib",
        "inspect",
        "pickle",
        "marshal",
        "dill",
        "cloudpickle",
        "copyreg",
        "shelve",
        "subprocess",
        "multiprocessing",
        "runpy",
        "code",
        "codeop",
        "pkgutil",
        "zipimport",
    }
)
DYNAMIC_NAMES = frozenset(
    {
        "sys.modules",
        "sys._getframe",
        "sys._current_frames",
        "gc.get_objects",
        "gc.get_referrers",
        "gc.get_referents",
        "operator.attrgetter",
        "operator.methodcaller",
        "types.FunctionType",
        "types.CodeType",
        "types.LambdaType",
        "os.system",
        "os.popen",
        "torch.load",
        "torch.jit.load",
        "torch.hub",
        "torch.package",
        "torch.utils.cpp_extension",
    }
)
DYNAMIC_PREFIXES = ("os.exec", "os.spawn", "os.posix_spawn")
#: Attributes that reach namespaces, frames or code objects: dynamic whatever they are read from.
INTROSPECTION = frozenset(
    {
        "__dict__",
        "__globals__",
        "__builtins__",
        "__subclasses__",
        "__getattribute__",
        "__getattr__",
        "__closure__",
        "__code__",
        "__loader__",
        "__spec__",
        "__import__",
        "f_globals",
        "f_locals",
        "f_back",
        "f_builtins",
        "gi_frame",
        "cr_frame",
        "ag_frame",
        "tb_frame",
    }
)
GRADER_ROOTS = frozenset({"grader", "solutions", "tests", "conftest"})

MAX_NODES = 3_000_000
MAX_SECONDS = 10.0
MAX_QUALNAMES = 16
MAX_PARTS = 40
MAX_FINDINGS = 5
_BUILTIN_NAMES = frozenset(dir(builtins))


class Unreadable(Exception):
    """The source is too large or too deep to check (in time)."""


#: ``(kind, what, line, at_import)``: one forbidden reference, as the walk records it.
_Finding = tuple[str, str, int, bool]
#: Where a name's value comes from: ``("qual", dotted name)`` or ``("expr", node, scope)``,
#: ``scope`` being ``"outer"`` (a default: seen from the enclosing scopes), ``"self"`` or ``()``.
_Source = tuple[Literal["qual"], str] | tuple[Literal["expr"], ast.expr, Literal["outer", "self"] | tuple[()]]
#: The scopes a node is seen from, innermost first.
_Chain = tuple["_Scope", ...]
#: The qualified names an expression may stand for (``None``: a name of the file itself).
_Resolved = frozenset[str] | None


def classify(qualname: str) -> tuple[str, str] | None:
    """``(kind, what)`` for a resolved dotted name, or ``None`` when it is allowed."""
    parts = qualname.split(".")
    root = parts[0]
    if any(p in INTROSPECTION for p in parts[1:]):
        return DYNAMIC, qualname
    if root == "torch":
        lower = [p.lower() for p in parts[1:]]
        if any(f in p for p in lower for f in LIBRARY_FRAGMENTS):
            return FORBIDDEN, qualname
        if parts[1:3] == ["distributions", "kl"] and any(p.startswith("_") for p in parts[3:]):
            return FORBIDDEN, qualname
        if (
            parts[1:2] == ["overrides"]
            or parts[1:3] == ["utils", "_python_dispatch"]
            or any(p in GUARD_NAMES or "torchfunction" in p.replace("_", "") for p in lower + parts[1:])
        ):
            return GUARD, qualname
        if any(p.startswith("_") and not (p.startswith("__") and p.endswith("__")) for p in parts[1:]):
            return PRIVATE, qualname
    if root in GRADER_ROOTS:
        return GRADER, qualname
    if root == "builtins" and len(parts) > 1 and parts[1] in DYNAMIC_BUILTINS:
        return DYNAMIC, parts[1]
    if root in DYNAMIC_MODULES or root == "builtins" and len(parts) == 1:
        return DYNAMIC, qualname
    for n in range(2, len(parts) + 1):
        if ".".join(parts[:n]) in DYNAMIC_NAMES:
            return DYNAMIC, qualname
    if qualname.startswith(DYNAMIC_PREFIXES):
        return DYNAMIC, qualname
    return None


def _distinctive(attr: str) -> str | None:
    """The kind of an attribute name read from an unresolved object, or ``None``."""
    if not DISTINCTIVE.search(attr):
        return None
    return GUARD if "torch" in attr.lower() or attr.startswith("_pop_mode") else FORBIDDEN


class _Scope:
    """A function, lambda or class body: its local names and where they come from."""

    __slots__ = ("node", "kind", "locals", "sources", "declared_global", "self_name")

    def __init__(self, node: ast.AST, kind: str) -> None:
        self.node, self.kind = node, kind
        self.locals: set[str] = set()
        self.sources: dict[str, list[_Source]] = {}
        self.declared_global: set[str] = set()
        self.self_name: str | None = None


class _Unit:
    """One module-level statement (or a compound statement's header): the names it binds,
    what it reaches directly, the module-level names it uses."""

    __slots__ = ("names", "mutates", "findings", "uses", "is_import", "nodes")

    def __init__(self, nodes: Sequence[ast.AST], is_import: bool = False) -> None:
        self.nodes, self.is_import = nodes, is_import
        self.names: set[str] = set()
        self.mutates: set[str] = set()
        self.findings: list[_Finding] = []
        self.uses: set[str] = set()


class _Checker:
    def __init__(self, tree: ast.Module, deadline: float) -> None:
        self.tree, self.deadline, self.count = tree, deadline, 0
        self.units: list[_Unit] = []
        self.module_sources: dict[str, list[_Source]] = {}  # name -> [("qual", q) | ("expr", node, chain)]
        self.module_bound: set[str] = set()  # names bound by non-import statements
        self.star: list[tuple[str, int]] = []  # (module qualname, line)
        self.scope_of: dict[int, _Scope] = {}  # id(scope node) -> _Scope
        self.memo: dict[int, _Resolved] = {}
        self.alias_memo: dict[tuple[object, str], frozenset[str]] = {}
        self.resolving: set[tuple[object, str]] = set()
        self.qual_bound: set[str] = set()

    # -- budget ----------------------------------------------------------------------------
    def tick(self) -> None:
        self.count += 1
        if self.count > MAX_NODES or (self.count & 4095 == 0 and time.monotonic() > self.deadline):
            raise Unreadable("the file is too large for the checker")

    # -- module level ------------------------------------------------------------------------
    def collect_units(self) -> None:
        todo: list[ast.stmt] = list(reversed(self.tree.body))
        while todo:
            stmt = todo.pop()
            self.tick()
            if isinstance(stmt, ast.If) and _is_main_guard(stmt.test):
                todo.extend(reversed(stmt.orelse))
                continue
            if isinstance(stmt, (ast.If, ast.While)):
                self.units.append(_Unit([stmt.test]))
                todo.extend(reversed(stmt.body + stmt.orelse))
            elif isinstance(stmt, (ast.For, ast.AsyncFor)):
                unit = _Unit([stmt.target, stmt.iter])
                _bind(unit, stmt.target)
                self.units.append(unit)
                todo.extend(reversed(stmt.body + stmt.orelse))
            elif isinstance(stmt, (ast.With, ast.AsyncWith)):
                unit = _Unit([item for w in stmt.items for item in (w.context_expr, w.optional_vars) if item])
                for w in stmt.items:
                    if w.optional_vars is not None:
                        _bind(unit, w.optional_vars)
                self.units.append(unit)
                todo.extend(reversed(stmt.body))
            elif isinstance(stmt, (ast.Try, ast.TryStar)):
                for handler in stmt.handlers:
                    unit = _Unit([handler.type] if handler.type else [])
                    if handler.name:
                        unit.names.add(handler.name)
                    self.units.append(unit)
                    todo.extend(reversed(handler.body))
                todo.extend(reversed(stmt.body + stmt.orelse + stmt.finalbody))
            elif isinstance(stmt, ast.Match):
                self.units.append(
                    _Unit([stmt.subject] + [c.pattern for c in stmt.cases] + [c.guard for c in stmt.cases if c.guard])
                )
                for case in stmt.cases:
                    todo.extend(reversed(case.body))
            else:
                self.units.append(self.simple_unit(stmt))
        for unit in self.units:  # a module-level variable may hold anything: unknown, not "the file's own"
            if not unit.is_import and not isinstance(
                unit.nodes[0] if unit.nodes else None, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
            ):
                for name in unit.names:
                    self.module_sources.setdefault(name, [])

    def simple_unit(self, stmt: ast.stmt) -> _Unit:
        unit = _Unit([stmt], is_import=isinstance(stmt, (ast.Import, ast.ImportFrom)))
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            unit.names.add(stmt.name)
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                name = alias.asname or alias.name.split(".")[0]
                unit.names.add(name)
                self.module_sources.setdefault(name, []).append(
                    ("qual", alias.name if alias.asname else alias.name.split(".")[0])
                )
        elif isinstance(stmt, ast.ImportFrom):
            base = stmt.module or ""
            for alias in stmt.names:
                if alias.name == "*":
                    if not stmt.level:
                        self.star.append((base, stmt.lineno))
                    continue
                name = alias.asname or alias.name
                unit.names.add(name)
                if not stmt.level:
                    self.module_sources.setdefault(name, []).append(("qual", f"{base}.{alias.name}"))
        elif isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            for target in targets:
                _bind(unit, target)
                if isinstance(stmt, ast.AugAssign) or stmt.value is None:
                    continue
                for name, value in _pairs(target, stmt.value):
                    self.module_sources.setdefault(name, []).append(("expr", value, ()))
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            func = stmt.value.func  # X.update(...), setattr(X, ...): module-level code that mutates X
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                unit.mutates.add(func.value.id)
            elif isinstance(func, ast.Name) and func.id in ("setattr", "delattr") and stmt.value.args:
                unit.mutates |= _roots([stmt.value.args[0]])
        return unit

    # -- scopes ------------------------------------------------------------------------------
    def scope(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef, kind: str) -> _Scope:
        """The :class:`_Scope` of a function/lambda/class node (computed once)."""
        found = self.scope_of.get(id(node))
        if found is not None:
            return found
        scope = _Scope(node, kind)
        body: list[ast.AST]
        if kind == "function":
            fn = cast("ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda", node)  # a class is scoped as "class"
            args = fn.args
            every = args.posonlyargs + args.args + args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a]
            scope.locals |= {a.arg for a in every}
            positional = args.posonlyargs + args.args
            if positional:
                scope.self_name = positional[0].arg
            defaults = list(zip(positional[len(positional) - len(args.defaults) :], args.defaults))
            defaults += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
            for arg, default in defaults:
                scope.sources.setdefault(arg.arg, []).append(("expr", default, "outer"))
            body = [fn.body] if isinstance(fn, ast.Lambda) else list(fn.body)
        else:
            body = list(cast(ast.ClassDef, node).body)
        todo = body
        while todo:
            item = todo.pop()
            self.tick()
            if isinstance(item, (ast.Global, ast.Nonlocal)):
                scope.declared_global |= set(item.names)
                continue
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                scope.locals.add(item.name)
                todo.extend(item.decorator_list)
                if not isinstance(item, ast.ClassDef):
                    todo.extend(d for d in item.args.defaults + item.args.kw_defaults if d is not None)
                else:
                    todo.extend(item.bases + [k.value for k in item.keywords])
                continue
            if isinstance(item, ast.Lambda):
                todo.extend(item.args.defaults + [d for d in item.args.kw_defaults if d is not None])
                continue
            if isinstance(item, ast.Name) and isinstance(item.ctx, (ast.Store, ast.Del)):
                scope.locals.add(item.id)
            elif isinstance(item, (ast.Import, ast.ImportFrom)):
                for alias in item.names:
                    if alias.name == "*":
                        continue
                    if isinstance(item, ast.Import):
                        name = alias.asname or alias.name.split(".")[0]
                        qual = alias.name if alias.asname else alias.name.split(".")[0]
                    else:
                        name, qual = alias.asname or alias.name, f"{item.module or ''}.{alias.name}"
                    scope.locals.add(name)
                    if not getattr(item, "level", 0):
                        scope.sources.setdefault(name, []).append(("qual", qual))
            elif isinstance(item, ast.ExceptHandler) and item.name:
                scope.locals.add(item.name)
            elif isinstance(item, (ast.Assign, ast.AnnAssign)) and item.value is not None:
                for target in item.targets if isinstance(item, ast.Assign) else [item.target]:
                    for name, value in _pairs(target, item.value):
                        scope.sources.setdefault(name, []).append(("expr", value, "self"))
            elif isinstance(item, ast.NamedExpr):
                scope.sources.setdefault(item.target.id, []).append(("expr", item.value, "self"))
            todo.extend(ast.iter_child_nodes(item))
        scope.locals -= scope.declared_global
        self.scope_of[id(node)] = scope
        return scope

    # -- name resolution ---------------------------------------------------------------------
    def lookup(self, name: str, chain: _Chain) -> _Resolved:
        """Qualified names a ``Name`` may stand for, seen from the scopes ``chain``
        (innermost first); ``None`` when it is a module-level (or local) name of the file."""
        for i, scope in enumerate(chain):
            if scope.kind == "class" and i > 0:
                continue  # a class body is not an enclosing scope of its methods
            if name in scope.declared_global:
                break
            if name in scope.locals:
                return self.sources(scope.sources.get(name, ()), chain[i:], (id(scope), name))
        if name in self.module_sources:
            return self.sources(self.module_sources[name], (), ("module", name))
        if name in self.module_bound:
            return None
        found = {f"{mod}.{name}" for mod, _ in self.star}
        if name in _BUILTIN_NAMES:
            found.add(f"builtins.{name}")
        return frozenset(found)

    def sources(self, sources: Iterable[_Source], chain: _Chain, key: tuple[object, str]) -> frozenset[str]:
        if key in self.alias_memo:
            return self.alias_memo[key]
        if key in self.resolving:
            return frozenset()
        self.resolving.add(key)
        found: set[str] = set()
        for source in sources:
            if source[0] == "qual":
                found.add(source[1])
            else:
                _, node, where = source
                outer = chain[1:] if where == "outer" else chain
                found |= set(self.resolve(node, outer) or ())
            if len(found) > MAX_QUALNAMES:
                break
        self.resolving.discard(key)
        result = frozenset(list(found)[:MAX_QUALNAMES])
        self.alias_memo[key] = result
        return result

    def resolve(self, node: ast.expr, chain: _Chain) -> _Resolved:
        """Qualified names an expression may evaluate to (a module, function or class of a
        library): ``frozenset()`` when unknown, ``None`` for a name of the file itself."""
        key = id(node)
        if key in self.memo:
            return self.memo[key]
        attrs: list[str] = []
        root = node
        result: _Resolved
        while True:
            self.tick()
            if isinstance(root, ast.Attribute):
                attrs.append(root.attr)
                root = root.value
            elif isinstance(root, ast.Call) and _const_getattr(root):
                attrs.append(cast(str, cast(ast.Constant, root.args[1]).value))  # _const_getattr: a str constant
                root = root.args[0]
            elif isinstance(root, ast.NamedExpr):
                root = root.value
            else:
                break
        if isinstance(root, ast.Name) and len(attrs) < MAX_PARTS:
            base = self.lookup(root.id, chain)
            if base is None:
                result = None
            else:
                suffix = "".join("." + a for a in reversed(attrs))
                result = frozenset(b + suffix for b in base if b.count(".") + len(attrs) < MAX_PARTS)
        else:
            result = frozenset()
        self.memo[key] = result
        return result

    # -- the walk ----------------------------------------------------------------------------
    def walk_unit(self, unit: _Unit) -> None:
        """Record the findings of ``unit`` and the module-level names it uses."""
        chain: _Chain = ()
        todo: list[tuple[ast.AST, _Chain, bool, ast.AST | None]] = [
            (node, chain, True, None) for node in reversed(unit.nodes)
        ]
        while todo:
            node, chain, at_import, parent = todo.pop()
            self.tick()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                inner = (self.scope(node, "function"),) + chain
                outer: list[ast.expr] = [d for d in node.args.defaults + node.args.kw_defaults if d is not None]
                body: Sequence[ast.AST]
                if not isinstance(node, ast.Lambda):
                    outer += node.decorator_list
                    outer += [a.annotation for a in _all_args(node.args) if a.annotation is not None]
                    if node.returns is not None:
                        outer.append(node.returns)
                    body = node.body
                else:
                    body = [node.body]
                todo.extend((n, inner, False, node) for n in reversed(body))
                todo.extend((n, chain, at_import, node) for n in reversed(outer))
                continue
            if isinstance(node, ast.ClassDef):
                inner = (self.scope(node, "class"),) + chain
                outer = node.decorator_list + node.bases + [k.value for k in node.keywords]
                todo.extend((n, inner, at_import, node) for n in reversed(node.body))
                todo.extend((n, chain, at_import, node) for n in reversed(outer))
                continue
            self.visit(node, chain, at_import, parent, unit)
            for child in reversed(list(ast.iter_child_nodes(node))):
                todo.append((child, chain, at_import, node))

    def visit(self, node: ast.AST, chain: _Chain, at_import: bool, parent: ast.AST | None, unit: _Unit) -> None:
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Attribute):
            if node.attr in INTROSPECTION and not self.resolve(node.value, chain):
                self.add(unit, DYNAMIC, node.attr, line, at_import)
            if isinstance(parent, ast.Attribute) and parent.value is node:
                return  # only the whole chain is judged
            if isinstance(parent, ast.Call) and parent.func is node and self.attr_call(parent, chain, unit, at_import):
                return
            self.judge_chain(node, chain, unit, at_import, line)
        elif isinstance(node, ast.Name):
            if node.id == "__builtins__":
                self.add(unit, DYNAMIC, "__builtins__", line, at_import)
                return
            if isinstance(parent, ast.Attribute) and parent.value is node:
                return
            if isinstance(parent, ast.Call) and parent.func is node and self.attr_call(parent, chain, unit, at_import):
                return
            if isinstance(node.ctx, ast.Load):
                self.use(node.id, chain, unit)
            self.judge_chain(node, chain, unit, at_import, line)
        elif isinstance(node, ast.NamedExpr) and not chain:
            unit.names.add(node.target.id)
            self.module_sources.setdefault(node.target.id, []).append(("expr", node.value, ()))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*" or (isinstance(node, ast.ImportFrom) and node.level):
                    continue
                qual = alias.name if isinstance(node, ast.Import) else f"{node.module or ''}.{alias.name}"
                verdict = classify(qual)
                if verdict:
                    self.add(unit, verdict[0], verdict[1], line, at_import)
        elif isinstance(node, ast.Global) and chain:
            unit.names |= set(node.names)

    def use(self, name: str, chain: _Chain, unit: _Unit) -> None:
        """A name read in ``chain``: a module-level name of the file is a dependency."""
        for i, scope in enumerate(chain):
            if scope.kind == "class" and i > 0:
                continue
            if name in scope.declared_global:
                break
            if name in scope.locals:
                return
        unit.uses.add(name)

    def judge_chain(self, node: ast.expr, chain: _Chain, unit: _Unit, at_import: bool, line: int) -> None:
        found = self.resolve(node, chain)
        if found:
            for qual in found:
                verdict = classify(qual)
                if verdict is None and qual.startswith("builtins.") and qual[9:] in ATTR_BUILTINS:
                    verdict = (DYNAMIC, f"{qual[9:]} used as a value")
                if verdict:
                    self.add(unit, verdict[0], verdict[1], line, at_import)
                if self.qual_bound:
                    parts = qual.split(".")
                    for n in range(1, len(parts) + 1):
                        if "qual:" + ".".join(parts[:n]) in self.qual_bound:
                            unit.uses.add("qual:" + ".".join(parts[:n]))
            return
        if found is not None and isinstance(node, ast.Attribute):  # None: an object of the file itself
            root: ast.expr = node
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and (root.id in ("self", "cls") or _is_self(root.id, chain)):
                return
            kind = _distinctive(node.attr)
            if kind:
                self.add(unit, kind, _short(node), line, at_import)

    def attr_call(self, call: ast.Call, chain: _Chain, unit: _Unit, at_import: bool) -> bool:
        """``getattr(obj, name)`` and friends; True when the call was judged here."""
        found = self.resolve(call.func, chain)
        if not found or not any(q.startswith("builtins.") and q[9:] in ATTR_BUILTINS for q in found):
            return False
        what = next(q[9:] for q in found if q.startswith("builtins.") and q[9:] in ATTR_BUILTINS)
        line = call.lineno
        if len(call.args) < 2:
            return True
        obj, name = call.args[0], call.args[1]
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            base = self.resolve(obj, chain)
            if base:
                for qual in base:
                    verdict = classify(f"{qual}.{name.value}")
                    if verdict:
                        self.add(unit, verdict[0], verdict[1], line, at_import)
            elif base is not None and what == "getattr" and not _rooted_at_self(obj, chain):
                kind = _distinctive(name.value)
                if kind:
                    self.add(unit, kind, f"{what}(..., {name.value!r})", line, at_import)
            if what in ("setattr", "delattr") and base:
                for qual in base:
                    if f"qual:{qual}.{name.value}" in self.qual_bound:
                        unit.uses.add(f"qual:{qual}.{name.value}")
            return True
        if not _rooted_at_self(obj, chain):
            self.add(unit, DYNAMIC, f"{what} with a computed name", line, at_import)
        return True

    def add(self, unit: _Unit, kind: str, what: str, line: int, at_import: bool) -> None:
        unit.findings.append((kind, what, line, at_import))

    # -- attribute targets of module-level code: torch.softmax = ..., MultiHeadAttention.forward = ...
    def bind_targets(self) -> None:
        for unit in self.units:
            for node in unit.nodes:
                if not isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr)):
                    continue
                if isinstance(node, ast.Expr):
                    call = node.value
                    if not (
                        isinstance(call, ast.Call)
                        and isinstance(call.func, ast.Name)
                        and call.func.id in ("setattr", "delattr")
                        and len(call.args) >= 2
                        and isinstance(call.args[1], ast.Constant)
                        and isinstance(call.args[1].value, str)
                    ):
                        continue
                    targets = [(call.args[0], call.args[1].value)]
                else:
                    raw = node.targets if isinstance(node, ast.Assign) else [node.target]
                    targets = [(t.value, t.attr) for t in _flat_targets(raw) if isinstance(t, ast.Attribute)]
                for obj, attr in targets:
                    for qual in self.resolve(obj, ()) or ():
                        unit.names.add(f"qual:{qual}.{attr}")
                        self.qual_bound.add(f"qual:{qual}.{attr}")

    # -- everything ----------------------------------------------------------------------------
    def run(self, names: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        self.collect_units()
        for unit in self.units:
            if not unit.is_import:
                self.module_bound |= {n for n in unit.names if not n.startswith("qual:")}
        for unit in self.units:  # X.attr = ..., X.update(...): only the file's own names count as bound
            unit.names |= unit.mutates & self.module_bound
        self.bind_targets()
        for unit in self.units:
            self.walk_unit(unit)
        by_name: dict[str, list[int]] = {}
        for index, unit in enumerate(self.units):
            for name in unit.names:
                by_name.setdefault(name, []).append(index)
        import_time = _Unit([])
        for unit in self.units:
            if unit.is_import:
                continue
            import_time.findings += [f for f in unit.findings if f[3]]
            if not any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for n in unit.nodes):
                import_time.uses |= unit.uses
        module_wide = [
            (f, "<module>")
            for f, _ in self.closure_findings(import_time, by_name, "<module>")
            if f[0] in (DYNAMIC, GUARD, GRADER)
        ]
        result: dict[str, list[dict[str, Any]]] = {}
        for name in names:
            start = _Unit([])
            start.uses.add(name)
            found = self.closure_findings(start, by_name, None)
            for mod, line in self.star:  # from torch.nn.functional import * after the def
                verdict = classify(f"{mod}.{name}")
                firsts = [self.units[i].nodes[0] for i in by_name.get(name, ())]
                defined = [node.lineno for node in firsts if hasattr(node, "lineno")]
                if verdict and defined and line > max(defined):
                    found.append(((verdict[0], verdict[1], line, True), ""))
            found += module_wide
            if found:
                result[name] = _report(found, name)
        return result

    def closure_findings(
        self, start: _Unit, by_name: dict[str, list[int]], label: str | None
    ) -> list[tuple[_Finding, str | None]]:
        """Findings of ``start`` and of every module-level binding it uses, transitively,
        each with the name of the binding it sits in."""
        out: list[tuple[_Finding, str | None]] = [(f, label) for f in start.findings] if label else []
        seen: set[str] = set()
        todo = list(start.uses)
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            self.tick()
            for index in by_name.get(name, ()):
                unit = self.units[index]
                via = name[5:] if name.startswith("qual:") else name
                out += [(f, via) for f in unit.findings]
                todo.extend(unit.uses - seen)
        return out


def _report(found: Sequence[tuple[_Finding, str | None]], name: str) -> list[dict[str, Any]]:
    """Up to :data:`MAX_FINDINGS` findings of public ``name`` as plain dicts, the most
    telling first (by kind, then those in ``name`` itself, then by line)."""
    order = {FORBIDDEN: 0, GUARD: 1, UNREADABLE: 2, DYNAMIC: 3, GRADER: 4, PRIVATE: 5}
    ranked = sorted(found, key=lambda item: (order[item[0][0]], item[1] not in ("", None, name), item[0][2]))
    unique: dict[tuple[str, str], tuple[int, str | None]] = {}
    for (kind, what, line, _), via in ranked:  # one line per forbidden thing: where the function itself uses it
        unique.setdefault((kind, what), (line, via))
    return [
        {"kind": kind, "what": what[:200], "line": int(line), "via": (via or "")[:100]}
        for (kind, what), (line, via) in list(unique.items())[:MAX_FINDINGS]
    ]


def _is_main_guard(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    consts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(consts) == 1


def _flat_targets(targets: Iterable[ast.expr]) -> list[ast.expr]:
    todo = list(targets)
    out: list[ast.expr] = []
    while todo:
        target = todo.pop()
        if isinstance(target, (ast.Tuple, ast.List)):
            todo.extend(target.elts)
        elif isinstance(target, ast.Starred):
            todo.append(target.value)
        else:
            out.append(target)
    return out


def _bind(unit: _Unit, target: ast.expr) -> None:
    """Record the names an assignment target binds (``X``) or mutates (``X.attr``, ``X[i]``)."""
    for t in _flat_targets([target]):
        if isinstance(t, ast.Name):
            unit.names.add(t.id)
        else:
            unit.mutates |= _roots([t])


def _roots(nodes: Iterable[ast.expr]) -> set[str]:
    names: set[str] = set()
    for t in nodes:
        while isinstance(t, (ast.Attribute, ast.Subscript)):
            t = t.value
        if isinstance(t, ast.Name):
            names.add(t.id)
    return names


def _pairs(target: ast.expr, value: ast.expr) -> list[tuple[str, ast.expr]]:
    """``(name, value expression)`` for plain-name targets, unpacking matching tuples."""
    if isinstance(target, ast.Name):
        return [(target.id, value)]
    if (
        isinstance(target, (ast.Tuple, ast.List))
        and isinstance(value, (ast.Tuple, ast.List))
        and len(target.elts) == len(value.elts)
    ):
        return [p for t, v in zip(target.elts, value.elts) for p in _pairs(t, v)]
    return []


def _const_getattr(call: ast.Call) -> bool:
    return (
        isinstance(call.func, ast.Name)
        and call.func.id == "getattr"
        and len(call.args) in (2, 3)
        and isinstance(call.args[1], ast.Constant)
        and isinstance(call.args[1].value, str)
    )


def _all_args(args: ast.arguments) -> list[ast.arg]:
    return args.posonlyargs + args.args + args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a]


def _is_self(name: str, chain: _Chain) -> bool:
    """``name`` is the first parameter of a method (``self`` by another name)."""
    for i, scope in enumerate(chain):
        if scope.kind == "function" and scope.self_name == name and i + 1 < len(chain) and chain[i + 1].kind == "class":
            return True
        if name in scope.locals:
            return False
    return False


def _rooted_at_self(node: ast.expr, chain: _Chain) -> bool:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return isinstance(node, ast.Name) and (node.id in ("self", "cls") or _is_self(node.id, chain))


def _short(node: ast.expr) -> str:
    try:
        text = ast.unparse(node)
    except Exception:
        text = getattr(node, "attr", "?")
    return text if len(text) <= 80 else "..." + text[-77:]


def check_source(
    source: str, names: Iterable[object], max_seconds: float = MAX_SECONDS
) -> dict[str, list[dict[str, Any]]]:
    """``{public name: [finding, ...]}`` for the names of ``names`` that reach something
    forbidden (names with nothing to report are left out).

    A finding is a dict ``{"kind", "what", "line", "via"}``: ``via`` is the top-level
    binding of the file the finding sits in when it is not the public name itself
    (``"<module>"`` for code that runs at import).  A file that does not parse gives ``{}``
    (the import reports the syntax error); one that cannot be checked flags every name.
    """
    wanted = [n for n in names if isinstance(n, str)]
    deadline = time.monotonic() + max_seconds
    enabled = gc.isenabled()
    gc.disable()  # the syntax tree is millions of objects for a big file: collections would dominate
    try:
        return _check(source, wanted, deadline)
    finally:
        if enabled:
            gc.enable()


def _check(source: str, names: Sequence[str], deadline: float) -> dict[str, list[dict[str, Any]]]:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, TypeError):
        return {}
    except (RecursionError, MemoryError):
        return _unreadable(names, "the file is nested too deeply for the checker to read")
    try:
        return _Checker(tree, deadline).run(names)
    except Unreadable as exc:
        return _unreadable(names, str(exc))
    except (RecursionError, MemoryError):
        return _unreadable(names, "the file is nested too deeply for the checker to read")
    except Exception as exc:
        return _unreadable(names, f"the checker failed ({type(exc).__name__}: {exc}); please tell the staff")


def _unreadable(names: Iterable[str], why: str) -> dict[str, list[dict[str, Any]]]:
    return {n: [{"kind": UNREADABLE, "what": why, "line": 0, "via": ""}] for n in names}


def plain_findings(value: object, names: Collection[str]) -> dict[str, list[dict[str, Any]]]:
    """A clean copy of a :func:`check_source` result that crossed a process boundary, or
    ``ValueError`` if it is anything but ``{public name: [finding, ...]}`` of the known shape."""
    if type(value) is not dict:
        raise ValueError("not a dict")
    kinds = (FORBIDDEN, GUARD, PRIVATE, DYNAMIC, GRADER, UNREADABLE)
    out: dict[str, list[dict[str, Any]]] = {}
    for name, found in value.items():
        if name not in names or type(found) is not list or not 0 < len(found) <= MAX_FINDINGS:
            raise ValueError(f"unexpected entry {str(name)[:40]!r}")
        clean = []
        for f in found:
            if (
                type(f) is not dict
                or set(f) != {"kind", "what", "line", "via"}
                or f["kind"] not in kinds
                or type(f["what"]) is not str
                or type(f["line"]) is not int
                or type(f["via"]) is not str
            ):
                raise ValueError("malformed finding")
            clean.append({"kind": f["kind"], "what": f["what"][:200], "line": f["line"], "via": f["via"][:100]})
        out[name] = clean
    return out


def describe(name: str, finding: Mapping[str, Any]) -> str:
    """The sentence for one finding of public ``name``:
    ``'MultiHeadAttention calls torch.nn.functional.multi_head_attention_forward (line 42),
    which this exercise asks you to write yourself'``."""
    kind, what, line, via = finding["kind"], finding["what"], finding["line"], finding.get("via", "")
    where = f"line {line}" if line else "the file"
    if via == "<module>":
        where += ", in code that runs at import"
    elif via and via != name:
        where += f", in {via}"
    if kind == FORBIDDEN:
        return f"{name} calls {what} ({where}), which this exercise asks you to write yourself"
    if kind == GUARD:
        return f"{name} uses {what} ({where}), which switches off the grader's checks"
    if kind == PRIVATE:
        return (
            f"{name} uses {what} ({where}), a private part of torch: write the exercise with public "
            "building blocks (torch.softmax, nn.Linear, torch.sigmoid, ...)"
        )
    if kind == DYNAMIC:
        return (
            f"{name} looks up a name dynamically ({what}, {where}): write torch calls out "
            "so that the grader can check them"
        )
    if kind == GRADER:
        return f"{name} uses the grader's own code ({what}, {where})"
    return f"{name} cannot be checked: {what}"
