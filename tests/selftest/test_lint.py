"""Whole-repository habits: ruff (lint and format) and mypy, configured in pyproject.toml.

They run inside the test command so that CI fails on a new finding, with the tool's own
report as the failure message.  The tools are pinned in requirements-dev.txt.
"""

import subprocess
import sys

import pytest

from grader import ROOT

COMMANDS = {
    "ruff check": ["ruff", "check", "."],
    "ruff format": ["ruff", "format", "--check", "--diff", "."],
    "mypy": ["mypy"],
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_repository_is_clean(name):
    """The tool finds nothing (configuration: pyproject.toml)."""
    tool, *args = COMMANDS[name]
    done = subprocess.run([sys.executable, "-m", tool, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    report = (done.stdout + done.stderr).strip()
    assert "No module named" not in report, f"{tool} is not installed: python -m pip install -r requirements-dev.txt"
    assert done.returncode == 0, f"`{' '.join(COMMANDS[name])}` found problems:\n{report[-6000:]}"
