"""Name the student's mistake: replay a failing test's calls on every catalog entry.

The ``impl`` a test receives is wrapped in a :class:`Recording`, which keeps every call
the current example made through the seam (its arguments and what came back, or the
exception).  When the test fails, :func:`hints` replays those exact calls, in this
trusted process, on the reference and on each wrong entry of the catalog (and the trivial
outputs).  An entry *matches* when every call gives what the student's code gave (values
within tolerance, gradients, inputs after the call, the same exception) while the
reference does not.  The hint names that entry's mistake, and only when exactly one
mistake matches (entries of the test's own exercise first): never a list of guesses.

When several entries tie on the failing example (``m`` instead of ``m - 1`` and "returns
ones" both give 1 at ``m = 1``), the decision waits for the end of the run: the entries
must then also agree with the student on the other examples that the exercise's tests
ran, passing ones included (:func:`refine`).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis.control import current_build_context
from hypothesis.errors import InvalidArgument

from grader import mistakes
from grader.adapters import ModuleHandle
from grader.execution.calls import MODULE_METHODS, Call, construct, module_method, resolve, run_call
from grader.outcomes import StudentCodeError, SubmissionProblem

_active = {"recording": None, "epoch": 0}
#: Examples kept per exercise to tell apart entries that tie on a failing one.
HISTORY = 40


@dataclass
class Step:
    """One call the test made: ``kind`` is invoke, construct or method."""

    kind: str
    call: Call
    oid: Any = None
    outcome: Any = None


def _context():
    try:
        return current_build_context()
    except InvalidArgument:  # not inside a hypothesis example
        return None


class Recording:
    """An implementation that remembers the calls of the current example (see module doc)."""

    def __init__(self, inner):
        self.inner = inner
        self.module = inner.module
        self.steps = []
        self.examples = {}  # exercise -> step lists of the examples its tests ran
        self._exercise = None
        self._context = None
        self._epoch = -1

    def archive(self):
        """Keep the current example's calls as evidence for its exercise."""
        kept = self.examples.setdefault(self._exercise, [])
        if self.steps and len(kept) < HISTORY and all(k is not self.steps for k in kept):
            kept.append(self.steps)

    def _begin(self):
        context = _context()
        if self._epoch != _active["epoch"] or context is not self._context:  # a new test or example
            self.archive()
            self.steps, self._context, self._epoch = [], context, _active["epoch"]
            self._exercise = mistakes.current_exercise()
        _active["recording"] = self

    def label(self, name):
        """How messages name a call (see :meth:`grader.adapters.Implementation.label`)."""
        return self.inner.label(name)

    def call(self, name, *args, **kwargs):
        """Call public function ``name``; its outputs."""
        return self.invoke(Call(name, args, kwargs)).outputs

    def _run(self, step, run):
        self._begin()
        self.steps.append(step)
        try:
            result = run()
        except SubmissionProblem as exc:
            step.outcome = _raised(exc)
            raise
        step.outcome = ("ok", result)
        return result

    def invoke(self, call):
        """Run ``call`` (see :meth:`grader.adapters.Implementation.invoke`)."""
        return self._run(Step("invoke", _copy_call(call)), lambda: self.inner.invoke(call))

    def construct(self, name, *args, **kwargs):
        """Construct public class ``name``; a handle whose calls are recorded too."""
        step = Step("construct", _copy_call(Call(name, args, kwargs)))
        handle = self._run(step, lambda: self.inner.construct(name, *args, **kwargs))
        step.oid = handle.oid
        step.outcome = ("ok", None)
        return ModuleHandle(self, handle.oid, name)

    def method(self, handle, name, *args, **kwargs):
        """Call a module method (see :data:`grader.execution.calls.MODULE_METHODS`)."""
        step = Step("method", _copy_call(Call(name, args, kwargs)), handle.oid)
        return self._run(step, lambda: self.inner.method(handle, name, *args, **kwargs))

    def close(self):
        """Close the wrapped implementation."""
        if _active["recording"] is self:
            _active["recording"] = None
        self.inner.close()


def _copy_call(call):
    return Call(
        call.name,
        mistakes.fresh_copy(tuple(call.args)),
        mistakes.fresh_copy(dict(call.kwargs)),
        call.obj,
        tuple(call.grad_wrt),
        mistakes.fresh_copy(call.cotangents),
        call.want_inputs_after,
        call.default_dtype,
    )


def _raised(exc):
    if isinstance(exc, StudentCodeError):
        return ("raised", exc.exc_type, exc.message)
    return ("raised", type(exc).__name__, "")


def _replay(steps, namespace, module):
    """The outcome of each step when the calls run on ``namespace`` (trusted code)."""
    path = Path(namespace.__file__ if hasattr(namespace, "__file__") else "<entry>")
    objects, outcomes = {}, []
    for step in steps:
        call = _copy_call(step.call)
        try:
            if step.kind == "construct":
                objects[step.oid] = construct(
                    resolve(namespace, module, call.name), call.args, call.kwargs, call.name, path
                )
                outcomes.append(("ok", None))
            elif step.kind == "method":
                if call.name not in MODULE_METHODS:
                    raise ValueError(call.name)
                result = run_call(module_method(objects[step.oid], call.name), call, call.name, path)
                outcomes.append(("ok", result.outputs))
            else:
                obj = objects.get(step.call.obj) if step.call.obj is not None else None
                target = obj if obj is not None else resolve(namespace, module, call.name)
                call.obj = None
                outcomes.append(("ok", run_call(target, call, call.name, path, module_obj=obj)))
        except SubmissionProblem as exc:
            outcomes.append(_raised(exc))
        except Exception as exc:
            outcomes.append(("raised", type(exc).__name__, str(exc)))
    return outcomes


def _same_outcome(a, b):
    if a[0] != b[0]:
        return False
    if a[0] == "raised":
        return a[1:] == b[1:]
    x, y = a[1], b[1]
    if x is None or y is None:
        return x is None and y is None
    if not hasattr(x, "outputs"):
        return mistakes.same(x, y)
    return (
        mistakes.same(x.outputs, y.outputs)
        and _same_dict(x.grads, y.grads)
        and _same_dict(x.param_grads, y.param_grads)
        and mistakes.same(x.inputs_after, y.inputs_after)
    )


def _same_dict(a, b):
    a, b = a or {}, b or {}
    return a.keys() == b.keys() and all(mistakes.same(a[k], b[k]) for k in a)


def _agrees(outcomes, steps):
    return len(outcomes) == len(steps) and all(_same_outcome(o, s.outcome) for o, s in zip(outcomes, steps))


def matching(module, steps, reference):
    """The catalog entries (wrong and trivial) whose replay of ``steps`` gives the student's
    outcomes, unless the ``reference`` namespace does too."""
    steps = [s for s in steps if s.outcome is not None]
    if not steps or _agrees(_replay(steps, reference, module), steps):
        return []
    return [
        m for m in mistakes.hint_candidates(module) if _agrees(_replay(steps, mistakes.namespace(m), module), steps)
    ]


@dataclass
class Pending:
    """A failure whose matching entries tie: decided by :func:`refine` at the end of the run."""

    recording: Recording
    exercise: str
    steps: list
    matched: list


def _lines(mistakes):
    return [f"your code matches {mistake}" for mistake in mistakes]


def hints(exercise):
    """``(hint lines, pending)`` for the failure of the current example: the hint names the
    one catalog mistake its calls match; when several tie, ``pending`` (a :class:`Pending`)
    lets :func:`refine` decide later, and when none match both are empty.  ``(None, None)``
    when no call was recorded: there is nothing to diagnose."""
    recording = _active["recording"]
    if recording is None or not recording.steps:
        return None, None
    from grader.testing import reference

    matched = matching(recording.module, recording.steps, reference.load(recording.module))
    named = mistakes.precise(matched, exercise)
    if named or len(matched) < 2:
        return _lines(named), None
    return [], Pending(recording, exercise, recording.steps, matched)


def refine(pending):
    """Hint lines for a :class:`Pending` failure, once every test of its exercise has run."""
    recording, matched = pending.recording, pending.matched
    recording.archive()
    for steps in recording.examples.get(pending.exercise, []):
        if mistakes.precise(matched, pending.exercise) or len(matched) < 2:
            break
        if steps is pending.steps:
            continue
        steps = [s for s in steps if s.outcome is not None]
        matched = [m for m in matched if _agrees(_replay(steps, mistakes.namespace(m), recording.module), steps)]
    return _lines(mistakes.precise(matched, pending.exercise))


def reset():
    """A new test starts: every recording forgets its calls at its next call."""
    _active["epoch"] += 1
    _active["recording"] = None
