"""The one seam through which every test reaches a student's code.

Tests never import a submission.  They receive an :class:`Implementation` (one module of
one submission) and use four verbs: :meth:`Implementation.call` a function,
:meth:`Implementation.invoke` it with gradients or an in-place check,
:meth:`Implementation.construct` an ``nn.Module`` and drive it through a
:class:`ModuleHandle` (``state_dict``, ``load_state_dict``, ``to``, forward, gradients).
Only plain tensors and Python values cross the seam, so the same tests grade the code
in-process, in an isolated worker process, or from a notebook's exported code.

Both adapters also enforce the static forbidden-call check (:mod:`grader.execution.static_check`):
a call, construction or method of a public name whose exercise reaches a forbidden
implementation is refused with :class:`grader.outcomes.ForbiddenCall`, so every test of
that exercise fails and the others are unaffected.

Modules: :mod:`~grader.adapters.base` (the base classes, importing none of their siblings),
:mod:`~grader.adapters.inprocess` and :mod:`~grader.adapters.sandboxed`; this package's
:func:`open_implementation` is the only factory and imports the adapter it returns lazily;
:mod:`~grader.adapters.zygote` starts the sandbox's zygote (no torch: the runner uses it).
"""

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from grader.adapters.base import Implementation, ModuleHandle

__all__ = ["Implementation", "ModuleHandle", "open_implementation"]


def __getattr__(name: str) -> Any:
    """``Implementation`` and ``ModuleHandle``, imported on first use: the package itself
    imports no torch, so the runner can start the sandbox's zygote (:mod:`.zygote`) at once."""
    if name in ("Implementation", "ModuleHandle"):
        from grader.adapters import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_implementation(submission: str | os.PathLike[str], module: str, kind: str = "inprocess") -> "Implementation":
    """The :class:`Implementation` of ``module`` in the ``submission`` folder.

    Raises :class:`grader.outcomes.SubmissionImportError` when the file does not import.
    """
    path = Path(submission) / f"{module}.py"
    if kind == "inprocess":
        from grader.adapters.inprocess import InProcess

        return InProcess(module, path)
    if kind == "sandbox":
        from grader.adapters.sandboxed import Sandboxed

        return Sandboxed(module, path)
    raise ValueError(f"unknown adapter {kind!r}")
