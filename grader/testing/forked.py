"""Run a grading session's test files side by side: one forked process per test file.

A student's full check runs four test files; one test process alternates with its sandbox
worker, so it uses about one core.  With ``--fork-files`` the test process collects once
(torch, hypothesis and every test module loaded), then forks one child per test file; each
child runs its file's tests in their order, as the single process would, and ends.

Every test file still gets its own worker (the ``impl`` fixture is module-scoped), so each
worker sees the same calls in the same order as in one process: the grades cannot depend on
how the files are spread.  A session of one test file (a check of one exercise or one module,
a watch mode's re-grade) would leave a core idle, so its tests are dealt into two children
(:func:`in_two`), each keeping the file's order and starting its own worker.  The partition
depends on the collected tests alone, never on the machine, so a check grades the same on 2
cores and on 16.  The children share what a single process would hold once: the sandbox
zygote (its requests go one at a time), the submission's time budget and the progress count
(see :class:`Shared`).

Where the children outnumber the cores they share them, and the file with the most work would
run on alone at the end, one core idle.  So each child lowers its own scheduling priority by
its file's rank in expected work (:func:`weight`, the examples its tests run): the longest
file goes first, all end at about the same time.  Only the order of the CPU's attention
changes, never what any test does.
"""

import contextlib
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

#: pytest's exit code for an internal error: a child whose run raised ends with it.
INTERNAL_ERROR = int(pytest.ExitCode.INTERNAL_ERROR)
#: How much lower (``nice``) each child's priority is than that of the file with more work.
NICE_STEP = 2


class Shared:
    """What the children of one session share: a lock and counters in shared memory, and a
    private folder where a child leaves what the session's process finishes for it."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("fork")
        self.lock = ctx.Lock()
        self._done = ctx.RawValue("i", 0)
        self.folder = Path(tempfile.mkdtemp(prefix="grader-forked-"))

    def count_done(self) -> int:
        """Count one more finished test (in any child); the count so far."""
        with self.lock:
            self._done.value += 1
            return int(self._done.value)


def by_file(items: Sequence[pytest.Item]) -> list[list[pytest.Item]]:
    """``items`` cut into runs of one test file each, in their order (a file whose items are
    not consecutive gives several runs: each stays in order)."""
    runs: list[list[pytest.Item]] = []
    for item in items:
        if runs and runs[-1][-1].path == item.path:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def in_two(run: Sequence[pytest.Item]) -> list[list[pytest.Item]]:
    """The tests of one file dealt into two runs of about the same expected work
    (:func:`weight`): each test in turn goes to the run with less so far, so each run keeps
    the file's order."""
    runs: list[list[pytest.Item]] = [[], []]
    work = [0, 0]
    for item in run:
        lighter = 0 if work[0] <= work[1] else 1
        runs[lighter].append(item)
        work[lighter] += weight([item])
    return runs


def plan(items: Sequence[pytest.Item]) -> list[list[pytest.Item]]:
    """The runs a session forks, one child each: one per test file (:func:`by_file`), and a
    lone file of several tests in two (:func:`in_two`)."""
    runs = by_file(items)
    if len(runs) == 1 and len(runs[0]) > 1:
        return in_two(runs[0])
    return runs


def hypothesis_test(item: pytest.Item) -> tuple[Any, Any] | None:
    """``(test, its settings)`` when ``item`` runs a hypothesis test, else ``None``."""
    from hypothesis import is_hypothesis_test, settings

    test = getattr(item, "obj", None)
    test = getattr(test, "__func__", test)
    if test is None or not is_hypothesis_test(test):
        return None
    return test, getattr(test, "_hypothesis_internal_use_settings", None) or settings()


def weight(run: Sequence[pytest.Item]) -> int:
    """How much work ``run`` is expected to be: the examples its hypothesis tests run
    (``max_examples`` and the explicit ones each), one for any other test."""
    total = 0
    for item in run:
        found = hypothesis_test(item)
        if found is None:
            total += 1
        else:
            test, chosen = found
            total += chosen.max_examples + len(getattr(test, "hypothesis_explicit_examples", ()))
    return total


def niceness(runs: Sequence[Sequence[pytest.Item]]) -> list[int]:
    """For each run, how much its child lowers its priority: :data:`NICE_STEP` times the
    number of runs expected to be longer (ties keep the files' order)."""
    order = sorted(range(len(runs)), key=lambda i: -weight(runs[i]))
    rank = {i: r for r, i in enumerate(order)}
    return [NICE_STEP * rank[i] for i in range(len(runs))]


class ForkedFiles:
    """The pytest plugin behind ``--fork-files``: ``pytest_runtestloop`` in forked children.

    ``before_fork(shared)`` runs once in the parent (to share the zygote and budgets),
    ``child_finish(session, elsewhere)`` at the end of each child (what the single process
    does at its session's end for the tests it ran; ``elsewhere`` are the tests the other
    children ran), and ``after_children(session, shared)`` in the parent once every child
    has ended (what needs the tests of several children)."""

    def __init__(
        self,
        before_fork: Callable[[Shared], None],
        child_finish: Callable[[pytest.Session, Sequence[pytest.Item]], None],
        after_children: Callable[[pytest.Session, Shared], None],
    ) -> None:
        self.before_fork = before_fork
        self.child_finish = child_finish
        self.after_children = after_children
        self.died: int | None = None  # a signal that killed a child
        self.broken = False  # a child's run raised (an error of the grader's, not a test's)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        """Run each test file's items (a lone file's in two halves) in a child of their own;
        wait for them all."""
        if session.config.option.collectonly or session.testsfailed:
            return None
        runs = plan(session.items)
        if len(runs) < 2:
            return None  # nothing to run side by side: the usual loop
        shared = Shared()
        self.before_fork(shared)
        _flush()  # nothing buffered before the fork is written twice
        children = []
        for run, nice in zip(runs, niceness(runs), strict=True):
            pid = os.fork()
            if pid == 0:
                with contextlib.suppress(OSError):
                    os.nice(nice)
                elsewhere = [item for other in runs if other is not run for item in other]
                os._exit(self._child(session, run, elsewhere))  # never returns into the parent's session
            children.append(pid)
        failed = 0
        for pid in children:
            code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
            if code < 0 and self.died is None:
                self.died = -code
            elif code == INTERNAL_ERROR:
                self.broken = True
            elif code != 0:
                failed += 1
        session.testsfailed += failed
        try:
            self.after_children(session, shared)
        finally:
            shutil.rmtree(shared.folder, ignore_errors=True)
        return True

    def _child(self, session: pytest.Session, run: list[pytest.Item], elsewhere: list[pytest.Item]) -> int:
        """Run ``run`` in this (forked) process; its exit code: 0 all passed, 1 some failed."""
        code = 0
        try:
            capman = session.config.pluginmanager.getplugin("capturemanager")
            if capman is not None:  # the parent's capture files are not this process's to share
                capman.stop_global_capturing()
                capman.start_global_capturing()
            for i, item in enumerate(run):
                nextitem = run[i + 1] if i + 1 < len(run) else None
                item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
                if session.shouldfail or session.shouldstop:
                    break
            self.child_finish(session, elsewhere)
            code = 1 if session.testsfailed else 0
        except BaseException:  # whatever it was, the child must not return into the parent's session
            traceback.print_exc()
            code = INTERNAL_ERROR
        finally:
            _flush()
        return code

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """A child killed by a signal kills the session the same way (after its clean-up), and
        a child's internal error ends it with pytest's exit code for one, so the grading runner
        reports either as it would for a single process."""
        if self.died is None and self.broken:
            _flush()
            os._exit(INTERNAL_ERROR)
        if self.died is not None:
            with contextlib.suppress(OSError, ValueError):  # SIGKILL and SIGSTOP keep their action anyway
                signal.signal(self.died, signal.SIG_DFL)
            os.kill(os.getpid(), self.died)


def _flush() -> None:
    """Write out what this process buffered (before a fork or an ``os._exit``)."""
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
        sys.stderr.flush()


def install(
    config: pytest.Config,
    before_fork: Callable[[Shared], None],
    child_finish: Callable[[pytest.Session, Sequence[pytest.Item]], None],
    after_children: Callable[[pytest.Session, Shared], None],
) -> None:
    """Register :class:`ForkedFiles` on ``config`` (``--fork-files``)."""
    config.pluginmanager.register(ForkedFiles(before_fork, child_finish, after_children), "grader-forked-files")
