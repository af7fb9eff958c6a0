"""Confinement of a worker process: limits, namespaces, privilege drop.

Runs in the forked worker, before any student code.  What applies depends on the
platform and privileges; :func:`confine` returns the list of measures in force.

* resource limits: CPU seconds, data segment (``RLIMIT_DATA``, not ``RLIMIT_AS``,
  which breaks CUDA), processes, file size, open files, no core dumps;
* a new network namespace (no interface but a down loopback: no network);
* a new mount namespace with empty tmpfs over the grader's folders (repository, results)
  and over the world-writable folders (``/tmp``, ``/dev/shm``, ...), so the student's
  code can neither read the references nor leave files behind;
* as root: an unprivileged uid/gid (``nobody``) with no supplementary groups.
"""

import ctypes
import ctypes.util
import os
import resource
import stat
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 0x1000, 0x4000, 0x40000
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 36, 38
NOBODY = 65534
WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def prctl(option, arg):
    """``prctl(option, arg)``; False when refused."""
    return _libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0) == 0


def _unshare(flags):
    return _libc.unshare(flags) == 0


def _mount_tmpfs(target):
    return _libc.mount(b"tmpfs", os.fsencode(target), b"tmpfs", MS_NOSUID | MS_NODEV, b"size=64m,mode=1777") == 0


def _bind(source_fd, target):
    return _libc.mount(f"/proc/self/fd/{source_fd}".encode(), os.fsencode(target), None, MS_BIND | MS_REC, None) == 0


def keep_reachable(paths):
    """Let an unprivileged uid reach ``paths`` (the Python installation) when an
    ancestor is closed to others (``/root`` is 0700): cover that ancestor with an empty
    tmpfs and bind the needed child folders back into it.  Only in a private mount
    namespace; whatever else the ancestor held stays hidden."""
    plan = {}  # closed ancestor -> child folders to bring back
    for path in paths:
        parts = os.path.realpath(path).split(os.sep)[1:]
        current = "/"
        for i, part in enumerate(parts[:-1]):
            current = os.path.join(current, part)
            try:
                closed = not os.stat(current).st_mode & stat.S_IXOTH
            except OSError:
                break
            if closed:
                plan.setdefault(current, set()).add(os.path.join(current, parts[i + 1]))
                break
    done = []
    for ancestor, children in plan.items():
        fds = {c: os.open(c, os.O_PATH | os.O_DIRECTORY) for c in children if os.path.isdir(c)}
        if _libc.mount(b"tmpfs", os.fsencode(ancestor), b"tmpfs", MS_NOSUID | MS_NODEV, b"size=1m,mode=0755") != 0:
            continue
        for child, fd in fds.items():
            os.makedirs(child, exist_ok=True)
            if _bind(fd, child):
                done.append(child)
            os.close(fd)
    return done


def _write(path, text):
    try:
        with open(path, "w") as fh:
            fh.write(text)
        return True
    except OSError:
        return False


def set_limits(limits):
    """Apply the resource limits in ``limits`` (seconds and bytes)."""
    def lim(which, value):
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


def _gpu_groups():
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


def _process_count(uid):
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count


def confine(limits, hide=(), workdir=None, uid=NOBODY):
    """Confine the current (worker) process; returns the measures that took effect.

    As root the worker becomes ``uid`` (``nobody`` unless the batch gives each of its
    parallel slots its own uid, so that workers cannot signal each other)."""
    sandbox_uid = uid
    applied = []
    root = os.geteuid() == 0
    uid, gid = os.getuid(), os.getgid()
    if root:
        namespaces = _unshare(CLONE_NEWNS | CLONE_NEWNET)
    else:
        namespaces = _unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET)
        if namespaces:  # map ourselves so that files keep their owner
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"{uid} {uid} 1")
            _write("/proc/self/gid_map", f"{gid} {gid} 1")
    if namespaces:
        applied.append("network namespace")
        if _libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) == 0:
            if root:
                python_dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, *[p for p in sys.path if p]}
                kept = keep_reachable(sorted(python_dirs))
                if kept:
                    applied.append("python reachable via " + ", ".join(kept))
            hidden = [p for p in (*hide, *WORLD_WRITABLE) if os.path.isdir(p) and _mount_tmpfs(p)]
            if hidden:
                applied.append("hidden: " + ", ".join(hidden))
    if namespaces and not root and _unshare(CLONE_NEWUSER | CLONE_NEWNS):
        # Mounts copied into a less privileged namespace are locked: the student's code
        # can no longer unmount the tmpfs that hide the grader's folders.
        applied.append("mounts locked")
    if any(a.startswith("hidden") and "/tmp" in a.split(": ", 1)[1].split(", ") for a in applied):
        workdir = "/tmp/work"  # on the private tmpfs: gone with the namespace
    if workdir:
        os.makedirs(workdir, exist_ok=True)
        if root:
            os.chown(workdir, sandbox_uid, NOBODY)
        os.chdir(workdir)
    if root:
        os.setgroups(_gpu_groups())
        os.setgid(NOBODY)
        os.setuid(sandbox_uid)
        applied.append(f"uid {sandbox_uid}")
        nproc = _process_count(sandbox_uid) + int(limits["processes"])
    else:
        nproc = _process_count(uid) + int(limits["processes"])
    try:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        applied.append(f"max {limits['processes']} processes")
    except (ValueError, OSError):
        pass
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    prctl(PR_SET_PDEATHSIG, 9)
    set_limits(limits)
    applied.append("rlimits")
    return applied
