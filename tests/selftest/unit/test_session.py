"""The grading runner's test process (``python -m grader.testing.session``): pytest's exit
code, no garbage collection until the tests are collected, exit handlers run at the end."""

import os
import subprocess
import sys

import pytest

from grader import ROOT

PROBE = """
import atexit, gc, os

COLLECTING = gc.isenabled()

def test_collection_ran_without_the_collector_and_the_tests_run_with_it():
    assert not COLLECTING
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0
    atexit.register(lambda: open(os.environ["EXIT_MARK"], "w").close())
"""


def _session(tmp_path, source: str | None) -> subprocess.CompletedProcess[str]:
    if source is not None:
        (tmp_path / "test_probe.py").write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "grader.testing.session", str(tmp_path), "-q", "-p", "no:cacheprovider"]
        + ["--rootdir", str(tmp_path), "-c", os.devnull],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(ROOT), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", EXIT_MARK=str(tmp_path / "x")),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_collector_is_off_while_collecting_and_exit_handlers_run(tmp_path):
    proc = _session(tmp_path, PROBE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "x").exists(), "an atexit handler did not run"
    assert "1 passed" in proc.stdout


@pytest.mark.parametrize(
    ("source", "code"),
    [("def test_no():\n    assert False\n", 1), (None, 5), ("import nonexistent_module_x\n", 2)],
    ids=["failed", "nothing collected", "collection error"],
)
def test_the_exit_code_is_pytests(tmp_path, source, code):
    proc = _session(tmp_path, source)
    assert proc.returncode == code, proc.stdout + proc.stderr
