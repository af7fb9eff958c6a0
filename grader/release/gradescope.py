"""The Gradescope autograder package: ``python -m grader gradescope OUT.zip``.

The zip holds what staff grading needs and nothing a student gets to see: the grader, the
exercise tests (hidden ones included), the reference and the catalog (for hints), a
secret staff key, and Gradescope's two scripts at its root:

* ``setup.sh`` - run once, as root, when Gradescope builds the image (Ubuntu 22.04 or
  24.04): a virtual environment at ``/autograder/venv`` on the image's Python 3.11+ with a
  pinned pip, torch's CPU build and the pinned requirements; then the package's files
  (``/autograder/source``: the reference, the hidden tests, the key) are made root's alone.
* ``run_autograder`` - run for every submission: ``python -m grader.release.gradescope run``
  stages the submitted module files (or notebooks) out of ``/autograder/submission`` (top
  level or one folder down, as ``grader batch`` does), grades them in the sandbox with the
  hidden tests and the package's key, writes ``/autograder/results/results.json`` (per-test
  ``visibility``: hidden tests ``after_published``, with their name and pass/fail only) and
  prints a score table (Gradescope's "Autograder Output", for instructors).

Gradescope's containers refuse namespaces (Docker's default seccomp profile, no
``CAP_SYS_ADMIN``): the worker then relies on Landlock, or on its own uid and the file modes
``setup.sh`` set.  Before grading, the run checks that the worker could open none of the
staff files (:mod:`grader.grading.isolation`); where it could, nothing is graded and
``results.json`` gives 0 with the reason, unless the package was built with
``--weak-isolation``.  ``python -m grader gradescope try ZIP SUBMISSION`` runs a package
locally in Gradescope's layout, optionally with namespaces refused as there.

``AUTOGRADER_ROOT`` replaces ``/autograder`` (the self-test runs the package in a
temporary folder).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grader import ROOT, staffkey
from grader.grading import batch, isolation
from grader.notebooks import cells

#: What the package holds, relative to the repository (``fnmatch`` globs: ``*`` spans folders).
INCLUDE = (
    "grader/*.py",
    "grader/mistakes/*.toml",
    "tests/conftest.py",
    "tests/exercises/*.py",
    "tests/hidden/*.py",
    "solutions/*.py",
    "pyproject.toml",
    "requirements.txt",
)
EXCLUDE = ("grader/authoring/*", "*/__pycache__/*", "*.pyc")
KEY_FILE = "staff_key"
#: What only the trusted side may read: mode 600 in the zip (``setup.sh`` sets the modes of
#: everything under ``/autograder/source`` anyway).
STAFF_ONLY = ("solutions/*", "tests/hidden/*", "grader/mistakes/*", KEY_FILE)
#: The pip that ``setup.sh`` installs first (then every other pin is resolved the same way).
PIP = "pip==26.3"
#: The first line of ``run_autograder`` when the package accepts weaker isolation.
WEAK_LINE = f"export {isolation.WEAK_ENV}=1  # built with --weak-isolation\n"

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (Ubuntu 22.04 or 24.04).
set -euo pipefail
cd /autograder/source
# A Python 3.11 or newer with venv: the image's own, else its packaged one (3.11 on 22.04, 3.12 on 24.04).
PY=""
for v in 3.13 3.12 3.11; do
    if command -v "python$v" >/dev/null && "python$v" -c "import ensurepip, venv" 2>/dev/null; then
        PY="python$v"
        break
    fi
done
if [ -z "$PY" ]; then
    . /etc/os-release
    case "${VERSION_ID:-}" in
        22.04) v=3.11 ;;
        24.04) v=3.12 ;;
        *) v=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])') ;;
    esac
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "python$v" "python$v-venv"
    PY="python$v"
fi
"$PY" -m venv /autograder/venv
# Ubuntu 22.04's python3.11 is 3.11.0rc1: it lacks sys.get_int_max_str_digits (3.11.0), which torch._dynamo calls
if ! /autograder/venv/bin/python -c 'import sys; sys.get_int_max_str_digits' 2>/dev/null; then
    purelib=$(/autograder/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
    echo "import sys; sys.__dict__.setdefault('get_int_max_str_digits', lambda: 0); \
sys.__dict__.setdefault('set_int_max_str_digits', lambda maxdigits: None)" > "$purelib/int_max_str_digits.pth"
fi
/autograder/venv/bin/python -m pip install --upgrade "@PIP@"
# torch's CPU build: a plain `pip install torch` would pull a multi-GB CUDA build
/autograder/venv/bin/python -m pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
/autograder/venv/bin/python -m pip install -r requirements.txt
# An image whose torch cannot start (its sandbox would crash on every test) fails here, not on every student.
/autograder/venv/bin/python -c "import torch, torch._dynamo"
# The reference, the hidden tests and the key: root's alone (the sandbox's worker runs as another uid).
/autograder/venv/bin/python -m grader.release.gradescope harden /autograder/source
""".replace("@PIP@", PIP)

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission; it writes $AUTOGRADER_ROOT/results/results.json.
set -uo pipefail
root="${AUTOGRADER_ROOT:-/autograder}"
python="${AUTOGRADER_PYTHON:-$root/venv/bin/python}"
cd "$root/source" && exec "$python" -m grader.release.gradescope run "$root"
"""


def package_files(root: Path = ROOT) -> list[str]:
    """The repository files the package holds (relative POSIX paths, sorted)."""
    found = set()
    for path in root.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        rel = path.relative_to(root).as_posix()
        if any(fnmatch.fnmatch(rel, g) for g in INCLUDE) and not any(fnmatch.fnmatch(rel, g) for g in EXCLUDE):
            found.add(rel)
    return sorted(found)


def build(
    out_zip: str | os.PathLike[str], key: str | bytes | None = None, root: Path = ROOT, weak_isolation: bool = False
) -> tuple[str, Path | None]:
    """Write the autograder zip to ``out_zip``; ``(key fingerprint, new key file or None)``.

    ``key``: the staff key its examples are drawn from (default: ``GRADER_STAFF_KEY``).  Without
    one, a new random key is made and also written to ``OUT.zip.staff_key`` (mode 600), the
    path returned: keep it to grade the same examples with ``batch``.  A key with too little
    entropy is refused (:func:`grader.staffkey.require_strong`).  ``weak_isolation``: the
    package grades even where its sandbox cannot keep staff files from the worker (noted in
    each result).  Keep the zip as secret as the key: whoever has it can replay the staff
    examples.
    """
    secret = staffkey.normalize(key) if key is not None else staffkey.from_environment()
    out = Path(out_zip)
    new_key: Path | None = None
    if secret is None:
        secret = secrets.token_hex(32).encode()
        new_key = out.with_name(out.name + ".staff_key")
    staffkey.require_strong(secret)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in package_files(root):
            staff_only = any(fnmatch.fnmatch(rel, g) for g in STAFF_ONLY)
            _add(zf, rel, (root / rel).read_bytes(), 0o600 if staff_only else 0o644)
        _add(zf, "setup.sh", SETUP_SH.encode(), 0o755)
        script = (
            RUN_AUTOGRADER.replace("set -uo pipefail\n", "set -uo pipefail\n" + WEAK_LINE)
            if weak_isolation
            else RUN_AUTOGRADER
        )
        _add(zf, "run_autograder", script.encode(), 0o755)
        _add(zf, KEY_FILE, secret + b"\n", 0o600)
    os.chmod(out, 0o600)
    if new_key is not None:
        fd = os.open(new_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secret + b"\n")
    return staffkey.fingerprint(secret), new_key


def harden(source: str | os.PathLike[str]) -> None:
    """Make everything under ``source`` (the unpacked package) readable by its owner (root) only."""
    top = Path(source)
    for base, dirs, files in os.walk(top):
        for name in dirs + files:
            path = Path(base, name)
            if not path.is_symlink():
                path.chmod(path.stat().st_mode & 0o700)
    top.chmod(top.stat().st_mode & 0o700)


def _add(zf: zipfile.ZipFile, name: str, data: bytes, mode: int) -> None:
    """Add ``name`` with a fixed date and ``mode``, so the same inputs give the same zip."""
    info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    info.external_attr = (stat.S_IFREG | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def run(root: str | os.PathLike[str]) -> int:
    """Grade ``ROOT/submission`` as staff grading does, write ``ROOT/results/results.json`` and
    print a score table.

    Never raises for a bad submission: a refused or empty upload, isolation that cannot keep
    the staff files from the worker, or a grader failure, is a results file with score 0 and
    an ``output`` that says why.
    """
    base = Path(root)
    results = base / "results"
    results.mkdir(parents=True, exist_ok=True)
    try:
        key = (base / "source" / KEY_FILE).read_bytes()
        isolation.require([base / "source"])  # refused: nothing is graded
        with tempfile.TemporaryDirectory(prefix="grader-gradescope-") as tmp:
            upload, notes = _upload(base / "submission", Path(tmp) / "upload")
            result = batch.grade_one("submission", upload, Path(tmp) / "out", staff_key=key)
            result.setdefault("extra_data", {}).setdefault("notes", [])[:0] = notes
            result["extra_data"]["source"] = {"path": str(base / "submission"), "name": "submission", "kind": "folder"}
    except isolation.IsolationRefused as exc:
        result = _failed(
            f"not graded: the autograder cannot isolate submissions on this machine (a problem for the course "
            f"staff, not in your code). {exc}",
            "refused",
        )
    except Exception as exc:  # the package itself is broken: say so on the student's page
        result = _failed(f"the autograder could not run: {type(exc).__name__}: {exc}")
    result = _for_gradescope(result)
    (results / "results.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(score_table(result))
    return 0


def _upload(submission: Path, into: Path) -> tuple[Path, list[str]]:
    """The upload as a folder of module files (:func:`grader.notebooks.cells.stage_modules`):
    its ``.py`` files as they are, and a module submitted only as a notebook
    (``<module>.ipynb``) read out of its solution cells as ``python -m grader check`` does.
    ``(folder, notes)``."""
    into.mkdir(parents=True)
    return into, cells.stage_modules(submission, into)


def _failed(message: str, status: str = "error") -> dict[str, Any]:
    """A results dict that gives 0 and says why."""
    return {"score": 0.0, "max_score": 100, "tests": [], "extra_data": {"status": f"{status}: {message}"}}


def _for_gradescope(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with a top-level ``output`` when the submission was not graded normally, and
    the grader's own stdout hidden from students."""
    status = result.get("extra_data", {}).get("status", "graded")
    notes = result.get("extra_data", {}).get("notes", [])
    if status != "graded":
        result["output"] = "\n".join([f"Submission {status}", *[f"- {n}" for n in notes]])
    result["stdout_visibility"] = "hidden"
    return result


def score_table(result: dict[str, Any]) -> str:
    """The results as a table for the Autograder Output: each test's score, visibility and status."""
    tests = result.get("tests", [])
    width = max([len(t.get("name", "")) for t in tests] + [len("TOTAL"), 4])
    lines = [f"{'test':<{width}}  {'score':>15}  {'visibility':<15}  status", "-" * (width + 44)]
    for t in tests:
        points = f"{t.get('score', 0):g} / {t.get('max_score', 0):g}"
        lines.append(
            f"{t.get('name', ''):<{width}}  {points:>15}  {t.get('visibility', ''):<15}  {t.get('status', '')}"
        )
    lines.append("-" * (width + 44))
    lines.append(f"{'TOTAL':<{width}}  {result.get('score', 0):g} / {result.get('max_score', 0):g}".rstrip())
    status = result.get("extra_data", {}).get("status", "graded")
    lines.append(f"status: {status}")
    lines += [f"note: {n}" for n in result.get("extra_data", {}).get("notes", [])]
    return "\n".join(lines)


def try_package(
    package: str | os.PathLike[str],
    submission: str | os.PathLike[str],
    refuse_namespaces: bool = False,
    landlock: bool = True,
    keep: str | os.PathLike[str] | None = None,
) -> tuple[dict[str, Any], str]:
    """Run ``package`` on ``submission`` (a folder, a zip or one file) in Gradescope's layout, here:
    the zip unpacked into ``source/`` and hardened as ``setup.sh`` does, the upload in
    ``submission/``, ``run_autograder`` run with this Python.  ``refuse_namespaces``: under the
    seccomp filter of a Docker container without ``CAP_SYS_ADMIN`` (``landlock=False``: no
    Landlock either, as with an older kernel or runtime).  ``keep``: the folder to build the
    layout in (default: a temporary one, removed).  ``(results.json, what run_autograder printed)``."""
    from grader.execution import seccomp

    base = Path(keep) if keep is not None else Path(tempfile.mkdtemp(prefix="grader-gradescope-try-"))
    try:
        base.mkdir(parents=True, exist_ok=True)
        base.chmod(0o755)
        with zipfile.ZipFile(package) as zf:
            for info in zf.infolist():
                target = base / "source" / info.filename
                if info.is_dir() or ".." in Path(info.filename).parts or info.filename.startswith("/"):
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(info))
                target.chmod(stat.S_IMODE(info.external_attr >> 16) or 0o644)
        harden(base / "source")
        upload = Path(submission)
        (base / "submission").mkdir()
        if upload.is_dir():
            shutil.copytree(upload, base / "submission", dirs_exist_ok=True, symlinks=True)
        elif zipfile.is_zipfile(upload):
            shutil.unpack_archive(upload, base / "submission", "zip")
        else:
            shutil.copyfile(upload, base / "submission" / upload.name)
        env = {k: v for k, v in os.environ.items() if k not in (staffkey.ENV, isolation.WEAK_ENV)}
        env.update(AUTOGRADER_ROOT=str(base), AUTOGRADER_PYTHON=sys.executable)
        done = subprocess.run(
            ["bash", str(base / "source" / "run_autograder")],
            env=env,
            capture_output=True,
            text=True,
            preexec_fn=(lambda: seccomp.refuse_namespaces(landlock)) if refuse_namespaces else None,
            timeout=3600,
        )
        results_file = base / "results" / "results.json"
        if not results_file.is_file():
            raise RuntimeError(f"run_autograder wrote no results.json (exit {done.returncode}): {done.stderr[-2000:]}")
        return json.loads(results_file.read_text()), done.stdout
    finally:
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m grader.release.gradescope run ROOT`` (what ``run_autograder`` calls) and
    ``harden SOURCE`` (what ``setup.sh`` calls)."""
    parser = argparse.ArgumentParser(prog="python -m grader.release.gradescope")
    sub = parser.add_subparsers(dest="command", required=True)
    run_cmd = sub.add_parser("run", help="grade ROOT/submission into ROOT/results/results.json")
    run_cmd.add_argument("root", nargs="?", default="/autograder")
    harden_cmd = sub.add_parser("harden", help="make SOURCE (the unpacked package) readable by its owner only")
    harden_cmd.add_argument("source", nargs="?", default="/autograder/source")
    args = parser.parse_args(argv)
    if args.command == "harden":
        harden(args.source)
        return 0
    return run(args.root)


if __name__ == "__main__":
    sys.exit(main())
