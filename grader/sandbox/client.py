"""The trusted side of the engine: the ``sandbox`` adapter and the zygote it forks from.

:class:`Sandboxed` implements :class:`grader.adapter.Implementation` by sending each
request to a confined worker process over a private socketpair and rebuilding the reply
from JSON and raw bytes (:mod:`grader.sandbox.protocol`): nothing from the worker is
unpickled or executed here.  A call that hangs is stopped at its timeout, a worker that
dies is replaced for the next call, and a function that timed out or crashed is not run
again (its later calls fail at once), so a hostile submission costs bounded time.
"""

import atexit
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
from pathlib import Path

import torch

from grader import ROOT, static_check
from grader import errors as E
from grader.adapter import Implementation, ModuleHandle
from grader.execution import read_submission
from grader.sandbox import protocol

#: Limits of one worker process (one module of one submission).
LIMITS = {
    "cpu_seconds": 600,
    "memory_bytes": 6 << 30,
    "file_bytes": 16 << 20,
    "open_files": 256,
    "processes": 32,
}
OUTPUT_KEEP = 64 << 10
#: Modules the worker side needs; copied into a private folder the worker runs from.
RUNTIME_FILES = ("__init__.py", "errors.py", "guards.py", "execution.py", "static_check.py",
                 "sandbox/__init__.py", "sandbox/protocol.py", "sandbox/confine.py", "sandbox/worker.py")


def call_timeout():
    """Seconds one call may take (``GRADER_CALL_TIMEOUT``, default 20)."""
    return float(os.environ.get("GRADER_CALL_TIMEOUT", 20))


def module_budget():
    """Seconds of calls one module of one submission may use (``GRADER_MODULE_BUDGET``, default 300)."""
    return float(os.environ.get("GRADER_MODULE_BUDGET", 300))


def hidden_paths():
    """Folders the worker must not see: the repository and ``GRADER_HIDE`` (``:``-separated)."""
    extra = [p for p in os.environ.get("GRADER_HIDE", "").split(os.pathsep) if p]
    return [str(ROOT), *extra]


_bundle = None
_zygote = None
_lock = threading.Lock()


def runtime_bundle():
    """A private, world-readable copy of the worker-side modules (made once per process)."""
    global _bundle
    if _bundle is None:
        target = Path(tempfile.mkdtemp(prefix="grader-runtime-"))
        os.chmod(target, 0o755)
        for rel in RUNTIME_FILES:
            dst = target / "grader" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(dst.parent, 0o755)
            shutil.copyfile(ROOT / "grader" / rel, dst)
            os.chmod(dst, 0o644)
        atexit.register(shutil.rmtree, target, True)
        _bundle = target
    return _bundle


class Zygote:
    """A process that has imported torch and forks one supervised worker per request."""

    def __init__(self):
        bundle = runtime_bundle()
        mine, theirs = socket.socketpair()
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(bundle), "PYTHONHASHSEED": "0",
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1",
               "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
        for key in ("CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH", "GRADER_SANDBOX_TAG"):
            if key in os.environ:
                env[key] = os.environ[key]
        code = (f"import sys; sys.path.insert(0, {str(bundle)!r}); "
                f"from grader.sandbox.worker import zygote_main; zygote_main({theirs.fileno()})")
        self.proc = subprocess.Popen([sys.executable, "-I", "-c", code], pass_fds=[theirs.fileno()], env=env,
                                     cwd=bundle, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        theirs.close()
        self.ctl = mine
        self.lock = threading.Lock()

    def spawn(self, request, fds):
        """Fork a supervised worker for ``request`` with ``fds``; its supervisor's pid."""
        with self.lock:
            try:
                socket.send_fds(self.ctl, [json.dumps(request).encode()], fds)
                line = b""
                self.ctl.settimeout(60)
                while not line.endswith(b"\n"):
                    chunk = self.ctl.recv(256)
                    if not chunk:
                        raise E.WorkerCrashed("the sandbox zygote died")
                    line += chunk
            except (OSError, E.WorkerCrashed):
                self.close()  # a late answer would give the next request the wrong pid: start afresh
                self.proc.kill()
                raise E.WorkerCrashed("the sandbox zygote did not answer") from None
        return int(json.loads(line)["pid"])

    def close(self):
        """Stop the zygote (it stops its supervisors, which kill their workers)."""
        try:
            self.ctl.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


def zygote():
    """The process-wide zygote, started on first use and stopped at exit."""
    global _zygote
    with _lock:
        if _zygote is None or _zygote.proc.poll() is not None:
            _zygote = Zygote()
            atexit.register(_zygote.close)
        return _zygote


def _device_ok(name):
    return name.split(":")[0] in ("cpu", "meta") or (name.startswith("cuda") and torch.cuda.is_available())


class _Worker:
    """One running worker: its socket, supervisor pid and captured output."""

    def __init__(self, module, hide):
        self.sock, theirs = socket.socketpair()
        out_r, out_w = os.pipe()
        request = {"module": module, "limits": LIMITS, "hide": hide,
                   "uid": int(os.environ.get("GRADER_SANDBOX_UID", 65534))}
        try:
            self.pid = zygote().spawn(request, [theirs.fileno(), out_w])
        except BaseException:
            self.sock.close()
            os.close(out_r)
            raise
        finally:
            theirs.close()
            os.close(out_w)
        self.output, self.output_bytes = bytearray(), 0
        self.drain = threading.Thread(target=self._drain, args=(out_r,), daemon=True)
        self.drain.start()

    def _drain(self, fd):
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            while True:
                chunk = pipe.read(65536)
                if not chunk:
                    return
                self.output_bytes += len(chunk)
                room = OUTPUT_KEEP - len(self.output)
                if room > 0:
                    self.output += chunk[:room]

    def stop(self):
        """Kill the worker and everything it started; its exit code (``None`` if unknown)."""
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        code = self.exit_code(timeout=30)  # the supervisor may need a while to stop a fork bomb
        if code is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.sock.close()
        self.drain.join(timeout=5)
        return code

    def exit_code(self, timeout):
        """Wait for the supervisor's ``{"exit": code}`` frame."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                header, _ = protocol.recv(self.sock)
            except (OSError, EOFError, protocol.ProtocolError):
                return None
            if type(header) is dict and "exit" in header and type(header["exit"]) is int:
                return header["exit"]
        return None


class Sandboxed(Implementation):
    """One module of a submission, run in a confined worker process."""

    def __init__(self, module, path):
        super().__init__(module)
        self.path = Path(path).resolve()
        self.filename = str(self.path)
        self.source = read_submission(self.path)
        self.budget = module_budget()
        self.poisoned = {}
        self.findings = None
        self.worker = None
        self.generation = 0
        self.applied = []
        try:
            self._start()
        except BaseException:
            self.close()  # a submission that does not import must not leave its worker running
            raise

    # -- worker lifecycle ------------------------------------------------------------
    def _start(self):
        self.worker = _Worker(self.module, hidden_paths())
        self.generation += 1
        if self.findings is None:
            # The static check, taken by the fresh worker before it runs any of the student's
            # code (so nothing the student wrote can shape the answer), and kept across restarts.
            found = self._exchange({"op": "check", "source": self.source, "names": self.public_names()},
                                   [], key="load", label=f"{self.path.name} (forbidden-call check)")
            try:
                self.findings = static_check.plain_findings(found, self.public_names())
            except ValueError as exc:
                self._kill()
                raise self._poison("load", E.WorkerCrashed(
                    f"{self.path.name}: malformed check reply ({exc})")) from None
            self.refuse(self.findings)
        reply = self._exchange({"op": "load", "source": self.source, "filename": self.filename},
                               [], key="load", label=f"{self.path.name} (import)")
        self.applied = reply.get("applied", [])
        if os.geteuid() == 0 and not any(str(a).startswith("uid ") for a in self.applied):
            # staff grading runs as root: never grade with a worker that kept root's rights
            self._kill()
            raise E.WorkerCrashed(f"{self.path.name}: the sandbox could not confine the worker ({self.applied})")

    def _kill(self):
        code = self.worker.stop() if self.worker else None
        self.worker = None
        return code

    def close(self):
        if self.worker is not None:
            self._kill()

    # -- requests ----------------------------------------------------------------------
    def _exchange(self, header, buffers, key, label):
        if key in self.poisoned:
            raise self.poisoned[key]
        if "load" in self.poisoned:
            raise self.poisoned["load"]
        if self.budget <= 0:
            raise E.WorkerTimeout(f"{label}: not run: the module's time budget of {module_budget():g}s is used up")
        if self.worker is None:
            self._start()
        limit = min(call_timeout(), self.budget)
        start = time.monotonic()
        try:
            self.worker.sock.settimeout(limit)
            protocol.send(self.worker.sock, header, buffers)
            reply, reply_buffers = protocol.recv(self.worker.sock, deadline=start + limit)
        except socket.timeout:
            self._kill()
            raise self._poison(key, E.WorkerTimeout(
                f"{label}: no answer within {limit:g}s (an infinite loop? a long sleep?)")) from None
        except (EOFError, OSError, protocol.ProtocolError) as exc:
            code = self._kill()
            raise self._poison(key, E.WorkerCrashed(f"{label}: the worker broke the protocol ({exc}); exit {code}")) from None
        finally:
            self.budget -= time.monotonic() - start
        if type(reply) is not dict:
            self._kill()
            raise self._poison(key, E.WorkerCrashed(f"{label}: malformed reply"))
        if "exit" in reply:
            self._kill()  # the supervisor's report, or a worker pretending: either way it ends here
            raise self._poison(key, self._death(label, reply.get("exit")))
        if reply.get("ok") is True:
            if "value" not in reply:
                return reply
            try:
                return protocol.decode(reply["value"], reply_buffers, _device_ok)
            except protocol.ProtocolError as exc:
                self._kill()
                raise self._poison(key, E.BadOutput(f"{label}: the reply could not be accepted ({exc})")) from None
        raise self._error(reply, label)

    def _poison(self, key, exc):
        self.poisoned[key] = exc
        return exc

    @staticmethod
    def _death(label, code):
        if type(code) is not int:
            return E.WorkerCrashed(f"{label}: the worker process died")
        if code < 0:
            sig = -code
            try:
                name = signal.Signals(sig).name
            except ValueError:
                name = f"signal {sig}"
            if sig == signal.SIGXCPU:
                return E.WorkerTimeout(f"{label}: CPU time limit reached ({name})")
            if sig == signal.SIGXFSZ:
                return E.WorkerCrashed(f"{label}: wrote a file past the size limit ({name})")
            return E.WorkerCrashed(f"{label}: the worker process died with signal {name}")
        return E.WorkerCrashed(f"{label}: the worker process exited with code {code} (os._exit? a C extension?)")

    @staticmethod
    def _error(reply, label):
        kind = reply.get("kind")
        message = str(reply.get("message", ""))[:4000]
        if kind == "StudentCodeError":
            return E.StudentCodeError(str(reply.get("call", label))[:200], str(reply.get("exc_type", "Exception"))[:100],
                                      message, str(reply.get("where", ""))[:1000])
        known = {"NotImplementedYet": E.NotImplementedYet, "MissingName": E.MissingName, "BadOutput": E.BadOutput,
                 "ForbiddenCall": E.ForbiddenCall, "SubmissionImportError": E.SubmissionImportError,
                 "WorkerOutOfMemory": E.WorkerOutOfMemory}
        return known.get(kind, E.WorkerCrashed)(message or f"{label}: failed")

    def _send(self, op, name, args, kwargs, key, label, **extra):
        enc_args, buffers = protocol.encode(list(args))
        enc_kwargs, more = protocol.encode(dict(kwargs))
        shift = len(buffers)
        buffers += more
        header = {"op": op, "name": name, "label": label, "filename": self.filename,
                  "args": enc_args, "kwargs": _shift(enc_kwargs, shift)}
        for field, value in extra.items():
            enc, more = protocol.encode(value)
            header[field] = _shift(enc, len(buffers))
            buffers += more
        return self._exchange(header, buffers, key, label)

    # -- the Implementation verbs ----------------------------------------------------
    def invoke(self, call):
        if call.obj is None:
            self.check_allowed(call.name)
            label, key = self.label(call.name), ("call", call.name)
            obj = None
        else:
            generation, oid, class_name = call.obj
            self.check_allowed(class_name)
            self._check_generation(generation, class_name)
            label, key, obj = self.label(f"{class_name}.forward"), ("call", f"{class_name}.forward"), oid
        value = self._send("call", call.name, call.args, call.kwargs, key, label, obj=obj,
                           grad_wrt=list(call.grad_wrt), cotangents=call.cotangents,
                           want_inputs_after=call.want_inputs_after, default_dtype=call.default_dtype)
        from grader.execution import CallResult
        fields = ("outputs", "grads", "param_grads", "inputs_after")
        if type(value) is not dict or set(value) != set(fields) or type(value["grads"]) is not dict \
                or type(value["param_grads"]) is not dict:
            raise E.BadOutput(f"{label}: malformed reply")
        return CallResult(*(value[f] for f in fields))

    def construct(self, name, *args, **kwargs):
        self.check_allowed(name)
        oid = self._send("construct", name, args, kwargs, ("construct", name), self.label(f"{name}.__init__"))
        if type(oid) is not int:
            raise E.BadOutput(f"{name}: bad object id")
        return ModuleHandle(self, (self.generation, oid, name), name)

    def method(self, handle, name, *args, **kwargs):
        generation, oid, class_name = handle.oid
        self.check_allowed(class_name)
        self._check_generation(generation, class_name)
        return self._send("method", name, args, kwargs, ("method", f"{class_name}.{name}"),
                          self.label(f"{class_name}.{name}"), obj=oid)

    def _check_generation(self, generation, class_name):
        if generation != self.generation:
            raise E.WorkerCrashed(f"{self.label(class_name)}: the object was lost when the worker restarted")


def _shift(enc, offset):
    """Renumber tensor buffer indices in an encoded value by ``offset``."""
    if not offset:
        return enc
    if type(enc) is list:
        return [_shift(v, offset) for v in enc]
    if type(enc) is dict:
        if "__tensor__" in enc and type(enc["__tensor__"]) is int:
            return dict(enc, __tensor__=enc["__tensor__"] + offset)
        return {k: _shift(v, offset) for k, v in enc.items()}
    return enc
