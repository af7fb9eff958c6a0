"""The seam's base classes: :class:`Implementation` (one module of one submission, as the
tests see it) and :class:`ModuleHandle` (a constructed ``nn.Module`` driven from the tests).

This module imports none of its siblings; :func:`grader.adapters.open_implementation`
picks the concrete adapter.
"""

from abc import ABC, abstractmethod

from grader import rubric
from grader.execution import static_check
from grader.execution.calls import Call
from grader.outcomes import ForbiddenCall


class Implementation(ABC):
    """One module (``attention``, ``lstm``, ...) of one submission, as the tests see it."""

    def __init__(self, module):
        self.module = module
        self.refused = {}

    def public_names(self):
        """The names the rubric grades in this module (what the static check looks at)."""
        return [name for ex in rubric.exercises_of(self.module) for name in ex.names]

    def refuse(self, findings):
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

    def check_allowed(self, name):
        """Raise :class:`ForbiddenCall` when public ``name`` was refused by the static check."""
        text = self.refused.get(name)
        if text is not None:
            raise ForbiddenCall(text)

    def label(self, name):
        """``'attention.sdpa: scaled_dot_product_attention'``: how messages name a call."""
        top = name.split(".", 1)[0]
        exercise = rubric.exercise_for_name(self.module, top)
        return f"{exercise.id}: {name}" if exercise else f"{self.module}.{name}"

    def call(self, name, *args, **kwargs):
        """Call public function ``name`` and return its (sanitized) outputs."""
        return self.invoke(Call(name, args, kwargs)).outputs

    @abstractmethod
    def invoke(self, call):
        """Run a :class:`grader.execution.Call`; return a :class:`CallResult`."""

    @abstractmethod
    def construct(self, name, *args, **kwargs):
        """Instantiate public class ``name``; return a :class:`ModuleHandle`."""

    @abstractmethod
    def method(self, handle, name, *args, **kwargs):
        """Call one of :data:`MODULE_METHODS` on a constructed object."""

    def close(self):  # noqa: B027 - optional hook: an implementation that holds nothing keeps it
        """Release whatever the implementation holds (objects, processes)."""


class ModuleHandle:
    """A constructed ``nn.Module`` of the submission, driven from the tests."""

    def __init__(self, impl, oid, class_name):
        self.impl, self.oid, self.class_name = impl, oid, class_name

    def __call__(self, *args, **kwargs):
        """Run the module's forward; return its outputs."""
        return self.invoke(Call("forward", args, kwargs)).outputs

    def invoke(self, call):
        """Run forward as ``call`` describes (gradients include the parameters')."""
        call.obj = self.oid
        return self.impl.invoke(call)

    def state_dict(self):
        """The module's ``state_dict`` as plain tensors."""
        return self.impl.method(self, "state_dict")

    def load_state_dict(self, state):
        """Load ``state`` strictly (missing or unexpected keys are an error)."""
        self.impl.method(self, "load_state_dict", state)

    def to(self, dtype=None, device=None):
        """Move or cast the module's parameters in place."""
        self.impl.method(self, "to", device=device, dtype=dtype)
        return self
