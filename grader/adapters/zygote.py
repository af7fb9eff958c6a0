"""The zygote: a process that has imported torch and forks one supervised worker per request.

This module imports no torch, so the grading runner can start the zygote before the test
process exists: the zygote imports torch on one core while the test process imports torch,
pytest and hypothesis on the other (:func:`prestart`), and the test process adopts it
(:func:`adopt`) instead of starting its own when the first test needs a worker.  Without a
prestarted zygote, :func:`zygote` starts one on first use, as before.

``python -m grader check`` starts its zygote first thing (:func:`start_early`, before the
command line's own imports), and the runner takes that one (:func:`take_early`): the zygote,
which imports torch and then warms its meta-device path up, is the last of the two to be
ready, so every millisecond it starts sooner is one the check ends sooner.
"""

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from grader import ROOT
from grader import outcomes as E

#: What the worker side may import of the grader: copied into a private folder the worker
#: runs from.  The rule is a folder, not a list: ``grader/execution/`` whole, plus the two
#: modules it may import (``tests/selftest/unit/test_layout.py`` holds it to that).
RUNTIME_FILES = ("__init__.py", "outcomes.py")
RUNTIME_FOLDER = "execution"
#: Where the submitted module "lives" in every worker (its ``__file__``, its tracebacks):
#: the same path in a local check and in staff grading.
WORKER_FOLDER = "/sandbox"
#: Variables of the grading environment the zygote keeps (the GPU a batch slot may use).
PASSED_ON = ("CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH")
#: Limits of one worker process (one module of one submission).
LIMITS = {
    "cpu_seconds": 600,
    "memory_bytes": 6 << 30,
    "file_bytes": 16 << 20,
    "open_files": 256,
    "processes": 32,
}


def limits() -> dict[str, int]:
    """The worker's resource limits (:data:`LIMITS`; memory from ``GRADER_MEMORY_LIMIT`` in bytes)."""
    return dict(LIMITS, memory_bytes=int(os.environ.get("GRADER_MEMORY_LIMIT", LIMITS["memory_bytes"])))


def nvidia() -> bool:
    """Whether this is an NVIDIA machine (its workers get the GPU's device nodes)."""
    return os.path.exists("/dev/nvidiactl")


def worker_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the sandbox's processes: the same in every setting (nothing in it
    tells a local check from staff grading), plus :data:`PASSED_ON` from ``environ``."""
    environ = os.environ if environ is None else environ
    env = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": WORKER_FOLDER,
        "USER": "sandbox",
        "LOGNAME": "sandbox",
        "TMPDIR": "/tmp",
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
    }
    env.update({key: environ[key] for key in PASSED_ON if key in environ})
    return env


_bundle: Path | None = None
_zygote: "Zygote | None" = None
_lock = threading.Lock()  # the process-wide zygote
_bundle_lock = threading.Lock()  # the runtime bundle (made while _lock is held)


def runtime_files() -> list[str]:
    """The grader's files that go into the worker, relative to ``grader/``."""
    folder = ROOT / "grader" / RUNTIME_FOLDER
    return [*RUNTIME_FILES, *(f"{RUNTIME_FOLDER}/{p.name}" for p in sorted(folder.glob("*.py")))]


def runtime_bundle() -> Path:
    """A private, world-readable copy of the worker-side modules (made once per process)."""
    global _bundle
    with _bundle_lock:
        if _bundle is None:
            target = Path(tempfile.mkdtemp(prefix="grader-runtime-"))
            os.chmod(target, 0o755)
            for rel in runtime_files():
                dst = target / "grader" / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(dst.parent, 0o755)
                shutil.copyfile(ROOT / "grader" / rel, dst)
                os.chmod(dst, 0o644)
            atexit.register(shutil.rmtree, target, True)
            _bundle = target
        return _bundle


class Zygote:
    """A zygote process and the control socket requests go through.

    ``Zygote()`` starts one owned by this process; :meth:`adopted` wraps the control socket
    of one another process started (:func:`prestart`)."""

    def __init__(self, environ: Mapping[str, str] | None = None, *, new_session: bool = False) -> None:
        """Start a zygote; ``environ``: where :data:`PASSED_ON` come from (default this
        process's); ``new_session``: its own process group (one :func:`prestart` kills whole)."""
        bundle = runtime_bundle()
        mine, theirs = socket.socketpair()
        env = worker_environment(environ)
        code = (
            f"import sys; sys.path.insert(0, {str(bundle)!r}); "
            f"from grader.execution.worker import zygote_main; zygote_main({theirs.fileno()})"
        )
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, "-I", "-c", code],
            pass_fds=[theirs.fileno()],
            env=env,
            cwd=bundle,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=new_session,
        )
        theirs.close()
        self.ctl = mine
        self.lock = threading.Lock()
        self.between_processes: Any = contextlib.nullcontext()
        self.dead = False

    @classmethod
    def adopted(cls, fd: int) -> "Zygote":
        """The zygote whose control socket this process inherited as ``fd``."""
        self = cls.__new__(cls)
        self.proc = None
        self.ctl = socket.socket(fileno=fd)
        self.lock = threading.Lock()
        self.between_processes = contextlib.nullcontext()
        self.dead = False
        return self

    def share(self, lock: Any) -> None:
        """Requests from the processes about to be forked from this one (each holding the
        control socket) go one at a time under ``lock`` (a ``multiprocessing`` lock)."""
        self.between_processes = lock

    def alive(self) -> bool:
        """Whether requests can still go to it."""
        if self.proc is not None:
            return self.proc.poll() is None
        return not self.dead

    def spawn(self, request: dict[str, Any], fds: Sequence[int]) -> int:
        """Fork a supervised worker for ``request`` with ``fds``; its supervisor's pid."""
        with self.lock, self.between_processes:
            line = b""
            try:
                try:
                    socket.send_fds(self.ctl, [json.dumps(request).encode()], fds)
                except OSError:
                    pass  # a zygote that could not start has said why and gone: its words are read below
                self.ctl.settimeout(60)
                while not line.endswith(b"\n"):
                    chunk = self.ctl.recv(256)
                    if not chunk:
                        raise E.WorkerCrashed("the sandbox zygote died")
                    line += chunk
                answer = json.loads(line)
            except (OSError, ValueError, E.WorkerCrashed):
                self.close()  # a late answer would give the next request the wrong pid: start afresh
                if self.proc is not None:
                    self.proc.kill()
                raise E.WorkerCrashed("the sandbox zygote did not answer") from None
        if "error" in answer:  # it could not import or warm up torch
            self.close()
            raise E.WorkerCrashed(f"the sandbox zygote could not start torch: {answer['error']}")
        return int(answer["pid"])

    def close(self) -> None:
        """Stop the zygote (it stops its supervisors, which kill their workers)."""
        self.dead = True
        try:
            self.ctl.close()
            if self.proc is not None:
                self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            if self.proc is not None:
                self.proc.kill()


def zygote() -> Zygote:
    """The process-wide zygote: the adopted one, else one started on first use; stopped at exit."""
    global _zygote
    with _lock:
        if _zygote is None or not _zygote.alive():
            _zygote = Zygote()
            atexit.register(_zygote.close)
        return _zygote


def current() -> Zygote | None:
    """The process-wide zygote if one is running (adopted or started), without starting one."""
    with _lock:
        return _zygote if _zygote is not None and _zygote.alive() else None


def adopt(fd: int) -> None:
    """Make the zygote whose control socket is ``fd`` (from :func:`prestart`) this process's."""
    global _zygote
    with _lock:
        _zygote = Zygote.adopted(fd)
        atexit.register(_zygote.close)


_early: tuple[Zygote, dict[str, str | None]] | None = None


def _passed_on(environ: Mapping[str, str]) -> dict[str, str | None]:
    return {key: environ.get(key) for key in PASSED_ON}


def start_early(environ: Mapping[str, str]) -> None:
    """Start the zygote a grading about to begin in this process will take (:func:`take_early`);
    one nobody takes is reaped at exit."""
    global _early
    with _lock:
        if _early is None:
            _early = (prestart(environ), _passed_on(environ))
            atexit.register(drop_early)


def _pop_early() -> tuple[Zygote, dict[str, str | None]] | None:
    global _early
    with _lock:
        early, _early = _early, None
    return early


def take_early(environ: Mapping[str, str]) -> Zygote | None:
    """The zygote :func:`start_early` started, for a test process about to start with
    ``environ``, or ``None`` (none started, or started with other :data:`PASSED_ON` values:
    then it is reaped)."""
    early = _pop_early()
    if early is None:
        return None
    if early[1] != _passed_on(environ):
        reap(early[0], timeout=0)
        return None
    return early[0]


def drop_early() -> None:
    """Reap the zygote :func:`start_early` started if nobody took it."""
    early = _pop_early()
    if early is not None:
        reap(early[0], timeout=0)


def prestart(environ: Mapping[str, str]) -> Zygote:
    """Start a zygote for a test process about to start with ``environ``; give the test
    process ``ctl.fileno()`` (then :meth:`Zygote.ctl` ``.close()`` here) and :func:`reap` it after."""
    return Zygote(environ, new_session=True)


def reap(zyg: Zygote, timeout: float = 10) -> None:
    """After the test process ended: wait for the zygote to stop (it stops when its control
    socket closes), then kill its process group (supervisors and workers included)."""
    zyg.ctl.close()
    if zyg.proc is None:
        return
    deadline = time.monotonic() + timeout
    # wait without reaping, so its pid (the group's id) cannot be reused before the kill
    try:
        while os.waitid(os.P_PID, zyg.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
    except ChildProcessError:  # already reaped elsewhere: its group is nobody's to kill now
        return
    try:
        os.killpg(zyg.proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    zyg.proc.wait()
