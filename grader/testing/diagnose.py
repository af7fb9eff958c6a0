"""Name the student's mistake: replay a failing test's calls on every catalog entry.

The ``impl`` a test receives is wrapped in a :class:`Recording`, which keeps every call
the current example made through the seam (its arguments and what came back, or the
exception).  When the test fails, :func:`hints` replays those exact calls
(:func:`grader.testing.replay.replay`), in this trusted process, on the reference and on
each wrong entry of the catalog (and the trivial outputs).  An entry *matches* when every
call gives what the student's code gave (values within tolerance, gradients, inputs after
the call, the same exception) while the reference does not.  The hint names that entry's
mistake, and only when exactly one mistake matches (entries of the test's own exercise
first): never a list of guesses.

When several entries tie on the failing example (``m`` instead of ``m - 1`` and "returns
ones" both give 1 at ``m = 1``), the decision waits for the end of the run: the entries
must then also agree with the student on the other examples that the exercise's tests
ran, passing ones included (:func:`refine`).  Where the tests of one exercise ran in two
forked processes (``--fork-files`` on a lone test file), each hands its examples over
(:meth:`Recording.evidence`) and the session's process decides with both, in the tests'
order (:func:`merge`): the same examples a single process would have kept.
"""

import types
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis.control import BuildContext, current_build_context
from hypothesis.errors import InvalidArgument

from grader import mistakes
from grader.adapters import Implementation, ModuleHandle
from grader.execution.calls import Call, CallResult
from grader.outcomes import SubmissionProblem
from grader.testing.replay import Outcome, Step, copy_call, raised, replay

_active: dict[str, Any] = {"recording": None, "epoch": 0}
#: Examples kept per exercise to tell apart entries that tie on a failing one.
HISTORY = 40


def _context() -> BuildContext | None:
    try:
        return current_build_context()
    except InvalidArgument:  # not inside a hypothesis example
        return None


class Recording:
    """An implementation that remembers the calls of the current example (see module doc)."""

    def __init__(self, inner: Implementation, reopen: Callable[[], Implementation] | None = None) -> None:
        self.inner = inner
        #: opens a fresh copy of the same module (for :mod:`grader.testing.fingerprints`)
        self.reopen = reopen
        #: exercise -> the fingerprint hint lines found for it
        self.fingerprinted: dict[str, list[str]] = {}
        self.module: str = inner.module
        self.steps: list[Step] = []
        self.examples: dict[str | None, list[list[Step]]] = {}  # exercise -> the step lists of its examples
        self.tests: dict[str | None, list[int]] = {}  # exercise -> the test (its place in the run) of each
        self._exercise: str | None = None
        self._context: BuildContext | None = None
        self._epoch = -1

    def archive(self) -> None:
        """Keep the current example's calls as evidence for its exercise."""
        kept = self.examples.setdefault(self._exercise, [])
        if self.steps and len(kept) < HISTORY and all(k is not self.steps for k in kept):
            kept.append(self.steps)
            self.tests.setdefault(self._exercise, []).append(self._epoch)

    def evidence(self, exercises: Collection[str]) -> dict[str, list[tuple[int, list[Step]]]]:
        """The examples kept for ``exercises``, each with its test's place in the run (for
        :func:`merge`), the current example included."""
        self.archive()
        return {
            ex: list(zip(self.tests.get(ex, []), steps, strict=True))
            for ex, steps in self.examples.items()
            if ex is not None and ex in exercises
        }

    def _begin(self) -> None:
        context = _context()
        if self._epoch != _active["epoch"] or context is not self._context:  # a new test or example
            self.archive()
            self.steps, self._context, self._epoch = [], context, _active["epoch"]
            self._exercise = mistakes.current_exercise()
        _active["recording"] = self

    def label(self, name: str) -> str:
        """How messages name a call (see :meth:`grader.adapters.Implementation.label`)."""
        return self.inner.label(name)

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call public function ``name``; its outputs."""
        return self.invoke(Call(name, args, kwargs)).outputs

    def _run(self, step: Step, run: Callable[[], Any]) -> Any:
        self._begin()
        self.steps.append(step)
        try:
            result = run()
        except SubmissionProblem as exc:
            step.outcome = raised(exc)
            raise
        step.outcome = ("ok", result)
        return result

    def invoke(self, call: Call) -> CallResult:
        """Run ``call`` (see :meth:`grader.adapters.Implementation.invoke`)."""
        return self._run(Step("invoke", copy_call(call)), lambda: self.inner.invoke(call))

    def construct(self, name: str, *args: Any, **kwargs: Any) -> ModuleHandle:
        """Construct public class ``name``; a handle whose calls are recorded too."""
        step = Step("construct", copy_call(Call(name, args, kwargs)))
        handle = self._run(step, lambda: self.inner.construct(name, *args, **kwargs))
        step.oid = handle.oid
        step.outcome = ("ok", None)
        return ModuleHandle(self, handle.oid, name)

    def method(self, handle: ModuleHandle, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call a module method (see :data:`grader.execution.calls.MODULE_METHODS`)."""
        step = Step("method", copy_call(Call(name, args, kwargs)), handle.oid)
        return self._run(step, lambda: self.inner.method(handle, name, *args, **kwargs))

    def close(self) -> None:
        """Close the wrapped implementation."""
        if _active["recording"] is self:
            _active["recording"] = None
        self.inner.close()


def same_outcome(a: Outcome, b: Outcome) -> bool:
    """Whether two outcomes agree: the same exception, or values within the catalog's
    tolerance (outputs, gradients, inputs after the call)."""
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


def _same_dict(a: dict | None, b: dict | None) -> bool:
    a, b = a or {}, b or {}
    return a.keys() == b.keys() and all(mistakes.same(a[k], b[k]) for k in a)


def _agrees(outcomes: Sequence[Outcome], steps: Sequence[Step]) -> bool:
    return len(outcomes) == len(steps) and all(
        s.outcome is not None and same_outcome(o, s.outcome) for o, s in zip(outcomes, steps)
    )


def matching(module: str, steps: Sequence[Step], reference: types.ModuleType) -> list[mistakes.Mutant]:
    """The catalog entries (wrong and trivial) whose replay of ``steps`` gives the student's
    outcomes, unless the ``reference`` namespace does too."""
    steps = [s for s in steps if s.outcome is not None]
    if not steps or _agrees(replay(steps, reference, module), steps):
        return []
    return [m for m in mistakes.hint_candidates(module) if _agrees(replay(steps, mistakes.namespace(m), module), steps)]


@dataclass
class Pending:
    """A failure whose matching entries tie: decided by :func:`refine` at the end of the run."""

    recording: Recording | None  # None once handed to the session's process (see the module doc)
    module: str
    exercise: str
    steps: list[Step]
    matched: list[mistakes.Mutant]


def _lines(named: Sequence[str]) -> list[str]:
    return [f"your code matches {mistake}" for mistake in named]


def hints(exercise: str) -> tuple[list[str], Pending | None] | tuple[None, None]:
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
    return [], Pending(recording, recording.module, exercise, recording.steps, matched)


def refine(pending: Pending, examples: Sequence[list[Step]] | None = None) -> list[str]:
    """Hint lines for a :class:`Pending` failure, once every test of its exercise has run:
    decided on ``examples`` (:func:`merge`'s, gathered from the processes that ran the
    exercise's tests), else on those its recording kept."""
    if examples is None:
        assert pending.recording is not None, "a handed-over failure is refined on merged examples"
        pending.recording.archive()
        examples = pending.recording.examples.get(pending.exercise, [])
    matched = pending.matched
    for steps in examples:
        if mistakes.precise(matched, pending.exercise) or len(matched) < 2:
            break
        if steps is pending.steps:
            continue
        steps = [s for s in steps if s.outcome is not None]
        matched = [m for m in matched if _agrees(replay(steps, mistakes.namespace(m), pending.module), steps)]
    return _lines(mistakes.precise(matched, pending.exercise))


def merge(evidence: Iterable[Sequence[tuple[int, list[Step]]]]) -> list[list[Step]]:
    """One exercise's examples from several processes (:meth:`Recording.evidence` of each), in
    the order of their tests as one process would have run them, the first :data:`HISTORY`."""
    tagged = [(test, n, steps) for pairs in evidence for n, (test, steps) in enumerate(pairs)]
    tagged.sort(key=lambda t: (t[0], t[1]))
    return [steps for _, _, steps in tagged[:HISTORY]]


def reset(test: int | None = None) -> None:
    """A new test starts (``test``: its place in the run, which tags the examples it keeps;
    the next number when not given): every recording forgets its calls at its next call."""
    _active["epoch"] = _active["epoch"] + 1 if test is None else test
    _active["recording"] = None
