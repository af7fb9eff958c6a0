"""The one seam through which every test reaches a student's code.

Tests never import a submission.  They receive an :class:`Implementation` (one module of
one submission) and use four verbs: :meth:`Implementation.call` a function,
:meth:`Implementation.invoke` it with gradients or an in-place check,
:meth:`Implementation.construct` an ``nn.Module`` and drive it through a
:class:`ModuleHandle` (``state_dict``, ``load_state_dict``, ``to``, forward, gradients).
Only plain tensors and Python values cross the seam, so the same tests grade the code
in-process, in an isolated worker process, or from a notebook's exported code.

Both adapters also enforce the static forbidden-call check (:mod:`grader.static_check`):
a call, construction or method of a public name whose exercise reaches a forbidden
implementation is refused with :class:`grader.errors.ForbiddenCall`, so every test of
that exercise fails and the others are unaffected.
"""

import itertools
from abc import ABC, abstractmethod
from pathlib import Path

from grader import rubric, static_check
from grader.errors import ForbiddenCall
from grader.execution import (MODULE_METHODS, Call, construct, load_module, module_method, read_submission, resolve,
                              run_call)


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

    def close(self):
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


class InProcess(Implementation):
    """Runs the submission in this process: for the reference and trusted code only."""

    _ids = itertools.count(1)

    def __init__(self, module, path):
        super().__init__(module)
        self.path = Path(path).resolve()
        self.refuse(static_check.check_source(read_submission(self.path), self.public_names()))
        self.mod = load_module(self.path, module)
        self.objects = {}

    def invoke(self, call):
        if call.obj is None:
            self.check_allowed(call.name)
            target, obj, label = resolve(self.mod, self.module, call.name), None, self.label(call.name)
        else:
            obj, class_name = self.objects[call.obj]
            self.check_allowed(class_name)
            label = self.label(f"{class_name}.forward")
            target = obj
        return run_call(target, call, label, self.path, module_obj=obj)

    def construct(self, name, *args, **kwargs):
        self.check_allowed(name)
        obj = construct(resolve(self.mod, self.module, name), args, kwargs, self.label(f"{name}.__init__"), self.path)
        oid = next(self._ids)
        self.objects[oid] = (obj, name)
        return ModuleHandle(self, oid, name)

    def method(self, handle, name, *args, **kwargs):
        if name not in MODULE_METHODS:
            raise ValueError(f"tests may not call {name} on a submitted module")
        obj, class_name = self.objects[handle.oid]
        self.check_allowed(class_name)
        return run_call(module_method(obj, name), Call(name, args, kwargs),
                        self.label(f"{class_name}.{name}"), self.path).outputs

    def close(self):
        self.objects.clear()


def open_implementation(submission, module, kind="inprocess"):
    """The :class:`Implementation` of ``module`` in the ``submission`` folder.

    Raises :class:`grader.errors.SubmissionImportError` when the file does not import.
    """
    path = Path(submission) / f"{module}.py"
    if kind == "inprocess":
        return InProcess(module, path)
    if kind == "sandbox":
        from grader.sandbox.client import Sandboxed
        return Sandboxed(module, path)
    raise ValueError(f"unknown adapter {kind!r}")
