"""``python -m grader batch``: grade every submission of a folder, safely and resumably.

Each sub-folder or ``.zip`` of ``SUBMISSIONS_DIR`` is one submission.  Only its module
files (``attention.py``, ...) are copied out of it, into a fresh staging folder, by a
*stager* (:data:`Stager`; :func:`grader.grading.staging.stage` unless the caller passes
another): links, special files, oversized files and unsafe zip entries (absolute paths,
``..``, links, zip bombs) are never followed or extracted.  ``python -m grader batch`` passes
:func:`grader.notebooks.cells.stage_modules`, which also reads a module handed in as a notebook
(``attention.ipynb``); this room cannot import the notebooks (they sit above it), so the stager
is injected, and travels to the guarded process by its import name (:func:`stager_name`).
Each result is written atomically to ``OUT_DIR/<id>/results.json`` as its submission
finishes, and the gradebook ``OUT_DIR/grades.csv`` is rebuilt atomically from all results
after each one: a batch killed halfway and started again skips what is done and loses
nothing.

A submission's id depends only on its name and no two names share one
(:func:`submission_id`); the entries that do share one (``alice`` and ``alice.zip``) are
a conflict, listed in ``OUT_DIR/notes.txt`` and the gradebook, and none of them is
graded.  Each results.json records the entry it came from and a hash of the files
graded: a resumed batch skips a result only when it came from the same entry and the
files staged from that entry now hash the same.

The submissions are graded on Dask (:mod:`grader.grading.cluster`): each is one task, on a
local cluster by default or on an existing one (``scheduler``).  A task grades in a guarded
process (:func:`keeper_main`, which calls :func:`grade_one`) that kills everything it started
when the task is cancelled or the batch dies; the batch process itself writes only the
gradebook and the notes.
"""

import csv
import hashlib
import importlib
import io
import json
import os
import re
import signal
import sys
import tempfile
import time
import unicodedata
import uuid
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Any, TextIO

from grader import ROOT, rubric, staffkey
from grader.execution.worker import descendants
from grader.grading import cluster, files, isolation, runner, staging

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
RESERVED = {"grades.csv", "notes.txt"}  # files of OUT_DIR: never a submission's folder there
DIGEST_CHARS = 10
#: Stages a submission (a folder or a zip) into an existing empty folder as module files; returns the
#: staging notes; raises :class:`grader.grading.staging.Rejected` for one refused as a whole.  It must
#: be a module-level function: Dask pickles it by reference and the guarded process imports it by name.
Stager = Callable[[Path, Path], list[str]]


def stager_name(stager: Stager) -> str:
    """``module:qualname`` of ``stager``, by which :func:`load_stager` finds it again in another process.

    Raises ``ValueError`` for a callable that cannot be imported by that name (a lambda, a
    nested function, a bound method).
    """
    module, qualname = getattr(stager, "__module__", None), getattr(stager, "__qualname__", None)
    name = f"{module}:{qualname}"
    try:
        same = bool(module and qualname) and load_stager(name) is stager
    except (ImportError, AttributeError, ValueError):
        same = False
    if not same:
        raise ValueError(f"the stager {stager!r} is no module-level function: another process cannot import it")
    return name


def load_stager(name: str) -> Stager:
    """The stager :func:`stager_name` named ``name`` (``module:qualname``), imported."""
    module, _, qualname = name.partition(":")
    if not module or not qualname or "<" in qualname:
        raise ValueError(f"{name!r} names no module-level function (expected module:qualname)")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    if not callable(found):
        raise ValueError(f"{name!r} is not callable")
    stager: Stager = found
    return stager


def staged_sha256(src: str | os.PathLike[str], stager: Stager = staging.stage) -> str | None:
    """The ``files_sha256`` that grading ``src`` with ``stager`` now would record (``None``: it is
    rejected); :func:`grader.grading.staging.staged_sha256` for any stager."""
    with tempfile.TemporaryDirectory(prefix="grader-stage-") as tmp:
        try:
            stager(Path(src), Path(tmp))
        except staging.Rejected:
            return None
        return staging.files_sha256(tmp)


def submission_id(name: str, zipped: bool = False) -> str:
    """The id of the entry ``name`` of the submissions folder (``zipped``: a ``.zip`` file).

    A zip's id is that of a folder named as its stem, so ``alice.zip`` and ``alice`` share
    the id ``alice`` (:func:`discover` calls that a conflict).  A folder name that is
    already safe (``[A-Za-z0-9][A-Za-z0-9._-]*``, not ending ``.zip``, not a file of
    ``OUT_DIR``) is its own id; any other becomes a readable slug, ``~`` and the first
    hex digits of the SHA-256 of the exact name (``alice smith`` ->
    ``alice_smith~<digest>``).  A safe name has no ``~``, so the two kinds never meet and
    distinct names get distinct ids.  The id depends on the name alone: stable across runs.
    """
    key = name[:-4] if zipped and name.lower().endswith(".zip") else name
    if SAFE_NAME.fullmatch(key) and not key.lower().endswith(".zip") and key.lower() not in RESERVED:
        return key
    ascii_key = unicodedata.normalize("NFKD", key).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_key).strip("._-")[:40].rstrip("._-") or "submission"
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:DIGEST_CHARS]
    return f"{slug}~{digest}"


def discover(folder: str | os.PathLike[str]) -> tuple[list[tuple[str, Path]], dict[str, list[Path]]]:
    """The sub-folders and ``.zip`` files of ``folder``: ``(entries, conflicts)``.

    ``entries`` is ``[(id, path)]``, sorted, one per id; ``conflicts`` is
    ``{id: [path, ...]}`` for the ids that several entries share: none of those is graded
    (no entry is ever renamed to make room for another).
    """
    by_id: dict[str, list[Path]] = {}
    for path in sorted(Path(folder).iterdir()):
        if path.is_symlink() or path.name.startswith("."):
            continue
        if not (path.is_dir() or (path.is_file() and path.suffix.lower() == ".zip")):
            continue
        by_id.setdefault(submission_id(path.name, zipped=path.is_file()), []).append(path)
    entries = [(ident, paths[0]) for ident, paths in by_id.items() if len(paths) == 1]
    conflicts = {ident: paths for ident, paths in by_id.items() if len(paths) > 1}
    return entries, conflicts


def _describe(path: Path) -> str:
    return f"{path.name!r} ({'zip' if path.is_file() else 'folder'})"  # repr: no newline or escape reaches a terminal


def conflict_message(ident: str, paths: Iterable[Path]) -> str:
    """What the notes and the gradebook say about the entries ``paths`` sharing ``ident``."""
    return (
        f"conflict: {', '.join(_describe(p) for p in paths)} all have the id {ident!r}; "
        "none of them is graded: rename all but one and run the batch again"
    )


def write_notes(out_dir: str | os.PathLike[str], conflicts: dict[str, list[Path]]) -> list[str]:
    """Rewrite ``OUT_DIR/notes.txt``, the batch's notes: one line per id conflict."""
    lines = [conflict_message(ident, paths) for ident, paths in sorted(conflicts.items())]
    text = "".join(f"{line}\n" for line in lines) or "no conflicts: every submission has its own id\n"
    files.write_atomic(Path(out_dir) / "notes.txt", text)
    return lines


def result_path(out_dir: str | os.PathLike[str], ident: str) -> Path:
    """Where the results of submission ``ident`` go."""
    return Path(out_dir) / ident / "results.json"


def _load_result(out_dir: str | os.PathLike[str], ident: str) -> dict[str, Any] | None:
    """The results.json of ``ident`` as a dict, or ``None`` (missing, unreadable, not an object)."""
    try:
        result = json.loads(result_path(out_dir, ident).read_text())
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) else None


def is_done(
    out_dir: str | os.PathLike[str], ident: str, path: str | os.PathLike[str], stager: Stager = staging.stage
) -> bool:
    """Whether ``ident`` has a complete result of the entry ``path`` as it is now.

    The result must come from an entry of the same name and record the hash of the same
    files as staging ``path`` with ``stager`` gives now (a changed submission, or a changed
    notebook when the stager reads notebooks, is regraded); a grader error is retried.
    """
    result = _load_result(out_dir, ident)
    if not result:
        return False
    extra = result.get("extra_data")
    if not isinstance(extra, dict) or "score" not in result or str(extra.get("status", "")).startswith("error"):
        return False
    source = extra.get("source")
    if not isinstance(source, dict) or source.get("name") != Path(path).name or "files_sha256" not in extra:
        return False
    try:
        return extra["files_sha256"] == staged_sha256(path, stager)
    except OSError:  # the entry cannot be read now: grade it, and let grade_one record why
        return False


def grade_one(
    ident: str,
    path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    stager: Stager = staging.stage,
    **grade_args: Any,
) -> dict[str, Any]:
    """Stage (with ``stager``) and grade one submission; write its results.json; return that dict.

    Its ``extra_data`` records the ``source`` entry (path as given, name, kind), the staging
    notes among its ``notes`` (a skipped file, a notebook that gives no module) and the
    ``files_sha256`` of the files graded (:func:`grader.grading.staging.files_sha256`;
    ``None``: a zip refused as a whole); its ``execution_time`` (Gradescope's field) the
    seconds it took, staging and grading, rounded to 0.1 s.
    """
    start = time.monotonic()
    path = Path(path)
    source = {"path": str(path), "name": path.name, "kind": "zip" if path.is_file() else "folder"}
    with tempfile.TemporaryDirectory(prefix="grader-stage-") as tmp:
        staged = Path(tmp)
        status, notes, digest = "graded", [], None
        try:
            notes = stager(path, staged)
            digest = staging.files_sha256(staged)
            if not any(staged.iterdir()):
                why = "; see the notes" if notes else ""
                raise staging.Rejected(f"no attention.py, lstm.py, param_count.py or elbo.py found{why}")
            # the other submissions and the results are staff files too: no worker may read them
            protect = [path.parent.resolve(), Path(out_dir).resolve()]
            report = runner.grade(staged, (), staff=True, protect=protect, **grade_args)
            result = report.to_gradescope()
            missing = [m for m in rubric.MODULES if not (staged / f"{m}.py").exists()]
            if missing:
                status = "incomplete: missing " + ", ".join(f"{m}.py" for m in missing)
        except staging.Rejected as exc:
            status = f"rejected: {exc}"
            result = {"score": 0.0, "max_score": 100, "tests": []}
        except Exception as exc:  # the grader itself failed on this one: record it, keep going
            status = f"error: {type(exc).__name__}: {exc}"
            result = {"score": 0.0, "max_score": 100, "tests": []}
    extra = result.setdefault("extra_data", {})
    notes += extra.get("notes", [])  # the sandbox's own (a fallback in force, see README "Isolation")
    extra.update({"submission": ident, "status": status, "notes": notes, "source": source, "files_sha256": digest})
    result["execution_time"] = round(time.monotonic() - start, 1)
    with cluster.WRITES:  # in a guarded process: not after the batch died (cluster._die)
        files.write_atomic(result_path(out_dir, ident), json.dumps(result, indent=2) + "\n")
    return result


def _record_error(ident: str, path: Path, out_dir: str | os.PathLike[str], message: str, seconds: float) -> None:
    """Write the results.json of a submission whose grading process itself failed (a resumed
    batch grades it again, as :func:`is_done` retries every ``error``)."""
    source = {"path": str(path), "name": path.name, "kind": "zip" if path.is_file() else "folder"}
    extra: dict[str, Any] = {
        "submission": ident,
        "status": f"error: {message}",
        "notes": [],
        "source": source,
        "files_sha256": None,
    }
    result = {"score": 0.0, "max_score": 100, "tests": [], "execution_time": round(seconds, 1), "extra_data": extra}
    files.write_atomic(result_path(out_dir, ident), json.dumps(result, indent=2) + "\n")


#: How many times a submission is graded again when the worker grading it closes.
MAX_ATTEMPTS = 3
#: What the guarded process of a task runs (``python -c``, from the repository).
KEEPER = "from grader.grading.batch import keeper_main; keeper_main()"


def keeper_main() -> None:
    """The guarded process of one task: read the job and the key :func:`grade_task` sent,
    grade with :func:`grade_one`; killed with everything it started if the task goes away
    (:func:`grader.grading.cluster.keep`)."""
    job = cluster.keep()
    staffkey.hide_this_process()  # before the key is read
    key = staffkey.receive()
    stager = load_stager(job["stager"]) if "stager" in job else staging.stage
    try:
        grade_one(job["ident"], job["path"], job["out_dir"], stager=stager, staff_key=key, **job["grade_args"])
    finally:
        cluster.kill_descendants()


def grade_task(
    ident: str,
    path: str,
    out_dir: str,
    key_id: str,
    gpus: int,
    grade_args: dict[str, Any],
    stager: Stager = staging.stage,
) -> dict[str, Any]:
    """One Dask task: grade submission ``ident`` (entry ``path``) into ``out_dir``, as
    :func:`grade_one` with ``stager`` in a guarded process (:func:`grader.grading.cluster.run_guarded`,
    which imports the stager by its name, :func:`stager_name`).

    ``key_id`` is the staff key's fingerprint (the worker finds the key itself,
    :func:`grader.grading.cluster.key_for`).  With ``gpus`` (a local cluster on a GPU
    machine) worker ``n`` grades on GPU ``n % gpus``.  Returns ``{"id", "status"}``, the
    status ``"cancelled"`` when the task was cancelled before it finished (nothing written).
    """
    key = cluster.key_for(key_id)
    slot = cluster.worker_slot()
    if gpus and slot is not None:
        # Nothing here reaches the worker but the GPU it may use: it cannot tell a batch
        # from a local check (each worker gets a uid of its own from the sandbox's pool).
        grade_args = {**grade_args, "env": {**grade_args.get("env", {}), "CUDA_VISIBLE_DEVICES": str(slot % gpus)}}
    start = time.monotonic()
    job = {"ident": ident, "path": path, "out_dir": out_dir, "grade_args": grade_args, "stager": stager_name(stager)}
    # From the batch's folder (relative paths hold; remote workers get absolute ones), the grader from ROOT.
    argv = [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); {KEEPER}"]
    code, stderr = cluster.run_guarded(argv, job, key, cwd=Path.cwd())
    if code is None:
        return {"id": ident, "status": "cancelled"}
    if code != 0:
        last = (stderr.strip().splitlines() or ["no message"])[-1]
        _record_error(
            ident, Path(path), out_dir, f"the grading process exited with {code}: {last}", time.monotonic() - start
        )
    result = _load_result(out_dir, ident) or {}
    return {"id": ident, "status": result.get("extra_data", {}).get("status", "error: no results.json written")}


def write_gradebook(
    out_dir: str | os.PathLike[str],
    entries: Iterable[tuple[str, Path]],
    conflicts: dict[str, list[Path]] | None = None,
    pending: Collection[str] = (),
) -> None:
    """Rebuild ``grades.csv`` from the results files of ``entries`` (``[(id, path)]``), atomically.

    One row per id, sorted, with the entry it came from (``source``); an id of
    ``conflicts`` (``{id: [path, ...]}``) gets a row that says so and no grade, an id of
    ``pending`` (to be graded, or regraded, by this run) none yet.
    """
    conflicts = conflicts or {}
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["id", *rubric.MODULES, "total", "status", "source"])
    rows = {ident: [path] for ident, path in entries} | conflicts
    for ident in sorted(rows):
        source = ", ".join(p.name for p in rows[ident])
        if ident in conflicts:
            writer.writerow([ident, *[""] * len(rubric.MODULES), "", conflict_message(ident, conflicts[ident]), source])
            continue
        result = None if ident in pending else _load_result(out_dir, ident)
        if result is None:
            writer.writerow([ident, *[""] * len(rubric.MODULES), "", "not graded yet", source])
            continue
        per_module = {m: 0.0 for m in rubric.MODULES}
        for test in result.get("tests", []):
            module = test["tags"][0]
            per_module[module] = round(per_module[module] + test["score"], 2)
        writer.writerow(
            [
                ident,
                *[f"{per_module[m]:g}" for m in rubric.MODULES],
                f"{result['score']:g}",
                result.get("extra_data", {}).get("status", "graded"),
                source,
            ]
        )
    files.write_atomic(Path(out_dir) / "grades.csv", buf.getvalue())


def run(
    submissions_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    workers: int | None = None,
    out: TextIO = sys.stderr,
    staff_key: str | bytes | None = None,
    scheduler: str | None = None,
    processes: bool = False,
    stager: Stager = staging.stage,
    **grade_args: Any,
) -> tuple[int, int]:
    """Grade every submission not yet graded, or changed since; returns ``(graded_now, skipped)``.

    ``stager`` copies a submission's module files out of it (:data:`Stager`; default
    :func:`grader.grading.staging.stage`, ``.py`` files only; ``python -m grader batch`` passes
    :func:`grader.notebooks.cells.stage_modules`, which reads notebooks too).  It stages each
    submission and decides which are done (a resumed batch hashes what it stages); it must be a
    module-level function (``ValueError`` otherwise), which the workers import by name.

    Entries that share an id (:func:`discover`) are not graded: each is listed in
    ``OUT_DIR/notes.txt``, in a warning on ``out`` and in the id's gradebook row.

    The examples come from a secret key (:func:`grader.staffkey.for_batch`): ``staff_key``,
    else ``GRADER_STAFF_KEY``, else ``OUT_DIR/.staff_key`` made on the first run; a resumed
    or repeated batch into the same ``OUT_DIR`` uses the same key and gives the same scores.
    Raises :class:`grader.staffkey.StaffKeyError` if ``OUT_DIR`` was graded with another key.

    Each submission is one Dask task (:func:`grade_task`).  By default they run on a local
    cluster of ``workers`` single-threaded workers in this process (``processes``: worker
    processes, which then read the key from ``GRADER_STAFF_KEY`` like remote ones).  With
    ``scheduler`` (an address) they run on that cluster's workers instead (``workers`` must
    then be ``None``): every worker must have the batch's key in its own ``GRADER_STAFF_KEY``,
    the same grader and tests, and see ``submissions_dir`` and ``out_dir`` at the same paths
    (checked first, :func:`grader.grading.cluster.check_workers`); raises
    :class:`grader.grading.cluster.ClusterError` otherwise, and when ``distributed`` is missing.

    On a GPU machine (local cluster only) each worker owns one GPU (``CUDA_VISIBLE_DEVICES``),
    ``workers`` defaults to the number of GPUs, and after each submission no process may
    still hold GPU memory (a leftover is killed and noted in the submission's results).
    Interrupted (Ctrl-C), the batch cancels what is left: the submissions being graded are
    stopped, their grading processes killed, and graded again by the next run.

    Raises :class:`grader.grading.isolation.IsolationRefused` before grading anything when the
    sandbox here (or on a worker of ``scheduler``) could not keep staff files, the other
    submissions and the results from the worker, unless ``weak_isolation=True`` is passed on.
    """
    stager_name(stager)  # a lambda fails here, before anything starts
    if scheduler and workers is not None:
        raise cluster.ClusterError(
            "--workers sizes the local cluster; with --scheduler the cluster's own workers grade "
            "(one submission per worker thread at once): leave --workers out"
        )
    cluster.require()
    remote = bool(scheduler)
    gpus, baseline = 0, set()
    if not remote:
        from grader.grading import gpu

        gpus = gpu.count()
        baseline = set(gpu.compute_processes()) if gpus else set()
    workers = workers or gpus or 2
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(out_dir, 0o700)
    if not remote:  # before anything is graded: refused here, refused for every submission
        isolation.require([Path(submissions_dir).resolve(), out_dir.resolve()], grade_args.get("weak_isolation", False))
    staffkey.hide_this_process()  # before the key is read: no same-uid worker may read our memory
    key = staffkey.for_batch(out_dir, staff_key)
    key_id = staffkey.fingerprint(key)
    local_key = not remote and not processes  # the workers are threads of this process
    if local_key:
        cluster.register_key(key)
    try:
        with cluster.connect(workers, scheduler, processes) as client:
            if remote:  # a worker elsewhere sees absolute paths, or nothing
                submissions_dir, out_dir = Path(submissions_dir).absolute(), out_dir.absolute()
                cluster.check_workers(
                    client, key_id, [submissions_dir, out_dir], __name__, grade_args.get("weak_isolation", False)
                )
            return _grade_all(client, submissions_dir, out_dir, out, key_id, gpus, baseline, grade_args, stager)
    finally:
        if local_key:
            cluster.forget_key(key_id)


def _grade_all(
    client: Any,
    submissions_dir: str | os.PathLike[str],
    out_dir: Path,
    out: TextIO,
    key_id: str,
    gpus: int,
    baseline: Collection[int],
    grade_args: dict[str, Any],
    stager: Stager = staging.stage,
) -> tuple[int, int]:
    """:func:`run` once the cluster is there: discover, skip what is done, one task per
    submission, the gradebook and the progress line after each."""
    from distributed import as_completed

    entries, conflicts = discover(submissions_dir)
    for line in write_notes(out_dir, conflicts):
        out.write(f"warning: {line}\n")
    todo = [(i, p) for i, p in entries if not is_done(out_dir, i, p, stager)]
    pending = {i for i, _ in todo}
    skipped = len(entries) - len(todo)
    write_gradebook(out_dir, entries, conflicts, pending)
    start, done = time.monotonic(), 0
    _progress(out, done, len(todo), start, skipped)
    run_id = uuid.uuid4().hex[:8]  # task keys are unique on a shared scheduler
    paths = dict(todo)

    def submit(ident: str, attempt: int = 0) -> Any:
        return client.submit(
            grade_task,
            ident,
            str(paths[ident]),
            str(out_dir),
            key_id,
            gpus,
            grade_args,
            stager,
            key=f"grade-{ident}-{run_id}-{attempt}",
        )

    futures = [submit(i) for i, _ in todo]
    attempts = dict.fromkeys(paths, 0)
    try:
        queue = as_completed(futures, loop=client.loop)
        for future in queue:
            ident = future.result()["id"]
            if future.result()["status"] == "cancelled":  # its worker closed under it: grade it elsewhere
                attempts[ident] += 1
                if attempts[ident] > MAX_ATTEMPTS:
                    raise cluster.ClusterError(
                        f"the workers grading {ident!r} closed under it {MAX_ATTEMPTS + 1} times"
                    )
                futures.append(submit(ident, attempts[ident]))
                queue.add(futures[-1])
                continue
            result = _load_result(out_dir, ident)
            if gpus and result is not None:
                _check_gpu_released(out_dir, ident, result, baseline)
            done += 1
            pending.discard(ident)
            write_gradebook(out_dir, entries, conflicts, pending)
            _progress(out, done, len(todo), start, skipped, ident)
    except BaseException:
        client.cancel(futures)  # Ctrl-C or a task's error: the running ones stop and are killed, nothing half-written
        raise
    out.write("\n")
    return len(todo), skipped


def _check_gpu_released(
    out_dir: str | os.PathLike[str], ident: str, result: dict[str, Any], baseline: Collection[int]
) -> None:
    """After a submission, no process that escaped the grading tree (a worker's child
    reparented away) may hold GPU memory: kill and note leftovers.  Processes of other
    slots still grading are descendants of this one and are left alone."""
    from grader.grading import gpu

    ours = set(descendants(os.getpid()))
    leftover = {pid: mib for pid, mib in gpu.compute_processes().items() if pid not in baseline and pid not in ours}
    if not leftover:
        return
    for pid in leftover:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    result["extra_data"].setdefault("notes", []).append(
        f"GPU memory still held after grading by {sorted(leftover)} ({sum(leftover.values())} MiB): killed"
    )
    files.write_atomic(result_path(out_dir, ident), json.dumps(result, indent=2) + "\n")


def _progress(out: TextIO, done: int, total: int, start: float, skipped: int, last: str = "") -> None:
    width = 30
    filled = width * done // max(total, 1)
    elapsed = time.monotonic() - start
    eta = f"{elapsed / done * (total - done):.0f}s" if done else "?"
    text = (
        f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total} graded"
        f"{f', {skipped} already done' if skipped else ''}  ETA {eta}  {last[:24]:<24}"
    )
    out.write(text)
    out.flush()
