"""The messages of the self-explaining checks (grader/testing/checks.py), pinned as golden
text: what a student reads when a property fails."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.outcomes import FAILED, PropertyFailure
from grader.testing.checks import assert_close, assert_equal, describe, expect_tensor, fail, tolerance, unpack

INPUTS = "q: float32 (2, 3), mask: bool (1, 2) [[1, 0]], n=3"


def message(check, *args, **kwargs):
    """The lines of the :class:`PropertyFailure` that ``check(*args, **kwargs)`` raises."""
    with pytest.raises(PropertyFailure) as info:
        check(*args, **kwargs)
    assert info.value.status == FAILED
    return str(info.value).splitlines()


# ---- describe ------------------------------------------------------------------------------


def test_describe_golden():
    """Tensors show dtype and shape (and device off the CPU); small bool and int tensors their
    values; other values their repr; in the order given."""
    assert describe(q=torch.zeros(2, 3), mask=torch.tensor([[True, False]]), n=3) == INPUTS
    assert (
        describe(
            idx=torch.tensor([1, 2]),
            pos=torch.tensor([3], dtype=torch.int32),
            m=torch.zeros(2, device="meta"),
            big=torch.ones(17, dtype=torch.bool),
            many=torch.arange(9),
            mb=torch.ones(1, dtype=torch.bool, device="meta"),
            name="x",
            f=0.5,
        )
        == "idx: int64 (2,) [1, 2], pos: int32 (1,) [3], m: float32 (2,) on meta, big: bool (17,), "
        "many: int64 (9,), mb: bool (1,) on meta, name='x', f=0.5"
    )
    assert describe() == ""


# ---- fail ----------------------------------------------------------------------------------


def test_fail_golden():
    """The property, then each non-empty detail indented, the smallest failing input, the hints."""
    assert message(fail, "prop holds", ["d1", "", "d2"], inputs="x=1", hints=["h1", "h2"]) == [
        "prop holds",
        "  d1",
        "  d2",
        "  smallest failing input: x=1",
        "  hint: h1",
        "  hint: h2",
    ]
    assert message(fail, "only the property") == ["only the property"]


# ---- unpack --------------------------------------------------------------------------------


def test_unpack_returns_the_items():
    """One name wraps the output in a tuple; several names take a tuple or list of that length."""
    out = torch.zeros(1)
    assert unpack(out, ("h",), "f")[0] is out
    assert unpack([1, 2], ("h", "c"), "f") == (1, 2)


def test_unpack_golden():
    """A wrong count or a lone tensor names the contract and what came back."""
    assert message(unpack, torch.zeros(2), ("h", "c"), "lstm_cell", inputs="x: float32 (2,)") == [
        "lstm_cell must return (h, c)",
        "  yours: a float32 tensor of shape (2,) on cpu",
        "  smallest failing input: x: float32 (2,)",
    ]
    assert message(unpack, (1, 2, 3), ("h", "c"), "lstm_cell") == [
        "lstm_cell must return (h, c)",
        "  yours: a tuple of 3 items",
    ]
    assert message(unpack, None, ("h", "c"), "lstm_cell") == ["lstm_cell must return (h, c)", "  yours: a NoneType"]


# ---- expect_tensor -------------------------------------------------------------------------


def test_expect_tensor_passes_a_matching_tensor_through():
    """A tensor of the right shape, dtype and device is returned as it is."""
    t = torch.zeros(2, 3)
    assert expect_tensor(t, "h", shape=(2, 3), dtype=torch.float32, device="cpu") is t


@pytest.mark.parametrize(
    ("got", "kwargs", "expected"),
    [
        (
            None,
            {"shape": (2,), "dtype": torch.float16, "device": "cpu", "prop": "h must be a tensor"},
            ["h must be a tensor", "  h: yours is a NoneType", "  h: expected a float16 tensor of shape (2,) on cpu"],
        ),
        (
            [0.0, 0.0],
            {"shape": (2,), "dtype": torch.float32},
            [
                "h has the wrong type, shape, dtype or device",
                "  h: yours is a list",
                "  h: expected a float32 tensor of shape (2,)",
            ],
        ),
        (
            torch.zeros(3, 2),
            {"shape": (2, 3), "dtype": torch.float32, "device": "cpu", "inputs": INPUTS},
            [
                "h has the wrong shape",
                "  yours:    float32 tensor of shape (3, 2) on cpu",
                "  expected: float32 tensor of shape (2, 3) on cpu",
                f"  smallest failing input: {INPUTS}",
                "  hint: the sizes are right but in the wrong order: a missing or extra transpose?",
            ],
        ),
        (
            torch.zeros(2, 3),
            {"shape": (2, 4), "dtype": torch.float32, "inputs": "x: float32 (2, 3)"},
            [
                "h has the wrong shape",
                "  yours:    float32 tensor of shape (2, 3) on cpu",
                "  expected: float32 tensor of shape (2, 4)",
                "  smallest failing input: x: float32 (2, 3)",
            ],
        ),
        (
            torch.zeros(2, dtype=torch.int64),
            {"shape": (2,), "dtype": torch.int32},
            [
                "h has the wrong dtype (outputs keep the input's dtype)",
                "  yours:    int64 tensor of shape (2,) on cpu",
                "  expected: int32 tensor of shape (2,)",
                "  hint: a hard-coded dtype (torch.float32, .float(), torch.tensor(...) without dtype=)?",
            ],
        ),
        (
            torch.zeros(2),
            {"shape": (2,), "dtype": torch.float32, "device": "meta"},
            [
                "h is on the wrong device (tensor created on the wrong device)",
                "  yours:    float32 tensor of shape (2,) on cpu",
                "  expected: float32 tensor of shape (2,) on meta",
                "  hint: create new tensors with device=<input>.device (torch.ones, torch.arange, torch.zeros ...)",
            ],
        ),
        (
            torch.tensor([1.0, float("inf"), float("nan")]),
            {"shape": (3,), "dtype": torch.float32, "inputs": "x=1"},
            [
                "h contains NaN or inf",
                "  2 non-finite value(s), the first at index (1,)",
                "  smallest failing input: x=1",
                "  hint: a softmax over a row that is all -inf? an overflowing exp or log?",
            ],
        ),
    ],
    ids=["None", "list", "transposed", "shape", "dtype", "device", "non-finite"],
)
def test_expect_tensor_golden(got, kwargs, expected):
    """Each way an output can be the wrong tensor has its message, checked in the order type,
    shape, dtype, device, finite values."""
    assert message(expect_tensor, got, "h", **kwargs) == expected


def test_expect_tensor_lets_non_finite_values_through_on_request():
    """With ``finite=False`` NaN and inf are the value checks' business; meta tensors have no values."""
    t = torch.tensor([float("nan")])
    assert expect_tensor(t, "h", shape=(1,), dtype=torch.float32, finite=False) is t
    meta = torch.zeros(1, device="meta")
    assert expect_tensor(meta, "h", shape=(1,), dtype=torch.float32, device="meta") is meta


# ---- assert_close --------------------------------------------------------------------------


def test_assert_close_accepts_values_within_the_tolerance_of_their_dtype():
    """A difference within ``atol + rtol * |expected|`` passes; NaN where NaN is expected and
    an infinity where the same infinity is expected pass too."""
    for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
        atol, rtol = tolerance(dtype)
        expected = torch.tensor([0.0, 1.0, -2.0, float("nan"), float("-inf")], dtype=torch.float64)
        nudged = expected + torch.tensor([atol, atol + rtol, -(atol + 2 * rtol), 0.0, 0.0]) * 0.5
        assert_close(nudged.to(dtype), expected.to(dtype), "out", prop="p", atol=atol, rtol=rtol)
    assert_close(torch.tensor([1.1]), torch.tensor([1.0]), "y", prop="p", atol=0.2, rtol=0)


@pytest.mark.parametrize(
    ("got", "expected", "kwargs", "lines"),
    [
        (
            torch.tensor([[1.0, 2.0], [3.0, 4.5]]),
            torch.tensor([[1.0, 2.0], [3.0, 4.0]]),
            {"inputs": INPUTS},
            [
                "out differs",
                "  max |diff| = 0.5 at index (1, 1) (tolerance atol=2e-05, rtol=0.0001)",
                "  yours    out[1]: [3, 4.5]",
                "  expected out[1]: [3, 4]",
                f"  smallest failing input: {INPUTS}",
            ],
        ),
        (
            torch.arange(8.0).reshape(1, 8) + 0.5,
            torch.arange(8.0).reshape(1, 8),
            {},
            [
                "out differs",
                "  max |diff| = 0.5 at index (0, 0) (tolerance atol=2e-05, rtol=0.0001)",
                "  yours    out[0]: [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, ...]",
                "  expected out[0]: [0, 1, 2, 3, 4, 5, ...]",
            ],
        ),
        (
            torch.tensor(1.0),
            torch.tensor(2.0),
            {},
            [
                "out differs",
                "  max |diff| = 1 at index () (tolerance atol=2e-05, rtol=0.0001)",
                "  yours    out: [1]",
                "  expected out: [2]",
            ],
        ),
        (
            torch.tensor([1.3]),
            torch.tensor([1.0]),
            {"atol": 0.2, "rtol": 0, "hints": ["check the scale"]},
            [
                "out differs",
                "  max |diff| = 0.3 at index (0,) (tolerance atol=0.2, rtol=0)",
                "  yours    out: [1.3]",
                "  expected out: [1]",
                "  hint: check the scale",
            ],
        ),
        (
            torch.tensor([float("nan"), 1.0]),
            torch.tensor([float("inf"), 2.0]),
            {"inputs": "x=1"},
            [
                "out differs",
                "  yours has 1 NaN value(s) where the expected values are finite",
                "  max |diff| = inf at index (0,) (tolerance atol=2e-05, rtol=0.0001)",
                "  yours    out: [nan, 1]",
                "  expected out: [inf, 2]",
                "  smallest failing input: x=1",
            ],
        ),
        (
            torch.zeros(3, 2),
            torch.zeros(2, 3),
            {},
            [
                "out has the wrong shape",
                "  yours:    float32 tensor of shape (3, 2) on cpu",
                "  expected: float32 tensor of shape (2, 3) on cpu",
                "  hint: the sizes are right but in the wrong order: a missing or extra transpose?",
            ],
        ),
    ],
    ids=["row", "long row", "scalar", "own tolerance and hint", "NaN", "shape first"],
)
def test_assert_close_golden(got, expected, kwargs, lines):
    """The message: the property, max |diff| at the worst index with the tolerance, the row of
    yours and expected around it (six values at most), the input, the hints."""
    assert message(assert_close, got, expected, "out", prop="out differs", **kwargs) == lines


def test_assert_close_points_at_an_entry_that_differs():
    """The index in the message is one where yours and expected disagree."""
    got, expected = torch.tensor([float("inf"), float("nan"), 1.0]), torch.tensor([float("inf"), 1.0, 1.0])
    lines = message(assert_close, got, expected, "out", prop="p")
    assert "at index (1,)" in lines[2]


def test_assert_close_reports_an_infinite_difference_as_inf():
    """Yours ``-inf`` where ``inf`` is expected is an infinite difference."""
    lines = message(assert_close, torch.tensor([float("-inf")]), torch.tensor([float("inf")]), "out", prop="p")
    assert lines[1].startswith("  max |diff| = inf at index (0,)")


# ---- assert_equal --------------------------------------------------------------------------


def test_assert_equal_accepts_equal_values_of_equal_types():
    """Equal tensors, and Python values equal with the same types all the way down, pass."""
    assert_equal(torch.tensor([1, 2]), torch.tensor([1, 2]), "x", prop="p")
    assert_equal((1, [2, {"a": 3.0}]), (1, [2, {"a": 3.0}]), "x", prop="p")


@pytest.mark.parametrize(
    ("got", "expected", "lines"),
    [
        (3.0, 3, ["counts differ", "  yours:    3.0 (float)", "  expected: 3 (int)", "  smallest failing input: m=3"]),
        (True, 1, ["counts differ", "  yours:    True (bool)", "  expected: 1 (int)", "  smallest failing input: m=3"]),
        (
            (1, [2, 3]),
            (1, [2, 3.0]),
            [
                "counts differ",
                "  yours:    (1, [2, 3]) (tuple)",
                "  expected: (1, [2, 3.0]) (tuple)",
                "  smallest failing input: m=3",
            ],
        ),
        (
            "x" * 200,
            "y",
            [
                "counts differ",
                "  yours:    '" + "x" * 39 + " ... " + "x" * 19 + "' (str)",
                "  expected: 'y' (str)",
                "  smallest failing input: m=3",
            ],
        ),
        (
            torch.tensor([[True, False], [True, True]]),
            torch.tensor([[True, True], [True, False]]),
            [
                "counts differ",
                "  2 entries differ, the first at index (0, 1)",
                "  yours:    [[1, 0], [1, 1]]",
                "  expected: [[1, 1], [1, 0]]",
                "  smallest failing input: m=3",
            ],
        ),
        (
            torch.zeros(3, 3, 3, dtype=torch.int64),
            torch.ones(3, 3, 3, dtype=torch.int64),
            ["counts differ", "  27 entries differ, the first at index (0, 0, 0)", "  smallest failing input: m=3"],
        ),
    ],
    ids=["float for int", "bool for int", "nested", "long repr", "bool tensor", "3-d tensor"],
)
def test_assert_equal_golden(got, expected, lines):
    """Python values show yours and expected with their types (long ones shortened); tensors
    the number of entries that differ, the first, and small ones in full."""
    assert message(assert_equal, got, expected, "n", prop="counts differ", inputs="m=3") == lines


_nudges = st.sampled_from([0.0, 1e-12, -3e-7, 2e-5, 1e-3, 0.5, math.nan, math.inf, -math.inf])


@settings(max_examples=200)
@given(
    expected=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=6),
    nudges=st.lists(_nudges, min_size=6, max_size=6),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    tolerances=st.sampled_from([(None, None), (0.0, 0.0), (1e-4, 0.0), (0.0, 1e-3)]),
)
def test_assert_close_passes_exactly_when_every_entry_is_within_tolerance(expected, nudges, dtype, tolerances):
    """For finite expected values, ``assert_close`` passes exactly when every entry of the
    output, NaN and infinite ones included, lies within ``atol + rtol * |expected|`` of the
    expected entry (worked out here one Python float at a time)."""
    e = torch.tensor(expected, dtype=dtype)
    g = e + torch.tensor(nudges[: len(expected)], dtype=dtype)
    atol, rtol = tolerances
    d_atol, d_rtol = tolerance(dtype)
    atol, rtol = d_atol if atol is None else atol, d_rtol if rtol is None else rtol
    within = all(
        abs(x - y) <= atol + rtol * abs(y) for x, y in zip(g.double().tolist(), e.double().tolist(), strict=True)
    )
    if within:
        assert_close(g, e, "out", prop="p", atol=atol, rtol=rtol)
    else:
        with pytest.raises(PropertyFailure):
            assert_close(g, e, "out", prop="p", atol=atol, rtol=rtol)
