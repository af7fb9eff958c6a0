"""Staff grading fails closed where the kernel refuses the sandbox its namespaces.

Each command runs under the seccomp filter of a Docker container without ``CAP_SYS_ADMIN``
(:mod:`grader.execution.seccomp`), with Landlock (Docker's default profile allows it) or without
it (an older kernel or runtime).  Without both, a worker has its own uid at best: staff grading
refuses unless every staff file is closed to it, or staff accept weaker isolation explicitly; a
student's local check goes on and says so once.
"""

import json
import subprocess
import sys
import textwrap

import pytest

from grader import ROOT
from grader.execution import landlock

NO_LANDLOCK = ["--no-landlock"]


def _container(args, *flags, cwd=ROOT):
    """``python -m grader ARGS`` under the container's filter."""
    cmd = [sys.executable, "-m", "grader.execution.seccomp", *flags, "--", sys.executable, "-m", "grader", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=900)


def _submission(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "attention.py").write_text((ROOT / "solutions" / "attention.py").read_text())
    return sub


def test_staff_check_without_namespaces_or_landlock_refuses_and_says_what_to_do(tmp_path):
    """No namespaces, no Landlock: the repository's staff files are readable to the worker's uid (or
    the worker is the grader's own user), so `check --staff` grades nothing and exits 2."""
    done = _container(
        ["check", "--staff", "attention.causal_mask", "--submission", str(_submission(tmp_path))], *NO_LANDLOCK
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "staff grading refused" in done.stderr and "--weak-isolation" in done.stderr, done.stderr
    assert "Submission:" not in done.stdout


def test_weak_isolation_is_accepted_only_explicitly_and_the_notes_say_so(tmp_path):
    done = _container(
        ["check", "--staff", "--weak-isolation", "attention.causal_mask", "--submission", str(_submission(tmp_path))],
        *NO_LANDLOCK,
    )
    assert done.returncode == 0, done.stderr
    assert "sandbox: weak isolation accepted by staff" in done.stdout, done.stdout


def test_a_local_check_without_namespaces_goes_on_and_says_so_once(tmp_path):
    """The student's own machine: graded, and one note names what the sandbox could not do."""
    done = _container(["check", "attention.causal_mask", "--submission", str(_submission(tmp_path))], *NO_LANDLOCK)
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stdout.splitlines() if "sandbox: no namespaces" in line]
    assert len(notes) == 1 and "no Landlock" in notes[0], done.stdout


@pytest.mark.skipif(landlock.abi() == 0, reason="this kernel offers no Landlock (Linux 5.13+)")
def test_with_landlock_staff_grading_goes_on_without_namespaces(tmp_path):
    done = _container(["check", "--staff", "attention.causal_mask", "--submission", str(_submission(tmp_path))])
    assert done.returncode == 0, done.stderr
    assert "3 / 3" in done.stdout and "Landlock allows the worker only the allowlisted files" in done.stdout


def test_a_batch_refuses_before_grading_anything(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    _submission(subs)
    done = _container(["batch", str(subs), "--out", str(tmp_path / "out")], *NO_LANDLOCK)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "staff grading refused" in done.stderr
    assert not list((tmp_path / "out").glob("*/results.json"))


@pytest.mark.skipif(landlock.abi() == 0, reason="this kernel offers no Landlock (Linux 5.13+)")
def test_the_test_process_refuses_a_worker_below_the_level_the_preflight_found(tmp_path):
    """Belt and braces: told that workers here get namespaces, the test process refuses one that
    came up with Landlock only, before any student code runs."""
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(ROOT)!r})
        from grader.execution import isolation
        from grader import outcomes
        isolation.required = "namespaces"
        from grader.adapters.sandboxed import Sandboxed
        try:
            Sandboxed("attention", {str(_submission(tmp_path) / "attention.py")!r})
            print(json.dumps("graded"))
        except outcomes.SubmissionProblem as exc:
            print(json.dumps(str(exc)))
    """)
    cmd = [sys.executable, "-m", "grader.execution.seccomp", "--", sys.executable, "-c", code]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    said = json.loads(done.stdout.strip().splitlines()[-1])
    assert "less than staff grading requires (landlock, not namespaces)" in said, said
