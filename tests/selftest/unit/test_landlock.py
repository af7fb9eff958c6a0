"""Landlock: a process restricted to an allowlist, tried in a child process."""

import json
import os
import socket
import subprocess
import sys

import pytest

from grader import ROOT
from grader.execution import landlock

pytestmark = pytest.mark.skipif(landlock.abi() == 0, reason="this kernel offers no Landlock (Linux 5.13+)")

PROBE = r"""
import json, os, socket, sys
sys.path.insert(0, ROOT)
from grader.execution import landlock
allowed, scratch, secret, port = sys.argv[1:5]
landlock.restrict([allowed], ["/dev/null"], [scratch])

def attempt(thunk):
    try:
        thunk()
        return "ok"
    except OSError as exc:
        return type(exc).__name__

def write(path):
    with open(path, "w") as fh:
        fh.write("x")

def connect():
    socket.create_connection(("127.0.0.1", int(port)), timeout=2).close()

print(json.dumps({
    "read allowed": attempt(lambda: open(os.path.join(allowed, "public.txt")).read()),
    "list allowed": attempt(lambda: os.listdir(allowed)),
    "write allowed": attempt(lambda: write(os.path.join(allowed, "new.txt"))),
    "read secret": attempt(lambda: open(secret).read()),
    "list root": attempt(lambda: os.listdir("/")),
    "write scratch": attempt(lambda: write(os.path.join(scratch, "out.txt"))),
    "dev null": attempt(lambda: write("/dev/null")),
    "proc self": attempt(lambda: open("/proc/self/status").read()),
    "proc one": attempt(lambda: open("/proc/1/cmdline").read()),
    "tcp": attempt(connect),
}))
"""


def test_a_restricted_process_opens_only_its_allowlist(tmp_path):
    """Read-only folders stay readable and unwritable, the scratch folder writable, /dev/null and
    its own /proc usable; a file elsewhere, the root folder, another process's /proc and (ABI 4+)
    a TCP connection are refused."""
    allowed, scratch = tmp_path / "allowed", tmp_path / "scratch"
    allowed.mkdir()
    scratch.mkdir()
    (allowed / "public.txt").write_text("public")
    secret = tmp_path / "secret.py"
    secret.write_text("the reference")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        code = PROBE.replace("ROOT", repr(str(ROOT)))
        argv = [str(allowed), str(scratch), str(secret), str(server.getsockname()[1])]
        done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["read allowed"] == seen["list allowed"] == seen["write scratch"] == "ok", seen
    assert seen["dev null"] == seen["proc self"] == "ok", seen
    assert seen["write allowed"] == seen["read secret"] == seen["list root"] == "PermissionError", seen
    assert seen["proc one"] == "PermissionError", seen
    if landlock.abi() >= 4:
        assert seen["tcp"] == "PermissionError", seen
    assert (scratch / "out.txt").read_text() == "x" and not (allowed / "new.txt").exists()


def test_without_landlock_restrict_raises(monkeypatch):
    """Where the kernel has no Landlock, :func:`restrict` raises instead of restricting nothing."""
    monkeypatch.setattr(landlock, "abi", lambda: 0)
    with pytest.raises(OSError):
        landlock.restrict([os.getcwd()], [], [])
