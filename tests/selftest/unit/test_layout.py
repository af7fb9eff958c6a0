"""The rooms of ``grader/`` and the one-way arrows between them.

Each folder answers one question (see CONTRIBUTING.md, "A map of grader/").  Arrows go
down only: a module imports from its own room or from a room below it, never above, and
no imports go round in a circle.  The worker side (``grader/execution/``, copied whole into
every sandbox worker) imports nothing of the grader but itself and :mod:`grader.outcomes`.
Lazy imports inside functions count: they run too.
"""

import ast
import sys
from pathlib import Path

import pytest

from grader import ROOT

#: Rooms from the bottom up; a module may import from its own room and the rooms below.
ROOMS = (
    ("outcomes", ("grader", "grader.outcomes")),
    ("execution", ("grader.execution",)),
    ("course data", ("grader.rubric", "grader.staffkey", "grader.mistakes")),
    ("adapters", ("grader.adapters",)),
    ("testing", ("grader.testing",)),
    ("grading", ("grader.grading",)),
    (
        "commands and authoring",
        (
            "grader.cli",
            "grader.__main__",
            "grader.authoring",
            "grader.release",
            "grader.notebooks",
            "grader.review",
            "grader.classreport",
        ),
    ),
)
#: What the worker side may import of the grader (besides the standard library and these).
WORKER_ALLOWED = ("grader", "grader.outcomes", "grader.execution")
WORKER_THIRD_PARTY = {"torch", "numpy"}


def module_name(rel):
    """``execution/calls.py`` -> ``grader.execution.calls``; ``__init__.py`` -> the package."""
    parts = ["grader", *Path(rel).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room_of(module):
    """The index and name of the room holding ``module``."""
    for index, (name, prefixes) in enumerate(ROOMS):
        if any(module == p or (p != "grader" and module.startswith(p + ".")) for p in prefixes):
            return index, name
    raise LookupError(f"{module} is in no room of tests/selftest/unit/test_layout.py: add it to ROOMS")


def imports(source, module, known):
    """``(line, imported module)`` for every import in ``source`` (lazy ones included);
    ``from pkg import name`` yields ``pkg.name`` when that is a module of ``known``."""
    package = module if module in known and known[module] else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield node.lineno, sub if sub in known else base


def grader_sources(root=ROOT):
    """``{module: (relative path, source, is_package)}`` for every module of ``grader/``."""
    found = {}
    for path in sorted((root / "grader").rglob("*.py")):
        rel = path.relative_to(root / "grader")
        found[module_name(rel)] = (
            f"grader/{rel.as_posix()}",
            path.read_text(encoding="utf-8"),
            path.name == "__init__.py",
        )
    return found


def violations(sources):
    """Every broken rule in ``sources`` (as :func:`grader_sources` returns), one line each."""
    known = {name: is_pkg for name, (_, _, is_pkg) in sources.items()}
    found, edges = [], {}
    for module, (rel, source, _) in sources.items():
        try:
            index, room = room_of(module)
        except LookupError as exc:
            found.append(str(exc))
            continue
        worker_side = module.startswith("grader.execution")
        for line, target in imports(source, module, known):
            top = target.split(".")[0]
            if top != "grader":
                if worker_side and top not in sys.stdlib_module_names and top not in WORKER_THIRD_PARTY:
                    found.append(
                        f"{rel}:{line} imports {target}: the worker side may import only the standard "
                        f"library, {', '.join(sorted(WORKER_THIRD_PARTY))} and {', '.join(WORKER_ALLOWED)}"
                    )
                continue
            if worker_side and not any(
                target == a or (a != "grader" and target.startswith(a + ".")) for a in WORKER_ALLOWED
            ):
                found.append(
                    f"{rel}:{line} imports {target}, which the worker bundle lacks "
                    f"(grader/execution/ may import only {', '.join(WORKER_ALLOWED)})"
                )
            try:
                their_index, their_room = room_of(target)
            except LookupError as exc:
                found.append(f"{rel}:{line}: {exc}")
                continue
            if their_index > index:
                found.append(
                    f"{rel}:{line} imports {target} from the room '{their_room}', above its own room "
                    f"'{room}': arrows go down only"
                )
            if target != module:
                edges.setdefault(module, set()).add(target)
    found.extend(f"import circle: {' -> '.join(c)}" for c in _circles(edges))
    return found


def _circles(edges):
    """One circle per strongly connected group of modules (Tarjan), as a closed path."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                out.append([*sorted(group), sorted(group)[0]])

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return out


def test_grader_follows_its_layout():
    """No import goes up a room, none goes round a circle, the worker side stays closed."""
    problems = violations(grader_sources())
    assert not problems, "\n".join(problems)


def _with(sources, module, extra):
    rel, source, is_pkg = sources[module]
    return {**sources, module: (rel, source + "\n" + extra + "\n", is_pkg)}


@pytest.mark.parametrize(
    ("module", "line", "expected"),
    [
        (
            "grader.execution.calls",
            "from grader import rubric",
            "grader/execution/calls.py:{n} imports grader.rubric, which the worker bundle lacks",
        ),
        ("grader.execution.worker", "import yaml", "grader/execution/worker.py:{n} imports yaml: the worker side"),
        (
            "grader.grading.runner",
            "from grader.authoring import stubgen",
            "grader/grading/runner.py:{n} imports grader.authoring.stubgen from the room 'commands and authoring', "
            "above its own room 'grading'",
        ),
        (
            "grader.testing.checks",
            "def f():\n    from grader.grading import scoring",
            "grader/testing/checks.py:{n} imports grader.grading.scoring from the room 'grading'",
        ),
        ("grader.adapters.base", "from grader.adapters import sandboxed", "import circle: grader.adapters"),
    ],
)
def test_layout_check_names_the_file_and_the_import(module, line, expected):
    """Each rule fails on a reversed arrow, naming the file, the line and the import."""
    sources = grader_sources()
    n = len(sources[module][1].splitlines()) + 2 + line.count("\n")  # the import is the last line added
    problems = violations(_with(sources, module, line))
    assert any(p.startswith(expected.format(n=n)) for p in problems), problems


def test_a_module_outside_every_room_is_named():
    """A new folder must be given a room before it can import anything."""
    sources = {**grader_sources(), "grader.peer.app": ("grader/peer/app.py", "import os\n", False)}
    assert any("grader.peer.app is in no room" in p for p in violations(sources))


def test_every_module_is_on_the_map():
    """CONTRIBUTING.md's map of grader/ has one line per module, and no line for a module that is gone."""
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    mapped = {line.split("`")[1] for line in text.splitlines() if line.startswith("- `grader/") and ".py`" in line}
    modules = {rel for rel, _, _ in grader_sources().values()}
    assert not modules - mapped, f"add to CONTRIBUTING.md's map of grader/: {sorted(modules - mapped)}"
    assert not mapped - modules, f"remove from CONTRIBUTING.md's map of grader/: {sorted(mapped - modules)}"
