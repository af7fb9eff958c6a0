"""Device tests: every tensor exercise on cpu, meta and cuda.

A module's tests declare :class:`DeviceCase` entries and create the test with
:func:`device_tests`.  For each selected device and dtype the case's inputs are moved
there; every output must come back on that device with the input's dtype.

* **meta** tensors carry shapes, dtypes and devices but no values, so a machine without
  a GPU still catches a tensor created on the wrong device (``torch.ones(n)`` without
  ``device=``): the call fails or returns a CPU tensor, and the message names the line.
* **cpu** and **cuda** results are compared with the expected values computed in float64
  on the CPU by the case's ``oracle`` (PyTorch's own functions and modules, from the same
  inputs and weights), or built together with the inputs (``answered``: the inputs are
  made backwards from a drawn answer), with tolerances per dtype (float16/bfloat16 where
  the case allows); cuda results also with the student's own CPU result: a CPU/GPU
  disagreement is its own failure.  A case with neither is computed by the reference in
  ``solutions/``: its tests are marked ``oracle("reference")`` and so run only in staff
  grading (:mod:`grader.testing.selection`).  A public test's ``oracle`` must not be an
  answer the student could paste in (a function computing the exercise from allowed
  building blocks): ``python -m grader release`` grades each one pasted into the stubs.
* Without a GPU the cuda tests are skipped with a stated reason.  That is the only skip:
  it is the grader's decision from a trusted fact (:mod:`grader.testing.skips`), never
  from anything the submission says.  A student exception on meta is a failure.
* The cpu and cuda cases compare values and are value tests; a meta case (no values)
  is a property test, credited only with the values (see :mod:`grader.grading.scoring`).
"""

import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import pytest
import torch

from grader.adapters.base import Implementation
from grader.execution.calls import tensor_leaves
from grader.outcomes import PROPERTY, VALUE, StudentCodeError
from grader.testing import selection
from grader.testing import strategies as S
from grader.testing.checks import assert_close, describe, expect_tensor, fail, unpack
from grader.testing.skips import unavailable

DEVICES = ("cpu", "meta", "cuda")
NO_CUDA = "CUDA is not available on this machine: the cuda device tests run on a GPU machine"

#: Looser tolerances for half precision on the GPU, against a float64 reference.
HALF_TOLERANCE = {torch.float16: (5e-3, 5e-3), torch.bfloat16: (4e-2, 4e-2)}


@dataclass
class DeviceCase:
    """One tensor function (or ``nn.Module``) to run on every device.

    ``build(gen)`` returns ``(args, kwargs)`` of float64 CPU tensors and plain values;
    floating tensors are cast to the tested dtype, every tensor is moved to the device.
    ``device_kwarg`` names an argument that receives the device (``causal_mask(device=)``).
    For a module, ``construct=(args, kwargs)`` and ``state(gen)`` give its weights.

    ``oracle`` computes the expected outputs in float64 on the CPU from the same inputs
    (the ones ``build`` returns, before any cast or move): ``oracle(*args, **kwargs)`` for a
    function, ``oracle(state, *args, **kwargs)`` for a module; it returns what the exercise
    returns (nested tuples are flattened like the outputs).  With ``answered``, ``build``
    returns ``(args, kwargs, expected)`` instead: inputs built backwards from the expected
    outputs (float64 on the CPU), which need no oracle.  With neither, the reference
    computes them and the case's tests are marked ``oracle("reference")``.
    """

    exercise: str
    name: str
    build: Callable[[torch.Generator], tuple[Any, ...]]
    outputs: tuple[str, ...]
    half: bool = False
    device_kwarg: str | None = None
    construct: tuple[Sequence[Any], dict[str, Any]] | None = None
    state: Callable[[torch.Generator], dict[str, torch.Tensor]] | None = None
    float_output: tuple[str, ...] | None = field(default=None)
    oracle: Callable[..., Any] | None = None
    answered: bool = False

    def inputs(self, gen: torch.Generator) -> tuple[Sequence[Any], dict[str, Any], Any]:
        """``(args, kwargs, expected)`` of the case from ``gen``; ``expected`` is ``None``
        unless the case is ``answered``."""
        built = self.build(gen)
        if self.answered:
            args, kwargs, expected = built
            return args, kwargs, expected
        args, kwargs = built
        return args, kwargs, None


def _move(value: Any, device: str, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor):
        if value.is_floating_point():
            return value.to(device=device, dtype=dtype)
        return value.to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(_move(v, device, dtype) for v in value)
    if isinstance(value, dict):
        return {k: _move(v, device, dtype) for k, v in value.items()}
    return value


def _flat(value: Any, case: DeviceCase) -> Any:
    """Nested outputs (``(outputs, (h_T, c_T))``) as one flat tuple of tensors."""
    if len(case.outputs) > 1 and isinstance(value, (tuple, list)):
        leaves = tensor_leaves(value)
        return tuple(leaves) if len(leaves) == len(case.outputs) else value
    return value


def _run(
    impl: Implementation,
    case: DeviceCase,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    device: str,
    dtype: torch.dtype,
    gen_state: dict[str, torch.Tensor] | None,
) -> Any:
    if case.construct is None:
        return impl.call(case.name, *args, **kwargs)
    ctor_args, ctor_kwargs = case.construct
    handle = impl.construct(case.name, *ctor_args, **ctor_kwargs)
    handle.to(dtype=dtype, device=device)
    handle.load_state_dict(_move(gen_state, device, dtype))
    return handle(*args, **kwargs)


def _expected(
    case: DeviceCase,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    state: dict[str, torch.Tensor] | None,
    request: pytest.FixtureRequest,
    answer: Any = None,
) -> Any:
    """The expected outputs in float64 on the CPU: the answer the inputs were built from, the
    case's library oracle, else the reference."""
    if case.answered:
        return answer
    if case.oracle is not None:
        with torch.no_grad():
            return case.oracle(*args, **kwargs) if case.construct is None else case.oracle(state, *args, **kwargs)
    return _reference(request.getfixturevalue("reference"), case, args, kwargs, state)


def _reference(
    ref: types.ModuleType,
    case: DeviceCase,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    state: dict[str, torch.Tensor] | None,
) -> Any:
    if case.construct is None:
        return getattr(ref, case.name)(*args, **kwargs)
    ctor_args, ctor_kwargs = case.construct
    module = getattr(ref, case.name)(*ctor_args, **ctor_kwargs).to(torch.float64)
    module.load_state_dict(state)
    with torch.no_grad():
        return module(*args, **kwargs)


def _device_error(err: StudentCodeError, device: str, label: str) -> NoReturn:
    """Turn the student's exception on ``device`` into a failure naming it (never a skip)."""
    text = f"{err.exc_type}: {err.message}"
    lowered = text.lower()
    where = f"at {err.where}" if err.where else ""
    if "device" in lowered or "cuda" in lowered or ("meta" in lowered and "item()" not in lowered):
        fail(
            f"tensor created on the wrong device: {label} fails when its inputs are on {device}",
            [text[:300], where],
            "",
            [
                "create new tensors on the input's device: torch.ones(..., device=x.device), torch.arange(..., "
                "device=x.device), or x.new_ones(...)"
            ],
        )
    hints = []
    if device == "meta":
        hints.append(
            "meta tensors have shapes but no values: .item(), bool(tensor), .tolist() and Python `if` "
            "on tensor values fail there; express the computation with tensor operations"
        )
    fail(f"{label} raised an exception when its inputs are on {device}", [text[:300], where], "", hints)


def device_tests(
    module: str, cases: Sequence[DeviceCase]
) -> Callable[[Implementation, pytest.FixtureRequest, str, torch.dtype, DeviceCase], None]:
    """A pytest test running every case of ``module`` on every device (see module doc).

    Each parameter is marked with its exercise, its kind (value on cpu and cuda, property
    on meta), its device and its oracle: ``"library"`` for a case with an ``oracle`` or
    ``answered``, ``"reference"`` for one with neither (that case's tests then run only in
    staff grading)."""
    params = []
    for case in cases:
        for device in DEVICES:
            dtypes = [torch.float32, torch.float64]
            if device == "cuda" and case.half:
                dtypes += [torch.float16, torch.bfloat16]
            for dtype in dtypes:
                name = str(dtype).replace("torch.", "")
                kind = PROPERTY if device == "meta" else VALUE
                oracle = selection.LIBRARY if case.oracle is not None or case.answered else selection.REFERENCE
                params.append(
                    pytest.param(
                        device,
                        dtype,
                        case,
                        id=f"{case.name}-{device}-{name}",
                        marks=[
                            pytest.mark.exercise(case.exercise, kind=kind),
                            pytest.mark.device(device),
                            pytest.mark.oracle(oracle),
                        ],
                    )
                )

    @pytest.mark.parametrize("device, dtype, case", params)
    def test_devices(
        impl: Implementation, request: pytest.FixtureRequest, device: str, dtype: torch.dtype, case: DeviceCase
    ) -> None:
        """every output comes back on the input's device with the input's dtype (values checked on cpu and cuda)"""
        if device == "cuda" and not torch.cuda.is_available():
            unavailable(NO_CUDA)
        gen = S.generator(20240)
        args, kwargs, answer = case.inputs(gen)
        state = case.state(gen) if case.state else None
        label = f"{case.exercise}: {case.name}"
        moved_args, moved_kwargs = _move(args, device, dtype), _move(kwargs, device, dtype)
        if case.device_kwarg:
            moved_kwargs[case.device_kwarg] = device
        io = describe(**{f"arg{i}": a for i, a in enumerate(moved_args)}, **moved_kwargs)
        try:
            got = _run(impl, case, moved_args, moved_kwargs, device, dtype, state)
        except StudentCodeError as err:
            _device_error(err, device, label)
        got = unpack(_flat(got, case), case.outputs, case.name, io)
        expected = unpack(_flat(_expected(case, args, kwargs, state, request, answer), case), case.outputs, case.name)
        for out_name, mine, want in zip(case.outputs, got, expected):
            want_dtype = dtype if want.is_floating_point() else want.dtype
            expect_tensor(
                mine,
                out_name,
                shape=want.shape,
                dtype=want_dtype,
                device=torch.device(device),
                inputs=io,
                prop=f"{out_name} must come back on {device} with the input's dtype",
            )
        if device == "cuda":
            _compare_cuda(impl, case, args, kwargs, state, got, expected, dtype, io)
        elif device == "cpu":
            for out_name, mine, want in zip(case.outputs, got, expected):
                if want.is_floating_point():
                    assert_close(
                        mine, want.to(dtype), out_name, inputs=io, prop=f"{out_name} differs from the reference"
                    )
                elif not torch.equal(mine, want):
                    fail(f"{out_name} differs from the reference", [], io)

    test_devices.__module__ = module
    return test_devices


def _compare_cuda(
    impl: Implementation,
    case: DeviceCase,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    state: dict[str, torch.Tensor] | None,
    got: Sequence[torch.Tensor],
    expected: Sequence[torch.Tensor],
    dtype: torch.dtype,
    io: str,
) -> None:
    cpu_dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    cpu_kwargs = dict(_move(kwargs, "cpu", cpu_dtype))
    if case.device_kwarg:
        cpu_kwargs[case.device_kwarg] = "cpu"
    mine_cpu = unpack(
        _flat(_run(impl, case, _move(args, "cpu", cpu_dtype), cpu_kwargs, "cpu", cpu_dtype, state), case),
        case.outputs,
        case.name,
        io,
    )
    for out_name, gpu, cpu, want in zip(case.outputs, got, mine_cpu, expected):
        if not want.is_floating_point():
            if not torch.equal(gpu.cpu(), cpu):
                fail(f"CPU/GPU disagreement: {out_name} differs between cpu and cuda", [], io)
            continue
        if dtype in HALF_TOLERANCE:
            atol, rtol = HALF_TOLERANCE[dtype]
            scale = max(1.0, float(want.abs().max()))
            atol = atol * scale
        else:
            atol, rtol = (1e-4, 1e-4) if dtype == torch.float32 else (1e-9, 1e-7)
        gpu64, cpu64 = gpu.detach().to("cpu", torch.float64), cpu.detach().to(torch.float64)
        if not torch.allclose(gpu64, cpu64, atol=max(atol, 1e-4), rtol=max(rtol, 1e-4)):
            assert_close(
                gpu64,
                cpu64,
                out_name,
                atol=max(atol, 1e-4),
                rtol=max(rtol, 1e-4),
                inputs=io,
                prop=f"CPU/GPU disagreement: your {out_name} on cuda ({str(dtype)[6:]}) differs from your cpu result",
            )
        assert_close(
            gpu64,
            want.to(torch.float64),
            out_name,
            atol=atol,
            rtol=rtol,
            inputs=io,
            prop=f"{out_name} on cuda ({str(dtype)[6:]}) differs from the float64 CPU reference",
        )
