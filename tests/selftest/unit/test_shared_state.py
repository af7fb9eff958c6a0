"""What forked test processes share (``--fork-files``), and how a supervisor stops its worker."""

import os
import signal
import time

from grader.adapters import sandboxed
from grader.execution.cgroup import Cgroup
from grader.execution.worker import _alone, _state, _stop
from grader.testing.forked import NICE_STEP, Shared, by_file, niceness, weight


def _child(body) -> int:
    """Fork a child that runs ``body`` and exits; its pid."""
    pid = os.fork()
    if pid == 0:
        try:
            body()
        finally:
            os._exit(0)
    return pid


def _in_child(action) -> int:
    """Run ``action`` in a forked child; its exit code."""
    return os.waitstatus_to_exitcode(os.waitpid(_child(action), 0)[1])


def test_a_shared_budget_is_spent_by_every_forked_process(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_SUBMISSION_BUDGET", "100")
    shared = Shared()
    sandboxed.share_budget(tmp_path, shared.lock)
    try:
        budget = sandboxed._submission_budget(str(tmp_path.resolve()))
        assert budget.left == 100
        for _ in range(3):
            assert _in_child(lambda: sandboxed._submission_budget(str(tmp_path.resolve())).spend(7.5)) == 0
        budget.spend(2)
        assert budget.left == 100 - 3 * 7.5 - 2
    finally:
        sandboxed._budgets.pop(str(tmp_path.resolve()), None)


def test_a_budget_made_without_sharing_stays_in_its_process(tmp_path):
    budget = sandboxed._Budget(10)
    assert _in_child(lambda: budget.spend(4)) == 0
    assert budget.left == 10


def test_the_progress_count_is_shared():
    shared = Shared()
    for _ in range(4):
        assert _in_child(shared.count_done) == 0
    assert shared.count_done() == 5


class _Item:
    def __init__(self, path, name):
        self.path, self.name = path, name


def test_items_are_cut_into_runs_of_one_file_in_their_order():
    items = [_Item("a.py", "1"), _Item("a.py", "2"), _Item("b.py", "3"), _Item("a.py", "4")]
    runs = by_file(items)
    assert [[i.name for i in run] for run in runs] == [["1", "2"], ["3"], ["4"]]
    assert by_file([]) == []


def _hypothesis_item(name, max_examples, explicit):
    from hypothesis import example, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=max_examples)
    @given(st.integers())
    def test(x):
        pass

    for i in range(explicit):
        test = example(i)(test)
    item = _Item(f"{name}.py", name)
    item.obj = test
    return item


def test_a_runs_weight_counts_the_examples_its_tests_run():
    """``max_examples`` plus the explicit examples of each hypothesis test, one per other test."""
    plain = _Item("a.py", "plain")
    plain.obj = lambda: None
    run = [_hypothesis_item("a", 20, 3), _hypothesis_item("a", 7, 0), plain]
    assert weight(run) == 23 + 7 + 1
    assert weight([]) == 0


def test_the_run_expected_to_be_longest_keeps_the_highest_priority():
    """Each child's priority is lowered by its run's rank in expected work; ties keep their order."""
    short, longest, middle, also_middle = (
        [_hypothesis_item("s", 5, 0)],
        [_hypothesis_item("l", 20, 9), _hypothesis_item("l", 20, 0)],
        [_hypothesis_item("m", 20, 0)],
        [_hypothesis_item("n", 20, 0)],
    )
    assert niceness([short, longest, middle, also_middle]) == [3 * NICE_STEP, 0, NICE_STEP, 2 * NICE_STEP]
    assert niceness([middle]) == [0]


def test_stop_returns_once_the_child_is_stopped_and_again_after_it_went_on():
    read, write = os.pipe()
    pid = _child(lambda: os.read(read, 1))
    try:
        for _ in range(3):
            assert _stop(pid) is True
            assert _state(pid)[0] in "Tt"
            os.kill(pid, signal.SIGCONT)
    finally:
        os.write(write, b"x")
        os.close(write)
        os.close(read)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def test_stop_of_a_child_that_ended_leaves_its_exit_status_to_collect():
    pid = _child(lambda: os._exit(7))
    deadline = time.monotonic() + 10
    while (_state(pid) or "Z")[0] not in "ZX" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _stop(pid) is False
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7  # still there for the supervisor's loop


class _Group:
    """A worker's cgroup that lists ``procs`` (``None``: unreadable)."""

    def __init__(self, procs):
        self.procs = procs

    def processes(self):
        return self.procs


def test_a_worker_alone_in_its_cgroup_needs_no_search_for_what_it_started():
    """After a call the supervisor looks through /proc for processes to kill only when the
    worker's cgroup holds more than the worker, cannot be read, or there is none."""
    assert _alone(41, _Group({41})) is True
    assert _alone(41, _Group({41, 42})) is False
    assert _alone(41, _Group(set())) is False
    assert _alone(41, _Group(None)) is False
    assert _alone(41, None) is False


def test_a_cgroups_processes_are_read_from_its_procs_file(tmp_path):
    group = Cgroup.__new__(Cgroup)
    group.path = str(tmp_path)
    assert group.processes() is None
    (tmp_path / "cgroup.procs").write_text("12\n345\n")
    assert group.processes() == {12, 345}
    (tmp_path / "cgroup.procs").write_text("12\nx\n")
    assert group.processes() is None
