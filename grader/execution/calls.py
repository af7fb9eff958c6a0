"""Running one call of student code: the part of an adapter that sits next to it.

This module is what an adapter executes on the student's side of the seam, in the
grader's process (:class:`grader.adapters.InProcess`) or in an isolated worker.  It never
imports the references, the tests or the scores.  Everything it hands back has been
through :func:`sanitize`: plain ``torch.Tensor`` objects (detached copies), ``int``,
``float``, ``bool``, ``str``, ``None``, and tuples, lists and dicts of those.
"""

import collections
import contextlib
import copy
import functools
import linecache
import os
import stat
import sys
import traceback
import types
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from grader.execution import guards
from grader.outcomes import (
    BadOutput,
    MissingName,
    NotImplementedYet,
    StudentCodeError,
    SubmissionImportError,
    SubmissionProblem,
    WorkerOutOfMemory,
)

#: Methods of a constructed module that the tests may call through a handle.
MODULE_METHODS = ("state_dict", "load_state_dict", "to", "train", "eval")


@dataclass
class Call:
    """One request to the student's code.

    ``name`` is a public function or class of the module, or, when ``obj`` is set, a
    method of the constructed object ``obj`` (``"forward"`` calls the module).
    ``grad_wrt`` lists argument positions (ints) or keyword names to differentiate; with
    ``cotangents`` (one per tensor the call returns, ``None`` to skip one) the call
    also back-propagates ``sum(output * cotangent)`` and reports the gradients.
    """

    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    obj: Any = None
    grad_wrt: tuple[int | str, ...] = ()
    cotangents: Any = None
    want_inputs_after: bool = False
    default_dtype: Any = None


@dataclass
class CallResult:
    """What came back: outputs, gradients and (on request) the inputs after the call."""

    outputs: Any = None
    grads: dict[int | str, Any] = field(default_factory=dict)
    param_grads: dict[str, Any] = field(default_factory=dict)
    inputs_after: Any = None


MAX_SOURCE_BYTES = 1 << 20


def read_submission(path: str | os.PathLike[str]) -> str:
    """The text of submission file ``path``: a regular file (never a link), at most 1 MiB."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise SubmissionImportError(f"{path.name} cannot be read ({exc.strerror}; links are not accepted)") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise SubmissionImportError(f"{path.name} is not a regular file")
        data = fh.read(MAX_SOURCE_BYTES + 1)
    if len(data) > MAX_SOURCE_BYTES:
        raise SubmissionImportError(f"{path.name} is larger than {MAX_SOURCE_BYTES} bytes")
    return data.decode("utf-8", errors="replace")


def load_module(path: str | os.PathLike[str], module: str) -> types.ModuleType:
    """Import the submission file ``path`` under a private module name (in this process)."""
    return load_module_source(read_submission(path), str(Path(path).resolve()), module)


def load_module_source(source: str, filename: str, module: str) -> types.ModuleType:
    """Execute ``source`` as a fresh module under a private name.

    The submission's folder is never put on ``sys.path``.  Any failure (including
    ``SystemExit``) becomes a :class:`SubmissionImportError` naming the file and cause.
    """
    name = Path(filename).name
    private = f"_submission_{module}_{abs(hash(filename)):x}"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    mod = types.ModuleType(private)
    mod.__file__ = filename
    try:
        code = compile(source, filename, "exec")
    except SyntaxError as exc:
        raise SubmissionImportError(
            f"{name} does not compile: SyntaxError: {exc.msg} (line {exc.lineno})"
            + (f"\n    {exc.text.strip()}" if exc.text else "")
        ) from None
    except ValueError as exc:  # e.g. null bytes
        raise SubmissionImportError(f"{name} does not compile: {exc}") from None
    sys.modules[private] = mod
    try:
        exec(code, mod.__dict__)
    except NotImplementedError as exc:
        raise SubmissionImportError(f"{name} raised NotImplementedError at import: {exc}") from None
    except BaseException as exc:
        sys.modules.pop(private, None)
        where = student_location(exc, filename)
        raise SubmissionImportError(
            f"{name} failed to import: {type(exc).__name__}: {exc}" + (f"\n  at {where}" if where else "")
        ) from None
    return mod


def student_location(exc: BaseException, path: str | os.PathLike[str]) -> str:
    """``'attention.py line 42: scores = ...'`` for the innermost frame in ``path``."""
    filename = str(path)
    found = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == filename:
            code = (frame.line or linecache.getline(frame.filename, frame.lineno or 0)).strip()
            found = f"{Path(filename).name} line {frame.lineno}: {code}"
    return found


def resolve(mod: types.ModuleType, module: str, name: str) -> Callable[..., Any]:
    """The public ``name`` of the loaded submission module, or :class:`MissingName`."""
    target = mod.__dict__.get(name)
    if target is None or not callable(target):
        raise MissingName(f"{module}.py does not define {name} (the contract asks for it)")
    return target


def module_method(obj: Any, name: str) -> Callable[..., Any]:
    """A callable for method ``name`` of ``obj`` whose result :func:`sanitize` accepts:
    ``state_dict`` as a plain dict of tensors, every other method ``None``."""
    bound = getattr(obj, name)
    if name == "state_dict":
        return lambda *a, **k: dict(bound(*a, **k))
    return lambda *a, **k: (bound(*a, **k), None)[1]


def construct(
    cls: Callable[..., Any], args: Iterable[Any], kwargs: dict[str, Any], label: str, path: str | os.PathLike[str]
) -> Any:
    """Instantiate the student's class ``cls`` under the same rules as :func:`run_call`
    (errors mapped, guards on); the new object, which stays on this side of the seam."""
    made: list[Any] = []
    run_call(lambda *a, **k: made.append(cls(*a, **k)), Call(cls.__name__, tuple(args), kwargs), label, path)
    return made[0]


def run_call(
    target: Callable[..., Any],
    call: Call,
    label: str,
    path: str | os.PathLike[str],
    module_obj: torch.nn.Module | None = None,
) -> CallResult:
    """Run ``target`` (a function, class or bound method) as ``call`` describes.

    ``label`` names the call in messages (``attention.sdpa: scaled_dot_product_attention``),
    ``path`` is the submission file (to point at the failing line), ``module_obj`` the
    ``nn.Module`` whose parameter gradients are wanted.
    """
    args, kwargs = _copy(call.args), _copy(call.kwargs)
    for key in call.grad_wrt:
        holder = args if isinstance(key, int) else kwargs
        holder[key] = holder[key].detach().clone().requires_grad_(True)
    if module_obj is not None:
        for p in module_obj.parameters():
            p.grad = None
    meta = any(t.device.type == "meta" for t in tensor_leaves([args, list(kwargs.values())]))
    with _default_dtype(call.default_dtype, validate=not meta), _student_errors(label, path):
        result = CallResult()
        with guards.forbid_library_solutions(path):  # backward too: it may run the student's autograd code
            raw = target(*args, **kwargs)
            if call.cotangents is not None:
                _backward(raw, call.cotangents, label)
        if call.cotangents is not None:
            result.grads = {key: _plain_grad((args if isinstance(key, int) else kwargs)[key]) for key in call.grad_wrt}
            if module_obj is not None:
                result.param_grads = {n: _plain_grad(p) for n, p in module_obj.named_parameters()}
    result.outputs = sanitize(raw, f"{label} returned")
    if call.want_inputs_after:
        result.inputs_after = sanitize((tuple(args), kwargs), f"{label} inputs")
    return result


def _copy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (tuple, list)):
        return [_copy(v) for v in value]  # a list, so grad_wrt can swap entries
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    kind = type(value)
    if value is None or kind is int or kind is float or kind is bool or kind is str:
        return value  # what deepcopy returns for these (identity checks: no metaclass __eq__ runs)
    return copy.deepcopy(value)


def _plain_grad(tensor: torch.Tensor) -> torch.Tensor | None:
    grad = tensor.grad
    return None if grad is None else grad.detach().clone()


def tensor_leaves(value: Any) -> list[torch.Tensor]:
    """The tensors inside ``value`` (nested tuples and lists), in order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in tensor_leaves(v)]
    return []


def _backward(raw: Any, cotangents: Sequence[torch.Tensor | None], label: str) -> None:
    leaves = tensor_leaves(raw)
    if len(leaves) != len(cotangents):
        raise BadOutput(f"returned {len(leaves)} tensor(s), expected {len(cotangents)}")
    total: torch.Tensor | None = None
    for leaf, cot in zip(leaves, cotangents):
        if cot is None or not leaf.requires_grad:
            continue
        if tuple(leaf.shape) != tuple(cot.shape):
            raise BadOutput(f"returned a tensor of shape {tuple(leaf.shape)}, expected {tuple(cot.shape)}")
        term = (leaf * cot.to(leaf.dtype)).sum()
        total = term if total is None else total + term
    if total is not None:
        total.backward()


def seed_all(seed: int = 0) -> None:
    """``torch.manual_seed(seed)``, without its cost where the CPU is the only device.

    Where no CUDA, MPS, XPU or MTIA device is available, ``torch.manual_seed`` still queues a lazy
    seeding of each with a formatted stack trace (about 0.3 ms, a third of a worker's call):
    seeding the CPU generator alone leaves the same state.  Decided on the first call, after
    the fork: asking earlier could start CUDA in the zygote."""
    if _accelerators():
        torch.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)


@functools.cache
def _accelerators() -> bool:
    others = (getattr(torch, name, None) for name in ("xpu", "mtia"))
    return bool(
        torch.cuda.is_available()
        or torch.backends.mps.is_available()
        or any(device is not None and device.is_available() for device in others)
    )


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype | None, validate: bool = True) -> Iterator[None]:
    """The grader's global flags around one call, whatever the student's code set before:
    the default dtype (float32 unless the call asks for another), no TF32 on CUDA, and
    argument validation of ``torch.distributions`` (off for meta inputs, which have no
    values to validate: ``Normal(mu, std).log_prob`` is an allowed building block)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype or torch.float32)
    torch.distributions.Distribution.set_default_validate_args(validate)
    seed_all()  # the same state for every call, whatever ran before (or a worker restart)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.set_default_dtype(old)


@contextlib.contextmanager
def _student_errors(label: str, path: str | os.PathLike[str]) -> Iterator[None]:
    try:
        yield
    except SubmissionProblem as exc:
        raise type(exc)(f"{label}: {exc}") from None
    except NotImplementedError as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        if frames and frames[-1].filename == str(path):  # the stub's own raise, not one inside torch
            raise NotImplementedYet(f"{label}: {_not_implemented(exc)}") from None
        raise StudentCodeError(label, "NotImplementedError", str(exc), student_location(exc, path)) from None
    except MemoryError:
        raise WorkerOutOfMemory(f"{label}: ran out of memory (the limit is a few GiB)") from None
    except RecursionError as exc:
        raise StudentCodeError(label, "RecursionError", str(exc), student_location(exc, path)) from None
    except Exception as exc:
        if "can't allocate memory" in str(exc) or "out of memory" in str(exc).lower():
            raise WorkerOutOfMemory(f"{label}: ran out of memory ({str(exc)[:200]})") from None
        raise StudentCodeError(label, type(exc).__name__, str(exc), student_location(exc, path)) from None


def _not_implemented(exc: NotImplementedError) -> str:
    """What a stub's own ``raise NotImplementedError`` means, in words that fit a ``.py`` file and a
    notebook alike (the worker sees a ``.py`` file either way): the function or method to fill in."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code if tb is not None else None
    name = getattr(code, "co_qualname", None) or getattr(code, "co_name", "the function")
    return f"not implemented yet: fill in `{name}`, whose body still raises NotImplementedError"


def sanitize(value: Any, what: str, _depth: int = 0) -> Any:
    """A plain copy of ``value``, or :class:`BadOutput` if it holds anything else.

    Exact types only: a ``torch.Tensor`` subclass, an ``int`` subclass or any object
    with custom behaviour is refused, so nothing the student made can run code later.
    """
    if _depth > 8:
        raise BadOutput(f"{what} a structure nested too deeply")
    kind = type(value)
    if kind is torch.Tensor or kind is torch.nn.Parameter:
        return value.detach().clone()
    if value is None or _one_of(kind, (int, float, bool, str)):
        return value
    if _one_of(kind, (tuple, list)):
        items = [sanitize(v, what, _depth + 1) for v in value]
        return tuple(items) if kind is tuple else items
    if _one_of(kind, (dict, collections.OrderedDict)):
        out: dict[str | int, Any] = {}
        for k, v in value.items():
            if not _one_of(type(k), (str, int)):
                raise BadOutput(f"{what} a dict with a {type(k).__name__} key")
            out[k] = sanitize(v, what, _depth + 1)
        return out
    raise BadOutput(f"{what} a {kind.__module__}.{kind.__qualname__}, not a plain tensor, number or tuple")


def _one_of(kind: type, kinds: tuple[type, ...]) -> bool:
    """``kind`` is one of ``kinds`` by identity: ``kind in kinds`` would call ``==``, which a
    student's metaclass can answer with ``True``."""
    for k in kinds:
        if kind is k:
            return True
    return False
