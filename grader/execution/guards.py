"""Trip-wires for the library calls an exercise must not use: the runtime half of the check.

The static half (:mod:`grader.execution.static_check`) reads the submission before any of it runs
and is what the grade rests on; this half catches, while a student's function runs
(:func:`forbid_library_solutions`), a call that reaches a forbidden implementation by a
route the source does not show:

* a :class:`torch.overrides.TorchFunctionMode` sees every torch call; one whose name is
  the library's own implementation of an exercise (``scaled_dot_product_attention`` and
  its private kernels, ``multi_head_attention_forward``, the ``lstm``/``gru`` kernels, and
  ``torch.ops.aten`` overloads of them) trips;
* the Python-level entry points to those implementations are swapped for traps, and put
  back after the call: ``F.scaled_dot_product_attention``, ``F.multi_head_attention_forward``,
  ``torch._C._nn.scaled_dot_product_attention``, ``torch.lstm_cell``/``gru_cell``/``lstm``/``gru``
  and the other kernels in ``torch``, ``torch._VF``, ``torch._C._VariableFunctions`` and
  ``torch.ops.aten``, ``kl_divergence`` and every private helper of
  ``torch.distributions.kl`` (``_kl_normal_normal``, ``_dispatch_kl``, ``_KL_REGISTRY``, ...),
  so that a call made with torch-function handling switched off is seen too;
* the switches (``torch._C.DisableTorchFunction``, ``DisableTorchFunctionSubclass``,
  ``_pop_torch_function_stack``, ``_set_torch_function_state``,
  ``_disabled_torch_function_impl``, ``torch.overrides._pop_mode_temporarily``, ...) are
  swapped for wrappers that let torch's own code through and trip when anything else
  calls them;
* after the call the mode must still be on top of torch's mode stack and
  torch-function handling on; the stack and the state are put back either way.

Whatever trips raises :class:`ForbiddenCall` naming the call and the student's line, and
is raised again after the call if the student's code caught it.  A deterrent, not a
security boundary: code in the same process could undo any of it (the static check,
taken before the student's code runs, is the part that holds).  Cost: about 11 us per call
(the swaps), plus about 2 us per torch op inside it (the mode), measured with
``python benchmarks/guard_overhead.py``.
"""

import os
import sys
import types
from collections.abc import Callable, Sequence
from typing import Any, Literal, NoReturn

import torch
import torch.distributions as _dist
import torch.distributions.kl as _kl
import torch.nn.functional as _F
import torch.overrides as _overrides
from torch.overrides import TorchFunctionMode

from grader.outcomes import ForbiddenCall

_C = torch._C
# Captured now, before any student code runs: the guard never looks these up again.
_push, _pop = _C._push_on_torch_function_stack, _C._pop_torch_function_stack
_depth, _stack_at = _C._len_torch_function_stack, _C._get_function_stack_at
# private names that torch's type stubs do not list (so mypy cannot know them)
_get_state, _set_state = _C._get_torch_function_state, _C._set_torch_function_state  # type: ignore[attr-defined]
_STATE = _C._TorchFunctionState  # type: ignore[attr-defined]
_ENABLED, _ALL_DISABLED = _STATE.ENABLED, _STATE.ALL_DISABLED
_VARIABLE_FUNCTIONS = _C._VariableFunctions

SDPA = "torch.nn.functional.scaled_dot_product_attention"
MHA = "torch.nn.MultiheadAttention / F.multi_head_attention_forward"
KL = "torch.distributions.kl_divergence"
#: (fragment of a torch function's name, what the student called), the first match wins.
FORBIDDEN_FRAGMENTS = (
    ("multi_head_attention", MHA),
    ("attention", SDPA),  # scaled_dot_product_attention and its private kernels (_flash_attention_..., ...)
    ("lstm_cell", "torch.nn.LSTMCell"),
    ("lstm", "torch.nn.LSTM"),
    ("gru_cell", "torch.nn.GRUCell"),
    ("gru", "torch.nn.GRU"),
)
#: The private helpers of torch.distributions.kl trapped at run time: those that can compute a
#: Gaussian KL (the static check flags every private name of the module).
GAUSSIAN_KL = ("normal", "independent", "expfamily")
#: Switches that turn torch-function handling (and so the mode) off: (owner, name).
SWITCHES = (
    (torch, "DisableTorchFunction"),
    (torch, "DisableTorchFunctionSubclass"),
    (_C, "DisableTorchFunction"),
    (_C, "DisableTorchFunctionSubclass"),
    (_C, "_pop_torch_function_stack"),
    (_C, "_set_torch_function_state"),
    (_C, "_disabled_torch_function_impl"),
    (_C, "_skip_one_hop_torch_function"),
    (_C, "_set_skip_next_torch_function"),
    (_overrides, "_pop_mode"),
    (_overrides, "_pop_mode_temporarily"),
    (_overrides, "_pop_torch_function_stack"),
)


def library_call(name: str) -> str | None:
    """What the torch function called ``name`` stands for when it is the library's own
    implementation of an exercise (``'torch.nn.LSTMCell'``), else ``None``."""
    name = name.lower().split(".", 1)[0]  # torch.ops overloads are named 'lstm_cell.default'
    for fragment, what in FORBIDDEN_FRAGMENTS:
        if fragment in name:
            return what
    return None


class _Call:
    """The guarded call in progress: what tripped, and the file whose lines to name."""

    __slots__ = ("found", "path")

    def __init__(self, path: str | None) -> None:
        self.found: list[str] = []
        self.path = path


_current: _Call | None = None


def _student_line(path: str | None) -> str:
    """``' (line 42)'``: the innermost line of the submission on the stack, if any."""
    if not path:
        return ""
    frame: types.FrameType | None = sys._getframe(2)
    line, hops = "", 0
    while frame is not None and hops < 500:
        if frame.f_code.co_filename == path:
            return f" (line {frame.f_lineno})"
        frame, hops = frame.f_back, hops + 1
    return line


def _trip(what: str, switch: bool = False) -> NoReturn:
    call = _current
    where = _student_line(call.path if call else None)
    if switch:
        text = f"uses {what}{where}, which switches off the grader's checks"
    else:
        text = f"calls {what}{where}, which this exercise asks you to write yourself"
    if call is not None:
        call.found.append(text)
    raise ForbiddenCall(text)


_TORCH_GLOBALS: set[int] = set()  # ids of the globals of torch's own modules seen calling a switch


def _from_torch(frame: types.FrameType) -> bool:
    space = frame.f_globals
    if id(space) in _TORCH_GLOBALS:
        return True
    name = space.get("__name__", "")
    if type(name) is str and (name == "torch" or name.startswith("torch.")):
        if getattr(sys.modules.get(name), "__dict__", None) is space:  # a module's globals live as long as it
            _TORCH_GLOBALS.add(id(space))
        return True
    return False


class _Watch(TorchFunctionMode):
    _verdicts: dict[str, str | None] = {}

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Sequence[type],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        name = getattr(func, "__name__", None)
        if type(name) is str:
            verdict: str | Literal[False] | None = self._verdicts.get(name, False)
            if verdict is False:
                verdict = library_call(name)
                if len(self._verdicts) < 20_000:
                    self._verdicts[name] = verdict
            if verdict:
                _trip(verdict)
        return func(*args, **(kwargs or {}))


class _Trap:
    """Stands in for a forbidden entry point during a call: calling it, or reading an
    attribute of it (``torch.ops.aten.lstm_cell.default``), trips."""

    __slots__ = ("what", "real")

    def __init__(self, what: str, real: Any = None) -> None:
        self.what, self.real = what, real

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        _trip(self.what)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        frame = sys._getframe(1)
        # torch importing one of its own modules lazily (the first meta op does) reads these
        # names at module level: reading is not calling, so it gets the real attribute
        if self.real is not None and frame.f_code.co_name == "<module>" and _from_torch(frame):
            return getattr(self.real, name)
        _trip(self.what)

    def __repr__(self) -> str:
        return f"<forbidden during grading: {self.what}>"


class _TrapDict(dict):
    """Stands in for ``_KL_REGISTRY`` / ``_KL_MEMOIZE``: an empty table whose every lookup trips."""

    def _trip(self, *_: Any, **__: Any) -> NoReturn:
        _trip(KL)

    __getitem__ = get = __contains__ = __iter__ = keys = values = items = copy = _trip


def _switch(real: Callable[..., Any], what: str) -> Callable[..., Any]:
    """Stands in for a switch: torch's own code gets the real one, anyone else trips."""

    def switch(*args: Any, **kwargs: Any) -> Any:
        if not _from_torch(sys._getframe(1)):
            _trip(what, switch=True)
        return real(*args, **kwargs)

    switch.__name__ = switch.__qualname__ = what.rsplit(".", 1)[-1]
    return switch


def _variable_functions() -> types.SimpleNamespace:
    """Stands in for ``torch._C._VariableFunctions`` (whose attributes cannot be swapped) and
    ``torch._VF.vf``: the same functions, with traps for the forbidden kernels."""
    space = types.SimpleNamespace()
    for name in dir(_VARIABLE_FUNCTIONS):
        if not name.startswith("__"):
            what = library_call(name)
            real = getattr(_VARIABLE_FUNCTIONS, name)
            setattr(space, name, _Trap(what, real) if what else real)
    return space


_Entry = tuple[dict[str, Any], dict[str, Any], dict[str, Any], list[str]]


def _plan() -> list[_Entry]:
    """``[(namespace dict, {name: trap}, {name: original}, [names absent before])]``."""
    spaces: dict[int, _Entry] = {}

    def put(owner: Any, name: str, trap: Any) -> None:
        space = vars(owner)
        entry = spaces.setdefault(id(space), (space, {}, {}, []))
        entry[1][name] = trap
        if name in space:
            entry[2][name] = space[name]
        else:
            entry[3].append(name)

    stand_in = _variable_functions()
    put(_C, "_VariableFunctions", stand_in)
    put(torch._VF, "vf", stand_in)  # torch._VF.lstm_cell (what nn.LSTMCell calls) reads torch._VF.vf
    for name in dir(_VARIABLE_FUNCTIONS):
        what = library_call(name)
        if not what or name.startswith("__"):
            continue
        if name in vars(torch):
            put(torch, name, _Trap(what, vars(torch)[name]))
        try:
            packet = getattr(torch.ops.aten, name)  # creates the op packet, so that it can be swapped
        except (AttributeError, RuntimeError):
            continue
        put(torch.ops.aten, name, _Trap(what, packet))
    for owner in (_F, _C._nn):
        for name in dir(owner):
            what = library_call(name)
            if what and callable(getattr(owner, name)) and not name.startswith("__"):
                put(owner, name, _Trap(what, getattr(owner, name)))
    for owner, name in SWITCHES:
        real = getattr(owner, name, None)
        if real is not None:
            put(owner, name, _switch(real, f"{owner.__name__}.{name}"))
    for name, value in list(vars(_kl).items()):
        if name in ("_KL_REGISTRY", "_KL_MEMOIZE"):
            put(_kl, name, _TrapDict())
        elif name in ("kl_divergence", "_dispatch_kl"):
            put(_kl, name, _Trap(KL))
        elif (
            name.startswith("_")
            and not name.startswith("__")
            and callable(value)
            and (name.startswith("_batch") or any(kind in name for kind in GAUSSIAN_KL))
        ):
            put(_kl, name, _Trap(f"torch.distributions.kl.{name}"))
    put(_dist, "kl_divergence", _Trap(KL))
    return list(spaces.values())


_PLAN = _plan()
_WATCH = _Watch()


class forbid_library_solutions:
    """Run the body with the forbidden calls trapped; raise ``ForbiddenCall`` after it
    if any was attempted (even when the student's code caught the first exception).

    ``path`` is the submission file, to name the student's line in the message.
    """

    __slots__ = ("call", "state", "base", "outer")

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.call = _Call(str(path) if path is not None else None)

    def __enter__(self) -> "forbid_library_solutions":
        global _current
        self.outer = _current is not None
        if self.outer:  # nested: the outer guard is watching
            return self
        self.state, self.base = _get_state(), _depth()
        if self.state == _ALL_DISABLED:
            self.call.found.append(
                "switched torch-function handling off before the call (at import?), "
                "which switches off the grader's checks"
            )
            _set_state(_ENABLED)
        _current = self.call
        for space, traps, _, _ in _PLAN:
            space.update(traps)
        _push(_WATCH)
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        global _current
        if self.outer:
            return False
        found = self.call.found
        try:
            depth = _depth()
            if not (depth == self.base + 1 and _stack_at(depth - 1) is _WATCH):
                found.append("removed the grader's torch function mode, which switches off the grader's checks")
            while _depth() > self.base:
                _pop()
            if _get_state() == _ALL_DISABLED:
                found.append("left torch-function handling switched off, which switches off the grader's checks")
            _set_state(self.state if self.state != _ALL_DISABLED else _ENABLED)
        finally:
            for space, _, originals, absent in _PLAN:
                space.update(originals)
                for name in absent:
                    space.pop(name, None)
            _current = None
        if found:
            raise ForbiddenCall(found[0])
        return False
