"""The in-process adapter: runs a module in this process (the reference and trusted code only)."""

import itertools
import os
from pathlib import Path
from typing import Any

from grader.adapters.base import Implementation, ModuleHandle
from grader.execution import static_check
from grader.execution.calls import (
    MODULE_METHODS,
    Call,
    CallResult,
    construct,
    load_module,
    module_method,
    read_submission,
    resolve,
    run_call,
)


class InProcess(Implementation):
    """Runs the submission in this process: for the reference and trusted code only."""

    _ids = itertools.count(1)

    def __init__(self, module: str, path: str | os.PathLike[str]) -> None:
        super().__init__(module)
        self.path = Path(path).resolve()
        self.refuse(static_check.check_source(read_submission(self.path), self.public_names()))
        self.mod = load_module(self.path, module)
        self.objects: dict[int, tuple[Any, str]] = {}

    def invoke(self, call: Call) -> CallResult:
        if call.obj is None:
            self.check_allowed(call.name)
            target, obj, label = resolve(self.mod, self.module, call.name), None, self.label(call.name)
        else:
            obj, class_name = self.objects[call.obj]
            self.check_allowed(class_name)
            label = self.label(f"{class_name}.forward")
            target = obj
        return run_call(target, call, label, self.path, module_obj=obj)

    def construct(self, name: str, *args: Any, **kwargs: Any) -> ModuleHandle:
        self.check_allowed(name)
        obj = construct(resolve(self.mod, self.module, name), args, kwargs, self.label(f"{name}.__init__"), self.path)
        oid = next(self._ids)
        self.objects[oid] = (obj, name)
        return ModuleHandle(self, oid, name)

    def method(self, handle: ModuleHandle, name: str, *args: Any, **kwargs: Any) -> Any:
        if name not in MODULE_METHODS:
            raise ValueError(f"tests may not call {name} on a submitted module")
        obj, class_name = self.objects[handle.oid]
        self.check_allowed(class_name)
        return run_call(
            module_method(obj, name), Call(name, args, kwargs), self.label(f"{class_name}.{name}"), self.path
        ).outputs

    def close(self) -> None:
        self.objects.clear()
