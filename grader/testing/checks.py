"""Assertions that explain themselves.

Every failure raises :class:`grader.outcomes.PropertyFailure` whose message says which
property failed, shows yours vs expected and max |diff|, describes the (shrunk) input
that fails, and gives hints.  The hint that names a known mistake from the catalog comes
later, from :mod:`grader.testing.diagnose`.

Besides the comparisons (:func:`assert_close`, :func:`assert_equal`, :func:`assert_grad`)
the checks that every module needs live here once: :func:`expect_inputs_unchanged`,
:func:`expect_raises`, :func:`expect_per_example` and :func:`expect_int` /
:func:`expect_int_list`.
"""

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn

import torch

from grader.adapters import ModuleHandle
from grader.execution.calls import CallResult, tensor_leaves
from grader.outcomes import PropertyFailure, StudentCodeError

#: (atol, rtol) per dtype for comparisons against a reference.
TOLERANCES = {
    torch.float64: (1e-9, 1e-7),
    torch.float32: (2e-5, 1e-4),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (2e-2, 2e-2),
}

#: The hint of :func:`assert_close` when float64 results agree only to float32 precision.
FLOAT32_HINT = (
    "your float64 results are only float32-accurate: is part of the computation done in "
    "float32 (.float(), torch.float32, torch.zeros(...) without dtype=)?"
)

#: The hint of :func:`expect_int` and :func:`expect_int_list` for a float count.
INT_HINT = "counts must be exact Python ints: multiply ints (math.prod, **), never floats, '/' or np.prod"

#: The default hint of :func:`expect_inputs_unchanged`.
IN_PLACE_HINT = "use out-of-place ops (y = x * s, not x *= s or x.mul_(s))"


def tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """``(atol, rtol)`` for values of ``dtype``."""
    return TOLERANCES.get(dtype, (2e-5, 1e-4))


def describe(**inputs: Any) -> str:
    """A one-line description of a test input: dtype and shape of tensors, values of the rest."""
    parts = []
    for name, value in inputs.items():
        if isinstance(value, torch.Tensor):
            dtype = str(value.dtype).replace("torch.", "")
            text = f"{name}: {dtype} {tuple(value.shape)}"
            if value.device.type != "cpu":
                text += f" on {value.device}"
            if value.dtype == torch.bool and value.numel() <= 16 and value.device.type != "meta":
                text += f" {value.int().tolist()}"
            elif value.dtype in (torch.int64, torch.int32) and value.numel() <= 8 and value.device.type != "meta":
                text += f" {value.tolist()}"
            parts.append(text)
        else:
            parts.append(f"{name}={value!r}")
    return ", ".join(parts)


def fail(prop: str, details: Iterable[str] = (), inputs: str = "", hints: Iterable[str] = ()) -> NoReturn:
    """Raise a :class:`PropertyFailure` with the project's message layout: the property,
    the details (empty ones left out), the smallest failing input, the hints."""
    lines = [prop]
    lines += [f"  {d}" for d in details if d]
    if inputs:
        lines.append(f"  smallest failing input: {inputs}")
    lines += [f"  hint: {h}" for h in hints]
    raise PropertyFailure("\n".join(lines))


def _kind(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).replace('torch.', '')} tensor of shape {tuple(value.shape)} on {value.device}"
    return type(value).__name__


def unpack(got: Any, names: Sequence[str], label: str, inputs: str = "") -> tuple:
    """Check that a call returned a tuple of ``len(names)`` items; return it."""
    if len(names) == 1:
        return (got,)
    if not isinstance(got, (tuple, list)) or len(got) != len(names):
        shown = f"a {type(got).__name__} of {len(got)} items" if isinstance(got, (tuple, list)) else f"a {_kind(got)}"
        fail(f"{label} must return ({', '.join(names)})", [f"yours: {shown}"], inputs)
    return tuple(got)


def expect_tensor(
    got: Any,
    name: str,
    *,
    shape: Sequence[int],
    dtype: torch.dtype,
    device: torch.device | str | None = None,
    inputs: str = "",
    prop: str | None = None,
    finite: bool = True,
) -> torch.Tensor:
    """Check that output ``name`` is a tensor of ``shape``, ``dtype`` and ``device``
    (and, with ``finite``, holds no NaN or inf); return it."""
    device = torch.device(device) if device is not None else None
    expected = f"{str(dtype).replace('torch.', '')} tensor of shape {tuple(shape)}"
    if device is not None:
        expected += f" on {device}"
    prop = prop or f"{name} has the wrong type, shape, dtype or device"
    if not isinstance(got, torch.Tensor):
        fail(prop, [f"{name}: yours is a {_kind(got)}", f"{name}: expected a {expected}"], inputs)
    hints = []
    if tuple(got.shape) != tuple(shape):
        if sorted(got.shape) == sorted(shape):
            hints.append("the sizes are right but in the wrong order: a missing or extra transpose?")
        fail(f"{name} has the wrong shape", [f"yours:    {_kind(got)}", f"expected: {expected}"], inputs, hints)
    if got.dtype != dtype:
        fail(
            f"{name} has the wrong dtype (outputs keep the input's dtype)",
            [f"yours:    {_kind(got)}", f"expected: {expected}"],
            inputs,
            ["a hard-coded dtype (torch.float32, .float(), torch.tensor(...) without dtype=)?"],
        )
    if device is not None and (
        got.device.type != device.type or (device.index is not None and got.device.index != device.index)
    ):
        fail(
            f"{name} is on the wrong device (tensor created on the wrong device)",
            [f"yours:    {_kind(got)}", f"expected: {expected}"],
            inputs,
            ["create new tensors with device=<input>.device (torch.ones, torch.arange, torch.zeros ...)"],
        )
    if finite and (got.is_floating_point() or got.is_complex()) and got.device.type != "meta":
        bad = ~torch.isfinite(got)
        if bool(bad.any()):
            first = tuple(int(i) for i in bad.nonzero()[0])
            fail(
                f"{name} contains NaN or inf",
                [f"{int(bad.sum())} non-finite value(s), the first at index {first}"],
                inputs,
                ["a softmax over a row that is all -inf? an overflowing exp or log?"],
            )
    return got


def _fmt_row(t: torch.Tensor, limit: int = 6) -> str:
    values = t.detach().flatten().double().tolist()
    shown = ", ".join(f"{v:.4g}" for v in values[:limit])
    return f"[{shown}{', ...' if len(values) > limit else ''}]"


def assert_close(
    got: Any,
    expected: torch.Tensor,
    name: str,
    *,
    prop: str,
    inputs: str = "",
    atol: float | None = None,
    rtol: float | None = None,
    hints: Sequence[str] = (),
) -> None:
    """Check that tensor output ``name`` equals ``expected`` within the dtype's tolerance.

    Shapes, dtypes and devices are checked first.  When float64 results miss by about
    float32's precision, a hint says that part of the computation ran in float32.
    """
    finite = expected.device.type == "meta" or bool(torch.isfinite(expected).all())
    expect_tensor(
        got, name, shape=expected.shape, dtype=expected.dtype, device=expected.device, inputs=inputs, finite=finite
    )
    if expected.device.type == "meta":
        return
    d_atol, d_rtol = tolerance(expected.dtype)
    atol, rtol = d_atol if atol is None else atol, d_rtol if rtol is None else rtol
    g, e = got.detach().to("cpu", torch.float64), expected.detach().to("cpu", torch.float64)
    if finite and torch.allclose(g, e, rtol=rtol, atol=atol):
        return  # the same test as below where every expected value is finite, in one op
    bad_nan = torch.isnan(g) & ~torch.isnan(e)
    # 0 where both are the same infinity (inf - inf is NaN); a NaN or infinite gap stays inf
    diff = torch.where(g == e, 0.0, (g - e).abs()).nan_to_num(nan=math.inf, posinf=math.inf)
    inf = torch.isinf(e)
    ok = torch.where(inf, g == e, diff <= atol + rtol * e.abs().nan_to_num(posinf=0.0)) | (
        torch.isnan(g) & torch.isnan(e)
    )
    if bool(ok.all()):
        return
    flat = int((diff - (atol + rtol * e.abs())).flatten().nan_to_num(nan=math.inf).argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), g.shape)) if g.dim() else ()
    row = index[:-1] if g.dim() > 1 else ()
    max_diff = float(diff.max())
    details = [
        f"max |diff| = {max_diff:.3g} at index {index} (tolerance atol={atol:g}, rtol={rtol:g})",
        f"yours    {name}{list(row) if row else ''}: {_fmt_row(g[row])}",
        f"expected {name}{list(row) if row else ''}: {_fmt_row(e[row])}",
    ]
    if bool(bad_nan.any()):
        details.insert(0, f"yours has {int(bad_nan.sum())} NaN value(s) where the expected values are finite")
    if expected.dtype == torch.float64 and 1e-9 < max_diff < 1e-5 * max(1.0, float(e.abs().max())):
        hints = [*hints, FLOAT32_HINT]
    fail(prop, details, inputs, hints)


def assert_equal(got: Any, expected: Any, name: str, *, prop: str, inputs: str = "", hints: Sequence[str] = ()) -> None:
    """Exact equality for bool/int tensors and Python values (ints must be ``int``)."""
    if isinstance(expected, torch.Tensor):
        expect_tensor(got, name, shape=expected.shape, dtype=expected.dtype, device=expected.device, inputs=inputs)
        if expected.device.type == "meta" or torch.equal(got.cpu(), expected.cpu()):
            return
        wrong = (got.cpu() != expected.cpu()).nonzero()
        first = tuple(int(i) for i in wrong[0]) if len(wrong) else ()
        details = [f"{len(wrong)} entries differ, the first at index {first}"]
        if got.dim() <= 2 and got.numel() <= 64:
            details += [f"yours:    {got.cpu().int().tolist()}", f"expected: {expected.cpu().int().tolist()}"]
    else:
        if _typed_equal(got, expected):
            return
        details = [
            f"yours:    {_short(got)} ({type(got).__name__})",
            f"expected: {_short(expected)} ({type(expected).__name__})",
        ]
    fail(prop, details, inputs, hints)


def reference_grads(
    fn: Callable[..., Any],
    inputs: Sequence[torch.Tensor],
    cotangents: Sequence[torch.Tensor | None],
    params: Sequence[torch.Tensor] = (),
) -> list[torch.Tensor]:
    """Gradients of ``sum(output * cotangent)`` of the trusted ``fn`` with respect to
    ``inputs`` then ``params`` (zeros where unused); a ``None`` cotangent skips an output."""
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    return vjp(fn(*leaves), cotangents, leaves + list(params))


def vjp(outputs: Any, cotangents: Sequence[torch.Tensor | None], wrt: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Gradients of ``sum(output * cotangent)`` over the tensor leaves of ``outputs`` with
    respect to ``wrt`` (zeros where unused); a ``None`` cotangent skips an output.

    The vector-Jacobian product ``torch.autograd.grad(outputs, wrt, grad_outputs=cotangents)``
    computes, through one scalar root as the worker differentiates the student's code
    (execution/calls.py): ``grad_outputs`` would make torch import sympy's symbolic shapes on
    first use (0.3 s of a check)."""
    outs = [(o, c) for o, c in zip(tensor_leaves(outputs), cotangents) if c is not None]
    if not outs:
        return [torch.zeros_like(x) for x in wrt]
    terms = [(o * c.to(o.dtype)).sum() for o, c in outs]
    grads = torch.autograd.grad(sum(terms[1:], terms[0]), list(wrt), allow_unused=True)
    return [torch.zeros_like(x) if gr is None else gr for x, gr in zip(wrt, grads)]


def assert_grad(got: torch.Tensor | None, expected: torch.Tensor, name: str, *, inputs: str = "") -> None:
    """Check gradient ``name`` (``"d/dq"``): it must exist (the graph is not cut) and equal
    ``expected`` (:func:`assert_close`)."""
    if got is None:
        fail(
            f"no gradient reaches {name.split('/d', 1)[-1]}",
            ["the autograd graph is cut"],
            inputs,
            ["no .detach(), .numpy(), .item() or torch.tensor(...) re-wrapping in the data path"],
        )
    assert_close(got, expected, name, prop=f"gradient {name} differs from the reference", inputs=inputs)


def expect_inputs_unchanged(
    result: CallResult,
    names: Sequence[str],
    args: Sequence[Any],
    label: str,
    *,
    inputs: str = "",
    hints: Sequence[str] = (IN_PLACE_HINT,),
) -> None:
    """Check that the call behind ``result`` (made with ``want_inputs_after=True``) left
    every argument of ``args`` (named ``names``; ``None`` ones skipped) as it was."""
    for name, before, after in zip(names, args, result.inputs_after[0]):
        if before is not None and not torch.equal(before, after):
            fail(f"{label} modified its input {name} in place", ["inputs must never be changed"], inputs, hints)


def expect_raises(
    run: Callable[..., Any],
    *args: Any,
    exc_type: str = "ValueError",
    prop: str,
    inputs: str = "",
    hints: Sequence[str] = (),
) -> None:
    """Check that ``run(*args)`` (``impl.call`` or ``impl.construct`` and its arguments)
    raises the student's ``exc_type``; ``hints`` explain what to check when it raises nothing."""
    try:
        got = run(*args)
    except StudentCodeError as err:
        if err.exc_type != exc_type:
            fail(
                prop,
                [f"yours raised {err.exc_type}: {err.message}"[:300]],
                inputs,
                [f"raise {exc_type} yourself (with a message naming the argument) before the input is used"],
            )
        return
    returned = "" if isinstance(got, ModuleHandle) else f" and returned {got!r}"
    fail(prop, [f"yours raised nothing{returned}"[:300]], inputs, hints)


def expect_per_example(got: Any, shape: Sequence[int], name: str, *, inputs: str = "") -> None:
    """Check that a reduction over the last axis kept one value per example, shape
    ``shape`` (the batch axes); the hint names the axis reduced instead.  Anything other
    than a tensor is left to the value checks."""
    if not isinstance(got, torch.Tensor) or tuple(got.shape) == tuple(shape):
        return
    hints = []
    if got.dim() == 0 and len(shape) > 0:
        hints.append(
            "reduce only the last axis (.sum(dim=-1)): a .mean() or .sum() without dim, or "
            "reduction='sum' / 'mean', also reduces the batch"
        )
    elif got.dim() == len(shape) + 1 and tuple(got.shape[:-1]) == tuple(shape):
        hints.append("the last axis is not reduced: sum over it (.sum(dim=-1))")
    elif got.dim() == len(shape):
        hints.append("sum over the last axis (dim=-1), not dim=1 or dim=0")
    fail(
        f"{name} must hold one value per example, shape {tuple(shape)} (the last axis summed)",
        [f"yours has shape {tuple(got.shape)}"],
        inputs,
        hints,
    )


def expect_int(got: Any, expected: int, name: str, *, prop: str, inputs: str = "", hints: Sequence[str] = ()) -> None:
    """Check that count ``name`` is the exact Python int ``expected`` (a float gets a hint)."""
    if isinstance(got, float):
        hints = [INT_HINT, *hints]
    assert_equal(got, expected, name, prop=prop, inputs=inputs, hints=hints)


def expect_int_list(
    got: Any, expected: list[int], name: str, *, prop: str, inputs: str = "", hints: Sequence[str] = ()
) -> None:
    """Check that ``name`` is a list of exact Python ints equal to ``expected``."""
    if not isinstance(got, list):
        fail(f"{name} must be a list of ints", [f"yours is a {type(got).__name__}: {got!r}"[:200]], inputs)
    wrong = [type(v).__name__ for v in got if type(v) is not int]
    if wrong:
        fail(
            f"{name} must hold exact Python ints",
            [f"yours holds {sorted(set(wrong))}: {got!r}"[:200]],
            inputs,
            [INT_HINT],
        )
    assert_equal(got, expected, name, prop=prop, inputs=inputs, hints=hints)


def _typed_equal(a: Any, b: Any) -> bool:
    """``a == b`` with the same types all the way down (``1.0`` is not ``1``, ``True`` not ``1``)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_typed_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_typed_equal(a[k], b[k]) for k in a)
    return a == b


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit // 2] + " ... " + text[-limit // 4 :]
