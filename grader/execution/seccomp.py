"""Seccomp filters (classic BPF, installed with ``prctl``): the worker's own, and a container's.

Two filters, each a short list of system calls that return an error while everything else
is allowed:

* :func:`worker_filter` - what a worker without its namespaces installs on itself
  (:func:`grader.execution.confine.confine`): no new sockets (no network, no connection to
  a Dask scheduler, an ssh agent or any other local service: the worker's channel is a
  socketpair it inherits), no SysV IPC object (with no IPC namespace one would be shared
  with other workers and outlive this one), no ``ptrace``/``process_vm_*``, no kernel
  keyring, ``io_uring``, ``bpf``, ``perf_event_open`` or ``userfaultfd``, no file handles
  (``open_by_handle_at`` would open a file by inode, beside the paths Landlock checks).
* :func:`container_filter` - what Docker's default seccomp profile refuses a container
  without ``CAP_SYS_ADMIN`` (Gradescope's autograder runs in one): ``unshare``, ``setns``,
  ``mount`` and the new mount API, ``umount2``, ``pivot_root`` and ``clone`` with namespace
  flags are refused (``EPERM``), ``clone3`` answers ``ENOSYS`` (so the C library falls back
  to ``clone``).  The tests and ``python -m grader gradescope try --refuse-namespaces`` run
  the grader under it: ``python -m grader.execution.seccomp -- COMMAND ...``.

A filter is inherited by every child and cannot be removed; a foreign architecture's
system calls (a 32-bit ABI on a 64-bit kernel) are refused by both.
"""

import ctypes
import ctypes.util
import errno
import os
import platform
import struct
import sys
from collections.abc import Iterable, Mapping, Sequence

PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
# BPF opcodes
_LD_W_ABS, _JEQ_K, _JSET_K, _JGE_K, _RET_K = 0x20, 0x15, 0x45, 0x35, 0x06
#: ``struct seccomp_data``: nr at 0, arch at 4, the first argument's low word at 16 (little endian).
_NR, _ARCH, _ARG0 = 0, 4, 16
#: The namespace flags of ``clone`` (``CLONE_NEWTIME`` included).
NAMESPACE_FLAGS = 0x00000080 | 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000

#: The system calls used here: their numbers on x86_64 and on aarch64.
_NUMBERS = {
    "socket": (41, 198),
    "shmget": (29, 194),
    "semget": (64, 190),
    "msgget": (68, 186),
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "keyctl": (250, 219),
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "bpf": (321, 280),
    "perf_event_open": (298, 241),
    "userfaultfd": (323, 282),
    "unshare": (272, 97),
    "setns": (308, 268),
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "open_tree": (428, 428),
    "move_mount": (429, 429),
    "fsopen": (430, 430),
    "fsconfig": (431, 431),
    "fsmount": (432, 432),
    "fspick": (433, 433),
    "mount_setattr": (442, 442),
    "clone": (56, 220),
    "clone3": (435, 435),
    "name_to_handle_at": (303, 264),
    "open_by_handle_at": (304, 265),
    "landlock_create_ruleset": (444, 444),
    "landlock_add_rule": (445, 445),
    "landlock_restrict_self": (446, 446),
}
#: Per machine: the audit architecture, and which column of :data:`_NUMBERS` is its own.
_ARCHES = {"x86_64": (0xC000003E, 0), "aarch64": (0xC00000B7, 1)}
#: x86_64's x32 ABI: system call numbers with this bit set.
_X32_BIT = 0x40000000

WORKER_REFUSED: Mapping[str, int] = {
    "socket": errno.EACCES,
    **dict.fromkeys(("shmget", "semget", "msgget"), errno.EPERM),
    **dict.fromkeys(("ptrace", "process_vm_readv", "process_vm_writev"), errno.EPERM),
    **dict.fromkeys(("add_key", "request_key", "keyctl"), errno.EPERM),
    **dict.fromkeys(("io_uring_setup", "io_uring_enter", "io_uring_register"), errno.EPERM),
    **dict.fromkeys(("bpf", "perf_event_open", "userfaultfd"), errno.EPERM),
    **dict.fromkeys(("name_to_handle_at", "open_by_handle_at"), errno.EPERM),
}
CONTAINER_REFUSED: Mapping[str, int] = {
    **dict.fromkeys(
        ("unshare", "setns", "mount", "umount2", "pivot_root", "open_tree", "move_mount", "fsopen", "fsconfig")
        + ("fsmount", "fspick", "mount_setattr"),
        errno.EPERM,
    ),
    "clone3": errno.ENOSYS,
}
#: An older kernel or container runtime: no Landlock either.
NO_LANDLOCK: Mapping[str, int] = dict.fromkeys(
    ("landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self"), errno.ENOSYS
)


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class Unsupported(OSError):
    """This machine's architecture has no table here, or the kernel refused the filter."""


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def program(refused: Mapping[str, int], clone_flags: int = 0, machine: str | None = None) -> list[bytes]:
    """The BPF instructions of a filter: every system call of ``refused`` returns its errno,
    ``clone`` with any of ``clone_flags`` returns ``EPERM``, the rest is allowed."""
    arch, numbers = _table(machine)
    insns = [_insn(_LD_W_ABS, _ARCH)]
    # a foreign architecture (the 32-bit ABI): refused whole
    insns.append(_insn(_JEQ_K, arch, jt=1))
    insns.append(_insn(_RET_K, RET_ERRNO | errno.ENOSYS))
    insns.append(_insn(_LD_W_ABS, _NR))
    if arch == _ARCHES["x86_64"][0]:
        insns.append(_insn(_JGE_K, _X32_BIT, jf=1))
        insns.append(_insn(_RET_K, RET_ERRNO | errno.ENOSYS))
    for name, code in sorted(refused.items(), key=lambda kv: numbers[kv[0]]):
        insns.append(_insn(_JEQ_K, numbers[name], jf=1))
        insns.append(_insn(_RET_K, RET_ERRNO | code))
    if clone_flags:
        insns.append(_insn(_JEQ_K, numbers["clone"], jf=3))
        insns.append(_insn(_LD_W_ABS, _ARG0))
        insns.append(_insn(_JSET_K, clone_flags, jf=1))
        insns.append(_insn(_RET_K, RET_ERRNO | errno.EPERM))
    insns.append(_insn(_RET_K, RET_ALLOW))
    return insns


def _table(machine: str | None = None) -> tuple[int, dict[str, int]]:
    """``(audit architecture, {system call: number})`` of ``machine`` (default: this one)."""
    machine = machine or platform.machine()
    if machine not in _ARCHES:
        raise Unsupported(errno.ENOSYS, f"no seccomp table for {machine}")
    arch, column = _ARCHES[machine]
    return arch, {name: numbers[column] for name, numbers in _NUMBERS.items()}


def install(insns: Sequence[bytes]) -> None:
    """Install the filter ``insns`` on this thread (and every process it starts from now on).

    Sets ``no_new_privs`` first when this process may not install a filter without it (not root)."""
    libc = _libc
    if os.geteuid() != 0:
        libc.prctl(PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), 0, 0, 0)
    code = b"".join(insns)
    buffer = ctypes.create_string_buffer(code, len(code))

    class _Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = _Prog(len(insns), ctypes.cast(buffer, ctypes.c_void_p))
    if libc.prctl(PR_SET_SECCOMP, ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(prog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise Unsupported(err, f"seccomp filter refused: {os.strerror(err)}")


def worker_filter() -> list[bytes]:
    """The filter of a worker without namespaces (see the module doc)."""
    return program(WORKER_REFUSED)


def container_filter(landlock: bool = True) -> list[bytes]:
    """The namespace part of Docker's default profile for a container without ``CAP_SYS_ADMIN``
    (``landlock=False``: Landlock refused too, as by an older kernel or runtime)."""
    return program({**CONTAINER_REFUSED, **({} if landlock else NO_LANDLOCK)}, clone_flags=NAMESPACE_FLAGS)


def refuse_namespaces(landlock: bool = True) -> None:
    """Run the rest of this process, and every process it starts, as in such a container."""
    install(container_filter(landlock))


def main(argv: Iterable[str] | None = None) -> None:
    """``python -m grader.execution.seccomp [--no-landlock] -- COMMAND [ARG ...]``: exec COMMAND
    with namespaces refused as in a Docker container without ``CAP_SYS_ADMIN``."""
    args = list(sys.argv[1:] if argv is None else argv)
    landlock = "--no-landlock" not in args[: args.index("--") if "--" in args else 1]
    if "--" in args:
        args = args[args.index("--") + 1 :]
    if not args:
        sys.exit("usage: python -m grader.execution.seccomp [--no-landlock] -- COMMAND [ARG ...]")
    refuse_namespaces(landlock)
    os.execvp(args[0], args)


if __name__ == "__main__":
    main()
