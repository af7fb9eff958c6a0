"""The hidden reference solutions, loaded for the tests (trusted code only)."""

import functools
import types

from grader import ROOT
from grader.execution.calls import load_module


@functools.cache
def load(module: str) -> types.ModuleType:
    """The reference module ``solutions/<module>.py``, imported under a private name."""
    return load_module(ROOT / "solutions" / f"{module}.py", f"reference_{module}")
