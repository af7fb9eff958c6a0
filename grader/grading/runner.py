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
from typing import TYPE_CHECKING, Any

from grader import ROOT, rubric, staffkey
from grader.adapters import zygote
from grader.execution import isolation as isolation_level
from grader.grading import isolation
from grader.grading.scoring import Report, TestRecord, score_exercise
from grader.outcomes import CRASHED, ERROR, FAILED, MISSING, TIMEOUT

if TYPE_CHECKING:
    from grader.grading.warm import WarmRunner

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
    warm: "WarmRunner | None" = None,
    fork_files: bool = False,
    weak_isolation: bool = False,
    protect: Sequence[str | os.PathLike[str]] = (),
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
    public ones of a local run.  ``warm`` (a local check's watch mode): run the tests in a
    fork of that :class:`~grader.grading.warm.WarmRunner` instead of a new process (no staff key).
    ``fork_files``: the test process forks one child per test file after collection and runs
    them side by side (:mod:`grader.testing.forked`; the same grades, on every core).
    Staff grading in the sandbox first checks that no worker here could read staff files
    (:func:`grader.grading.isolation.require`: the repository's and ``protect``'s) and raises
    :class:`grader.grading.isolation.IsolationRefused` otherwise, unless ``weak_isolation``.
    """
    if warm is not None and (staff_key is not None or adapter != "sandbox"):
        raise ValueError("a warm runner grades local sandboxed checks only")
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
    required, refused_notes = isolation_level.NONE, list[str]()
    if modules and staff and adapter == "sandbox":
        required, refused_notes = isolation.require(protect, weak_isolation)
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
            submissions,
            modules,
            adapter,
            staff,
            progress,
            timeout,
            shrink,
            env,
            devices,
            staff_key if staff else None,
            warm,
            fork_files,
            required,
        )
    reports = {}
    for ident, folder, exercises, present in plan:
        reports[ident] = _report(
            folder, exercises, present, [r for r in records if r.submission == ident], note, status
        )
        reports[ident].notes = sandbox_notes(measures.get(ident, [])) + refused_notes
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
    warm: "WarmRunner | None" = None,
    fork_files: bool = False,
    required: str = "none",
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
            "grader.testing.session",  # pytest, without the interpreter's teardown at the end
            "-p",
            "_hypothesis_pytestplugin",
            # its clean-up runs gc.collect() five times at exit (0.5 s); warnings are off anyway
            "-p",
            "no:unraisableexception",
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
        if fork_files:
            cmd.append("--fork-files")
        if required != isolation_level.NONE:
            cmd += ["--isolation", required]
        for device in devices:
            cmd += ["--device", device]
        env = child_environment(extra_env)
        if warm is not None:
            code = warm.run(cmd[3:], log, timeout)
            records, measures = _read(results)
            return (records, measures, *_outcome(code, timeout, log.read_text(errors="replace")[-2000:]))
        key_fd = None
        if staff_key is not None:
            key_fd, key_env = staffkey.send(staff_key)
            env.update(key_env)
        fds = [] if key_fd is None else [key_fd]
        # The sandbox's zygote imports torch while the test process does the same on the other core.
        zyg = _prestart(env) if adapter == "sandbox" else None
        if zyg is not None:
            fds.append(zyg.ctl.fileno())
            cmd += ["--zygote-fd", str(zyg.ctl.fileno())]
        try:
            with open(log, "w") as out:
                try:
                    proc = subprocess.Popen(
                        cmd,
                        cwd=ROOT,
                        stdout=out,
                        stderr=None if progress else out,
                        env=env,
                        start_new_session=True,
                        pass_fds=fds,
                    )
                finally:
                    if key_fd is not None:
                        os.close(key_fd)
                    if zyg is not None:
                        zyg.ctl.close()  # the test process holds it now: the zygote ends with it
                try:
                    code = proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    code = None
                finally:
                    _kill_group(proc.pid)
                    proc.wait()
        finally:
            if zyg is not None:
                zygote.reap(zyg)
        records, measures = _read(results)
        tail = log.read_text(errors="replace")[-2000:]
    return (records, measures, *_outcome(code, timeout, tail))


def child_environment(extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the test process: this one's, ``extra_env``, no staff key, and
    what makes it fast and deterministic."""
    env = dict(os.environ, **(extra_env or {}), PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
    # Only the plugins grading needs: the grader's (tests/conftest.py) and hypothesis's.
    # Entry-point plugins of the environment (anyio, xdist, benchmark...) cost 0.6 s to import.
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    # Nor hypothesis's entry points (trio registers a PRNG: a full gc.collect, 0.1 s).
    env["HYPOTHESIS_NO_PLUGINS"] = "1"
    for name in (staffkey.ENV, staffkey.FD_ENV):  # the key goes through a pipe or not at all
        env.pop(name, None)
    return env


def _outcome(code: int | None, timeout: float, tail: str) -> tuple[str, str | None]:
    """``(note, status)`` of a test run that ended with ``code`` (None: stopped at ``timeout``)."""
    if code is None:
        return f"grading stopped after {timeout}s", TIMEOUT
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"the grading process died with signal {name}", CRASHED
    if code not in (0, 1, 5):  # pytest: 0 all passed, 1 some failed, 5 nothing selected (all hidden)
        return f"the test run could not complete (pytest exit {code})\n{tail}", ERROR
    return "", None


def _prestart(env: dict[str, str]) -> "zygote.Zygote | None":
    """A zygote for the test process, or None (then it starts its own on first use)."""
    taken = zygote.take_early(env)  # python -m grader check started it first thing
    if taken is not None:
        return taken
    try:
        return zygote.prestart(env)
    except OSError:
        return None


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
FALLBACKS = (
    "memory: resource limits only",
    "no PID namespace",
    "uid: nobody",
    "no /proc",
    "no namespaces",
    "no seccomp",
)


def sandbox_notes(measures: Iterable[str]) -> list[str]:
    """The fallbacks among a submission's isolation ``measures``, as report notes (one note for
    missing namespaces: the PID namespace refused with them is part of it)."""
    found = [m for m in measures if m.startswith(FALLBACKS)]
    if any(m.startswith("no namespaces") for m in found):
        found = [m for m in found if not m.startswith("no PID namespace (refused")]
    return [f"sandbox: {m}" for m in found]
