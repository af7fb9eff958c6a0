"""A memory cgroup per worker, so that every page the worker touches counts.

``RLIMIT_DATA`` does not count shared mappings, SysV segments or ``memfd`` memory; a
memory cgroup does.  The supervisor (trusted code) creates one cgroup per worker under a
folder of its zygote, the worker joins it before it confines itself, and after the worker
ends the supervisor reads whether the kernel's out-of-memory killer struck and removes it.

cgroup v2 is used where the grader's own cgroup already delegates the ``memory``
controller to its children; else the v1 ``memory`` hierarchy where it is mounted and
writable.  Elsewhere (a student's laptop without delegation) :func:`parent` returns
``None`` with the reason, and only the resource limits apply.
"""

import os
import time

ZYGOTE_PREFIX = "grader-"


def _mounts() -> list[tuple[str, str, str]]:
    """``[(mount_point, fstype, super_options)]`` from ``/proc/self/mountinfo``."""
    found = []
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                left, _, right = line.partition(" - ")
                fields, tail = left.split(), right.split()
                if len(fields) >= 5 and len(tail) >= 3:
                    found.append((fields[4].replace("\\040", " "), tail[0], tail[2]))
    except OSError:
        pass
    return found


def _own_paths() -> dict[str, str]:
    """``{controller or "": path}`` of this process's cgroups (``""`` is v2's)."""
    paths = {}
    try:
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                for name in controllers.split(",") if controllers else [""]:
                    paths[name] = path
    except (OSError, ValueError):
        pass
    return paths


def _writable(path: str) -> bool:
    return os.path.isdir(path) and os.access(path, os.W_OK)


def locate() -> tuple[int, str] | tuple[None, str]:
    """``(version, folder)`` of the memory cgroup this process may create children in,
    or ``(None, reason)``."""
    own = _own_paths()
    for point, fstype, _options in _mounts():
        if fstype == "cgroup2" and "" in own:
            base = point + own[""]
            try:
                with open(os.path.join(base, "cgroup.subtree_control")) as fh:
                    delegated = "memory" in fh.read().split()
            except OSError:
                delegated = False
            if delegated and _writable(base):
                return 2, base
    for point, fstype, options in _mounts():
        if fstype == "cgroup" and "memory" in options.split(",") and "memory" in own:
            base = point + own["memory"]
            if _writable(base) and os.path.exists(os.path.join(base, "memory.limit_in_bytes")):
                return 1, base
    return None, "no writable memory cgroup (cgroup v2 with the memory controller delegated, or v1)"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_tree(folder: str) -> None:
    """Remove ``folder`` and the (empty) cgroups under it, as far as they are empty."""
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        sub = os.path.join(folder, name)
        if os.path.isdir(sub):
            remove_tree(sub)
    try:
        os.rmdir(folder)
    except OSError:
        pass


def parent() -> tuple[int, str] | tuple[None, str]:
    """Create this zygote's folder of worker cgroups; ``(version, folder)`` or ``(None, reason)``.

    Folders left by zygotes that no longer run are removed first."""
    version, base = locate()
    if version is None:
        return None, base
    for name in os.listdir(base):
        if name.startswith(ZYGOTE_PREFIX) and name[len(ZYGOTE_PREFIX) :].isdigit():
            if not _alive(int(name[len(ZYGOTE_PREFIX) :])):
                remove_tree(os.path.join(base, name))
    folder = os.path.join(base, f"{ZYGOTE_PREFIX}{os.getpid()}")
    try:
        os.makedirs(folder, exist_ok=True)
        if version == 2:
            with open(os.path.join(folder, "cgroup.subtree_control"), "w") as fh:
                fh.write("+memory")
    except OSError as exc:
        return None, f"cannot create a memory cgroup ({exc})"
    return version, folder


class Cgroup:
    """One worker's memory cgroup (created by the supervisor, joined by the worker)."""

    def __init__(self, version: int, parent_folder: str, name: str, limit_bytes: int) -> None:
        self.version = version
        self.path = os.path.join(parent_folder, name)
        os.mkdir(self.path)
        if version == 2:
            self._set("memory.max", limit_bytes)
            self._set("memory.swap.max", 0, required=False)
            self._set("memory.oom.group", 1, required=False)
        else:
            self._set("memory.limit_in_bytes", limit_bytes)
            self._set("memory.memsw.limit_in_bytes", limit_bytes, required=False)  # no escape into swap
            self._set("memory.swappiness", 0, required=False)

    def _set(self, name: str, value: int, required: bool = True) -> None:
        try:
            with open(os.path.join(self.path, name), "w") as fh:
                fh.write(str(value))
        except OSError:
            if required:
                raise

    def join(self) -> None:
        """Move the calling process into this cgroup."""
        with open(os.path.join(self.path, "cgroup.procs"), "w") as fh:
            fh.write("0")

    def processes(self) -> set[int] | None:
        """The processes in this cgroup (pids as this process sees them), or ``None`` when
        they cannot be read.  Nothing started in it can leave: the worker has no ``/sys``."""
        try:
            with open(os.path.join(self.path, "cgroup.procs")) as fh:
                return {int(line) for line in fh.read().split()}
        except (OSError, ValueError):
            return None

    def oom_killed(self) -> bool:
        """Whether the kernel's out-of-memory killer killed a process of this cgroup (its
        ``oom_kill`` counter; v1 kernels older than 4.13 have none: then any failed charge)."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            with open(os.path.join(self.path, name)) as fh:
                for line in fh:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value) > 0
            if self.version == 1:
                with open(os.path.join(self.path, "memory.failcnt")) as fh:
                    return int(fh.read()) > 0
        except (OSError, ValueError):
            pass
        return False

    def remove(self) -> None:
        """Remove the (empty) cgroup; retried briefly while the kernel finishes the exit."""
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.01)
