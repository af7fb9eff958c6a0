"""Landlock: the allowlisted filesystem of a worker that cannot have its own mount namespace.

Where the kernel refuses the sandbox its namespaces (a Docker container's default seccomp
profile refuses ``unshare`` and ``mount``), a worker still restricts itself with Landlock
(Linux 5.13+, unprivileged, allowed by Docker's default profile): from then on it may open
only what :func:`restrict` allows, the same folders the namespaced view binds (the Python
installation, the system libraries, the worker-side copy of the grader, read-only), the
few device nodes, its own ``/proc/<pid>`` and one private scratch folder; not the
repository, the results, other submissions or a copy of the reference anywhere else.  From
ABI 4 no TCP connection or bind either, and from ABI 6 no signal to a process outside its
domain and no abstract unix socket outside it.  The restriction holds for the worker's
children and cannot be lifted.
"""

import ctypes
import ctypes.util
import errno
import os
from collections.abc import Iterable

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446  # the same on every architecture
_VERSION = 1  # landlock_create_ruleset flag: ask for the ABI version
_RULE_PATH_BENEATH = 1

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR, MAKE_REG = 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 8
MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
BIND_TCP, CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

#: The rights that apply to a file (the others apply to folders only).
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
READ_ONLY = EXECUTE | READ_FILE | READ_DIR
DEVICE = READ_FILE | WRITE_FILE | TRUNCATE | IOCTL_DEV
SCRATCH = (
    (WRITE_FILE | READ_FILE | READ_DIR | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG | MAKE_SOCK | MAKE_FIFO)
    | MAKE_SYM
    | REFER
    | TRUNCATE
)


def _fs_rights(abi: int) -> int:
    """Every filesystem right the kernel of ``abi`` knows (all of them are handled: denied unless allowed)."""
    rights = (1 << 13) - 1
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def abi() -> int:
    """The kernel's Landlock ABI version; 0 where there is none (an old kernel, Landlock not
    enabled at boot, or a seccomp profile that refuses it)."""
    version = _libc.syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_VERSION))
    return version if version > 0 else 0


def restrict(read_only: Iterable[str], devices: Iterable[str], writable: Iterable[str]) -> list[str]:
    """Restrict this process (and what it starts) to ``read_only`` paths (read, list, execute),
    ``devices`` (read and write) and ``writable`` folders (everything), plus ``/proc/self``
    read-only.  Returns the measures in force; raises :class:`OSError` where Landlock is
    unavailable.  A path that does not exist is skipped."""
    version = abi()
    if not version:
        raise OSError(errno.ENOSYS, "Landlock is not available")
    fs = _fs_rights(version)
    attr = _RulesetAttr(fs, (BIND_TCP | CONNECT_TCP) if version >= 4 else 0, 0)
    if version >= 6:
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
    size = 8 if version < 4 else 16 if version < 6 else 24
    ruleset = _libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"landlock_create_ruleset: {os.strerror(err)}")
    try:
        rules = [(p, READ_ONLY) for p in read_only] + [(p, DEVICE) for p in devices] + [(p, SCRATCH) for p in writable]
        rules.append(("/proc/self", READ_FILE | READ_DIR))
        for path, rights in rules:
            _allow(ruleset, path, rights & fs)
        if _libc.syscall(_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"landlock_restrict_self: {os.strerror(err)}")
    finally:
        os.close(ruleset)
    applied = [f"Landlock ABI {version}: allowlisted filesystem"]
    if version >= 4:
        applied.append("Landlock: no TCP")
    if version >= 6:
        applied.append("Landlock: no signals or abstract sockets outside the worker")
    return applied


def _allow(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if not os.path.isdir(f"/proc/self/fd/{fd}"):
            rights &= FILE_RIGHTS
        rule = _PathBeneath(rights, fd)
        if _libc.syscall(_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(rule), 0):
            err = ctypes.get_errno()
            raise OSError(err, f"landlock_add_rule {path}: {os.strerror(err)}")
    finally:
        os.close(fd)
