"""The hidden reference solutions, loaded for the tests (trusted code only).

Only tests marked ``@pytest.mark.oracle("reference")`` reach them, through the plugin's
``reference`` fixture (:mod:`grader.testing.plugin`), and the catalog's hints
(:mod:`grader.testing.diagnose`).  A student release has no ``solutions/``: nothing
imports this module at the top of a test file, so every test file imports without it.
"""

import functools
import types
from pathlib import Path

from grader import ROOT
from grader.execution.calls import load_module

#: Where the reference solutions live (absent from a student release).
SOLUTIONS = ROOT / "solutions"


def path(module: str) -> Path:
    """The file of the reference of ``module``: ``solutions/<module>.py``."""
    return SOLUTIONS / f"{module}.py"


def available(module: str) -> bool:
    """Whether this checkout holds the reference of ``module`` (a student release does not)."""
    return path(module).is_file()


@functools.cache
def load(module: str) -> types.ModuleType:
    """The reference module ``solutions/<module>.py``, imported under a private name."""
    return load_module(path(module), f"reference_{module}")
