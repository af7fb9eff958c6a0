"""``python -m grader batch``: grade every submission of a folder, safely and resumably.

Each sub-folder or ``.zip`` of ``SUBMISSIONS_DIR`` is one submission.  Only the module
files (``attention.py``, ...) are copied out of it, into a fresh staging folder: links,
special files, oversized files and unsafe zip entries (absolute paths, ``..``, links,
zip bombs) are never followed or extracted.  Each result is written atomically to
``OUT_DIR/<id>/results.json`` as its submission finishes, and the gradebook
``OUT_DIR/grades.csv`` is rebuilt atomically from all results after each one: a batch
killed halfway and started again skips what is done and loses nothing.
"""

import csv
import io
import json
import os
import queue
import re
import signal
import stat
import sys
import tempfile
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path, PurePosixPath

from grader import gpu, rubric, runner, staffkey

MAX_FILE_BYTES = 1 << 20
MAX_ZIP_MEMBERS = 2000
MAX_ZIP_TOTAL = 64 << 20
MAX_RATIO = 200
MODULE_FILES = {f"{m}.py" for m in rubric.MODULES}


class Rejected(Exception):
    """A submission that cannot be staged (a corrupt zip, nothing to grade)."""


def submission_id(name):
    """A safe identifier for an entry of the submissions folder."""
    stem = name[:-4] if name.lower().endswith(".zip") else name
    return re.sub(r"[^A-Za-z0-9._-]", "_", stem).strip(".") or "submission"


def discover(folder):
    """``[(id, path)]`` for each sub-folder and ``.zip`` of ``folder``, sorted, ids unique."""
    entries, seen = [], set()
    for path in sorted(Path(folder).iterdir()):
        if path.is_symlink() or path.name.startswith("."):
            continue
        if not (path.is_dir() or (path.is_file() and path.suffix.lower() == ".zip")):
            continue
        ident, n = submission_id(path.name), 1
        while ident in seen:
            n += 1
            ident = f"{submission_id(path.name)}-{n}"
        seen.add(ident)
        entries.append((ident, path))
    return entries


def _depth_order(names):
    """Module files found at the shallowest depth that has any: ``{basename: member}``."""
    chosen = {}
    for name in sorted(names, key=lambda n: (len(PurePosixPath(n).parts), n)):
        base = PurePosixPath(name).name
        if base in MODULE_FILES and base not in chosen and len(PurePosixPath(name).parts) <= 3:
            chosen[base] = name
    return chosen


def stage_folder(src, dst):
    """Copy the module files of folder ``src`` (regular files only, no links) into ``dst``."""
    notes, found = [], []
    for root, dirs, files in os.walk(src, followlinks=False):
        depth = len(Path(root).relative_to(src).parts)
        dirs[:] = [d for d in dirs if depth < 2 and not d.startswith(".")]
        found += [str(Path(root, f).relative_to(src)) for f in files if f in MODULE_FILES]
    for base, rel in _depth_order(found).items():
        path = Path(src, rel)
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            notes.append(f"{rel}: not a regular file (links are not followed)")
            continue
        if info.st_size > MAX_FILE_BYTES:
            notes.append(f"{rel}: larger than {MAX_FILE_BYTES} bytes")
            continue
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as fh:
            (dst / base).write_bytes(fh.read(MAX_FILE_BYTES))
    return notes


def stage_zip(src, dst):
    """Extract the module files of zip ``src`` into ``dst``, refusing unsafe entries."""
    notes = []
    try:
        with zipfile.ZipFile(src) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_ZIP_MEMBERS:
                raise Rejected(f"{len(infos)} entries (more than {MAX_ZIP_MEMBERS})")
            if sum(i.file_size for i in infos) > MAX_ZIP_TOTAL:
                raise Rejected(f"unpacks to more than {MAX_ZIP_TOTAL} bytes")
            safe = {}
            for info in infos:
                name = info.filename
                parts = PurePosixPath(name.replace("\\", "/")).parts
                mode = info.external_attr >> 16
                if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                    notes.append(f"{name}: unsafe path, skipped")
                elif stat.S_ISLNK(mode):
                    notes.append(f"{name}: a link, skipped")
                elif not info.is_dir():
                    safe["/".join(parts)] = info
            for base, name in _depth_order(list(safe)).items():
                info = safe[name]
                if info.file_size > MAX_FILE_BYTES or (info.compress_size and info.file_size / info.compress_size > MAX_RATIO
                                                       and info.file_size > 1 << 16):
                    notes.append(f"{name}: too large or too compressed, skipped")
                    continue
                with zf.open(info) as fh:
                    data = fh.read(MAX_FILE_BYTES + 1)
                if len(data) > MAX_FILE_BYTES:
                    notes.append(f"{name}: larger than {MAX_FILE_BYTES} bytes, skipped")
                    continue
                (dst / base).write_bytes(data)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, RuntimeError,
            NotImplementedError) as exc:  # RuntimeError: encrypted; NotImplementedError: unknown compression
        raise Rejected(f"not a readable zip file ({exc})") from None
    return notes


def _atomic_write(path, text):
    """Write ``text`` to ``path`` so that a reader (or a kill) sees the old or the new file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def result_path(out_dir, ident):
    """Where the results of submission ``ident`` go."""
    return Path(out_dir) / ident / "results.json"


def is_done(out_dir, ident):
    """Whether ``ident`` already has a complete results file (a grader error is retried)."""
    try:
        result = json.loads(result_path(out_dir, ident).read_text())
    except (OSError, ValueError):
        return False
    return "score" in result and not str(result.get("extra_data", {}).get("status", "")).startswith("error")


def grade_one(ident, path, out_dir, hide=(), **grade_args):
    """Stage and grade one submission; write its results.json; return that dict."""
    with tempfile.TemporaryDirectory(prefix="grader-stage-") as tmp:
        staged = Path(tmp)
        status, notes = "graded", []
        try:
            notes = stage_zip(path, staged) if path.is_file() else stage_folder(path, staged)
            if not any(staged.iterdir()):
                raise Rejected("no attention.py, lstm.py, param_count.py or elbo.py found")
            report = runner.grade(staged, (), staff=True, hide=hide, **grade_args)
            result = report.to_gradescope()
            missing = [m for m in rubric.MODULES if not (staged / f"{m}.py").exists()]
            if missing:
                status = "incomplete: missing " + ", ".join(f"{m}.py" for m in missing)
        except Rejected as exc:
            status = f"rejected: {exc}"
            result = {"score": 0.0, "max_score": 100, "tests": []}
        except Exception as exc:  # the grader itself failed on this one: record it, keep going
            status = f"error: {type(exc).__name__}: {exc}"
            result = {"score": 0.0, "max_score": 100, "tests": []}
    result.setdefault("extra_data", {}).update({"submission": ident, "status": status, "notes": notes})
    _atomic_write(result_path(out_dir, ident), json.dumps(result, indent=2) + "\n")
    return result


def write_gradebook(out_dir, idents):
    """Rebuild ``grades.csv`` from the results files of ``idents`` (atomically)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["id", *rubric.MODULES, "total", "status"])
    for ident in idents:
        try:
            result = json.loads(result_path(out_dir, ident).read_text())
        except (OSError, ValueError):
            writer.writerow([ident, *[""] * len(rubric.MODULES), "", "not graded yet"])
            continue
        per_module = {m: 0.0 for m in rubric.MODULES}
        for test in result.get("tests", []):
            module = test["tags"][0]
            per_module[module] = round(per_module[module] + test["score"], 2)
        writer.writerow([ident, *[f"{per_module[m]:g}" for m in rubric.MODULES], f"{result['score']:g}",
                         result.get("extra_data", {}).get("status", "graded")])
    _atomic_write(Path(out_dir) / "grades.csv", buf.getvalue())


def run(submissions_dir, out_dir, workers=None, out=sys.stderr, staff_key=None, **grade_args):
    """Grade every submission not yet graded; returns ``(graded_now, skipped)``.

    The examples come from a secret key (:func:`grader.staffkey.for_batch`): ``staff_key``,
    else ``GRADER_STAFF_KEY``, else ``OUT_DIR/.staff_key`` made on the first run; a resumed
    or repeated batch into the same ``OUT_DIR`` uses the same key and gives the same scores.
    Raises :class:`grader.staffkey.StaffKeyError` if ``OUT_DIR`` was graded with another key.

    On a GPU machine each worker owns one GPU (``CUDA_VISIBLE_DEVICES``), ``workers``
    defaults to the number of GPUs, and after each submission no process may still hold
    GPU memory (a leftover is killed and noted in the submission's results).
    """
    gpus = gpu.count()
    workers = workers or gpus or 2
    slots = queue.Queue()
    for slot in range(workers):
        slots.put(slot)
    baseline = set(gpu.compute_processes()) if gpus else set()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(out_dir, 0o700)
    staffkey.hide_this_process()  # before the key is read: no same-uid worker may read our memory
    grade_args["staff_key"] = staffkey.for_batch(out_dir, staff_key)
    entries = discover(submissions_dir)
    idents = [ident for ident, _ in entries]
    todo = [(i, p) for i, p in entries if not is_done(out_dir, i)]
    skipped = len(entries) - len(todo)
    lock = threading.Lock()
    write_gradebook(out_dir, idents)
    hide = [str(out_dir.resolve()), str(Path(submissions_dir).resolve())]
    start, done = time.monotonic(), 0
    _progress(out, done, len(todo), start, skipped)
    def task(ident, path):
        slot = slots.get()
        try:
            tag = f"grader-batch-{os.getpid()}-{slot}-{ident}"
            env = {"GRADER_SANDBOX_TAG": tag, "GRADER_SANDBOX_UID": str(61000 + slot)}  # one uid per slot
            if gpus:
                env["CUDA_VISIBLE_DEVICES"] = str(slot % gpus)
            result = grade_one(ident, path, out_dir, hide, env=env, **grade_args)
            if gpus:
                _check_gpu_released(out_dir, ident, result, baseline, tag)
            return result
        finally:
            slots.put(slot)

    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        futures = {pool.submit(task, i, p): i for i, p in todo}
        for future in as_completed(futures):
            future.result()
            with lock:
                done += 1
                write_gradebook(out_dir, idents)
                _progress(out, done, len(todo), start, skipped, futures[future])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # Ctrl-C: finish the ones running, drop the queue
    out.write("\n")
    return len(todo), skipped


def _tagged(pid, tag):
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return tag.encode() in fh.read()
    except OSError:
        return False


def _check_gpu_released(out_dir, ident, result, baseline, tag):
    """After a submission, none of its processes (those carrying its tag) may hold GPU
    memory: kill and note leftovers.  Other slots' processes are left alone."""
    leftover = {pid: mib for pid, mib in gpu.compute_processes().items() if pid not in baseline and _tagged(pid, tag)}
    if not leftover:
        return
    for pid in leftover:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    result["extra_data"].setdefault("notes", []).append(
        f"GPU memory still held after grading by {sorted(leftover)} ({sum(leftover.values())} MiB): killed")
    _atomic_write(result_path(out_dir, ident), json.dumps(result, indent=2) + "\n")


def _progress(out, done, total, start, skipped, last=""):
    width = 30
    filled = width * done // max(total, 1)
    elapsed = time.monotonic() - start
    eta = f"{elapsed / done * (total - done):.0f}s" if done else "?"
    text = (f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total} graded"
            f"{f', {skipped} already done' if skipped else ''}  ETA {eta}  {last[:24]:<24}")
    out.write(text)
    out.flush()
