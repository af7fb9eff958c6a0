"""Isolation levels, the protected paths, and when staff grading refuses (the preflight's verdict)."""

import pytest

from grader import ROOT, staffkey
from grader.execution import isolation as levels
from grader.grading import isolation

NAMESPACED = ["network, IPC and host-name namespaces", "allowlisted filesystem", "unprivileged uid", "rlimits"]
LANDLOCKED = ["unprivileged uid", "no namespaces (...): Landlock ...", "Landlock ABI 7: allowlisted filesystem"]
UID_ONLY = ["unprivileged uid", "no namespaces (...) and no Landlock (...)", "rlimits"]
NOTHING = ["no namespaces (this kernel or container refuses them) and no Landlock (ENOSYS): ...", "rlimits"]


@pytest.mark.parametrize(
    ("measures", "level"),
    [(NAMESPACED, "namespaces"), (LANDLOCKED, "landlock"), (UID_ONLY, "uid"), (NOTHING, "none")],
)
def test_the_level_is_the_strongest_barrier_reported(measures, level):
    assert levels.level(measures) == level
    assert levels.at_least(measures, level) and levels.at_least(measures, "none")


def test_a_lower_level_does_not_reach_a_higher_one():
    assert not levels.at_least(LANDLOCKED, "namespaces")
    assert not levels.at_least(UID_ONLY, "landlock")
    assert not levels.at_least(NOTHING, "uid")


def test_the_probe_names_what_it_could_open(tmp_path):
    readable = tmp_path / "public.txt"
    readable.write_text("x")
    assert levels.probe([str(readable), str(tmp_path), str(tmp_path / "absent")]) == [str(readable), str(tmp_path)]


def test_the_protected_paths_are_the_staff_files_and_the_extra_folders(tmp_path):
    """The reference, the hidden tests, the catalog and the history of the repository, and the
    folders a caller adds (other submissions, results), each with the files below it."""
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "attention.py").write_text("x")
    paths = isolation.protected_paths([tmp_path])
    for part in ("solutions", "tests/hidden", "grader/mistakes"):
        assert str(ROOT / part) in paths
    assert str(ROOT / "solutions" / "attention.py") in paths
    assert str(tmp_path / "alice" / "attention.py") in paths
    assert not any(p.startswith(str(ROOT / "tests" / "exercises")) for p in paths), "the public tests are no secret"


def _verdict(level, readable=(), python=None):
    return isolation.Verdict(level, ("m",), tuple(readable), python)


@pytest.fixture
def found(monkeypatch):
    """Replace the preflight by a verdict the test sets."""
    box = {}
    monkeypatch.setattr(isolation, "preflight", lambda extra=(): box["verdict"])
    monkeypatch.delenv(isolation.WEAK_ENV, raising=False)
    return box


@pytest.mark.parametrize("level", ["namespaces", "landlock", "uid"])
def test_a_barrier_that_opens_nothing_is_enough(found, level):
    found["verdict"] = _verdict(level)
    assert isolation.require() == (level, [])


@pytest.mark.parametrize(
    ("verdict", "cause"),
    [
        (_verdict("none"), "no barrier"),
        (_verdict("uid", ["/repo/solutions/attention.py"]), "could open staff files: /repo/solutions/attention.py"),
        (_verdict("landlock", python="the worker cannot read the Python installation"), "Python installation"),
    ],
)
def test_staff_grading_refuses_and_says_why_and_what_to_do(found, verdict, cause):
    found["verdict"] = verdict
    with pytest.raises(isolation.IsolationRefused) as refused:
        isolation.require()
    message = str(refused.value)
    assert cause in message
    assert "--weak-isolation" in message and "chmod -R go-rwx" in message and "Landlock" in message


def test_weak_isolation_is_accepted_only_when_asked_and_noted(found, monkeypatch):
    found["verdict"] = _verdict("uid", ["/repo/solutions/attention.py"])
    level, notes = isolation.require(weak=True)
    assert level == "none" and len(notes) == 1 and "weak isolation accepted" in notes[0]
    monkeypatch.setenv(isolation.WEAK_ENV, "1")
    assert isolation.require()[1] == notes
    monkeypatch.setenv(isolation.WEAK_ENV, "yes")  # only "1" accepts
    with pytest.raises(isolation.IsolationRefused):
        isolation.require()


def test_the_preflight_here_confines_like_a_worker_and_opens_no_staff_file():
    """The real preflight on this machine, run as the grader runs it (from the worker-side copy):
    behind namespaces or Landlock, none of the repository's staff files opens."""
    verdict = isolation.preflight()
    assert verdict.level in levels.LEVELS and "rlimits" in verdict.measures, verdict
    if verdict.level in ("namespaces", "landlock"):
        assert not verdict.readable, verdict


@pytest.mark.parametrize(
    ("key", "strong"),
    [
        (b"0123456789abcdef" * 4, True),
        (b"a staff key for the gradescope self-test", True),
        (b"password123", False),
        (b"x" * 200, False),
        (b"cs101-fall", False),
    ],
)
def test_a_key_with_too_little_entropy_is_refused(key, strong):
    if strong:
        staffkey.require_strong(key)
    else:
        with pytest.raises(staffkey.StaffKeyError, match="too easy to guess"):
            staffkey.require_strong(key)


def test_a_preflight_that_cannot_confine_itself_refuses_with_its_cause(monkeypatch):
    """The preflight process failing (here: no limits to apply) is a refusal naming its last words."""
    isolation._preflight.cache_clear()
    monkeypatch.setattr(isolation.zygote, "limits", lambda: {})
    try:
        with pytest.raises(isolation.IsolationRefused, match="could not be checked here .*KeyError"):
            isolation.require()
    finally:
        isolation._preflight.cache_clear()


def test_a_zygote_that_cannot_start_torch_says_why():
    """A zygote whose torch does not start (an Ubuntu 22.04 python3.11 that is 3.11.0rc1) answers the
    first request with the cause instead of dying silently."""
    import socket
    import subprocess
    import sys

    from grader.adapters import zygote as zygote_module
    from grader.outcomes import WorkerCrashed

    mine, theirs = socket.socketpair()
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); sys.modules['torch'] = None; "
        f"from grader.execution.worker import zygote_main; zygote_main({theirs.fileno()})"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=[theirs.fileno()])
    theirs.close()
    try:
        adopted = zygote_module.Zygote.adopted(mine.detach())
        with pytest.raises(WorkerCrashed, match="could not start torch: ModuleNotFoundError: import of torch halted"):
            adopted.spawn({"module": "attention"}, [])
    finally:
        proc.wait(timeout=30)
