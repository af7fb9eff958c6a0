"""The trusted side of the engine: the ``sandbox`` adapter and the zygote it forks from.

:class:`Sandboxed` implements :class:`grader.adapters.Implementation` by sending each
request to a confined worker process over a private socketpair and rebuilding the reply
from JSON and raw bytes (:mod:`grader.execution.protocol`): nothing from the worker is
unpickled or executed here.  A call that hangs is stopped at its timeout, a worker that
dies is replaced for the next call, and a function that timed out or crashed is not run
again (its later calls fail at once), so a hostile submission costs bounded time.
"""

import contextlib
import ctypes
import json
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from grader import ROOT
from grader import outcomes as E
from grader.adapters.base import Implementation, ModuleHandle
from grader.adapters.zygote import (  # noqa: F401 - re-exported: the zygote (and the limits) were defined here before
    LIMITS,
    RUNTIME_FILES,
    RUNTIME_FOLDER,
    WORKER_FOLDER,
    Zygote,
    limits,
    nvidia,
    runtime_bundle,
    runtime_files,
    zygote,
)
from grader.execution import isolation, protocol, static_check
from grader.execution.calls import Call, CallResult, read_submission

OUTPUT_KEEP = 64 << 10


def call_timeout() -> float:
    """Seconds one call may take (``GRADER_CALL_TIMEOUT``, default 20)."""
    return float(os.environ.get("GRADER_CALL_TIMEOUT", 20))


def module_budget() -> float:
    """Seconds of calls one module of one submission may use (``GRADER_MODULE_BUDGET``, default 300)."""
    return float(os.environ.get("GRADER_MODULE_BUDGET", 300))


def submission_budget() -> float:
    """Seconds of calls all the modules of one submission may use together
    (``GRADER_SUBMISSION_BUDGET``, default 600)."""
    return float(os.environ.get("GRADER_SUBMISSION_BUDGET", 600))


def own_pid_namespace() -> bool:
    """Whether workers get a PID namespace: not on NVIDIA machines, where CUDA fails to
    start in one (error 304); ``GRADER_SANDBOX_PID_NAMESPACE=0`` or ``1`` decides."""
    forced = os.environ.get("GRADER_SANDBOX_PID_NAMESPACE")
    if forced in ("0", "1"):
        return forced == "1"
    return not nvidia()


class _Budget:
    """Seconds of calls left to one submission, shared by its modules' workers (and, made by
    :func:`share_budget`, by the processes forked from this one)."""

    def __init__(self, seconds: float, lock: Any = None) -> None:
        if lock is None:
            self._left: Any = ctypes.c_double(seconds)
            self._lock: Any = contextlib.nullcontext()
        else:
            self._left = multiprocessing.get_context("fork").RawValue(ctypes.c_double, seconds)
            self._lock = lock

    @property
    def left(self) -> float:
        """Seconds left."""
        return float(self._left.value)

    def spend(self, seconds: float) -> None:
        """Take ``seconds`` off what is left."""
        with self._lock:
            self._left.value -= seconds


_budgets: dict[str, _Budget] = {}
_lock = threading.Lock()


def _submission_budget(folder: str) -> _Budget:
    with _lock:
        if folder not in _budgets:
            _budgets[folder] = _Budget(submission_budget())
        return _budgets[folder]


def share_budget(folder: str | os.PathLike[str], lock: Any) -> None:
    """Before this process forks several test processes that grade the submission in
    ``folder``: its time budget lives in shared memory (updated under ``lock``, a
    ``multiprocessing`` lock), so all the processes spend one budget, as one process would."""
    with _lock:
        _budgets[str(Path(folder).resolve())] = _Budget(submission_budget(), lock)


def _device_ok(name: str) -> bool:
    return name.split(":")[0] in ("cpu", "meta") or (name.startswith("cuda") and torch.cuda.is_available())


class _Worker:
    """One running worker: its socket, its supervisor's control socket, captured output."""

    def __init__(self, module: str) -> None:
        self.sock, theirs = socket.socketpair()
        self.ctl, ctl_theirs = socket.socketpair()
        out_r, out_w = os.pipe()
        request = {
            "module": module,
            "limits": limits(),
            "exclude": [str(ROOT)],
            "pid_namespace": own_pid_namespace(),
            "gpu": nvidia(),
        }
        try:
            self.pid = zygote().spawn(request, [theirs.fileno(), out_w, ctl_theirs.fileno()])
        except BaseException:
            self.sock.close()
            self.ctl.close()
            os.close(out_r)
            raise
        finally:
            theirs.close()
            ctl_theirs.close()
            os.close(out_w)
        self.stopped = False
        self.ended: dict[str, Any] | None = None  # the supervisor's last report, once the worker has ended
        self.pending = b""
        self.output, self.output_bytes = bytearray(), 0
        self.drain = threading.Thread(target=self._drain, args=(out_r,), daemon=True)
        self.drain.start()

    def _drain(self, fd: int) -> None:
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            while True:
                chunk = pipe.read(65536)
                if not chunk:
                    return
                self.output_bytes += len(chunk)
                room = OUTPUT_KEEP - len(self.output)
                if room > 0:
                    self.output += chunk[:room]

    def _line(self, timeout: float) -> dict[str, Any] | None:
        """The supervisor's next report (a dict), or ``None`` when none comes in time."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                self.ctl.settimeout(left)
                chunk = self.ctl.recv(4096)
            except (TimeoutError, OSError):
                return None
            if not chunk:
                return None
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        try:
            report = json.loads(line)
        except ValueError:
            return None
        if type(report) is dict and "exit" in report:
            self.ended = report
        return report if type(report) is dict else None

    def resume(self) -> None:
        """Let a worker frozen after its last call go on (before the next request)."""
        if self.stopped:
            self.stopped = False
            try:
                self.ctl.sendall(b"c")
            except OSError:
                pass

    def settle(self) -> bool:
        """After a call: the supervisor freezes the worker and kills all else it started.
        False when the worker has ended meanwhile."""
        try:
            self.ctl.sendall(b"r")
        except OSError:
            return False
        report = self._line(timeout=30)
        if report is None or "reaped" not in report:
            return False
        self.stopped = True
        return True

    def stop(self) -> dict[str, Any]:
        """End the worker and everything it started; the supervisor's end report
        (``{"exit": code, "oom": bool}``, empty if none came)."""
        if self.ended is None:
            try:
                self.ctl.shutdown(socket.SHUT_WR)  # the supervisor kills the worker, then reports
            except OSError:
                pass
            while self.ended is None and self._line(timeout=30) is not None:
                pass
        if self.ended is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.sock.close()
        self.ctl.close()
        self.drain.join(timeout=5)
        return self.ended or {}


class Sandboxed(Implementation):
    """One module of a submission, run in a confined worker process."""

    def __init__(self, module: str, path: str | os.PathLike[str]) -> None:
        super().__init__(module)
        self.path = Path(path).resolve()
        self.filename = str(self.path)
        self.worker_filename = f"{WORKER_FOLDER}/{module}.py"
        self.source = read_submission(self.path)
        self.budget = module_budget()
        self.shared = _submission_budget(str(self.path.parent))
        self.poisoned: dict[str | tuple[str, str], E.SubmissionProblem] = {}
        self.findings: dict[str, list[dict[str, Any]]] | None = None
        self.worker: _Worker | None = None
        self.generation = 0
        self.applied: list[str] = []
        try:
            self._start()
        except BaseException as exc:
            self.close()  # a submission that does not import must not leave its worker running
            if isinstance(exc, E.SubmissionProblem) and self.applied:
                exc.measures = self.measures  # the report still says how the worker was isolated
            raise

    @property
    def measures(self) -> list[str]:
        """The isolation measures in force for this module's worker (as it reported them
        before running any of the student's code)."""
        return list(self.applied)

    # -- worker lifecycle ------------------------------------------------------------
    def _start(self) -> None:
        self.worker = _Worker(self.module)
        self.generation += 1
        try:
            self.worker.sock.settimeout(60)
            hello, _ = protocol.recv(self.worker.sock, deadline=time.monotonic() + 60)
            if type(hello) is not dict or type(hello.get("hello")) is not list:
                raise protocol.ProtocolError("no hello")
        except (OSError, EOFError, protocol.ProtocolError):
            worker = self.worker
            ended = self._kill()
            said = bytes(worker.output[-1500:]).decode(errors="replace").strip() if worker else ""
            raise self._poison(
                "load",
                E.WorkerCrashed(
                    f"{self.path.name}: the sandbox could not start a worker (exit {ended.get('exit')})"
                    + (f": {said}" if said else "")
                ),
            ) from None
        self.applied = [str(m)[:300] for m in hello["hello"]][:40]
        if os.geteuid() == 0 and "unprivileged uid" not in self.applied:
            # staff grading runs as root: never grade with a worker that kept root's rights
            self._kill()
            raise E.WorkerCrashed(f"{self.path.name}: the sandbox could not confine the worker ({self.applied})")
        if not isolation.at_least(self.applied, isolation.required):
            # staff grading checked this machine's isolation first: a worker below it is refused
            self._kill()
            raise self._poison(
                "load",
                E.WorkerCrashed(
                    f"{self.path.name}: the sandbox isolated the worker less than staff grading requires "
                    f"({isolation.level(self.applied)}, not {isolation.required}): not graded"
                ),
            )
        if self.findings is None:
            # The static check, taken by the fresh worker before it runs any of the student's
            # code (so nothing the student wrote can shape the answer), and kept across restarts.
            found = self._exchange(
                {"op": "check", "source": self.source, "names": self.public_names()},
                [],
                key="load",
                label=f"{self.path.name} (forbidden-call check)",
            )
            try:
                self.findings = static_check.plain_findings(found, self.public_names())
            except ValueError as exc:
                self._kill()
                raise self._poison(
                    "load", E.WorkerCrashed(f"{self.path.name}: malformed check reply ({exc})")
                ) from None
            self.refuse(self.findings)
        self._exchange(
            {"op": "load", "source": self.source, "filename": self.worker_filename},
            [],
            key="load",
            label=f"{self.path.name} (import)",
        )

    def _kill(self) -> dict[str, Any]:
        ended = self.worker.stop() if self.worker else {}
        self.worker = None
        return ended

    def close(self) -> None:
        if self.worker is not None:
            self._kill()

    # -- requests ----------------------------------------------------------------------
    def _exchange(self, header: dict[str, Any], buffers: list[bytes], key: str | tuple[str, str], label: str) -> Any:
        if key in self.poisoned:
            raise self.poisoned[key]
        if "load" in self.poisoned:
            raise self.poisoned["load"]
        if self.budget <= 0:
            raise E.WorkerTimeout(f"{label}: not run: the module's time budget of {module_budget():g}s is used up")
        if self.shared.left <= 0:
            raise E.WorkerTimeout(
                f"{label}: not run: the submission's time budget of {submission_budget():g}s "
                "(all modules together) is used up"
            )
        if self.worker is None:
            self._start()
        worker = self.worker
        if worker is None:  # it answered the import, then ended (settle() failed): nothing to send this to
            raise self._poison(key, E.WorkerCrashed(f"{label}: the worker process ended right after the import"))
        shared_left = self.shared.left
        limit = min(call_timeout(), self.budget, shared_left)
        start = time.monotonic()
        try:
            worker.resume()
            worker.sock.settimeout(limit)
            protocol.send(worker.sock, header, buffers)
            reply, reply_buffers = protocol.recv(worker.sock, deadline=start + limit)
        except TimeoutError:
            self._kill()
            if limit == call_timeout():
                why = f"no answer within {limit:g}s (an infinite loop? a long sleep?)"
            elif limit == shared_left:
                why = f"the submission's time budget of {submission_budget():g}s (all modules together) ran out"
            else:
                why = f"the module's time budget of {module_budget():g}s ran out"
            raise self._poison(key, E.WorkerTimeout(f"{label}: {why}")) from None
        except (EOFError, OSError, protocol.ProtocolError) as exc:
            ended = self._kill()
            if ended:
                raise self._poison(key, self._death(label, ended)) from None
            raise self._poison(key, E.WorkerCrashed(f"{label}: the worker broke the protocol ({exc})")) from None
        finally:
            spent = time.monotonic() - start
            self.budget -= spent
            self.shared.spend(spent)
        if not worker.settle():  # nothing the call started runs on
            ended = self._kill()
            if ended.get("oom"):
                raise self._poison(key, self._death(label, ended))
        if type(reply) is not dict:
            self._kill()
            raise self._poison(key, E.WorkerCrashed(f"{label}: malformed reply"))
        if reply.get("ok") is True:
            if "value" not in reply:
                return reply
            try:
                return protocol.decode(reply["value"], reply_buffers, _device_ok)
            except protocol.ProtocolError as exc:
                self._kill()
                raise self._poison(key, E.BadOutput(f"{label}: the reply could not be accepted ({exc})")) from None
        raise self._error(reply, label)

    def _poison(self, key: str | tuple[str, str], exc: E.SubmissionProblem) -> E.SubmissionProblem:
        self.poisoned[key] = exc
        return exc

    @staticmethod
    def _death(label: str, ended: dict[str, Any]) -> E.SubmissionProblem:
        code = ended.get("exit")
        if ended.get("oom") is True:
            return E.WorkerOutOfMemory(f"{label}: out of memory (the worker passed its memory limit and was killed)")
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

    def _error(self, reply: dict[str, Any], label: str) -> E.SubmissionProblem:
        kind = reply.get("kind")
        message = self._local(str(reply.get("message", ""))[:4000])
        if kind == "StudentCodeError":
            return E.StudentCodeError(
                str(reply.get("call", label))[:200],
                str(reply.get("exc_type", "Exception"))[:100],
                message,
                self._local(str(reply.get("where", ""))[:1000]),
            )
        known: dict[Any, type[E.SubmissionProblem]] = {
            "NotImplementedYet": E.NotImplementedYet,
            "MissingName": E.MissingName,
            "BadOutput": E.BadOutput,
            "ForbiddenCall": E.ForbiddenCall,
            "SubmissionImportError": E.SubmissionImportError,
            "WorkerOutOfMemory": E.WorkerOutOfMemory,
        }
        return known.get(kind, E.WorkerCrashed)(message or f"{label}: failed")

    def _local(self, text: str) -> str:
        """``text`` with the worker's path of the module replaced by the student's own."""
        return text.replace(self.worker_filename, self.filename)

    def _send(
        self,
        op: str,
        name: str,
        args: Iterable[Any],
        kwargs: dict[str, Any],
        key: str | tuple[str, str],
        label: str,
        **extra: Any,
    ) -> Any:
        buffers: list[bytes] = []
        header = {
            "op": op,
            "name": name,
            "label": label,
            "filename": self.worker_filename,
            "args": protocol.encode_into(list(args), buffers),
            "kwargs": protocol.encode_into(dict(kwargs), buffers),
        }
        for field, value in extra.items():
            header[field] = protocol.encode_into(value, buffers)
        return self._exchange(header, buffers, key, label)

    # -- the Implementation verbs ----------------------------------------------------
    def invoke(self, call: Call) -> CallResult:
        if call.obj is None:
            self.check_allowed(call.name)
            label, key = self.label(call.name), ("call", call.name)
            obj = None
        else:
            generation, oid, class_name = call.obj
            self.check_allowed(class_name)
            self._check_generation(generation, class_name)
            label, key, obj = self.label(f"{class_name}.forward"), ("call", f"{class_name}.forward"), oid
        value = self._send(
            "call",
            call.name,
            call.args,
            call.kwargs,
            key,
            label,
            obj=obj,
            grad_wrt=list(call.grad_wrt),
            cotangents=call.cotangents,
            want_inputs_after=call.want_inputs_after,
            default_dtype=call.default_dtype,
        )
        from grader.execution.calls import CallResult

        fields = ("outputs", "grads", "param_grads", "inputs_after")
        if (
            type(value) is not dict
            or set(value) != set(fields)
            or type(value["grads"]) is not dict
            or type(value["param_grads"]) is not dict
        ):
            raise E.BadOutput(f"{label}: malformed reply")
        return CallResult(*(value[f] for f in fields))

    def construct(self, name: str, *args: Any, **kwargs: Any) -> ModuleHandle:
        self.check_allowed(name)
        oid = self._send("construct", name, args, kwargs, ("construct", name), self.label(f"{name}.__init__"))
        if type(oid) is not int:
            raise E.BadOutput(f"{name}: bad object id")
        return ModuleHandle(self, (self.generation, oid, name), name)

    def method(self, handle: ModuleHandle, name: str, *args: Any, **kwargs: Any) -> Any:
        generation, oid, class_name = handle.oid
        self.check_allowed(class_name)
        self._check_generation(generation, class_name)
        return self._send(
            "method",
            name,
            args,
            kwargs,
            ("method", f"{class_name}.{name}"),
            self.label(f"{class_name}.{name}"),
            obj=oid,
        )

    def _check_generation(self, generation: int, class_name: str) -> None:
        if generation != self.generation:
            raise E.WorkerCrashed(f"{self.label(class_name)}: the object was lost when the worker restarted")
