"""Confinement of a worker process: an allowlisted filesystem, namespaces, limits, no privileges.

Runs in the forked worker, before any student code.  :func:`confine` returns the list of
measures in force; what applies depends on the platform and privileges.

* **Filesystem, by allowlist.** A new mount namespace whose root is a fresh, read-only
  tmpfs holding only: the Python installation in use (the folders of ``sys.path`` and the
  interpreter, wherever they live: under ``/tmp``, inside a repository, under ``/root``)
  and the system library folders, bound read-only; ``/dev/null``, ``/dev/zero``,
  ``/dev/full``, ``/dev/random``, ``/dev/urandom`` (and the GPU's nodes where one is
  used); private, size-limited tmpfs at ``/tmp``, ``/dev/shm`` and the working folder
  ``/sandbox``; a ``/proc`` of the worker's own.  The old root is detached
  (``pivot_root``): nothing else of the machine is reachable, not the repository, the
  results, other submissions or other clones.
* **Namespaces.** network (no interface but a down loopback), IPC (no SysV object is
  shared with, or survives into, another worker), UTS (a fixed host name), cgroup (the
  worker's cgroup path is ``/``), and, from the supervisor, PID (the worker is PID 1 and
  sees only its own processes).
* **Same view everywhere.** Last, the worker enters a user namespace in which it is uid
  and gid 1000 with no capabilities, whatever uid it runs as outside (a pool uid as root,
  the user's own otherwise): a local check and staff grading look the same from inside.
* **Limits.** CPU seconds, data segment (``RLIMIT_DATA``, not ``RLIMIT_AS``, which breaks
  CUDA), processes, file size, open files, no core dumps; memory by cgroup where the
  supervisor could create one (:mod:`grader.execution.cgroup`).
"""

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import os
import platform
import resource
import stat
import sys
from collections.abc import Iterable, Mapping, Sequence

from grader.execution import landlock, seccomp

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x2000000, 0x4000000, 0x8000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_KEEPCAPS, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 8, 36, 38
CAP_DAC_READ_SEARCH = 2
NOBODY = 65534
#: The uid and gid the worker has inside its user namespace, in every setting.
INSIDE_ID = 1000
#: Outside uids a root grader gives its workers: one per concurrent worker, from a pool.
UID_POOL = range(61000, 62000)
WORKDIR = "/sandbox"
HOSTNAME = b"sandbox"
SCRATCH = "size=64m,mode=1777"
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
#: System library folders the interpreter and torch load shared libraries from.
SYSTEM_LIBS = ("/lib", "/lib64", "/lib32", "/usr/lib", "/usr/lib64", "/usr/lib32", "/etc/ld.so.cache")
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
_SYS_CAPSET = {"x86_64": 126, "aarch64": 91, "riscv64": 91, "ppc64le": 184, "s390x": 185}

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


def prctl(option: int, arg: int) -> bool:
    """``prctl(option, arg)``; False when refused."""
    return _libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0) == 0


def unshare(flags: int) -> bool:
    """``unshare(flags)``; False when refused."""
    return _libc.unshare(flags) == 0


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    ok = (
        _libc.mount(
            source and os.fsencode(source),
            os.fsencode(target),
            fstype and fstype.encode(),
            flags,
            data and data.encode(),
        )
        == 0
    )
    if not ok:
        raise OSError(ctypes.get_errno(), f"mount {source} on {target}: {os.strerror(ctypes.get_errno())}")


def _write(path: str, text: str) -> bool:
    try:
        with open(path, "w") as fh:
            fh.write(text)
        return True
    except OSError:
        return False


def user_namespace(inside: int | None = None, flags: int = CLONE_NEWUSER) -> bool:
    """``unshare(flags)`` (a new user namespace) and map the caller's uid and gid to
    ``inside`` there (default: the same ids); False when refused or the maps cannot be written."""
    uid, gid = os.geteuid(), os.getegid()  # taken before: unmapped, they read as 65534
    if not unshare(flags):
        return False
    _write("/proc/self/setgroups", "deny")
    new_uid, new_gid = (uid, gid) if inside is None else (inside, inside)
    return _write("/proc/self/uid_map", f"{new_uid} {uid} 1") and _write("/proc/self/gid_map", f"{new_gid} {gid} 1")


def set_limits(limits: Mapping[str, float]) -> None:
    """Apply the resource limits in ``limits`` (seconds and bytes)."""

    def lim(which: int, value: int) -> None:
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            soft, hard = resource.getrlimit(which)
            if hard != resource.RLIM_INFINITY and value > hard:
                resource.setrlimit(which, (hard, hard))

    lim(resource.RLIMIT_CPU, int(limits["cpu_seconds"]))
    lim(resource.RLIMIT_DATA, int(limits["memory_bytes"]))
    lim(resource.RLIMIT_FSIZE, int(limits["file_bytes"]))
    lim(resource.RLIMIT_NOFILE, int(limits["open_files"]))
    lim(resource.RLIMIT_CORE, 0)


def allocate_uid() -> tuple[int, int]:
    """As root: ``(uid, fd)``, a uid of :data:`UID_POOL` no other running worker holds,
    held as long as ``fd`` (an flock'ed file in a root-only folder) stays open.

    The uid depends only on how many workers run at once, never on whether this is a
    local check or a batch: the worker cannot tell them apart by it."""
    for folder in ("/run/grader-sandbox", "/tmp/grader-sandbox-uids"):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            pass
        except OSError:
            continue  # /run missing or read-only: the next place
        info = os.lstat(folder)
        if stat.S_ISDIR(info.st_mode) and info.st_uid == 0 and not info.st_mode & 0o077:
            break
    else:
        raise OSError("no root-only folder for the sandbox's uid locks (/run/grader-sandbox, /tmp/grader-sandbox-uids)")
    for uid in UID_POOL:
        fd = os.open(os.path.join(folder, str(uid)), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return uid, fd
        except OSError:
            os.close(fd)
    raise OSError("every sandbox uid is in use")


def _gpu_groups() -> list[int]:
    """Groups that give access to GPU device nodes not open to everyone (else none)."""
    groups = set()
    for name in os.listdir("/dev"):
        if name.startswith(("nvidia", "dri")):
            try:
                info = os.stat(os.path.join("/dev", name))
            except OSError:
                continue
            if not info.st_mode & stat.S_IROTH and info.st_mode & stat.S_IRGRP and info.st_gid != 0:
                groups.add(info.st_gid)
    return sorted(groups)


def gpu_nodes() -> list[str]:
    """The NVIDIA device nodes a CUDA worker needs (the GPUs of ``CUDA_VISIBLE_DEVICES``
    when it names indices, else all)."""
    try:
        names = sorted(os.listdir("/dev"))
    except OSError:
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    wanted = {f"nvidia{i.strip()}" for i in visible.split(",") if i.strip().isdigit()} if visible else None
    nodes = []
    for name in names:
        if not name.startswith("nvidia"):
            continue
        if name[6:].isdigit() and wanted is not None and name not in wanted:
            continue
        nodes.append(os.path.join("/dev", name))
    return nodes


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def runtime_paths(exclude: Sequence[str] = ()) -> list[str]:
    """The host paths the worker sees read-only: ``sys.path``, the interpreter, the folders of
    ``LD_LIBRARY_PATH``, system libraries and the worker-side copy of the grader.

    A ``sys.path`` entry inside an ``exclude`` folder (the repository) is kept only when it
    belongs to the Python installation (a virtual environment inside the repository); an
    entry that contains an excluded folder (an editable install of the repository) is dropped."""
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    excluded = [os.path.realpath(p) for p in exclude]
    # Never bind a folder that holds the view's own mount points or is open to everyone.
    excluded += ["/tmp", "/var/tmp", "/dev", "/proc", "/sys", "/run", WORKDIR]
    paths = []
    # LD_LIBRARY_PATH: where a GPU machine's driver libraries may live (/usr/local/nvidia/lib64).
    libraries = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    for entry in [p for p in sys.path if p] + [sys.executable] + libraries:
        real = os.path.realpath(entry)
        if not os.path.exists(real):
            continue
        if any(_inside(x, real) for x in excluded) or (os.path.isdir(real) and os.stat(real).st_mode & stat.S_IWOTH):
            continue
        if any(_inside(real, x) for x in excluded) and not any(_inside(real, p) for p in prefixes):
            continue
        paths.append(entry)
    # The worker-side copy of the grader (a private folder, usually under /tmp): its modules
    # that load lazily must stay importable.
    runtime = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    if not any(_inside(os.path.realpath(x), runtime) or _inside(runtime, os.path.realpath(x)) for x in exclude):
        paths.append(runtime)
    return paths + [p for p in SYSTEM_LIBS if os.path.lexists(p)]


class _View:
    """The new root being built at ``root`` (a tmpfs), before ``pivot_root``."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.bound: list[str] = []  # host real paths bound so far

    def covered(self, real: str) -> bool:
        return any(_inside(real, b) for b in self.bound)

    def mirror(self, path: str, depth: int = 0) -> str:
        """Create in the view the folders and links leading to host ``path``; its real path."""
        if depth > 20:
            raise OSError(errno.ELOOP, path)
        current = "/"
        parts = [p for p in os.path.normpath(path).split("/") if p]
        for i, part in enumerate(parts):
            following = os.path.join(current, part)
            if os.path.islink(following):
                target = os.readlink(following)
                here = self.root + following
                if not self.covered(current) and not os.path.lexists(here):
                    os.symlink(target, here)
                current = self.mirror(os.path.join(current, target), depth + 1)
            else:
                current = following
                if i < len(parts) - 1 and not self.covered(current):
                    os.makedirs(self.root + current, exist_ok=True)
        return current

    def bind(self, host_path: str, fd: int | None = None) -> bool:
        """Bind host ``host_path`` read-only at the same path in the view (links along it
        mirrored); ``fd``: the path opened beforehand (``O_PATH``), when it may be covered."""
        real = self.mirror(host_path)
        if self.covered(real):
            return False
        own = fd is None
        opened = os.open(real, os.O_PATH | os.O_CLOEXEC) if fd is None else fd
        try:
            target = self._mount_point(opened, real)
            _mount(f"/proc/self/fd/{opened}", target, None, MS_BIND)
        finally:
            if own:
                os.close(opened)
        _remount_read_only(target, MS_NOSUID)
        self.bound.append(real)
        return True

    def device(self, path: str, fd: int) -> None:
        """Bind the device node (or node folder) ``path``, opened as ``fd``."""
        _mount(f"/proc/self/fd/{fd}", self._mount_point(fd, path), None, MS_BIND | MS_REC)

    def _mount_point(self, fd: int, path: str) -> str:
        """Make ``path`` in the view a folder or an empty file, like what ``fd`` opens; its path."""
        target = self.root + path
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if not os.path.exists(target):
                open(target, "w").close()
        return target

    def tmpfs(self, path: str, options: str = SCRATCH) -> None:
        target = self.root + path
        os.makedirs(target, exist_ok=True)
        _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, options)


def _remount_read_only(target: str, extra: int) -> None:
    """Remount a bind read-only, keeping the flags the kernel locks (nosuid, nodev, ...)."""
    try:
        flags = os.statvfs(target).f_flag
    except OSError:
        flags = 0
    keep = 0
    for st_flag, ms_flag in (
        (os.ST_NOSUID, MS_NOSUID),
        (os.ST_NODEV, MS_NODEV),
        (os.ST_NOEXEC, MS_NOEXEC),
        (os.ST_NOATIME, MS_NOATIME),
        (os.ST_NODIRATIME, MS_NODIRATIME),
        (os.ST_RELATIME, MS_RELATIME),
    ):
        if flags & st_flag:
            keep |= ms_flag
    _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | keep | extra)


def _pivot(root: str) -> None:
    number = _SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(errno.ENOSYS, "pivot_root: unknown architecture")
    os.chdir(root)
    if _libc.syscall(number, b".", b".") != 0:
        raise OSError(ctypes.get_errno(), "pivot_root")
    if _libc.umount2(b".", MNT_DETACH) != 0:  # the old root, stacked on the new one
        raise OSError(ctypes.get_errno(), "umount of the old root")
    os.chdir("/")


def build_view(
    paths: Iterable[str], devices: Sequence[str] = DEVICES, own_proc: bool = True, sys_fs: bool = False
) -> list[str]:
    """Replace this mount namespace's root by an allowlisted view (see the module doc).

    ``own_proc``: mount a ``/proc`` for the current PID namespace (else one that shows
    only this uid's processes, ``hidepid=2``).  ``sys_fs``: bind ``/sys`` read-only (CUDA
    reads it).  Returns notes on what could not be done."""
    notes: list[str] = []
    _mount("none", "/", None, MS_REC | MS_PRIVATE)
    # The new root's tmpfs is mounted over /tmp: sources under /tmp (a venv) are opened
    # first and bound through /proc/self/fd, which still reaches them.
    keep: dict[str, int] = {}
    for path in [*paths, *devices]:
        try:
            keep[path] = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
    root = "/tmp"
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=0755")
    view = _View(root)
    for folder in ("/tmp", "/dev/shm", WORKDIR):
        view.tmpfs(folder)
    for path, fd in sorted(keep.items(), key=lambda kv: kv[0] in devices):
        try:
            if path in devices:
                view.device(path, fd)
            else:
                view.bind(path, fd)
        except OSError as exc:
            notes.append(f"{path}: {exc.strerror or exc}")
        finally:
            os.close(fd)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        if not os.path.lexists(f"{root}/dev/{name}"):
            os.symlink(target, f"{root}/dev/{name}")
    os.makedirs(root + "/proc", exist_ok=True)
    try:
        _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None if own_proc else "hidepid=2")
    except OSError as exc:
        notes.append(f"no /proc ({exc.strerror})")
    if sys_fs:
        try:
            view.bind("/sys")
        except OSError as exc:
            notes.append(f"/sys: {exc.strerror}")
    _pivot(root)
    _mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    return notes


def _enter_user_namespace() -> bool:
    """Become uid/gid :data:`INSIDE_ID` of a new user (and mount) namespace, with no
    capabilities: the same identity in every setting, and the mounts locked."""
    prctl(PR_SET_DUMPABLE, 1)  # a uid change made /proc/self/* root's: the maps below need them ours
    if not user_namespace(INSIDE_ID, CLONE_NEWUSER | CLONE_NEWNS):
        return False
    os.setresgid(INSIDE_ID, INSIDE_ID, INSIDE_ID)
    os.setresuid(INSIDE_ID, INSIDE_ID, INSIDE_ID)  # a uid change also clears the capabilities
    with contextlib.suppress(OSError):  # and to be sure: capset to nothing
        _capset(0)
    return True


def confine(
    limits: Mapping[str, float],
    exclude: Sequence[str] = (),
    uid: int | None = None,
    own_pid_namespace: bool = True,
    gpu: bool = False,
    scratch: str | None = None,
) -> list[str]:
    """Confine the current (worker) process; returns the measures that took effect.

    ``exclude``: folders whose contents must stay out of the view even when ``sys.path``
    names them (the repository).  ``uid``: as root, the outside uid to run as (see
    :func:`allocate_uid`; ``nobody`` when none).  ``own_pid_namespace``: whether the
    supervisor put the worker in its own PID namespace (not on NVIDIA machines).
    ``scratch``: a private folder the worker may write to where it has no namespaces (the
    supervisor made it, owned by the worker's uid, and removes it after)."""
    applied = []
    root = os.geteuid() == 0
    outside_uid = (uid or NOBODY) if root else os.getuid()
    # Counted on the host's /proc, before the view replaces it: RLIMIT_NPROC counts them all.
    nproc = _process_count(outside_uid) + int(limits["processes"])
    if not root and not _has_caps():
        user_namespace()  # the supervisor made none (for the PID namespace): try here
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP
    namespaces = unshare(flags) or unshare(flags & ~CLONE_NEWCGROUP)
    paths = runtime_paths(exclude)
    devices = DEVICES + tuple(gpu_nodes() if gpu else ())
    if namespaces:
        applied.append("network, IPC and host-name namespaces")
        _libc.sethostname(HOSTNAME, len(HOSTNAME))
        try:
            notes = build_view(paths, devices, own_proc=own_pid_namespace, sys_fs=gpu)
            applied.append("allowlisted filesystem")
            applied += notes
        except OSError as exc:
            raise RuntimeError(f"the sandbox could not build its filesystem view: {exc}") from None
        if os.path.isdir(WORKDIR):
            os.chdir(WORKDIR)
    elif scratch is not None:
        os.chdir(scratch)
        os.environ["TMPDIR"] = scratch
        cached = sys.modules.get("tempfile")
        if cached is not None:  # a temporary folder found before the fork would be /tmp, closed to the worker
            cached.tempdir = None  # type: ignore[attr-defined]
    # Without a view, a pool uid may be unable to reach a Python installed under a private
    # folder (/root/.pyenv with /root 700): then, and only under Landlock (which alone decides
    # what may be opened), the worker keeps the right to pass file modes.
    read_search = root and not namespaces and landlock.abi() > 0 and not all(_world_readable(p) for p in paths)
    if root:
        os.setgroups(_gpu_groups() if gpu else [])
        os.setresgid(NOBODY, NOBODY, NOBODY)
        if read_search:
            prctl(PR_SET_KEEPCAPS, 1)
        os.setresuid(outside_uid, outside_uid, outside_uid)
        applied.append("unprivileged uid")
        if read_search:
            _capset(1 << CAP_DAC_READ_SEARCH)
    try:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        applied.append(f"max {limits['processes']} processes")
    except (ValueError, OSError):
        pass
    if _enter_user_namespace():
        applied.append(f"uid {INSIDE_ID} in a user namespace")
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    prctl(PR_SET_PDEATHSIG, 9)
    if not namespaces:
        applied += _without_namespaces(paths, devices, scratch, gpu, read_search)
    set_limits(limits)
    applied.append("rlimits")
    return applied


#: The note of a worker the kernel refused its namespaces (shown once in a report).
NO_NAMESPACES = "no namespaces (this kernel or container refuses them)"


def _without_namespaces(
    paths: Sequence[str], devices: Sequence[str], scratch: str | None, gpu: bool, read_search: bool
) -> list[str]:
    """What a worker without namespaces does instead: Landlock over the same allowlist the
    view would bind, and a seccomp filter (no sockets, no SysV IPC, no tracing).
    ``read_search``: the worker kept the right to pass file modes, dropped unless Landlock holds."""
    applied = []
    writable = [scratch] if scratch else []
    extra = ["/sys", "/proc/driver/nvidia"] if gpu else []
    try:
        applied += landlock.restrict([*paths, *extra], devices, writable)
        applied.insert(0, f"{NO_NAMESPACES}: Landlock allows the worker only the allowlisted files")
        if read_search:
            applied.append("passes file modes only where Landlock allows (a private folder holds Python)")
    except OSError as exc:
        if read_search:
            _capset(0)
        applied.append(
            f"{NO_NAMESPACES} and no Landlock ({exc.strerror or exc}): the worker can read whatever its uid can read"
        )
    try:
        seccomp.install(seccomp.worker_filter())
        applied.append("seccomp: no sockets, SysV IPC or tracing")
    except OSError as exc:
        applied.append(f"no seccomp filter ({exc.strerror or exc})")
    return applied


def _world_readable(path: str) -> bool:
    """Whether any uid may reach ``path`` (every folder above it searchable by others) and read it."""
    real = os.path.realpath(path)
    parts = real.split("/")
    try:
        for i in range(2, len(parts)):
            if not os.stat("/".join(parts[:i]) or "/").st_mode & stat.S_IXOTH:
                return False
        mode = os.stat(real).st_mode
    except OSError:
        return True  # what does not exist needs no right
    return bool(mode & stat.S_IROTH) and (not stat.S_ISDIR(mode) or bool(mode & stat.S_IXOTH))


def _capset(effective: int) -> None:
    """Keep only the capabilities ``effective`` (a bit mask of the first 32), permitted and effective."""
    number = _SYS_CAPSET.get(platform.machine())
    if number is None:
        raise OSError(errno.ENOSYS, "capset: unknown architecture")
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)
    data = (ctypes.c_uint32 * 6)(effective, effective, 0, 0, 0, 0)
    if _libc.syscall(number, header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def _has_caps() -> bool:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16) != 0
    except (OSError, ValueError):
        pass
    return False


def _process_count(uid: int) -> int:
    count = 0
    try:
        names = os.listdir("/proc")
    except OSError:
        return 0
    for name in names:
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count
