"""How well a worker is isolated here, and whether that is enough for staff grading.

A worker reports the measures in force (:func:`grader.execution.confine.confine`); its
**level** is the strongest filesystem barrier among them:

* ``namespaces`` - its own mount namespace and an allowlisted view (nothing else exists);
* ``landlock`` - no namespaces (a container refuses them), Landlock allows it the same
  allowlist (anything else cannot be opened);
* ``uid`` - neither, but as root it runs as a pool uid of its own: it can read what that uid
  may read, so staff files must be unreadable to it (file modes);
* ``none`` - the same uid as the grader, no barrier: it can read what the grader reads.

Staff grading (hidden tests, the reference, the staff key, other submissions on the same
machine) requires a level above ``none`` *and* a clean probe: a worker confined here tries to
open each protected path (:func:`probe`) and none may open.  :func:`preflight_main` is that
probe, run in a fresh ``python -I`` process before any grading (``grader.grading.isolation``
starts it): confined exactly as a worker is, it prints its measures and what it could open.
"""

import importlib.util
import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

NAMESPACES, LANDLOCK, UID, NONE = "namespaces", "landlock", "uid", "none"
#: From strongest to weakest.
LEVELS = (NAMESPACES, LANDLOCK, UID, NONE)


#: The level every worker of this process must reach (set by the test process from ``--isolation``,
#: what the preflight found); a worker below it is refused before any student code runs.
required = NONE


def level(measures: Iterable[str]) -> str:
    """The isolation level of a worker whose confinement reported ``measures``."""
    found = list(measures)
    if "allowlisted filesystem" in found:
        return NAMESPACES
    if any(m.startswith("Landlock ABI") for m in found):
        return LANDLOCK
    if "unprivileged uid" in found:
        return UID
    return NONE


def at_least(measures: Iterable[str], required: str) -> bool:
    """Whether ``measures`` reach the level ``required``."""
    return LEVELS.index(level(measures)) <= LEVELS.index(required)


def probe(paths: Sequence[str]) -> list[str]:
    """The ``paths`` this process can open for reading (a folder: list)."""
    readable = []
    for path in paths:
        try:
            if os.path.isdir(path):
                os.listdir(path)
            else:
                os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC))
        except OSError:
            continue
        readable.append(path)
    return readable


def python_problem() -> str | None:
    """Why this (confined) process could not import more of the Python installation, or ``None``."""
    for name in ("json", "xmlrpc", "torch"):  # one imported already, one not, the heaviest
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError, OSError) as exc:
            return f"the worker cannot find the module {name} ({exc})"
        if spec is None:
            if name == "torch":
                continue  # not installed here: the zygote will say so
            return f"the worker cannot find the standard library's {name} (a folder above it is private)"
        if spec.origin and spec.has_location:
            try:
                with open(spec.origin, "rb") as fh:
                    fh.read(1)
            except OSError as exc:
                return f"the worker cannot read the Python installation ({spec.origin}: {exc.strerror})"
    return None


def preflight_main() -> None:
    """Read a request (JSON on stdin: limits, exclude, gpu, protected), confine this process as a
    worker would be (a pool uid as root), and print ``{"measures", "readable", "python"}``."""
    from grader.execution import confine

    request: dict[str, Any] = json.loads(sys.stdin.read())
    uid = None
    measures: list[str] = []
    if os.geteuid() == 0:
        try:
            uid, _ = confine.allocate_uid()  # held until this process exits
        except OSError as exc:
            measures.append(f"uid: nobody ({exc})")
    applied = confine.confine(request["limits"], request["exclude"], uid=uid, gpu=request.get("gpu", False))
    answer = {
        "measures": applied + measures,
        "readable": probe(request["protected"]),
        "python": python_problem(),
    }
    os.write(1, json.dumps(answer).encode())  # stdout stays open across the confinement
    os._exit(0)


if __name__ == "__main__":
    preflight_main()
