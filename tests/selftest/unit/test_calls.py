"""What crosses the seam (grader/execution/calls.py): :func:`sanitize` hands back plain
copies of plain data and refuses everything else; :func:`tensor_leaves` finds the tensors."""

import collections
import enum
import math
from collections import namedtuple

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.execution.calls import sanitize, seed_all, tensor_leaves
from grader.outcomes import FAILED, BadOutput

WHAT = "f returned"
MAX_DEPTH = 8  # sanitize's limit: containers may nest 8 deep, values inside them at depth 8


def nested_list(depth, leaf=0):
    """``depth`` lists around ``leaf``."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def same(a, b):
    """Same types all the way down, NaN equal to NaN, tensors equal in dtype, shape and values."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=6)
    | st.lists(st.floats(-10, 10, width=32), max_size=4).map(torch.tensor)
)


def plain(depth=MAX_DEPTH):
    """Plain values whose containers nest at most ``depth`` deep."""
    if depth == 0:
        return scalars
    inner = st.deferred(lambda: plain(depth - 1))
    keys = st.text(max_size=3) | st.integers()
    return scalars | st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(keys, inner, max_size=3),
    )


@settings(max_examples=50)
@given(plain())
def test_sanitize_returns_an_equal_plain_copy(value):
    """Plain data nested up to the depth limit comes back equal, with the same types
    (tuples stay tuples, bools stay bools, ints stay ints)."""
    assert same(sanitize(value, WHAT), value)


def test_sanitized_tensors_are_detached_copies():
    """A tensor comes back as a plain ``torch.Tensor`` that shares no memory and no graph
    with the student's: a ``Parameter`` or a tensor that requires grad included."""
    for original in (torch.ones(3, requires_grad=True), torch.nn.Parameter(torch.ones(3)), torch.ones(2, 2).T):
        got = sanitize(original, WHAT)
        assert type(got) is torch.Tensor and not got.requires_grad and got.grad_fn is None
        assert got.data_ptr() != original.data_ptr()
        assert torch.equal(got, original.detach())
        with torch.no_grad():
            original.add_(1)
        assert torch.equal(got, original.detach() - 1)


def test_an_ordered_dict_becomes_a_plain_dict():
    """An ``OrderedDict`` (what ``state_dict`` returns) comes back as a ``dict`` in the same order."""
    got = sanitize(collections.OrderedDict([("b", 1), ("a", 2)]), WHAT)
    assert type(got) is dict and list(got.items()) == [("b", 1), ("a", 2)]


class MyInt(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


class MyFloat(float):
    pass


class MyStr(str):
    pass


class MyDict(dict):
    pass


class MyTensor(torch.Tensor):
    pass


class Color(enum.IntEnum):
    RED = 1


class AlwaysEqual:
    def __eq__(self, other):
        return True

    __hash__ = object.__hash__


Point = namedtuple("Point", "x y")


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (torch.zeros(2).as_subclass(MyTensor), f"{__name__}.MyTensor"),
        (MyInt(3), f"{__name__}.MyInt"),
        (Color.RED, f"{__name__}.Color"),
        (MyFloat(1.5), f"{__name__}.MyFloat"),
        (np.float64(1.5), "numpy.float64"),
        (MyStr("a"), f"{__name__}.MyStr"),
        (MyDict(a=1), f"{__name__}.MyDict"),
        (collections.defaultdict(int), "collections.defaultdict"),
        (Point(1, 2), f"{__name__}.Point"),
        (AlwaysEqual(), f"{__name__}.AlwaysEqual"),
        (np.zeros(2), "numpy.ndarray"),
        ({1, 2}, "builtins.set"),
        (b"x", "builtins.bytes"),
        ((i for i in range(2)), "builtins.generator"),
        ([1, (2, {"k": AlwaysEqual()})], f"{__name__}.AlwaysEqual"),
    ],
    ids=lambda v: type(v).__name__,
)
def test_sanitize_refuses_anything_but_exact_plain_types(value, named):
    """Subclasses of tensor, int, float, str, dict and tuple, objects with their own ``__eq__``,
    numpy values and any other object are refused wherever they sit, naming the type; the
    outcome is a failed test."""
    with pytest.raises(BadOutput) as info:
        sanitize(value, WHAT)
    assert str(info.value) == f"{WHAT} a {named}, not a plain tensor, number or tuple"
    assert info.value.status == FAILED


@pytest.mark.parametrize(
    ("key", "named"),
    [((1, 2), "tuple"), (1.5, "float"), (True, "bool"), (None, "NoneType"), (MyStr("k"), "MyStr"), (MyInt(1), "MyInt")],
)
def test_sanitize_refuses_dict_keys_other_than_str_and_int(key, named):
    """A dict key must be exactly a ``str`` or an ``int``: the message names the key's type."""
    with pytest.raises(BadOutput, match=f"^{WHAT} a dict with a {named} key$"):
        sanitize({key: 1}, WHAT)


def test_sanitize_depth_limit():
    """Containers nest at most 8 deep; one level more, or a list that holds itself, is refused
    with a message (never a ``RecursionError``)."""
    assert sanitize(nested_list(MAX_DEPTH), WHAT) == nested_list(MAX_DEPTH)
    with pytest.raises(BadOutput, match=f"^{WHAT} a structure nested too deeply$"):
        sanitize(nested_list(MAX_DEPTH + 1), WHAT)
    loop = []
    loop.append(loop)
    with pytest.raises(BadOutput, match="nested too deeply"):
        sanitize(loop, WHAT)
    deep_dict = {"k": nested_list(MAX_DEPTH)}
    with pytest.raises(BadOutput, match="nested too deeply"):
        sanitize(deep_dict, WHAT)


class _EqualsEverything(type):
    def __eq__(cls, other):
        return True

    __hash__ = type.__hash__


class Impostor(metaclass=_EqualsEverything):
    """A class that claims to equal every class: ``Impostor in (int, float)`` is true."""


@pytest.mark.parametrize("value", [Impostor(), {Impostor(): 1}], ids=["value", "dict key"])
def test_sanitize_refuses_a_class_that_claims_to_equal_int(value):
    """Types are compared by identity: a class whose metaclass says it equals ``int`` is refused."""
    with pytest.raises(BadOutput):
        sanitize(value, WHAT)


def test_tensor_leaves_in_order():
    """The tensors of nested tuples and lists, depth first, in order; dicts and other values
    hold none."""
    a, b, c = torch.zeros(1), torch.ones(1), torch.full((1,), 2.0)
    leaves = tensor_leaves([a, (1, [b, None]), {"k": torch.ones(3)}, "s", (c,)])
    assert [id(t) for t in leaves] == [id(a), id(b), id(c)]
    assert tensor_leaves(a) == [a]
    assert tensor_leaves({"k": a}) == []


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_seed_all_leaves_the_state_torch_manual_seed_leaves(seed):
    torch.manual_seed(seed)
    expected = (torch.rand(7), torch.randn(3, 2), torch.randint(0, 100, (5,)))
    torch.rand(11)  # move the generator on
    seed_all(seed)
    got = (torch.rand(7), torch.randn(3, 2), torch.randint(0, 100, (5,)))
    assert all(torch.equal(a, b) for a, b in zip(got, expected))
    assert torch.initial_seed() == seed
