"""``python -m grader check --watch``: re-grade a module each time the student saves it.

The first grading covers the targets (all exercises when none are named); then the folder's
module files are polled, and each module whose content changed is graded again, on the
targets of that module only, by the warm grader (:mod:`grader.grading.warm`): the same
tests, examples and sandbox as a cold ``check``, without paying for the imports again.
Polling (every 0.1 s, comparing each file's size, mtime and content hash) needs no file
system notification library and sees saves through editors' rename-and-replace.
Ctrl-C stops the watch, the warm grader and its sandbox.
"""

import hashlib
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TextIO

from grader import rubric
from grader.grading import report, runner
from grader.grading.warm import WarmRunner, WarmRunnerError

#: Seconds between two looks at the files.
INTERVAL = 0.1


def snapshot(folder: Path) -> dict[str, tuple[int, int, str]]:
    """``{module: (size, mtime_ns, sha256)}`` of the module files present in ``folder``."""
    found = {}
    for module in rubric.MODULES:
        path = folder / f"{module}.py"
        try:
            stat = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            continue
        found[module] = (stat.st_size, stat.st_mtime_ns, digest)
    return found


def changed_modules(before: dict[str, tuple[int, int, str]], after: dict[str, tuple[int, int, str]]) -> list[str]:
    """The modules whose file appeared, went or changed content (a touch alone is no change)."""
    modules = set(before) | set(after)
    return [m for m in rubric.MODULES if m in modules and (before.get(m) or ("",))[-1] != (after.get(m) or ("",))[-1]]


def targets_for(targets: Sequence[str], modules: Sequence[str]) -> list[str]:
    """What to re-grade after ``modules`` changed: the watched targets in those modules (or
    the modules themselves when the watch has no targets)."""
    if not targets:
        return list(modules)
    return [t for t in targets if t.split(".")[0] in modules]


def watch(
    folder: Path,
    targets: Sequence[str],
    devices: Sequence[str] = (),
    out: TextIO = sys.stdout,
    keep_going: Callable[[], bool] = lambda: True,
) -> int:
    """Grade ``targets`` of ``folder``, then re-grade on every save until Ctrl-C (or until
    ``keep_going()`` is false); returns the exit code."""
    print(f"watching {folder} (Ctrl-C to stop); starting the grader...", file=out, flush=True)
    try:
        warm = WarmRunner(runner.child_environment())
    except WarmRunnerError as exc:
        print(f"error: check --watch: {exc}", file=sys.stderr)
        return 2
    try:
        seen = snapshot(folder)
        _grade(folder, list(targets), devices, warm, out, "first grading")
        while keep_going():
            time.sleep(INTERVAL)
            now = snapshot(folder)
            modules = changed_modules(seen, now)
            seen = now
            chosen = targets_for(targets, modules)
            if chosen:
                _grade(folder, chosen, devices, warm, out, f"{', '.join(m + '.py' for m in modules)} changed")
    except KeyboardInterrupt:
        print("\nstopped watching", file=out, flush=True)
    except WarmRunnerError as exc:
        print(f"error: check --watch: {exc}", file=sys.stderr)
        return 2
    finally:
        warm.close()
    return 0


def _grade(folder: Path, targets: list[str], devices: Sequence[str], warm: WarmRunner, out: TextIO, why: str) -> None:
    start = time.monotonic()
    result = runner.grade(folder, targets, devices=devices, warm=warm, fork_files=True)
    took = time.monotonic() - start
    stamp = datetime.now().strftime("%H:%M:%S")
    what = ", ".join(targets) if targets else "everything"
    print(f"\n[{stamp}] {why}: graded {what} in {took:.1f} s", file=out)
    print(report.render(result), file=out, flush=True)
