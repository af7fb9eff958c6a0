"""Loads the grader's pytest plugin (options, markers, deterministic hypothesis) and sorts
the self-tests into two tiers.

``tests/selftest/unit/`` is the fast tier (``python -m pytest -m "not slow"``, under 30 s):
unit tests of the grader's modules.  Everything else is marked ``slow``: the exercise tests
against the reference and the end-to-end self-tests (child pytest runs, sandbox workers,
the catalog, lint and types).  The README's test command runs both.
"""

from pathlib import Path

import pytest

pytest_plugins = ["grader.testing.plugin"]

UNIT = Path(__file__).resolve().parent / "selftest" / "unit"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test outside ``tests/selftest/unit/`` as ``slow``."""
    for item in items:
        if UNIT not in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.slow)
