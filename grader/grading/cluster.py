"""The Dask engine of ``grader batch``: the cluster, the staff key on the workers, and the
guarded process that grades one submission.

* **Cluster.** :func:`connect` starts a :class:`distributed.LocalCluster` in this process
  (``processes=False``: one single-threaded worker per slot, so ``workers`` submissions are
  graded at once; every task spends its time waiting on its own grading process, so worker
  processes would only add start-up time and memory: ``benchmarks/batch_dask.py --processes``),
  or connects to the scheduler of an existing cluster (``--scheduler ADDRESS``), which must
  import the grader too (it unpickles every task).
* **The staff key** never travels in a task: a task carries its fingerprint only.  A worker
  of the local cluster finds the key in this process (:func:`register_key`); any other worker
  (another process, another machine) reads ``GRADER_STAFF_KEY`` from its own environment, and
  a worker without it, or with another key, refuses the task (:func:`key_for`).
  :func:`check_workers` asks every worker before a batch starts.
* **Guarded process.** A task grades in a child process (:func:`run_guarded`) in a session of
  its own, started with the job on its stdin.  That child (:func:`keep`) is a child subreaper:
  everything its grading starts stays below it.  When its stdin reaches end-of-file (the task's
  process died, even by ``SIGKILL``), on ``SIGTERM`` (the task was cancelled) and when it ends,
  it kills every process below it.  So a killed batch leaves no grading process behind.

``distributed`` is imported lazily: the guarded process never needs it, and :func:`require`
names the missing package and the pip command when it is not installed.
"""

import hashlib
import importlib
import json
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grader import ROOT, staffkey
from grader.execution import confine
from grader.execution.worker import descendants

if TYPE_CHECKING:
    from distributed import Client

#: The pinned versions (requirements-dev.txt), for the message when ``distributed`` is missing.
PIP_COMMAND = "python -m pip install -r requirements-dev.txt  (or: python -m pip install dask distributed)"
#: Seconds to reach a scheduler, and for its first worker to be there.
CONNECT_TIMEOUT = 15
#: Seconds between two looks at whether a running task was cancelled.
POLL = 0.5
#: The keys this process holds for the workers of its own local cluster: ``{fingerprint: key}``.
_KEYS: dict[str, bytes] = {}


class ClusterError(RuntimeError):
    """The batch cannot run on the cluster asked for (no ``distributed``, no scheduler, a worker unfit)."""


def require() -> None:
    """Raise :class:`ClusterError`, naming the package and the pip command, unless
    ``distributed`` (and ``dask``) can be imported."""
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:
        raise ClusterError(
            f"grader batch runs on Dask, and the package {exc.name or 'distributed'!r} is not installed: {PIP_COMMAND}"
        ) from None


@contextmanager
def connect(workers: int = 2, scheduler: str | None = None, processes: bool = False) -> Iterator["Client"]:
    """A Dask client for the batch: on a new local cluster of ``workers`` single-threaded
    workers (threads of this process, or with ``processes`` worker processes), or on the
    cluster whose scheduler is at ``scheduler``.  Everything is closed on the way out
    (the local cluster too; an existing cluster's workers stay)."""
    require()
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        try:
            try:
                client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
            except TimeoutError:
                raise ClusterError(
                    f"no Dask worker joined the scheduler at {scheduler} within {CONNECT_TIMEOUT}s"
                ) from None
            yield client
        finally:
            client.close()
        return
    options: dict[str, Any] = {"host": "127.0.0.1"} if processes else {}
    cluster = LocalCluster(
        n_workers=max(1, workers),
        threads_per_worker=1,
        processes=processes,
        dashboard_address=None,
        silence_logs=logging.ERROR,  # not a warning per cancelled task on Ctrl-C
        memory_limit=0,  # the grading processes have the sandbox's limits; never pause a worker
        **options,
    )
    try:
        with Client(cluster, set_as_default=False) as client:
            yield client
    finally:
        cluster.close()


# --------------------------------------------------------------------------- the staff key on the workers


def register_key(key: bytes) -> str:
    """Keep ``key`` for the workers of this process's local cluster; its fingerprint, the
    only form of the key a task carries."""
    key_id = staffkey.fingerprint(key)
    _KEYS[key_id] = key
    return key_id


def forget_key(key_id: str) -> None:
    """Drop a key :func:`register_key` kept."""
    _KEYS.pop(key_id, None)


def key_for(key_id: str) -> bytes:
    """The staff key whose fingerprint is ``key_id``, on a worker: the one this process
    registered, else ``GRADER_STAFF_KEY`` of the worker's own environment.  Raises
    :class:`grader.staffkey.StaffKeyError` when the worker has no key or another one."""
    if key_id in _KEYS:
        return _KEYS[key_id]
    staffkey.hide_this_process()  # before the key is read: no same-uid process may read our memory
    key = staffkey.from_environment()
    where = _worker_name()
    if key is None:
        raise staffkey.StaffKeyError(
            f"{where} has no {staffkey.ENV} in its environment: start the workers with the batch's "
            f"key (fingerprint {key_id}) in {staffkey.ENV}"
        )
    if staffkey.fingerprint(key) != key_id:
        raise staffkey.StaffKeyError(
            f"{where} has another staff key (fingerprint {staffkey.fingerprint(key)}, the batch's {key_id}): "
            f"start the workers with the batch's {staffkey.ENV}"
        )
    return key


def code_digest(root: Path = ROOT) -> str:
    """A hash of what decides a grade: the grader, the exercise and hidden tests, the reference."""
    digest = hashlib.sha256()
    for folder in ("grader", "tests/exercises", "tests/hidden", "solutions"):
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def worker_problems(key_id: str, digest: str, folders: Sequence[str], weak: bool = False) -> list[str]:
    """What keeps this worker from grading a batch (run on every worker by :func:`check_workers`):
    no key or another key, another grader or other tests, a folder it cannot see, a sandbox that
    could not keep staff files from the grading workers (unless ``weak``)."""
    problems = []
    try:
        key_for(key_id)
    except staffkey.StaffKeyError as exc:
        problems.append(str(exc))
    if code_digest() != digest:
        problems.append(f"its grader, tests or reference ({ROOT}) differ from the batch's: run it from the same commit")
    problems += [
        f"it cannot see the folder {folder}: use a shared file system"
        for folder in folders
        if not Path(folder).is_dir()
    ]
    from grader.grading import isolation

    try:
        isolation.require(folders, weak)
    except isolation.IsolationRefused as exc:
        problems.append(str(exc))
    return problems


def scheduler_can_load(module: str) -> bool:
    """Import ``module`` (on the scheduler, which unpickles every task and so imports its function)."""
    importlib.import_module(module)
    return True


def check_workers(
    client: "Client", key_id: str, folders: Iterable[str | os.PathLike[str]], module: str, weak: bool = False
) -> None:
    """Raise :class:`ClusterError` unless the scheduler of ``client`` can import ``module`` (the
    tasks' functions) and every worker can grade the batch (naming each that cannot and why,
    :func:`worker_problems`; ``weak``: a worker whose sandbox cannot keep staff files from its
    workers is accepted)."""
    try:
        client.run_on_scheduler(scheduler_can_load, module)
    except Exception as exc:
        raise ClusterError(
            f"the Dask scheduler cannot load the grader ({type(exc).__name__}: {exc}): start it from the "
            f"repository, e.g. `PYTHONPATH=$PWD dask scheduler`"
        ) from None
    answers = client.run(worker_problems, key_id, code_digest(), [str(f) for f in folders], weak)
    lines = [f"{address}: {problem}" for address, problems in sorted(answers.items()) for problem in problems]
    if lines:
        raise ClusterError("a Dask worker cannot grade this batch:\n  " + "\n  ".join(lines))


def _worker_name() -> str:
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return "this Dask worker"
    return f"the Dask worker {worker.name} ({worker.address})"


def worker_slot() -> int | None:
    """The number of the local-cluster worker running this task (0, 1, ...), else ``None``."""
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return None
    return name if isinstance(name, int) else None


def cancelled() -> bool:
    """Whether the Dask task running in this thread was cancelled (its client went away or
    cancelled it) or its worker is closing; ``False`` outside a Dask worker."""
    try:
        from distributed import get_worker
        from distributed.worker import thread_state

        worker = get_worker()
    except (ImportError, ValueError):
        return False
    if worker.status.name in ("closing", "closed", "failed"):
        return True
    key = getattr(thread_state, "key", None)
    if key is None:  # not a task's thread
        return False
    task = worker.state.tasks.get(key)
    return task is None or task.state in ("cancelled", "released", "forgotten")


# --------------------------------------------------------------------------- the guarded process


def run_guarded(
    argv: Sequence[str], job: dict[str, Any], key: bytes | None = None, cwd: Path = ROOT
) -> tuple[int | None, str]:
    """Run ``argv`` (a program that calls :func:`keep`) with ``job`` on its stdin and ``key``
    through a pipe (:func:`grader.staffkey.send`); ``(exit status, the end of its stderr)``.

    The status is ``None`` when the task was cancelled meanwhile (:func:`cancelled`): the
    process is then sent ``SIGTERM``, on which it kills everything it started.  Its stdin
    stays open while it runs: if this process dies, the child sees end-of-file and does the same.
    """
    env = dict(os.environ)
    for name in (staffkey.ENV, staffkey.FD_ENV):  # the key goes through a pipe or not at all
        env.pop(name, None)
    key_fd = None
    if key is not None:
        key_fd, key_env = staffkey.send(key)
        env.update(key_env)
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,  # a kill of our process group does not reach it: it cleans up
                pass_fds=() if key_fd is None else (key_fd,),
            )
        finally:
            if key_fd is not None:
                os.close(key_fd)
        assert proc.stdin is not None
        code: int | None = None
        try:
            try:
                proc.stdin.write(json.dumps(job).encode() + b"\n")
                proc.stdin.flush()
            except BrokenPipeError:
                pass  # it ended already: its status says why
            while True:
                try:
                    code = proc.wait(timeout=POLL)
                    break
                except subprocess.TimeoutExpired:
                    if cancelled():
                        _stop(proc)
                        break
        except BaseException:
            _stop(proc)
            raise
        finally:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
        err.seek(0)
        tail = err.read()[-4000:].decode(errors="replace")
    return code, tail


def _stop(proc: "subprocess.Popen[bytes]") -> None:
    """``SIGTERM`` (it kills its descendants and exits), then ``SIGKILL`` if it lingers."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def keep() -> dict[str, Any]:
    """In the guarded process: become a child subreaper, arrange to kill every descendant on
    ``SIGTERM`` and when stdin reaches end-of-file (the task's process is gone), and return
    the job :func:`run_guarded` wrote on stdin."""
    confine.prctl(confine.PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGTERM, lambda signum, frame: _die(128 + signum))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the batch decides; it sends SIGTERM
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(0, 1 << 16)
        if not chunk:
            _die(3)
        line += chunk
    threading.Thread(target=_watch_stdin, daemon=True).start()
    job: dict[str, Any] = json.loads(line)
    return job


def _watch_stdin() -> None:
    while os.read(0, 1 << 16):
        pass
    _die(3)


def kill_descendants() -> None:
    """Kill every process below this one (``SIGKILL``) until none is left, and reap them."""
    me = os.getpid()
    for _ in range(200):
        pids = descendants(me)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break


#: Held while a result is written (batch.grade_one) and taken for good by :func:`_die`: once the
#: batch is gone, a grading its death cut short must not be written as if it had finished.
WRITES = threading.RLock()


def _die(code: int) -> None:
    WRITES.acquire()  # after a write in progress (a finished grading), before any other
    kill_descendants()
    os._exit(code)
