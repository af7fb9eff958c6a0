"""The Gradescope autograder package: ``python -m grader gradescope OUT.zip``.

The zip holds what staff grading needs and nothing a student gets to see: the grader, the
exercise tests (hidden ones included), the reference and the catalog (for hints), a
secret staff key, and Gradescope's two scripts at its root:

* ``setup.sh`` - run once when Gradescope builds the image: a Python 3.11 virtual
  environment at ``/autograder/venv`` with the pinned requirements (torch's CPU build).
* ``run_autograder`` - run for every submission: ``python -m grader.release.gradescope run``
  stages the submitted module files out of ``/autograder/submission`` (top level or one
  folder down, as ``grader batch`` does), grades them in the sandbox with the hidden tests
  and the package's key, and writes ``/autograder/results/results.json`` (per-test
  ``visibility``: hidden tests ``after_published``, with their name and pass/fail only).

``AUTOGRADER_ROOT`` replaces ``/autograder`` (the self-test runs the package in a
temporary folder).  Student code runs in the sandbox's worker, which sees none of
``/autograder/source``: not the key, not the reference, not the tests.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import secrets
import stat
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grader import ROOT, staffkey
from grader.grading import batch

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

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image.
set -euo pipefail
cd /autograder/source
if ! command -v python3.11 >/dev/null; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y python3.11 python3.11-venv
fi
python3.11 -m venv /autograder/venv
/autograder/venv/bin/python -m pip install --upgrade pip
# torch's CPU build: a plain `pip install torch` would pull a multi-GB CUDA build
/autograder/venv/bin/python -m pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
/autograder/venv/bin/python -m pip install -r requirements.txt
chmod 600 staff_key
"""

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


def build(out_zip: str | os.PathLike[str], key: str | bytes | None = None, root: Path = ROOT) -> str:
    """Write the autograder zip to ``out_zip``; returns the key's fingerprint.

    ``key``: the staff key its examples are drawn from (default: ``GRADER_STAFF_KEY``, else a
    new random one).  Keep the zip as secret as the key: whoever has it can replay the
    staff examples.
    """
    secret = staffkey.normalize(key) if key is not None else staffkey.from_environment()
    if secret is None:
        secret = secrets.token_hex(32).encode()
    out = Path(out_zip)
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in package_files(root):
            _add(zf, rel, (root / rel).read_bytes(), 0o644)
        _add(zf, "setup.sh", SETUP_SH.encode(), 0o755)
        _add(zf, "run_autograder", RUN_AUTOGRADER.encode(), 0o755)
        _add(zf, KEY_FILE, secret + b"\n", 0o600)
    os.chmod(out, 0o600)
    return staffkey.fingerprint(secret)


def _add(zf: zipfile.ZipFile, name: str, data: bytes, mode: int) -> None:
    """Add ``name`` with a fixed date and ``mode``, so the same inputs give the same zip."""
    info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    info.external_attr = (stat.S_IFREG | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def run(root: str | os.PathLike[str]) -> int:
    """Grade ``ROOT/submission`` as staff grading does and write ``ROOT/results/results.json``.

    Never raises for a bad submission: a refused or empty upload, or a grader failure, is a
    results file with score 0 and an ``output`` that says why.
    """
    base = Path(root)
    results = base / "results"
    results.mkdir(parents=True, exist_ok=True)
    try:
        key = (base / "source" / KEY_FILE).read_bytes()
        with tempfile.TemporaryDirectory(prefix="grader-gradescope-") as tmp:
            result = batch.grade_one("submission", base / "submission", tmp, staff_key=key)
    except Exception as exc:  # the package itself is broken: say so on the student's page
        result = _failed(f"the autograder could not run: {type(exc).__name__}: {exc}")
    (results / "results.json").write_text(json.dumps(_for_gradescope(result), indent=2) + "\n", encoding="utf-8")
    return 0


def _failed(message: str) -> dict[str, Any]:
    """A results dict that gives 0 and says why."""
    return {"score": 0.0, "max_score": 100, "tests": [], "extra_data": {"status": f"error: {message}"}}


def _for_gradescope(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with a top-level ``output`` when the submission was not graded normally, and
    the grader's own stdout hidden from students."""
    status = result.get("extra_data", {}).get("status", "graded")
    notes = result.get("extra_data", {}).get("notes", [])
    if status != "graded":
        result["output"] = "\n".join([f"Submission {status}", *[f"- {n}" for n in notes]])
    result["stdout_visibility"] = "hidden"
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m grader.release.gradescope run ROOT`` (what ``run_autograder`` calls)."""
    parser = argparse.ArgumentParser(prog="python -m grader.release.gradescope")
    sub = parser.add_subparsers(dest="command", required=True)
    run_cmd = sub.add_parser("run", help="grade ROOT/submission into ROOT/results/results.json")
    run_cmd.add_argument("root", nargs="?", default="/autograder")
    args = parser.parse_args(argv)
    return run(args.root)


if __name__ == "__main__":
    sys.exit(main())
