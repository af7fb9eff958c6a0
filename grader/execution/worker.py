"""The untrusted side of the engine: zygote, supervisor and worker processes.

This file runs from a private copy of the worker-side modules (see
:func:`grader.adapters.sandboxed.runtime_bundle`), in Python's isolated mode with a minimal
environment; the repository is not on ``sys.path``.

* The **zygote** imports torch once, then forks a supervisor per request it receives on
  its control socket (a request carries the worker's socket and output pipe as fds).
* The **supervisor** (trusted code: no student code ever runs in it) starts a new
  session, becomes a child subreaper (orphans of the worker come back to it), takes a
  pool uid and a memory cgroup for the worker, puts it in a PID namespace of its own,
  forks it, freezes it between calls and kills whatever else it started, and reports
  its end (exit status, out of memory) on a control socket the worker never holds.
* The **worker** confines itself (:mod:`grader.execution.confine`), says which measures
  are in force before any student code runs, checks the source text
  it is sent for forbidden calls (``check``, :mod:`grader.execution.static_check`: answered before
  any of the student's code has run in the process, so nothing the student wrote can change
  the answer), loads the submission from that text and serves calls: ``load``, ``call``,
  ``construct``, ``method``.  Replies are JSON plus tensor bytes (:mod:`grader.execution.protocol`).
"""

import gc
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from grader.execution import cgroup


def zygote_main(ctl_fd: int) -> None:
    """Serve fork requests on the control socket ``ctl_fd`` until it closes."""
    # No garbage collection while importing torch and warming it up: the collector would
    # walk the growing heap again and again (a quarter of the zygote's start), and all
    # that is loaded is frozen after anyway.
    gc.disable()
    try:
        import torch

        from grader.execution import calls, cgroup, confine, protocol, static_check  # noqa: F401

        _warm_up(torch)
    except BaseException as exc:  # torch cannot start here: the first request is answered with why
        said = f"{type(exc).__name__}: {exc}"[:500]
        socket.socket(fileno=ctl_fd).sendall(json.dumps({"error": said}).encode() + b"\n")
        os._exit(1)
    gc.enable()  # for the workers: the student's garbage is theirs to collect

    confine.prctl(confine.PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped automatically
    memory = cgroup.parent()
    ctl = socket.socket(fileno=ctl_fd)
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(ctl, 1 << 20, 4)
        except OSError:
            break
        if not msg:
            break
        request = json.loads(msg)
        pid = os.fork()
        if pid == 0:
            ctl.close()
            try:
                supervisor(request, fds, memory)
            finally:
                os._exit(0)
        for fd in fds:
            os.close(fd)
        ctl.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    if memory[0] is not None:  # the supervisors removed their workers' cgroups; an abandoned
        cgroup.remove_tree(memory[1])  # one is swept by the next zygote (cgroup.parent)
    os._exit(0)


def _warm_up(torch: types.ModuleType) -> None:
    """Pay torch's lazy imports once, here, rather than in every worker's first call.

    Only meta-device work: CPU kernels could start thread pools, which do not survive fork.
    """
    x = torch.ones(3, 4, device="meta")
    (x @ x.T).softmax(-1).tril().masked_fill(torch.ones(3, 3, dtype=torch.bool, device="meta"), 0.0)
    _ = torch.arange(4, device="meta") < torch.ones(2, 1, dtype=torch.long, device="meta")  # warms the comparison
    import torch.distributions
    import torch.nn.functional

    # What the zygote holds now is never garbage: a collection in a worker skips it (and
    # the forked pages stay shared instead of being touched by the collector).
    gc.freeze()


def _state(pid: int) -> tuple[str, int] | None:
    """``(state, ppid)`` of ``pid`` from ``/proc``, or ``None`` when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        fields = stat[stat.rindex(b")") + 2 :].split()
        return fields[0].decode(), int(fields[1])
    except (OSError, ValueError, IndexError):
        return None


def _children(pid: int) -> list[int] | None:
    """The children of ``pid`` (every thread's), or ``None`` when the kernel does not list them."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                found += [int(c) for c in fh.read().split()]
        except FileNotFoundError:
            if os.path.exists(f"/proc/{pid}/task/{tid}"):
                return None  # no CONFIG_PROC_CHILDREN
        except (OSError, ValueError):
            continue
    return found


def _scan_children() -> dict[int, list[int]]:
    """``{ppid: [pid, ...]}`` of every process visible in /proc (the slow way)."""
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            found = _state(int(name))
            if found:
                kids.setdefault(found[1], []).append(int(name))
    return kids


def descendants(root: int) -> list[int]:
    """Every live (not zombie) descendant of ``root`` (children, grandchildren, ...)."""
    table: dict[int, list[int]] | None = None
    found: list[int] = []
    todo = [root]
    while todo:
        pid = todo.pop()
        kids = _children(pid) if table is None else table.get(pid, [])
        if kids is None:
            table = _scan_children()
            kids = table.get(pid, [])
        for kid in kids:
            state = _state(kid)
            if state is not None and state[0] not in "ZX":
                found.append(kid)
            todo.append(kid)
    return found


def _signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill_descendants(spare: int | None = None) -> int:
    """Kill every descendant of this (subreaper) process but ``spare``, and reap them all.

    A fork bomb forks faster than one can kill it, so the whole tree is first frozen
    with SIGSTOP (a stopped process cannot fork), rescanned until nothing new appears,
    then killed.  Returns how many were killed.
    """

    def others() -> set[int]:
        return set(descendants(os.getpid())) - {spare}

    killed = 0
    for _ in range(1000):
        tree = others()
        if not tree:
            break
        frozen: set[int] = set()
        while tree - frozen:
            _signal_all(tree - frozen, signal.SIGSTOP)
            frozen |= tree
            tree = others()
        _signal_all(frozen, signal.SIGKILL)
        _signal_all(frozen, signal.SIGCONT)
        killed += len(frozen)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                while os.waitpid(-1, os.WNOHANG)[0] > 0:
                    pass
            except ChildProcessError:
                pass
            if not others():
                break
            time.sleep(0.002)
    return killed


def _stop(pid: int) -> bool:
    """SIGSTOP ``pid`` (a child of this process) and wait until it is stopped (or gone);
    whether it still lives."""
    try:
        os.kill(pid, signal.SIGSTOP)
    except ProcessLookupError:
        return False
    # The kernel tells the parent the moment its child stops: no polling delay.  WNOWAIT
    # leaves an exit for the supervisor's loop to collect; a stop is taken off, so the next
    # call waits for its own.  /proc confirms it (a stale stop could be an old one).
    try:
        info = os.waitid(os.P_PID, pid, os.WSTOPPED | os.WEXITED | os.WNOWAIT)
        if info is not None and info.si_code in (os.CLD_STOPPED, os.CLD_TRAPPED):
            os.waitid(os.P_PID, pid, os.WSTOPPED | os.WNOHANG)
    except (ChildProcessError, InterruptedError):
        pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        state = _state(pid)
        if state is None or state[0] in "ZX":
            return False
        if state[0] in "Tt":
            return True
        time.sleep(0.0002)
    return True


def supervisor(
    request: dict[str, Any], fds: Sequence[int], memory: tuple[int, str] | tuple[None, str] = (None, "")
) -> None:
    """Fork the worker, keep it to one call at a time, clean up after it, report its end.

    The trusted side speaks to the supervisor on its own socket (``ctl``), which the
    worker never holds: ``r`` after each call stops the worker and kills every other
    process it started (nothing runs between calls), answered by ``{"reaped": n}``; ``c``
    lets the worker go on; at the end ``{"exit": code, "oom": bool}``.  The measures it
    took (uid, cgroup, PID namespace) reach the trusted side in the worker's hello.
    """
    from grader.execution import cgroup, confine

    os.setsid()
    confine.prctl(confine.PR_SET_CHILD_SUBREAPER, 1)
    confine.prctl(confine.PR_SET_PDEATHSIG, signal.SIGTERM)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sock_fd, out_fd, ctl_fd = fds
    root = os.geteuid() == 0
    measures: list[str] = []
    uid: int | None = None
    uid_fd: int | None = None
    group: cgroup.Cgroup | None = None
    if root:
        try:
            uid, uid_fd = confine.allocate_uid()
        except OSError as exc:
            measures.append(f"uid: nobody ({exc})")
    if memory[0] is not None:
        try:
            group = cgroup.Cgroup(memory[0], memory[1], f"w{os.getpid()}", int(request["limits"]["memory_bytes"]))
            measures.append(f"memory: cgroup v{memory[0]}")
        except OSError as exc:
            measures.append(f"memory: resource limits only (the cgroup could not be made: {exc.strerror or exc})")
    else:
        measures.append(f"memory: resource limits only ({memory[1]}; shared memory is not counted)")
    wanted_pid = bool(request.get("pid_namespace", True))
    own_pid = False
    if wanted_pid:
        if not root:
            confine.user_namespace()  # an ordinary user needs one to make a PID namespace
        own_pid = confine.unshare(confine.CLONE_NEWPID)
    if own_pid:
        measures.append("own PID namespace and /proc")
    elif wanted_pid:
        measures.append("no PID namespace (refused here)")
    else:
        measures.append("no PID namespace: /proc shows only the worker's uid's processes")
    # Where the worker gets no filesystem view of its own, this is the one folder it may write to.
    scratch = tempfile.mkdtemp(prefix="grader-scratch-")
    if uid is not None:
        os.chown(scratch, uid, confine.NOBODY)
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            os.close(ctl_fd)
            if uid_fd is not None:
                os.close(uid_fd)
            if group is not None:
                group.join()
            worker(
                request["module"],
                request["limits"],
                request["exclude"],
                uid,
                own_pid,
                request.get("gpu", False),
                measures,
                sock_fd,
                out_fd,
                scratch,
            )
        finally:
            os._exit(70)
    os.close(out_fd)
    os.close(sock_fd)
    ctl = socket.socket(fileno=ctl_fd)
    status = _supervise(pid, ctl, group)
    kill_descendants()
    shutil.rmtree(scratch, ignore_errors=True)
    oom = group is not None and group.oom_killed()
    if group is not None:
        group.remove()
    if uid_fd is not None:
        os.close(uid_fd)
    try:
        ctl.settimeout(2)
        ctl.sendall(json.dumps({"exit": os.waitstatus_to_exitcode(status), "oom": oom}).encode() + b"\n")
    except (OSError, ValueError):
        pass
    os._exit(0)


def _alone(pid: int, group: "cgroup.Cgroup | None") -> bool:
    """Whether the stopped worker ``pid`` is the only process of its memory cgroup (every
    process it started is in it too): then there is nothing to kill after its call.  Without
    a cgroup: unknown (``False``), and the supervisor looks through ``/proc``."""
    return group is not None and group.processes() == {pid}


def _supervise(pid: int, ctl: socket.socket, group: "cgroup.Cgroup | None") -> int:
    """Serve the trusted side's ``r`` and ``c`` until the worker ends; its wait status."""
    import select

    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    status: int | None = None
    client_gone = False
    while status is None:
        watch: list[int | socket.socket] = [pidfd] if pidfd is not None else []
        if not client_gone:
            watch.append(ctl)
        try:
            ready, _, _ = select.select(watch, [], [], 0.05 if pidfd is None else None)
        except InterruptedError:
            continue
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            status = raw
            break
        if ctl in ready:
            try:
                data = ctl.recv(64)
            except OSError:
                data = b""
            if not data:  # the trusted side is done with this worker (or gone)
                client_gone = True
                _signal_all([pid], signal.SIGKILL)
                continue
            for op in data:
                if op == ord("r"):
                    alive = _stop(pid)
                    killed = kill_descendants(spare=pid) if alive and not _alone(pid, group) else 0
                    try:
                        ctl.sendall(json.dumps({"reaped": killed}).encode() + b"\n")
                    except OSError:  # the trusted side is gone: end the worker like on EOF
                        client_gone = True
                        _signal_all([pid], signal.SIGKILL)
                        break
                elif op == ord("c"):
                    _signal_all([pid], signal.SIGCONT)
    if pidfd is not None:
        os.close(pidfd)
    return status


def worker(
    module: str,
    limits: Mapping[str, float],
    exclude: Sequence[str],
    uid: int | None,
    own_pid: bool,
    gpu: bool,
    measures: list[str],
    sock_fd: int,
    out_fd: int,
    scratch: str | None = None,
) -> None:
    """Confine this process, say hello, then serve the trusted side's requests until EOF."""
    from grader.execution import confine, protocol

    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    keep = sorted({0, 1, 2, sock_fd})
    for lo, hi in zip(keep, keep[1:] + [1 << 16]):
        os.closerange(lo + 1, hi)
    sys.stdout = os.fdopen(1, "w", buffering=1, errors="replace")
    sys.stderr = os.fdopen(2, "w", buffering=1, errors="replace")
    applied = confine.confine(limits, exclude, uid=uid, own_pid_namespace=own_pid, gpu=gpu, scratch=scratch)
    # Children the student's code starts are reaped as they end (none outlives a call
    # anyway): killed ones do not linger as zombies that count against the process limit.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    sock = socket.socket(fileno=sock_fd)
    protocol.send(sock, {"hello": applied + measures})  # before any of the student's code runs
    Server(sock, module).serve()


class Server:
    """The worker's request loop; holds the loaded module and constructed objects."""

    def __init__(self, sock: socket.socket, module: str) -> None:
        self.sock = sock
        self.module = module
        self.mod: types.ModuleType | None = None
        self.loading = False
        self.objects: dict[int, Any] = {}
        self.next_id = 1

    def serve(self) -> None:
        """Answer requests, one at a time, until the trusted side closes the socket."""
        from grader.execution import protocol

        while True:
            try:
                header, buffers = protocol.recv(self.sock)
            except (EOFError, OSError):
                return
            try:
                reply, out_buffers = self.handle(header, buffers)
            except BaseException as exc:
                reply, out_buffers = self.error(exc), []
            try:
                protocol.send(self.sock, reply, out_buffers)
            except protocol.ProtocolError as exc:
                protocol.send(self.sock, self.error(exc), [])

    def error(self, exc: BaseException) -> dict[str, Any]:
        """The reply header reporting ``exc`` (the trusted side rebuilds the outcome from ``kind``)."""
        from grader.outcomes import StudentCodeError, SubmissionProblem

        if isinstance(exc, MemoryError) or "can't allocate memory" in str(exc) or "out of memory" in str(exc):
            return {"ok": False, "kind": "WorkerOutOfMemory", "message": f"ran out of memory ({str(exc)[:200]})"}
        if isinstance(exc, StudentCodeError):
            return {
                "ok": False,
                "kind": "StudentCodeError",
                "call": exc.call,
                "exc_type": exc.exc_type,
                "message": exc.message[:4000],
                "where": exc.where[:1000],
            }
        if isinstance(exc, SubmissionProblem):
            return {"ok": False, "kind": type(exc).__name__, "message": str(exc)[:4000]}
        if isinstance(exc, SystemExit):
            return {
                "ok": False,
                "kind": "StudentCodeError",
                "call": "call",
                "exc_type": "SystemExit",
                "message": str(exc)[:4000],
                "where": "",
            }
        return {
            "ok": False,
            "kind": "StudentCodeError",
            "call": "call",
            "exc_type": type(exc).__name__,
            "message": str(exc)[:4000],
            "where": traceback.format_exc(limit=-1)[-1000:],
        }

    def handle(self, header: dict[str, Any], buffers: Sequence[bytes]) -> tuple[dict[str, Any], list[bytes]]:
        """Serve one request (``check``, ``load``, ``call``, ``construct``, ``method``): ``(reply, buffers)``."""
        from grader.execution import calls, protocol

        value: Any  # what the reply carries: findings, call results, an object id or a method's outputs
        op = header.get("op")
        if op == "check":
            if self.loading:
                raise RuntimeError("check after load: the student's code may have run")
            from grader.execution import static_check

            value = static_check.check_source(header["source"], header["names"])
            enc, out_buffers = protocol.encode(value)
            return {"ok": True, "value": enc}, out_buffers
        if op == "load":
            self.loading = True
            self.mod = calls.load_module_source(header["source"], header["filename"], self.module)
            return {"ok": True}, []
        if self.mod is None:
            raise RuntimeError("nothing loaded")
        args = protocol.decode(header["args"], buffers)
        kwargs = protocol.decode(header["kwargs"], buffers)
        label = header["label"]
        if op == "call":
            call = calls.Call(
                header["name"],
                tuple(args),
                kwargs,
                obj=protocol.decode(header.get("obj"), buffers),
                grad_wrt=tuple(protocol.decode(header.get("grad_wrt", []), buffers)),
                cotangents=protocol.decode(header.get("cotangents"), buffers),
                want_inputs_after=protocol.decode(header.get("want_inputs_after", False), buffers),
                default_dtype=protocol.decode(header.get("default_dtype"), buffers),
            )
            if call.obj is None:
                target, obj = calls.resolve(self.mod, self.module, call.name), None
            else:
                obj = self.objects[call.obj]
                target = obj
            result = calls.run_call(target, call, label, header["filename"], module_obj=obj)
            value = {
                "outputs": result.outputs,
                "grads": result.grads,
                "param_grads": result.param_grads,
                "inputs_after": result.inputs_after,
            }
        elif op == "construct":
            cls = calls.resolve(self.mod, self.module, header["name"])
            oid = self.next_id
            self.next_id += 1
            self.objects[oid] = calls.construct(cls, args, kwargs, label, header["filename"])
            value = oid
        elif op == "method":
            name = header["name"]
            if name not in calls.MODULE_METHODS:
                raise ValueError(f"method {name} not allowed")
            obj = self.objects[protocol.decode(header["obj"], buffers)]
            value = calls.run_call(
                calls.module_method(obj, name), calls.Call(name, tuple(args), kwargs), label, header["filename"]
            ).outputs
        else:
            raise ValueError(f"unknown op {op!r}")
        enc, out_buffers = protocol.encode(value)
        return {"ok": True, "value": enc}, out_buffers


if __name__ == "__main__":  # pragma: no cover - started by the client
    zygote_main(int(sys.argv[1]))
