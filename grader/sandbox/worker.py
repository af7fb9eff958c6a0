"""The untrusted side of the engine: zygote, supervisor and worker processes.

This file runs from a private copy of the worker-side modules (see
:func:`grader.sandbox.client.runtime_bundle`), in Python's isolated mode with a minimal
environment; the repository is not on ``sys.path``.

* The **zygote** imports torch once, then forks a supervisor per request it receives on
  its control socket (a request carries the worker's socket and output pipe as fds).
* The **supervisor** starts a new session, becomes a child subreaper (orphans of the
  worker come back to it), forks the worker, waits for it, kills every descendant left,
  and reports the worker's exit status on the worker socket.
* The **worker** confines itself (:mod:`grader.sandbox.confine`), checks the source text
  it is sent for forbidden calls (``check``, :mod:`grader.static_check`: answered before
  any of the student's code has run in the process, so nothing the student wrote can change
  the answer), loads the submission from that text and serves calls: ``load``, ``call``,
  ``construct``, ``method``.  Replies are JSON plus tensor bytes (:mod:`grader.sandbox.protocol`).
"""

import os
import signal
import socket
import sys
import time
import traceback


def zygote_main(ctl_fd):
    """Serve fork requests on the control socket ``ctl_fd`` until it closes."""
    import torch  # noqa: F401  (imported once here, shared by every fork)

    from grader import execution, static_check  # noqa: F401
    from grader.sandbox import confine, protocol  # noqa: F401

    _warm_up(torch)

    confine.prctl(confine.PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped automatically
    ctl = socket.socket(fileno=ctl_fd)
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(ctl, 1 << 20, 4)
        except OSError:
            break
        if not msg:
            break
        import json
        request = json.loads(msg)
        pid = os.fork()
        if pid == 0:
            ctl.close()
            try:
                supervisor(request, fds)
            finally:
                os._exit(0)
        for fd in fds:
            os.close(fd)
        ctl.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    os._exit(0)  # supervisors get SIGTERM (their parent-death signal) and clean up


def _warm_up(torch):
    """Pay torch's lazy imports once, here, rather than in every worker's first call.

    Only meta-device work: CPU kernels could start thread pools, which do not survive fork.
    """
    x = torch.ones(3, 4, device="meta")
    (x @ x.T).softmax(-1).tril().masked_fill(torch.ones(3, 3, dtype=torch.bool, device="meta"), 0.0)
    torch.arange(4, device="meta") < torch.ones(2, 1, dtype=torch.long, device="meta")
    import torch.distributions  # noqa: F401
    import torch.nn.functional  # noqa: F401


def _process_table():
    """``{pid: ppid}`` of every process visible in /proc."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
            table[int(name)] = int(stat[stat.rindex(b")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return table


def descendants(root):
    """Every live descendant of ``root`` (children, grandchildren, ...)."""
    table = _process_table()
    kids = {}
    for pid, ppid in table.items():
        kids.setdefault(ppid, []).append(pid)
    found, todo = [], list(kids.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(kids.get(pid, []))
    return found


def _signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def kill_descendants():
    """Kill every descendant of this (subreaper) process and reap them all.

    A fork bomb forks faster than one can kill it, so the whole tree is first frozen
    with SIGSTOP (a stopped process cannot fork), rescanned until nothing new appears,
    then killed.
    """
    me = os.getpid()
    for _ in range(1000):
        tree = descendants(me)
        if not tree:
            break
        frozen = set()
        while set(tree) - frozen:
            _signal_all(set(tree) - frozen, signal.SIGSTOP)
            frozen |= set(tree)
            tree = descendants(me)
        _signal_all(frozen, signal.SIGKILL)
        _signal_all(frozen, signal.SIGCONT)
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG) == (0, 0):
                    time.sleep(0.005)
                    if not descendants(me):
                        break
            except ChildProcessError:
                break


def supervisor(request, fds):
    """Fork the worker, wait for it, clean up after it, report its exit status."""
    from grader.sandbox import confine, protocol

    os.setsid()
    confine.prctl(confine.PR_SET_CHILD_SUBREAPER, 1)
    confine.prctl(confine.PR_SET_PDEATHSIG, signal.SIGTERM)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    sock_fd, out_fd = fds
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.geteuid() == 0 and not os.path.exists("/dev/nvidiactl"):
        # The worker becomes PID 1 of its own namespace: it cannot see or signal the
        # workers of other submissions, and when it dies the kernel kills all it started.
        # (Not on NVIDIA machines: CUDA fails to start in a PID namespace, error 304;
        # there each batch slot runs under its own uid instead.)
        confine._libc.unshare(0x20000000)  # CLONE_NEWPID
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            worker(request, sock_fd, out_fd)
        finally:
            os._exit(70)

    def stop(*_):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, stop)  # the trusted side asks us to end the worker
    os.close(out_fd)
    status = None
    while status is None:
        try:
            done, raw = os.waitpid(pid, 0)
            if done == pid:
                status = raw
        except InterruptedError:
            continue
        except ChildProcessError:
            status = 0
    kill_descendants()
    sock = socket.socket(fileno=sock_fd)
    try:
        sock.settimeout(2)
        code = os.waitstatus_to_exitcode(status)
        protocol.send(sock, {"exit": code})
    except OSError:
        pass
    os._exit(0)


def worker(request, sock_fd, out_fd):
    """Confine this process, then serve the trusted side's requests until EOF."""
    from grader.sandbox import confine

    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    keep = sorted({0, 1, 2, sock_fd})
    for lo, hi in zip(keep, keep[1:] + [1 << 16]):
        os.closerange(lo + 1, hi)
    sys.stdout = os.fdopen(1, "w", buffering=1, errors="replace")
    sys.stderr = os.fdopen(2, "w", buffering=1, errors="replace")
    applied = confine.confine(request["limits"], request.get("hide", ()), request.get("workdir"),
                              uid=request.get("uid", confine.NOBODY))
    import torch
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    sock = socket.socket(fileno=sock_fd)
    Server(sock, request, applied).serve()


class Server:
    """The worker's request loop; holds the loaded module and constructed objects."""

    def __init__(self, sock, request, applied):
        self.sock, self.request, self.applied = sock, request, applied
        self.module = request["module"]
        self.mod = None
        self.loading = False
        self.objects = {}
        self.next_id = 1

    def serve(self):
        from grader.sandbox import protocol
        while True:
            try:
                header, buffers = protocol.recv(self.sock)
            except (EOFError, OSError):
                return
            try:
                reply, out_buffers = self.handle(header, buffers)
            except BaseException as exc:  # noqa: B036 - SystemExit inside a call must become a reply
                reply, out_buffers = self.error(exc), []
            try:
                protocol.send(self.sock, reply, out_buffers)
            except protocol.ProtocolError as exc:
                protocol.send(self.sock, self.error(exc), [])

    def error(self, exc):
        from grader.errors import SubmissionProblem, StudentCodeError
        if isinstance(exc, MemoryError) or "can't allocate memory" in str(exc) or "out of memory" in str(exc):
            return {"ok": False, "kind": "WorkerOutOfMemory", "message": f"ran out of memory ({str(exc)[:200]})"}
        if isinstance(exc, StudentCodeError):
            return {"ok": False, "kind": "StudentCodeError", "call": exc.call, "exc_type": exc.exc_type,
                    "message": exc.message[:4000], "where": exc.where[:1000]}
        if isinstance(exc, SubmissionProblem):
            return {"ok": False, "kind": type(exc).__name__, "message": str(exc)[:4000]}
        if isinstance(exc, SystemExit):
            return {"ok": False, "kind": "StudentCodeError", "call": "call", "exc_type": "SystemExit",
                    "message": str(exc)[:4000], "where": ""}
        return {"ok": False, "kind": "StudentCodeError", "call": "call", "exc_type": type(exc).__name__,
                "message": str(exc)[:4000], "where": traceback.format_exc(limit=-1)[-1000:]}

    def handle(self, header, buffers):
        from grader import execution
        from grader.sandbox import protocol
        op = header.get("op")
        if op == "check":
            if self.loading:
                raise RuntimeError("check after load: the student's code may have run")
            from grader import static_check
            value = static_check.check_source(header["source"], header["names"])
            enc, out_buffers = protocol.encode(value)
            return {"ok": True, "value": enc}, out_buffers
        if op == "load":
            self.loading = True
            self.mod = execution.load_module_source(header["source"], header["filename"], self.module)
            return {"ok": True, "applied": self.applied}, []
        if self.mod is None:
            raise RuntimeError("nothing loaded")
        args = protocol.decode(header["args"], buffers)
        kwargs = protocol.decode(header["kwargs"], buffers)
        label = header["label"]
        if op == "call":
            call = execution.Call(header["name"], tuple(args), kwargs, obj=protocol.decode(header.get("obj"), buffers),
                                  grad_wrt=tuple(protocol.decode(header.get("grad_wrt", []), buffers)),
                                  cotangents=protocol.decode(header.get("cotangents"), buffers),
                                  want_inputs_after=protocol.decode(header.get("want_inputs_after", False), buffers),
                                  default_dtype=protocol.decode(header.get("default_dtype"), buffers))
            if call.obj is None:
                target, obj = execution.resolve(self.mod, self.module, call.name), None
            else:
                obj = self.objects[call.obj]
                target = obj
            result = execution.run_call(target, call, label, header["filename"], module_obj=obj)
            value = {"outputs": result.outputs, "grads": result.grads, "param_grads": result.param_grads,
                     "inputs_after": result.inputs_after}
        elif op == "construct":
            cls = execution.resolve(self.mod, self.module, header["name"])
            oid = self.next_id
            self.next_id += 1
            self.objects[oid] = execution.construct(cls, args, kwargs, label, header["filename"])
            value = oid
        elif op == "method":
            name = header["name"]
            if name not in execution.MODULE_METHODS:
                raise ValueError(f"method {name} not allowed")
            obj = self.objects[protocol.decode(header["obj"], buffers)]
            value = execution.run_call(execution.module_method(obj, name), execution.Call(name, tuple(args), kwargs),
                                       label, header["filename"]).outputs
        else:
            raise ValueError(f"unknown op {op!r}")
        enc, out_buffers = protocol.encode(value)
        return {"ok": True, "value": enc}, out_buffers


if __name__ == "__main__":  # pragma: no cover - started by the client
    zygote_main(int(sys.argv[1]))
