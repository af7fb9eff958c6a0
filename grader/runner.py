"""Grade a submission: run the property tests in a child pytest process and score them.

The child process runs ``tests/exercises`` with the grader's plugin, which appends one
JSON line per test to a results file as each finishes.  Whatever happens to the child
(a crash, a hang past the time limit), the tests already recorded keep their results and
the rest of the exercises get a status that says what happened.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from grader import ROOT, rubric
from grader.errors import CRASHED, ERROR, MISSING, TIMEOUT
from grader.results import Report, TestRecord, score_exercise

TESTS_DIR = ROOT / "tests" / "exercises"
#: Wall-clock limit for one module's tests.
MODULE_TIMEOUT = 600


def grade(submission, targets=(), adapter="inprocess", staff=False, progress=False, timeout=MODULE_TIMEOUT):
    """Grade the ``submission`` folder on the exercises ``targets`` select; a :class:`Report`."""
    submission = Path(submission)
    exercises = rubric.select(targets)
    results = []
    for module in dict.fromkeys(ex.module for ex in exercises):
        chosen = [ex for ex in exercises if ex.module == module]
        path = submission / f"{module}.py"
        if not path.is_file():
            note = f"{module}.py not found in {submission}: the module scores 0"
            results += [score_exercise(ex, [], note, MISSING) for ex in chosen]
            continue
        records, note, status = _run_module(submission, module, chosen, adapter, staff, progress, timeout)
        for ex in chosen:
            mine = [r for r in records if r.exercise == ex.id]
            if status and not any(r.status != "skipped" for r in mine):
                results.append(score_exercise(ex, mine, note, status))
            else:
                results.append(score_exercise(ex, [r for r in mine if r.status != "skipped"], note if status else ""))
    return Report(str(submission), results)


def _run_module(submission, module, exercises, adapter, staff, progress, timeout):
    """Run one module's tests; ``(records, note, status)`` where status is set when the
    child process did not finish normally."""
    test_file = TESTS_DIR / f"test_{module}.py"
    if not test_file.exists():
        return [], f"no tests for module {module} yet", ERROR
    with tempfile.TemporaryDirectory(prefix="grader-") as tmp:
        results = Path(tmp) / "results.jsonl"
        log = Path(tmp) / "pytest.log"
        cmd = [sys.executable, "-m", "pytest", str(test_file), "-q", "-p", "no:cacheprovider",
               "--import-mode=importlib", "-p", "no:warnings", "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"),
               "--submission", str(submission.resolve()), "--adapter", adapter, "--results", str(results)]
        for ex in exercises:
            cmd += ["--exercise", ex.id]
        if staff:
            cmd.append("--staff")
        if progress:
            cmd.append("--progress")
        env = dict(os.environ, PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=None if progress else out, env=env,
                                    start_new_session=True)
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                code = None
        records = _read(results)
        tail = log.read_text(errors="replace")[-2000:]
    if code is None:
        return records, f"{module}: grading stopped after {timeout}s (an infinite loop?)", TIMEOUT
    if code < 0:
        return records, f"{module}: the grading process died with signal {signal.Signals(-code).name}", CRASHED
    if code not in (0, 1):  # pytest: 0 all passed, 1 some failed
        return records, f"{module}: the test run could not complete (pytest exit {code})\n{tail}", ERROR
    return records, "", None


def _read(path):
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(TestRecord(**json.loads(line)))
        except (ValueError, TypeError):
            continue  # a line cut short by a crash
    return records
