"""The seam's base classes: :class:`Implementation` (one module of one submission, as the
tests see it) and :class:`ModuleHandle` (a constructed ``nn.Module`` driven from the tests).

This module imports none of its siblings; :func:`grader.adapters.open_implementation`
picks the concrete adapter.
"""

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch

from grader import rubric
from grader.execution import static_check
from grader.execution.calls import Call, CallResult
from grader.outcomes import ForbiddenCall


class Implementation(ABC):
    """One module (``attention``, ``lstm``, ...) of one submission, as the tests see it."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.refused: dict[str, str] = {}

    def public_names(self) -> list[str]:
        """The names the rubric grades in this module (what the static check looks at)."""
        return [name for ex in rubric.exercises_of(self.module) for name in ex.names]

    def refuse(self, findings: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """Take the static check's ``findings`` (``{name: [finding, ...]}``): every public
        name of an exercise with a flagged name is refused from now on, with a message
        naming the forbidden call and the student's line."""
        for ex in rubric.exercises_of(self.module):
            flagged = [(name, findings[name]) for name in ex.names if findings.get(name)]
            if not flagged:
                continue
            lines = [static_check.describe(name, f) for name, found in flagged for f in found]
            text = f"{ex.id}: {lines[0]}" + "".join(f"\n  also: {line}" for line in lines[1:4])
            for name in ex.names:
                self.refused[name] = text

    def check_allowed(self, name: str) -> None:
        """Raise :class:`ForbiddenCall` when public ``name`` was refused by the static check."""
        text = self.refused.get(name)
        if text is not None:
            raise ForbiddenCall(text)

    def label(self, name: str) -> str:
        """``'attention.sdpa: scaled_dot_product_attention'``: how messages name a call."""
        top = name.split(".", 1)[0]
        exercise = rubric.exercise_for_name(self.module, top)
        return f"{exercise.id}: {name}" if exercise else f"{self.module}.{name}"

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call public function ``name`` and return its (sanitized) outputs."""
        return self.invoke(Call(name, args, kwargs)).outputs

    @abstractmethod
    def invoke(self, call: Call) -> CallResult:
        """Run a :class:`grader.execution.Call`; return a :class:`CallResult`."""

    @abstractmethod
    def construct(self, name: str, *args: Any, **kwargs: Any) -> "ModuleHandle":
        """Instantiate public class ``name``; return a :class:`ModuleHandle`."""

    @abstractmethod
    def method(self, handle: "ModuleHandle", name: str, *args: Any, **kwargs: Any) -> Any:
        """Call one of :data:`MODULE_METHODS` on a constructed object."""

    def close(self) -> None:  # noqa: B027 - optional hook: an implementation that holds nothing keeps it
        """Release whatever the implementation holds (objects, processes)."""


class Driver(Protocol):
    """What a :class:`ModuleHandle` drives: an :class:`Implementation`, or a wrapper with
    the same two verbs (the recorder of :mod:`grader.testing.diagnose`)."""

    def invoke(self, call: Call) -> CallResult: ...

    def method(self, handle: "ModuleHandle", name: str, *args: Any, **kwargs: Any) -> Any: ...


class ModuleHandle:
    """A constructed ``nn.Module`` of the submission, driven from the tests."""

    def __init__(self, impl: Driver, oid: Any, class_name: str) -> None:
        self.impl, self.oid, self.class_name = impl, oid, class_name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the module's forward; return its outputs."""
        return self.invoke(Call("forward", args, kwargs)).outputs

    def invoke(self, call: Call) -> CallResult:
        """Run forward as ``call`` describes (gradients include the parameters')."""
        call.obj = self.oid
        return self.impl.invoke(call)

    def state_dict(self) -> dict[str, Any]:
        """The module's ``state_dict`` as plain tensors."""
        return self.impl.method(self, "state_dict")

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Load ``state`` strictly (missing or unexpected keys are an error)."""
        self.impl.method(self, "load_state_dict", state)

    def to(self, dtype: torch.dtype | None = None, device: str | torch.device | None = None) -> "ModuleHandle":
        """Move or cast the module's parameters in place."""
        self.impl.method(self, "to", device=device, dtype=dtype)
        return self
