"""The seccomp filters: a container's (namespaces refused) and a worker's own, tried in child processes."""

import errno
import json
import platform
import subprocess
import sys

import pytest

from grader import ROOT
from grader.execution import seccomp

pytestmark = pytest.mark.skipif(
    platform.machine() not in ("x86_64", "aarch64"), reason=f"no seccomp table for {platform.machine()}"
)

#: Tries each system call the filters decide on and prints ``{name: errno or 0}``.
PROBE = r"""
import ctypes, errno, json, os, socket, sys
sys.path.insert(0, ROOT)
from grader.execution import seccomp
if sys.argv[1] == "worker":
    seccomp.install(seccomp.worker_filter())
libc = ctypes.CDLL(None, use_errno=True)
numbers = seccomp._table()[1]

def call(*args):
    ctypes.set_errno(0)
    return 0 if libc.syscall(*args) >= 0 else ctypes.get_errno()

def attempt(thunk):
    try:
        thunk()
        return 0
    except OSError as exc:
        return exc.errno

out = {
    "unshare": call(numbers["unshare"], 0x10000000),
    "clone3": call(numbers["clone3"], 0, 0),
    "mount": call(numbers["mount"], b"none", b"/", None, 0, None),
    "setns": call(numbers["setns"], -1, 0),
    "socket": attempt(lambda: socket.socket(socket.AF_INET).close()),
    "unix_socket": attempt(lambda: socket.socket(socket.AF_UNIX).close()),
    "socketpair": attempt(lambda: [s.close() for s in socket.socketpair()]),
    "shmget": call(numbers["shmget"], 0x5EC0C0, 0, 0),  # no such key, no IPC_CREAT: ENOENT unless refused
    "open": attempt(lambda: open(os.devnull).close()),
    "landlock": call(444, None, 0, 1),
}
pid = os.fork()
if pid == 0:
    os._exit(7)
out["fork"] = 0 if os.waitpid(pid, 0)[1] >> 8 == 7 else -1
print(json.dumps(out))
"""


def _probe(prefix, mode="none"):
    code = PROBE.replace("ROOT", repr(str(ROOT)))
    done = subprocess.run(
        [*prefix, sys.executable, "-c", code, mode], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _container(*flags):
    return [sys.executable, "-m", "grader.execution.seccomp", *flags, "--"]


def test_the_container_filter_refuses_namespaces_and_mounts_and_nothing_else():
    """As Docker's default profile without CAP_SYS_ADMIN: unshare, mount, setns refused (EPERM),
    clone3 answered ENOSYS; a plain fork, sockets, files and Landlock still work."""
    seen = _probe(_container())
    assert seen["unshare"] == seen["mount"] == seen["setns"] == errno.EPERM, seen
    assert seen["clone3"] == errno.ENOSYS, seen
    assert seen["fork"] == seen["socket"] == seen["open"] == 0 and seen["shmget"] == errno.ENOENT, seen


def test_without_the_filter_the_same_calls_get_past_seccomp():
    """The probe itself: without a filter none of these is refused by seccomp (setns on fd -1
    fails with EBADF, not EPERM), so the refusals above are the filter's."""
    seen = _probe([])
    assert seen["clone3"] != errno.ENOSYS and seen["setns"] == errno.EBADF, seen
    assert seen["socket"] == 0 and seen["shmget"] == errno.ENOENT, seen


def test_no_landlock_refuses_landlock_too():
    """``--no-landlock``: as an older kernel or container runtime, Landlock answers ENOSYS."""
    seen = _probe(_container("--no-landlock"))
    assert seen["landlock"] == errno.ENOSYS and seen["unshare"] == errno.EPERM, seen


def test_the_worker_filter_refuses_sockets_and_sysv_ipc_but_not_socketpairs():
    """A worker without namespaces: no socket of any family (no network, no local service), no
    SysV object; its own socketpairs, files and children still work."""
    seen = _probe([], "worker")
    assert seen["socket"] == seen["unix_socket"] == errno.EACCES, seen
    assert seen["shmget"] == errno.EPERM, seen
    assert seen["socketpair"] == seen["open"] == seen["fork"] == 0, seen


def test_the_program_refuses_foreign_architectures_first():
    """Every program starts by loading the architecture and refusing any other (a 32-bit ABI
    would reach other system call numbers), and ends by allowing the rest."""
    for machine in ("x86_64", "aarch64"):
        insns = seccomp.program(seccomp.WORKER_REFUSED, machine=machine)
        assert insns[0] == seccomp._insn(seccomp._LD_W_ABS, seccomp._ARCH)
        assert insns[-1] == seccomp._insn(seccomp._RET_K, seccomp.RET_ALLOW)
        assert len(insns) == 4 + (2 if machine == "x86_64" else 0) + 2 * len(seccomp.WORKER_REFUSED) + 1
    with pytest.raises(seccomp.Unsupported):
        seccomp.program({}, machine="sparc")
