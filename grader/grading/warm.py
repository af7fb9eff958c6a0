"""A warm grader for ``python -m grader check --watch``: the test process, paid for once.

A cold check starts a test process that imports torch, pytest, hypothesis and the tests
(about 2 s) and a sandbox zygote.  The watch mode starts one *server* process with the
environment a cold check's test process gets (:func:`~grader.grading.runner.child_environment`),
which does those imports and starts the zygote once; each grading is then a ``fork`` of the
server that runs the same pytest command line as a cold check (:func:`serve`) and exits.  A
fork starts from the server's state, in which no test has run, so a re-grade gives the same
records as a cold check: the same tests, examples, sandbox and scores.  Student code never
runs in the server or its forks, only in the sandbox's workers.

The server speaks JSON lines on its stdin and stdout: ``{"ready": true}`` once, then per
request ``{"args": [...], "log": PATH}`` the replies ``{"pid": N}`` and ``{"code": C}``
(pytest's exit code, negative for a signal).  It stops, with its zygote and any running
fork, when its stdin closes or it gets SIGTERM; :class:`WarmRunner` is the client.
"""

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from grader import ROOT


class WarmRunnerError(Exception):
    """The warm server did not start or stopped answering."""


class WarmRunner:
    """The client side: starts the server and asks it for pytest runs."""

    def __init__(self, env: dict[str, str], start_timeout: float = 120) -> None:
        """Start the server with ``env`` and wait until it has imported everything."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "grader.grading.warm"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in the terminal reaches the client only, which stops it in order
        )
        self._buffer = b""
        if self._reply(start_timeout).get("ready") is not True:
            self.close()
            raise WarmRunnerError("the warm grader did not start")

    def run(self, args: list[str], log: Path, timeout: float) -> int | None:
        """Run pytest with ``args`` in a fork of the server, its output into ``log``; pytest's
        exit code, or ``None`` when it ran past ``timeout`` (then it was killed)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps({"args": args, "log": str(log)}) + "\n").encode())
            self.proc.stdin.flush()
            pid = int(self._reply(30)["pid"])
        except (OSError, KeyError, ValueError, WarmRunnerError) as exc:
            raise WarmRunnerError(f"the warm grader stopped answering ({exc})") from None
        try:
            return int(self._reply(timeout)["code"])
        except WarmRunnerError:
            try:
                os.killpg(pid, signal.SIGKILL)  # the fork leads its own process group
            except (ProcessLookupError, PermissionError):
                pass
            self._reply(30)  # its code, now that it was killed
            return None

    def _reply(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise WarmRunnerError(f"no answer within {timeout:g}s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise WarmRunnerError("the warm grader ended")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        reply = json.loads(line)
        if not isinstance(reply, dict):
            raise WarmRunnerError("malformed reply")
        return reply

    def close(self) -> None:
        """Stop the server (on SIGTERM it stops any running fork and its zygote first)."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def serve(requests: IO[bytes], replies: IO[bytes]) -> None:
    """The server's loop (``python -m grader.grading.warm``)."""
    from grader.adapters import zygote

    zyg = zygote.prestart(os.environ)  # it imports torch on the other core meanwhile

    # Imported once, here, for every fork: pytest, torch, hypothesis, the grader's checks,
    # and torch's symbolic shapes (no test asks for them now, yet a re-grade of attention.sdpa
    # measured 0.9 s with them here and 1.1 s without; BENCHMARKS.md, issue 16).
    import pytest  # noqa: F401
    import torch.fx.experimental.symbolic_shapes  # noqa: F401

    import grader.testing.plugin  # noqa: F401

    child = 0

    def stop(*_: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def say(reply: dict[str, Any]) -> None:
        replies.write((json.dumps(reply) + "\n").encode())
        replies.flush()

    try:
        say({"ready": True})
        for line in requests:
            request = json.loads(line)
            if not zyg.alive():
                zygote.reap(zyg)
                zyg = zygote.prestart(os.environ)
            child = os.fork()
            if child == 0:
                _run_fork([str(a) for a in request["args"]], str(request["log"]), zyg.ctl.fileno())
            say({"pid": child})
            _, status = os.waitpid(child, 0)
            child = 0
            say({"code": os.waitstatus_to_exitcode(status)})
    finally:
        if child:
            try:
                os.killpg(child, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            os.waitpid(child, 0)
        zygote.reap(zyg)


def _run_fork(args: list[str], log: str, zygote_fd: int) -> None:
    """In the fork: its own process group, output to ``log``, pytest, then exit without
    running the server's exit handlers (they would stop the shared zygote)."""
    code = 3
    try:
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        import pytest

        code = int(pytest.main([*args, "--zygote-fd", str(zygote_fd)]))
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
