"""Assertions that explain themselves.

Every failure raises :class:`grader.outcomes.PropertyFailure` whose message says which
property failed, shows yours vs expected and max |diff|, describes the (shrunk) input
that fails, and names the likely bug when the output matches a known mistake from the
catalog (:mod:`grader.mistakes`).
"""

import math

import torch

from grader import mistakes
from grader.execution.calls import tensor_leaves
from grader.outcomes import PropertyFailure

#: (atol, rtol) per dtype for comparisons against a reference.
TOLERANCES = {
    torch.float64: (1e-9, 1e-7),
    torch.float32: (2e-5, 1e-4),
    torch.float16: (2e-3, 2e-3),
    torch.bfloat16: (2e-2, 2e-2),
}


def tolerance(dtype):
    """``(atol, rtol)`` for values of ``dtype``."""
    return TOLERANCES.get(dtype, (2e-5, 1e-4))


def describe(**inputs):
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


def fail(prop, details=(), inputs="", hints=(), lazy_hints=None):
    """Raise a :class:`PropertyFailure` with the project's message layout.

    ``lazy_hints()`` returns more hints; it runs only when the message is shown.
    """
    lines = [prop]
    lines += [f"  {d}" for d in details if d]
    if inputs:
        lines.append(f"  smallest failing input: {inputs}")
    lines += [f"  hint: {h}" for h in hints]
    more = None
    if lazy_hints is not None:
        more = lambda: [f"  hint: {h}" for h in lazy_hints() if h not in hints]  # noqa: E731
    raise PropertyFailure("\n".join(lines), more)


def catalog_hints(name, module, replay, got, expected):
    """A ``lazy_hints`` callable naming the catalog mistakes whose output equals ``got``."""
    if module is None or replay is None:
        return None
    return lambda: [f"your {name} match {m}" for m in mistakes.matching_mistakes(module, replay, got, expected)]


def _kind(value):
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).replace('torch.', '')} tensor of shape {tuple(value.shape)} on {value.device}"
    return type(value).__name__


def unpack(got, names, label, inputs=""):
    """Check that a call returned a tuple of ``len(names)`` items; return it."""
    if len(names) == 1:
        return (got,)
    if not isinstance(got, (tuple, list)) or len(got) != len(names):
        shown = f"a {type(got).__name__} of {len(got)} items" if isinstance(got, (tuple, list)) else f"a {_kind(got)}"
        fail(f"{label} must return ({', '.join(names)})", [f"yours: {shown}"], inputs)
    return tuple(got)


def expect_tensor(got, name, *, shape, dtype, device=None, inputs="", prop=None, finite=True):
    """Check that output ``name`` is a tensor of ``shape``, ``dtype`` and ``device``
    (and, with ``finite``, holds no NaN or inf)."""
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


def _fmt_row(t, limit=6):
    values = t.detach().flatten().double().tolist()
    shown = ", ".join(f"{v:.4g}" for v in values[:limit])
    return f"[{shown}{', ...' if len(values) > limit else ''}]"


def assert_close(got, expected, name, *, prop, inputs="", module=None, replay=None, atol=None, rtol=None, hints=()):
    """Check that tensor output ``name`` equals ``expected`` within the dtype's tolerance.

    ``replay(namespace)`` recomputes the expected output with another implementation of
    ``module``; on failure every catalog mistake whose ``replay`` matches ``got`` becomes
    a hint.  Shapes, dtypes and devices are checked first.
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
    bad_nan = torch.isnan(g) & ~torch.isnan(e)
    diff = (g - e).abs().nan_to_num(nan=math.inf)
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
    fail(prop, details, inputs, hints, catalog_hints(name, module, replay, got, expected))


def assert_equal(got, expected, name, *, prop, inputs="", module=None, replay=None, hints=()):
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
    fail(prop, details, inputs, hints, catalog_hints(name, module, replay, got, expected))


def reference_grads(fn, inputs, cotangents, params=()):
    """Gradients of ``sum(output * cotangent)`` of the trusted ``fn`` with respect to
    ``inputs`` then ``params`` (zeros where unused); a ``None`` cotangent skips an output."""
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    outs = [(o, c) for o, c in zip(tensor_leaves(fn(*leaves)), cotangents) if c is not None]
    wrt = leaves + list(params)
    grads = torch.autograd.grad([o for o, _ in outs], wrt, grad_outputs=[c for _, c in outs], allow_unused=True)
    return [torch.zeros_like(x) if gr is None else gr for x, gr in zip(wrt, grads)]


def assert_grad(got, expected, name, *, inputs="", module=None, replay=None, close=None):
    """Check gradient ``name`` (``"d/dq"``): it must exist (the graph is not cut) and equal
    ``expected``, compared with ``close`` (default :func:`assert_close`)."""
    if got is None:
        fail(
            f"no gradient reaches {name.split('/d', 1)[-1]}",
            ["the autograd graph is cut"],
            inputs,
            ["no .detach(), .numpy(), .item() or torch.tensor(...) re-wrapping in the data path"],
        )
    (close or assert_close)(
        got,
        expected,
        name,
        prop=f"gradient {name} differs from the reference",
        inputs=inputs,
        module=module if replay else None,
        replay=replay,
    )


def _typed_equal(a, b):
    """``a == b`` with the same types all the way down (``1.0`` is not ``1``, ``True`` not ``1``)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_typed_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_typed_equal(a[k], b[k]) for k in a)
    return a == b


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[: limit // 2] + " ... " + text[-limit // 4 :]
