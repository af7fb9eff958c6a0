"""Staff grading refuses to run where the sandbox's worker could read what it must not.

Before staff grading (``check --staff``, ``batch`` and its Dask workers, the Gradescope run,
nbgrader's autograde: everything that calls :func:`grader.grading.runner.grade_many` with
``staff=True``), :func:`require` starts a *preflight*: a fresh ``python -I`` process that
confines itself exactly as a worker does (:func:`grader.execution.isolation.preflight_main`)
and tries to open every protected path: the repository's staff files (the reference, the
hidden tests, the catalog, the nbgrader sources, its git history, a key file) and the
folders the caller names (a batch's submissions and results).  The grading goes on only
when the worker's isolation has a barrier (:mod:`grader.execution.isolation`: namespaces,
Landlock, or a uid of its own) and opened none of them; the test process is then told that
level, and refuses any worker below it.  Otherwise :class:`IsolationRefused` says what was
found and what to do, unless the staff accepted weaker isolation explicitly
(``--weak-isolation`` or ``GRADER_WEAK_ISOLATION=1``): then the results' notes say so.

A student's local check runs no preflight: it is the student's own machine, and its report
notes once what the sandbox could not do there.
"""

import functools
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from grader import ROOT
from grader.adapters import zygote
from grader.execution import isolation

#: The environment variable that accepts weaker isolation for staff grading (``1``).
WEAK_ENV = "GRADER_WEAK_ISOLATION"
#: The repository's staff-only parts (relative paths), and a key file Gradescope's package holds.
STAFF_PARTS = ("solutions", "tests/hidden", "grader/mistakes", "nbgrader/source", ".git", "staff_key")
#: At most this many files probed under each protected folder.
SAMPLE = 40
REMEDY = (
    "grade where the sandbox gets its namespaces (a VM or bare machine; a container started with "
    "CAP_SYS_ADMIN and --security-opt seccomp=unconfined) or Landlock (Linux 5.13+, enabled at boot); "
    "or grade as root with the staff files readable by root only "
    "(chmod -R go-rwx the repository, the submissions and the results; the Gradescope package's setup.sh does "
    "this for /autograder/source); or accept weaker isolation explicitly with --weak-isolation "
    f"({WEAK_ENV}=1)"
)


class IsolationRefused(RuntimeError):
    """Staff grading would run with a worker that could read staff files: refused."""


@dataclass(frozen=True)
class Verdict:
    """What the preflight found: the level, the measures, the protected paths it could open."""

    level: str
    measures: tuple[str, ...]
    readable: tuple[str, ...]
    python: str | None

    @property
    def problem(self) -> str | None:
        """Why this isolation is not enough for staff grading, or ``None``."""
        if self.level == isolation.NONE:
            why = next((m for m in self.measures if m.startswith("no namespaces")), "no namespaces")
            return (
                f"the sandbox's worker would run as the grader's own user with no barrier ({why}): "
                "it could read the reference, the hidden tests and the staff key"
            )
        if self.readable:
            more = len(self.readable) - 3
            shown = ", ".join(self.readable[:3]) + (f" and {more} more" if more > 0 else "")
            return f"the sandbox's worker ({self.level}) could open staff files: {shown}"
        if self.python:
            return f"{self.python}: the workers could not run"
        return None


def weak_from_environment() -> bool:
    """Whether ``GRADER_WEAK_ISOLATION=1`` accepts weaker isolation for staff grading."""
    return os.environ.get(WEAK_ENV, "") == "1"


def protected_paths(extra: Iterable[str | os.PathLike[str]] = ()) -> list[str]:
    """The paths no worker may open in staff grading: the repository's staff parts and ``extra``
    (folders and files), each folder with up to :data:`SAMPLE` of the files below it."""
    paths: list[str] = []
    for place in [*(ROOT / part for part in STAFF_PARTS), *(Path(e) for e in extra)]:
        if not place.exists() or place.is_symlink():
            continue
        paths.append(str(place))
        if place.is_dir():
            paths += _sample(place)
    return list(dict.fromkeys(paths))


def _python_folders() -> set[str]:
    """The Python installation's folders (a venv may live in a course folder): never protected."""
    return {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}


def _sample(folder: Path) -> list[str]:
    found: list[str] = []
    python = _python_folders()
    for base, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if os.path.realpath(os.path.join(base, d)) not in python)
        for name in sorted(files):
            path = os.path.join(base, name)
            if not os.path.islink(path):
                found.append(path)
            if len(found) >= SAMPLE:
                return found
    return found


def preflight(extra: Sequence[str | os.PathLike[str]] = ()) -> Verdict:
    """Confine a fresh process as a worker is confined here and probe the protected paths."""
    return _preflight(tuple(str(Path(e).resolve()) for e in extra))


@functools.lru_cache(maxsize=16)
def _preflight(extra: tuple[str, ...]) -> Verdict:
    bundle = zygote.runtime_bundle()
    request = {
        "limits": zygote.limits(),
        "exclude": [str(ROOT)],
        "gpu": zygote.nvidia(),
        "protected": protected_paths(extra),
    }
    code = (
        f"import sys; sys.path.insert(0, {str(bundle)!r}); "
        "from grader.execution.isolation import preflight_main; preflight_main()"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-c", code],
            input=json.dumps(request).encode(),
            capture_output=True,
            env=zygote.worker_environment(),
            cwd=bundle,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise IsolationRefused(_unchecked(str(exc))) from None
    try:
        answer = json.loads(done.stdout)
    except ValueError:  # the confinement itself failed: its last words say why
        said = done.stderr.decode(errors="replace").strip()
        raise IsolationRefused(_unchecked(said.splitlines()[-1] if said else f"exit {done.returncode}")) from None
    measures = tuple(str(m) for m in answer["measures"])
    return Verdict(
        isolation.level(measures),
        measures,
        tuple(str(p) for p in answer["readable"]),
        answer["python"] if isinstance(answer.get("python"), str) else None,
    )


def _unchecked(cause: str) -> str:
    return f"staff grading refused: the sandbox's isolation could not be checked here ({cause}). To grade: {REMEDY}."


def require(extra: Sequence[str | os.PathLike[str]] = (), weak: bool = False) -> tuple[str, list[str]]:
    """Before staff grading: ``(level, notes)``, the level every worker must reach and the notes
    for the results; raises :class:`IsolationRefused` when the isolation here is not enough and
    ``weak`` (or ``GRADER_WEAK_ISOLATION=1``) does not accept it."""
    verdict = preflight(extra)
    problem = verdict.problem
    if problem is None:
        return verdict.level, []
    if weak or weak_from_environment():
        return isolation.NONE, [f"sandbox: weak isolation accepted by staff: {problem}"]
    raise IsolationRefused(f"staff grading refused: {problem}. To grade: {REMEDY}.")
