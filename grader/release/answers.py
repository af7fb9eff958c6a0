"""The answer check of a student release: no function of its public tests is an answer.

A public test gets its expected values from somewhere.  When that somewhere is a function
built from the building blocks a student may use (a *formula oracle*: ``sigmoid`` and
``tanh`` of the right blocks, ``x l - softplus(l)``, ``torch.stack`` of slices, ...), the
function pasted into the stubs, with a dtype cast at most, is a working solution that
ships with the exercises.  :func:`scan` shows that none is: every function of the
release's public tests (``tests/exercises/*.py`` and ``tests/conftest.py``: module-level
and nested ``def``s and every ``lambda``), pasted into the stubs under each exercise
function it could serve, earns nothing on that exercise in the release's own check.  Each
one that would earn is a :class:`~grader.release.leaks.Leak` naming the test file, the
function and the exercise.

How, in three steps:

1. **Candidates** (:func:`candidates`): each function with the module-level statements of
   its file that it uses (imports, helpers, constants, transitively, in file order), its
   own decorators dropped (the function as written, not what ``@given`` or
   ``@S.composite`` make of it).  A nested function or lambda that needs its enclosing
   function's locals fails when called alone, as it would pasted alone.
2. **Pasting** (:func:`pastes`): the exercise names are the stub functions of
   ``assignments/`` and the ``forward`` of its classes (the candidate then gets the
   module's loaded state dict first, as a device oracle of a module does).  For each
   number of leading arguments both signatures accept, the stub module gets the candidate
   and, under the exercise's name, a wrapper that calls it and casts what it returns:
   floating tensors to the dtype of the first floating input (else the default dtype),
   every tensor to the first input tensor's device (else to the ``device`` argument), numpy
   arrays to tensors and numpy scalars to Python numbers (:data:`CAST`).
3. **Filtering, then grading.**  In a child process with memory and time limits
   (:func:`prefilter`), each pasted module is called on a few recorded inputs of its
   exercise name (the smallest calls the public tests make on the reference in a local
   check, :func:`grader.release.fingerprints.record`); a paste that never returns the
   reference's structure there (types, tensor shapes and dtypes, list lengths) is dropped,
   and so is one whose exercise name the forbidden-call check
   (:mod:`grader.execution.static_check`) refuses, as the sandbox would.  The rest are
   graded for real inside the release by its own runner, many per run, each in its own
   worker (:func:`grader.release.verify.grade_sources`); a paste that scores above 0 on its
   exercise is a finding.

Out of reach: a function that answers only once combined with another (two helpers
pasted together, a test body's inline expression), and a function that uses the grader's
own modules (the forbidden-call check refuses those in a submission, so as written it is
not an answer).
"""

import ast
import copy
import functools
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader import ROOT, rubric
from grader.release.leaks import Leak

#: The files of a release whose functions are checked, as globs relative to its root.
PUBLIC_TESTS = ("tests/exercises/*.py", "tests/conftest.py")
#: The name a pasted candidate gets in the stub module.
ANSWER = "_answer_candidate"
#: Limits of the child process that calls the candidates: data bytes, and seconds per call.
MEMORY_LIMIT = 6 * 1024**3
CALL_SECONDS = 2.0

#: Appended to every pasted module: the cast between the candidate and the exercise's name.
CAST = """
import numpy as _answer_np
import torch as _answer_torch


def _answer_leaves(value):
    if isinstance(value, _answer_torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _answer_leaves(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _answer_leaves(v)]
    return []


def _answer_cast(value, inputs, device=None):
    tensors = _answer_leaves(inputs)
    floats = [t for t in tensors if t.is_floating_point()]
    dtype = floats[0].dtype if floats else _answer_torch.get_default_dtype()
    where = tensors[0].device if tensors else device

    def cast(v):
        if isinstance(v, _answer_np.ndarray):
            v = _answer_torch.as_tensor(v)
        elif isinstance(v, _answer_np.generic):
            v = v.item()
        if isinstance(v, _answer_torch.Tensor):
            if v.is_floating_point():
                v = v.to(dtype)
            return v if where is None else v.to(where)
        if isinstance(v, (tuple, list)):
            return type(v)(cast(e) for e in v)
        return v

    return cast(value)
"""

_FUNCTION = """

def {name}({signature}):
    return _answer_cast({ANSWER}({passed}), ({inputs},), {device})
"""

_MODULE = """

class {name}(_answer_torch.nn.Module):
    def __init__(self, *args, **kwargs):
        super().__init__()
        self._answer_state = _answer_torch.nn.ParameterDict()

    def load_state_dict(self, state_dict, strict=True, assign=False):
        for key, value in state_dict.items():
            self._answer_state[key.replace(".", "__")] = _answer_torch.nn.Parameter(value.detach().clone())

    def forward(self, {signature}):
        state = {{key.replace("__", "."): value for key, value in self._answer_state.items()}}
        return _answer_cast({ANSWER}(state, {passed}), ({inputs},), None)
"""


@dataclass(frozen=True)
class Candidate:
    """One function of the public tests, ready to paste: where it is, what it takes, its code."""

    path: str  # relative POSIX path in the release
    line: int
    column: int
    name: str  # "gates_formula", "test_gates_gradients.<locals>.run", "<lambda>"
    required: int  # positional arguments it needs
    most: float  # positional arguments it takes (math.inf with *args)
    source: str  # the statements it uses, then itself bound to ANSWER


@dataclass(frozen=True)
class Target:
    """One exercise name a candidate could serve: a stub function, or a class's ``forward``."""

    exercise: str
    module: str
    name: str
    params: tuple[str, ...]  # positional parameter names (forward's without self)
    required: int
    signature: str  # the parameter list as the stub writes it (forward's without self)
    method: bool  # a class: the candidate gets the state dict first


@dataclass(frozen=True)
class Paste:
    """A candidate pasted into a stub module under one exercise name, called with ``count``
    leading arguments of the exercise."""

    candidate: Candidate
    target: Target
    count: int
    source: str

    @property
    def id(self) -> str:
        """A unique, readable id: file, line, function, exercise name and argument count."""
        c = self.candidate
        return f"{c.path}:{c.line}:{c.column}:{c.name}->{self.target.name}/{self.count}"


# ---- candidates ------------------------------------------------------------------------


def _loaded(node: ast.AST) -> set[str]:
    """The names ``node`` reads, minus those it binds itself (its parameters, locals and
    nested definitions): a generous guess at what it needs from its module."""
    loads: set[str] = set()
    binds: set[str] = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            (loads if isinstance(n.ctx, ast.Load) else binds).add(n.id)
        elif isinstance(n, ast.arg):
            binds.add(n.arg)
        elif isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and n is not node:
            binds.add(n.name)
        elif isinstance(n, ast.Import | ast.ImportFrom):
            binds.update((a.asname or a.name).split(".")[0] for a in n.names)
    return loads - binds


def _binds(stmt: ast.stmt) -> set[str]:
    """The module-level names ``stmt`` binds (compound statements: everything bound inside)."""
    if isinstance(stmt, ast.Import | ast.ImportFrom):
        return {(a.asname or a.name).split(".")[0] for a in stmt.names if a.name != "*"}
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {stmt.name}
    names = set()
    for n in ast.walk(stmt):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            names.add(n.id)
        elif isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(n.name)
        elif isinstance(n, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in n.names if a.name != "*")
    return names


def _needs(stmt: ast.stmt) -> set[str]:
    """What a module-level statement reads from its module (decorators and defaults included)."""
    if isinstance(stmt, ast.Import | ast.ImportFrom):
        return set()
    return _loaded(stmt)


def _closure(body: Sequence[ast.stmt], wanted: set[str], skip: ast.stmt | None = None) -> list[ast.stmt]:
    """The statements of ``body`` that bind ``wanted`` names, and those they need, in file
    order; an import keeps only the names used (``from torch.distributions import Normal``
    out of ``import Bernoulli, Normal, kl_divergence``), as a copy would."""
    binders: dict[str, list[int]] = {}
    for i, stmt in enumerate(body):
        if stmt is not skip:
            for name in _binds(stmt):
                binders.setdefault(name, []).append(i)
    chosen: dict[int, set[str]] = {}
    queue = list(wanted)
    while queue:
        name = queue.pop()
        for i in binders.get(name, []):
            if i not in chosen:
                chosen[i] = set()
                queue.extend(_needs(body[i]))
            chosen[i].add(name)
    out = []
    for i in sorted(chosen):
        stmt = body[i]
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            stmt = copy.copy(stmt)
            stmt.names = [a for a in stmt.names if (a.asname or a.name).split(".")[0] in chosen[i]]
        out.append(stmt)
    return out


def _positional(args: ast.arguments) -> tuple[int, float] | None:
    """``(required, most)`` positional arguments, or None when a keyword-only one is required."""
    if any(d is None for d in args.kw_defaults):
        return None
    count = len(args.posonlyargs) + len(args.args)
    return count - len(args.defaults), math.inf if args.vararg else count


def _functions(tree: ast.Module) -> Iterator[tuple[ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, str]]:
    """Every function and lambda of ``tree`` with its qualified name."""
    stack: list[tuple[ast.AST, str]] = [(tree, "")]
    while stack:
        node, prefix = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = prefix + child.name
                yield child, name
                stack.append((child, name + ".<locals>."))
            elif isinstance(child, ast.Lambda):
                yield child, prefix + "<lambda>"
                stack.append((child, prefix + "<lambda>.<locals>."))
            elif isinstance(child, ast.ClassDef):
                stack.append((child, prefix + child.name + "."))
            else:
                stack.append((child, prefix))


def candidates_of(rel: str, text: str) -> list[Candidate]:
    """The candidates of one public test file (``rel`` its path in the release), by line."""
    tree = ast.parse(text)
    found = []
    for node, name in _functions(tree):
        shape = _positional(node.args)
        if shape is None:
            continue
        own = node if isinstance(node, ast.stmt) and node in tree.body else None
        if isinstance(node, ast.Lambda):
            code = f"{ANSWER} = ({ast.unparse(node)})"
            needs = _loaded(node)
        else:
            bare = copy.copy(node)
            bare.decorator_list = []
            code = f"{ast.unparse(bare)}\n\n{ANSWER} = {node.name}"
            needs = _loaded(bare) - {node.name}
        statements = _closure(tree.body, needs, skip=own)
        if own is not None:  # in file order, among the statements it uses
            later = [s for s in statements if s.lineno > own.lineno]
            earlier = [s for s in statements if s.lineno < own.lineno]
            parts = [*(ast.unparse(s) for s in earlier), code, *(ast.unparse(s) for s in later)]
        else:
            parts = [*(ast.unparse(s) for s in statements), code]
        source = "\n\n\n".join(parts) + "\n"
        found.append(Candidate(rel, node.lineno, node.col_offset, name, shape[0], shape[1], source))
    return sorted(found, key=lambda c: (c.line, c.column, c.name))


def candidates(release: Path) -> list[Candidate]:
    """Every candidate of the release's public tests (:data:`PUBLIC_TESTS`), by file and line."""
    found = []
    for pattern in PUBLIC_TESTS:
        for path in sorted(release.glob(pattern)):
            found += candidates_of(path.relative_to(release).as_posix(), path.read_text(encoding="utf-8"))
    return found


# ---- targets and pastes ----------------------------------------------------------------


def targets_of(module: str, stub: str) -> list[Target]:
    """The exercise names of ``module`` in its stub source: functions, and classes' ``forward``."""
    defs = {n.name: n for n in ast.parse(stub).body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    found = []
    for ex in rubric.exercises_of(module):
        for name in ex.names:
            node: ast.AST | None = defs.get(name)
            method = isinstance(node, ast.ClassDef)
            if isinstance(node, ast.ClassDef):
                node = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "forward"), None)
            if not isinstance(node, ast.FunctionDef) or _positional(node.args) is None:
                continue
            args = node.args
            params = [a.arg for a in (*args.posonlyargs, *args.args)]
            defaults = len(args.defaults)
            if method:
                params = params[1:]
                args = ast.arguments(
                    posonlyargs=[],
                    args=args.args[1:],
                    vararg=None,
                    kwonlyargs=[],
                    kw_defaults=[],
                    defaults=args.defaults,
                )
            found.append(Target(ex.id, module, name, tuple(params), len(params) - defaults, ast.unparse(args), method))
    return found


def paste(stub: str, candidate: Candidate, target: Target, count: int) -> str:
    """The stub module with ``candidate`` serving ``target``, called with ``count`` leading arguments."""
    template = _MODULE if target.method else _FUNCTION
    wrapper = template.format(
        name=target.name,
        signature=target.signature,
        ANSWER=ANSWER,
        passed=", ".join(target.params[:count]),
        inputs=", ".join(target.params),
        device="device" if "device" in target.params else "None",
    )
    return f"{stub}\n\n# ---- pasted by grader/release/answers.py\n{candidate.source}\n{CAST}{wrapper}"


def pastes(release: Path, found: Sequence[Candidate], modules: Sequence[str] = ()) -> list[Paste]:
    """Every candidate pasted under every exercise name of ``modules`` (all when empty) it
    could serve, once per number of leading arguments both accept (a class's ``forward``
    takes the state dict first)."""
    out = []
    for module in modules or rubric.MODULES:
        stub_path = release / "assignments" / f"{module}.py"
        if not stub_path.is_file():
            continue
        stub = stub_path.read_text(encoding="utf-8")
        for target in targets_of(module, stub):
            for candidate in found:
                extra = 1 if target.method else 0
                for count in range(target.required, len(target.params) + 1):
                    if candidate.required <= count + extra <= candidate.most:
                        out.append(Paste(candidate, target, count, paste(stub, candidate, target, count)))
    return out


# ---- the filter (in a child process) ---------------------------------------------------


def _structure(value: Any) -> Any:
    """What the filter compares: types, tensor shapes and dtypes, container lengths."""
    import torch

    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), str(value.dtype))
    if isinstance(value, tuple | list):
        return (type(value).__name__, tuple(_structure(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((str(k), _structure(v)) for k, v in value.items())))
    return type(value).__name__


class _Slow(Exception):
    """A call ran past :data:`CALL_SECONDS`."""


def _alarm(signum: int, frame: Any) -> None:
    raise _Slow()


def _run(fn: Callable[[], Any]) -> tuple[bool, Any]:
    """``(True, result)`` or ``(False, why)``: ``fn`` under the time limit, errors caught."""
    signal.setitimer(signal.ITIMER_REAL, CALL_SECONDS)
    try:
        return True, fn()
    except BaseException as exc:  # a candidate may raise anything, SystemExit included
        if isinstance(exc, KeyboardInterrupt):
            raise
        return False, f"{type(exc).__name__}: {exc}"[:200]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


#: Recorded calls kept per exercise name for the filter, the smallest first.
EXAMPLES = 6


def _size(value: Any) -> int:
    """Tensor elements, list entries and the size of ints in ``value``: smaller examples are
    tried first (a candidate given ``num_outcomes = 2**60`` as a length would take forever)."""
    import torch

    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return abs(value)
    if isinstance(value, torch.Tensor):
        return value.numel()
    if isinstance(value, tuple | list):
        return len(value) + sum(_size(v) for v in value)
    if isinstance(value, dict):
        return len(value) + sum(_size(v) for v in value.values())
    return 0


def _examples(targets: Sequence[dict[str, Any]]) -> dict[tuple[str, str], list[tuple[Any, ...]]]:
    """``{(module, name): [(args, kwargs, default dtype, made)]}``: the calls of each target
    that the public tests make on the reference (:func:`grader.release.fingerprints.record`,
    the examples of a local check), at most :data:`EXAMPLES` each, the smallest first;
    ``made`` is ``(constructor args, kwargs, loaded state)`` for a ``forward``."""
    from grader.release import fingerprints

    modules = sorted({t["module"] for t in targets})
    recorded = fingerprints.record(modules)
    found: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for exercise, examples in recorded.items():
        module = exercise.split(".")[0]
        for steps in examples:
            made: dict[Any, Any] = {}
            for step in steps:
                call = step.call
                if step.kind == "construct":
                    made[step.oid] = (call.args, call.kwargs, None)
                elif step.kind == "method" and call.name == "load_state_dict" and step.oid in made:
                    made[step.oid] = (*made[step.oid][:2], call.args[0])
                elif step.kind == "invoke" and call.obj is None:
                    found.setdefault((module, call.name), []).append((call.args, call.kwargs, call.default_dtype, None))
                elif step.kind == "invoke" and made.get(call.obj, (None, None, None))[2] is not None:
                    for name in {t["name"] for t in targets if t["module"] == module and t["method"]}:
                        found.setdefault((module, name), []).append(
                            (call.args, call.kwargs, call.default_dtype, made[call.obj])
                        )
    return {key: sorted(calls, key=_size)[:EXAMPLES] for key, calls in found.items()}


def _call(namespace: Any, target: dict[str, Any], example: tuple[Any, ...], reference: bool) -> tuple[bool, Any]:
    """Call ``target`` of ``namespace`` (a pasted module, or the reference) on ``example``."""
    import torch

    from grader.testing.replay import fresh_copy

    args, kwargs, default_dtype, made = fresh_copy(example)

    def go() -> Any:
        """The call, in the recorded default dtype, without gradients or warnings."""
        before = torch.get_default_dtype()
        if default_dtype is not None:
            torch.set_default_dtype(default_dtype)
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                if not target["method"]:
                    return getattr(namespace, target["name"])(*args, **kwargs)
                ctor_args, ctor_kwargs, state = made
                obj = getattr(namespace, target["name"])(*ctor_args, **ctor_kwargs)
                if reference:
                    obj.to(next(iter(state.values())).dtype)
                obj.load_state_dict(state)
                return obj(*args, **kwargs)
        finally:
            torch.set_default_dtype(before)

    return _run(go)


def _filter(plan: list[dict[str, Any]]) -> dict[str, str]:
    """``{paste id: ""}`` for the pastes to grade, ``{paste id: why not}`` for the others."""
    import torch

    from grader.execution import static_check
    from grader.testing import reference

    verdicts: dict[str, str] = {}
    expected: dict[tuple[str, str], list[Any]] = {}
    recorded = _examples([entry["target"] for entry in plan])
    for entry in plan:
        target = entry["target"]
        key = (target["module"], target["name"])
        if key not in expected:
            examples = recorded.get(key, [])
            ref = reference.load(target["module"])
            wants = []
            for example in examples:
                ok, got = _call(ref, target, example, reference=True)
                if ok:
                    wants.append((example, _structure(got)))
            expected[key] = wants
        namespace = types.ModuleType(f"_answer_paste_{len(verdicts)}")
        code = compile(entry["source"], f"<{entry['id']}>", "exec")
        ok, why = _run(functools.partial(exec, code, namespace.__dict__))
        torch.set_default_dtype(torch.float32)
        if not ok:
            verdicts[entry["id"]] = f"does not import: {why}"
            continue
        wants = expected[key]
        fits = not wants  # no recorded call the reference answers: grade it
        for example, want in wants:
            ok, got = _call(namespace, target, example, reference=False)
            if ok and _structure(got) == want:
                fits = True
                break
        if not fits:
            verdicts[entry["id"]] = "never returns the exercise's structure"
            continue
        refused = static_check.check_source(entry["source"], [target["name"]]).get(target["name"])
        verdicts[entry["id"]] = f"refused: {refused[0]['what']}" if refused else ""
    return verdicts


def _limits() -> None:
    """The child's limits: its data (heap and anonymous mappings, not the libraries it
    maps), and no core files."""
    resource.setrlimit(resource.RLIMIT_DATA, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def filter_main(plan_file: str, out_file: str) -> None:
    """The child process of :func:`prefilter`: read the plan, write the verdicts."""
    signal.signal(signal.SIGALRM, _alarm)
    plan = json.loads(Path(plan_file).read_text(encoding="utf-8"))
    Path(out_file).write_text(json.dumps(_filter(plan)), encoding="utf-8")


def _target_data(target: Target) -> dict[str, Any]:
    return {"module": target.module, "name": target.name, "method": target.method}


def prefilter(release: Path, found: Sequence[Paste]) -> dict[str, str]:
    """``{paste id: why it is dropped}``, ``""`` for a paste to grade (see the module doc, step 3).

    The candidates run in a child process (this repository's Python; the inputs are the
    calls the public tests make on the reference of ``solutions/``, which also gives the
    structure to compare), under :data:`MEMORY_LIMIT` and :data:`CALL_SECONDS` per call."""
    plan = [{"id": p.id, "source": p.source, "target": _target_data(p.target)} for p in found]
    with tempfile.TemporaryDirectory(prefix="release-answers-") as tmp:
        plan_file, out_file = Path(tmp) / "plan.json", Path(tmp) / "out.json"
        plan_file.write_text(json.dumps(plan), encoding="utf-8")
        code = "import sys; from grader.release import answers; answers.filter_main(sys.argv[1], sys.argv[2])"
        cmd = [sys.executable, "-c", code, str(plan_file), str(out_file)]
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        env.pop("PYTHONPATH", None)
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False, preexec_fn=_limits, timeout=1800
        )
        if proc.returncode != 0 or not out_file.is_file():
            raise RuntimeError(f"the answer check's filter failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
        return json.loads(out_file.read_text(encoding="utf-8"))


# ---- the scan --------------------------------------------------------------------------


@dataclass
class Summary:
    """What a :func:`scan` looked at: candidates, pastes, pastes graded, findings."""

    candidates: int = 0
    pastes: int = 0
    graded: int = 0
    findings: int = 0


def scan(
    release: Path,
    modules: Sequence[str] = (),
    say: Callable[[str], None] | None = None,
    summary: Summary | None = None,
) -> list[Leak]:
    """The answer check of the release folder ``release`` (see the module doc): a finding per
    public test function and exercise of ``modules`` (all when empty) it would earn points
    on, pasted into the stubs.  ``summary`` (if given) is filled with what was looked at."""
    from grader.release import verify

    release = Path(release)
    summary = summary if summary is not None else Summary()
    found = candidates(release)
    every = pastes(release, found, modules)
    verdicts = prefilter(release, every)
    chosen = [p for p in every if verdicts.get(p.id) == ""]
    summary.candidates, summary.pastes, summary.graded = len(found), len(every), len(chosen)
    if say is not None:
        say(f"answer check: {len(found)} public test functions, {len(every)} pastes, {len(chosen)} graded")
    graded = verify.grade_sources(release, [(p.id, p.target.module, p.source, [p.target.exercise]) for p in chosen])
    best: dict[tuple[str, int, str, str], tuple[float, float, Paste]] = {}
    for p in chosen:
        score, top = graded[p.id]["score"], graded[p.id]["max_score"]
        key = (p.candidate.path, p.candidate.line, p.candidate.name, p.target.exercise)
        if score > 0 and (key not in best or score > best[key][0]):
            best[key] = (score, top, p)
    leaks = []
    for (path, line, name, exercise), (score, top, p) in sorted(best.items()):
        leaks.append(
            Leak(
                path,
                line,
                f"{name} pasted into the stubs as {p.target.name} earns {score:g}/{top:g} points on {exercise}: "
                "a public test function is an answer (docs/grading.md, 'Where expected values come from')",
            )
        )
    summary.findings = len(leaks)
    return leaks
