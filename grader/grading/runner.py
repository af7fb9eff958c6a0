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
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from grader import ROOT, rubric, staffkey
from grader.grading.scoring import Report, TestRecord, score_exercise
from grader.outcomes import CRASHED, ERROR, FAILED, MISSING, TIMEOUT

TESTS_DIR = ROOT / "tests" / "exercises"
#: The hidden tests (staff grading only; absent from the student release).
HIDDEN_DIR = ROOT / "tests" / "hidden"
#: Wall-clock limit for one module's tests (the sandbox's own budgets are tighter).
MODULE_TIMEOUT = 900


def grade(submission: str | os.PathLike[str], targets: Sequence[str] = (), **options: Any) -> Report:
    """Grade the ``submission`` folder on the exercises ``targets`` select; a :class:`Report`.

    Options are :func:`grade_many`'s.
    """
    return grade_many([("submission", submission, targets)], **options)["submission"]


def grade_many(
    entries: Iterable[tuple[str, str | os.PathLike[str], Sequence[str]]],
    adapter: str = "sandbox",
    staff: bool = False,
    progress: bool = False,
    timeout: float | None = None,
    shrink: bool = True,
    env: dict[str, str] | None = None,
    devices: Sequence[str] = (),
    staff_key: str | bytes | None = None,
) -> dict[str, Report]:
    """Grade several submissions in one child pytest process; ``{id: Report}``.

    ``entries`` are ``(id, folder, targets)``: the exercises ``targets`` select (modules
    or exercise IDs; all when empty).  Each submission still gets its own worker process.
    Student code runs in the isolated engine (``adapter="sandbox"``); ``"inprocess"`` is
    for trusted code only.  ``shrink=False`` reports the first failing example hypothesis
    finds rather than the smallest: the same score, found faster (used for the catalog).
    The worker sees nothing of the machine but what it needs (README, "Isolation").  ``env``
    adds environment variables for the grading process (sandbox limits, the GPU to use);
    ``devices`` selects the device tests (cpu, meta, cuda, all; default all, cuda skipped
    without a GPU).  ``staff_key`` (with ``staff``): the secret the examples are drawn from
    (:mod:`grader.staffkey`); it reaches the test process through a pipe, never its
    command line or environment, and never the worker.  Without it the examples are the
    public ones of a local run.
    """
    plan = []
    for ident, where, targets in entries:
        folder = Path(where)
        exercises = rubric.select(targets)
        present = {
            ex.module
            for ex in exercises
            if (folder / f"{ex.module}.py").is_file() and (TESTS_DIR / f"test_{ex.module}.py").exists()
        }
        plan.append((ident, folder, exercises, present))
    modules = [m for m in rubric.MODULES if any(m in present for *_, present in plan)]
    records: list[TestRecord] = []
    note: str = ""
    status: str | None = None
    measures: dict[str, list[str]] = {}
    if modules:
        submissions = [
            {
                "id": ident,
                "path": str(folder.resolve()),
                "exercises": [ex.id for ex in exercises if ex.module in present],
            }
            for ident, folder, exercises, present in plan
            if present
        ]
        records, measures, note, status = _run_tests(
            submissions, modules, adapter, staff, progress, timeout, shrink, env, devices, staff_key if staff else None
        )
    reports = {}
    for ident, folder, exercises, present in plan:
        reports[ident] = _report(
            folder, exercises, present, [r for r in records if r.submission == ident], note, status
        )
        reports[ident].notes = sandbox_notes(measures.get(ident, []))
    return reports


def _report(
    folder: Path,
    exercises: Sequence[rubric.Exercise],
    present: set[str],
    records: list[TestRecord],
    note: str,
    status: str | None,
) -> Report:
    results = []
    for ex in exercises:
        if ex.module not in present:
            missing = not (folder / f"{ex.module}.py").is_file()
            why = (
                f"{ex.module}.py not found in {folder}: the module scores 0"
                if missing
                else f"no tests for module {ex.module} yet"
            )
            results.append(score_exercise(ex, [], why, MISSING if missing else ERROR))
            continue
        mine = [r for r in records if r.exercise == ex.id and r.status != "skipped"]
        for rec in mine:
            if rec.status == "pending":  # the run ended before this test did
                rec.status, rec.message = status or ERROR, note or "the test did not finish"
                if rec.hidden:
                    rec.status, rec.message = FAILED, ""
        if status and not mine:
            results.append(score_exercise(ex, [], note, status))
        else:
            results.append(score_exercise(ex, mine, note if any(r.status == status for r in mine) else ""))
    return Report(str(folder), results)


def test_files(modules: Sequence[str], staff: bool) -> list[str]:
    """The test files a grading of ``modules`` runs: the public ones, and with ``staff`` the
    hidden ones that exist (a student release has none; a local check never runs them)."""
    files = [TESTS_DIR / f"test_{m}.py" for m in modules]
    if staff:
        files += [path for m in modules if (path := HIDDEN_DIR / f"test_{m}.py").is_file()]
    return [str(path) for path in files]


def _run_tests(
    submissions: list[dict[str, Any]],
    modules: list[str],
    adapter: str,
    staff: bool,
    progress: bool,
    timeout: float | None,
    shrink: bool,
    extra_env: dict[str, str] | None,
    devices: Sequence[str],
    staff_key: str | bytes | None = None,
) -> tuple[list[TestRecord], dict[str, list[str]], str, str | None]:
    """Run the tests of ``modules`` for ``submissions`` in one child pytest process;
    ``(records, measures, note, status)`` where ``status`` is set when the child did not finish normally."""
    timeout = timeout or MODULE_TIMEOUT * len(modules) * len(submissions)
    with tempfile.TemporaryDirectory(prefix="grader-") as tmp:
        results = Path(tmp) / "results.jsonl"
        log = Path(tmp) / "pytest.log"
        plan = Path(tmp) / "submissions.json"
        plan.write_text(json.dumps(submissions), encoding="utf-8")
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            *test_files(modules, staff),
            "-q",
            "--tb=no",
            "-p",
            "no:cacheprovider",
            "--import-mode=importlib",
            "-p",
            "no:warnings",
            "--rootdir",
            str(ROOT),
            "-c",
            str(ROOT / "pyproject.toml"),
            "--submissions",
            str(plan),
            "--adapter",
            adapter,
            "--results",
            str(results),
        ]
        if staff:
            cmd.append("--staff")
        if progress:
            cmd.append("--progress")
        if not shrink:
            cmd.append("--no-shrink")
        for device in devices:
            cmd += ["--device", device]
        env = dict(os.environ, **(extra_env or {}), PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
        for name in (staffkey.ENV, staffkey.FD_ENV):  # the key goes through a pipe or not at all
            env.pop(name, None)
        key_fd = None
        if staff_key is not None:
            key_fd, key_env = staffkey.send(staff_key)
            env.update(key_env)
        with open(log, "w") as out:
            try:
                proc = subprocess.Popen(
                    cmd,
                    cwd=ROOT,
                    stdout=out,
                    stderr=None if progress else out,
                    env=env,
                    start_new_session=True,
                    pass_fds=() if key_fd is None else (key_fd,),
                )
            finally:
                if key_fd is not None:
                    os.close(key_fd)
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                code = None
            finally:
                _kill_group(proc.pid)
                proc.wait()
        records, measures = _read(results)
        tail = log.read_text(errors="replace")[-2000:]
    if code is None:
        return records, measures, f"grading stopped after {timeout}s", TIMEOUT
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return records, measures, f"the grading process died with signal {name}", CRASHED
    if code not in (0, 1, 5):  # pytest: 0 all passed, 1 some failed, 5 nothing selected (all hidden)
        return records, measures, f"the test run could not complete (pytest exit {code})\n{tail}", ERROR
    return records, measures, "", None


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read(path: Path) -> tuple[list[TestRecord], dict[str, list[str]]]:
    """The records of the results file, the last line of each test winning (a test is
    first written as pending, then with its outcome), and ``{submission: [measure, ...]}``
    the isolation measures its workers reported."""
    if not path.exists():
        return [], {}
    records: dict[tuple[str, str], TestRecord] = {}
    measures: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            data = json.loads(line)
            if type(data) is dict and "sandbox" in data:
                found = measures.setdefault(str(data.get("submission", "")), [])
                found += [str(m) for m in data["sandbox"] if str(m) not in found]
                continue
            rec = TestRecord(**data)
        except (ValueError, TypeError):
            continue  # a line cut short by a crash
        records[rec.submission, rec.nodeid] = rec
    return list(records.values()), measures


#: Measures that mean the sandbox fell back to something weaker (shown in the report's notes).
FALLBACKS = ("memory: resource limits only", "no PID namespace", "uid: nobody", "no /proc", "no namespaces")


def sandbox_notes(measures: Iterable[str]) -> list[str]:
    """The fallbacks among a submission's isolation ``measures``, as report notes."""
    return [f"sandbox: {m}" for m in measures if m.startswith(FALLBACKS)]
