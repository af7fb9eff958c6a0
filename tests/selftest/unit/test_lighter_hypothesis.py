"""Hypothesis's per-example bookkeeping made cheaper (grader/testing/lighter_hypothesis.py):
each change computes what hypothesis's own code computes, which :func:`unpatched` puts
back for the comparison."""

import threading

import hypothesis
import pytest
from hypothesis import Verbosity, given, settings
from hypothesis import core as hypothesis_core
from hypothesis import strategies as st
from hypothesis.database import choices_to_bytes
from hypothesis.internal.conjecture import data as hypothesis_data
from hypothesis.internal.reflection import get_signature
from hypothesis.strategies._internal import lazy as hypothesis_lazy
from hypothesis.strategies._internal.numbers import IntegersStrategy
from hypothesis.utils.threading import ThreadLocal

from grader.testing import lighter_hypothesis
from grader.testing import strategies as S
from grader.testing.lighter_hypothesis import unpatched


def test_installed_with_the_pinned_hypothesis():
    """The grading plugin installs the changes (hypothesis is pinned to the version they
    were written for); installing again changes nothing."""
    assert hypothesis.__version__ == lighter_hypothesis.WRITTEN_FOR
    proxies = hypothesis_core.proxies
    assert lighter_hypothesis.install()
    assert hypothesis_core.proxies is proxies
    with unpatched():
        assert hypothesis_core.proxies is not proxies
    assert hypothesis_core.proxies is proxies


def test_another_hypothesis_version_is_left_alone(monkeypatch):
    """Written against one version's internals: with any other, nothing is replaced."""
    monkeypatch.setattr(hypothesis, "__version__", "0.0.0")
    monkeypatch.setattr(lighter_hypothesis, "_INSTALLED", [])
    with unpatched():  # the real _INSTALLED: hypothesis's own code for the body
        proxies = hypothesis_core.proxies
        assert not lighter_hypothesis.install()
        assert hypothesis_core.proxies is proxies


@st.composite
def _case(draw):
    sizes = draw(S.distinct_sizes(3, hi=7))
    flag = draw(st.sampled_from([False, True]))
    scale = draw(st.floats(-4, 4, allow_nan=False))
    cut = draw(st.integers(0, sizes[0] - 1))
    words = draw(st.lists(st.text(max_size=3), max_size=3))
    big = draw(st.integers(-(2**300), 2**300))
    return tuple(sizes), flag, scale, cut, tuple(words), big


_tree = st.deferred(lambda: st.one_of(st.none(), st.tuples(st.integers(0, 3), _tree, _tree)))

STRATEGIES = {
    "composite": _case(),
    "unique lists": st.lists(st.integers(2, 9), min_size=3, max_size=3, unique=True),
    "filtered and mapped": st.integers(0, 50).filter(lambda n: n % 3 != 1).map(lambda n: n * 2),
    "recursive": _tree,
    "one of with an empty branch": st.one_of(st.nothing(), st.booleans(), st.binary(max_size=4)),
}


def _drawn(strategy):
    """What a derandomized run of one fixed test draws from ``strategy``, in order."""
    seen = []

    @settings(max_examples=40, derandomize=True, database=None)
    @given(strategy)
    def run(value):
        seen.append(value)

    run()
    return seen


@pytest.mark.parametrize("name", STRATEGIES)
def test_the_same_examples_as_hypothesis_draws(name):
    """A derandomized run draws the same examples, in the same order, with the changes as
    with hypothesis's own code (the strategies built anew for each run)."""
    strategy = STRATEGIES[name]
    with unpatched():
        expected = _drawn(strategy)
    assert len({repr(v) for v in expected}) > 5  # a real run, not one example repeated
    assert _drawn(strategy) == expected


def _target(query, *, keys=2, scale=1.0):
    """A test function with a signature to copy."""
    return query, keys, scale


def test_the_test_wrapper_is_hypothesis_s_and_calls_each_example_s_closure():
    """The wrapper built once per test has the name, signature and ``__wrapped__`` of the
    one hypothesis builds for each example, and calls the closure of the latest example."""
    with unpatched():
        theirs = hypothesis_core.proxies(_target)(lambda *a, **k: ("theirs", a, k))
    first = hypothesis_core.proxies(_target)(lambda *a, **k: ("first", a, k))
    second = hypothesis_core.proxies(_target)(lambda *a, **k: ("second", a, k))
    assert second is first
    for attribute in ("__name__", "__qualname__", "__module__", "__doc__", "__wrapped__"):
        assert getattr(first, attribute) == getattr(theirs, attribute)
    assert get_signature(first) == get_signature(theirs)
    assert first.__code__.co_filename == theirs.__code__.co_filename == _target.__code__.co_filename
    assert second(1, keys=3) == ("second", (1,), {"keys": 3, "scale": 1.0})
    assert theirs(1, keys=3)[1:] == ((1,), {"keys": 3, "scale": 1.0})
    with pytest.raises(TypeError):
        second(1, 2)  # keys is keyword-only, as in the test's own signature


def test_verbosity_compares_as_hypothesis_orders_it():
    """Every comparison between members, and with ints, as hypothesis's ``_int_value``
    orders them."""
    values = [*Verbosity, 0, 1, 2, 3]
    for left in Verbosity:
        for right in values:
            with unpatched():
                theirs = (left > right, left >= right, left < right, left <= right)
            assert (left > right, left >= right, left < right, left <= right) == theirs, (left, right)


@pytest.mark.parametrize("name", ["is_empty", "has_reusable_values", "is_cacheable"])
def test_memoized_strategy_properties_are_hypothesis_s(name):
    """The properties read through the instance's dict have the values hypothesis's own
    fixed-point computation gives, for strategies that are empty, recursive, forced."""

    def built():
        loop = st.deferred(lambda: st.tuples(st.integers(), back))  # no base case: empty
        back = st.deferred(lambda: st.one_of(loop))
        forced = st.integers(0, 3)
        forced.force_has_reusable_values = False
        both = st.integers(0, 3)  # a memoized value, then a forced one: the forced one wins
        _ = (both.is_empty, both.has_reusable_values, both.is_cacheable)
        both.force_is_empty = both.force_has_reusable_values = both.force_is_cacheable = "forced"
        in_class = _ForcedInClass(0, 3)  # a class-level forced value beats a memoized one
        in_class.cached_is_empty = in_class.cached_has_reusable_values = in_class.cached_is_cacheable = "cached"
        return [
            st.integers(0, 3),
            st.nothing(),
            st.lists(st.nothing(), min_size=1),
            st.one_of(st.nothing(), st.integers()),
            loop,
            back,
            _tree,
            st.builds(list),
            st.randoms(),
            forced,
            both,
            in_class,
        ]

    with unpatched():
        expected = [[getattr(s, name) for _ in range(2)] for s in built()]
    assert [[getattr(s, name) for _ in range(2)] for s in built()] == expected


class _ForcedInClass(IntegersStrategy):
    force_is_empty = force_has_reusable_values = force_is_cacheable = "class"


def test_unwrapping_gives_hypothesis_s_strategy():
    """An unwrapped lazy strategy is the very object hypothesis's own unwrapping gives,
    asked once or many times, top-level or inside a recursive strategy."""
    lazy = st.integers(0, 7)
    with unpatched():
        theirs = hypothesis_lazy.unwrap_strategies(lazy)
        recursive = hypothesis_lazy.unwrap_strategies(_tree)
    assert theirs is not lazy
    for _ in range(3):
        assert hypothesis_lazy.unwrap_strategies(lazy) is theirs
        assert hypothesis_lazy.unwrap_strategies(_tree) is recursive


def _loop():
    """Two deferred strategies that only wrap each other: no strategy at the end."""
    outer = st.deferred(lambda: st.deferred(lambda: outer))
    return outer, outer.wrapped_strategy


def test_unwrapping_a_loop_gives_what_hypothesis_gives():
    """In a loop of wrapped strategies hypothesis's answer depends on where the unwrapping
    starts: the same answers, asked in the same order."""

    def answers():
        outer, inner = _loop()
        names = {id(outer): "outer", id(inner): "inner"}
        return [names.get(id(hypothesis_lazy.unwrap_strategies(s))) for s in (outer, inner, outer, inner)]

    with unpatched():
        theirs = answers()
    assert theirs == ["outer", "inner", "outer", "inner"]
    assert answers() == theirs


@settings(max_examples=300)
@given(
    st.lists(
        st.one_of(
            st.booleans(),
            st.integers(),
            st.integers(-(2**400), 2**400),
            st.floats(allow_nan=True, allow_infinity=True),
            st.binary(max_size=40),
            st.text(max_size=40),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_a_choice_s_size_is_the_length_of_its_bytes(choices):
    """``choices_size`` of any choices (one or several; bools, ints small and huge, floats
    NaN and infinite included, bytes, text) is the length of ``choices_to_bytes``."""
    assert hypothesis_data.choices_size(choices) == len(choices_to_bytes(choices))
    assert hypothesis_data.choices_size(choices[:1]) == len(choices_to_bytes(choices[:1]))


def test_thread_local_values_stay_per_thread():
    """A value set in one thread is read back there, and another thread sees its own
    default, as with hypothesis's own reads."""
    local = ThreadLocal(depth=int)
    local.depth = 5
    seen = []
    worker = threading.Thread(target=lambda: seen.append(local.depth))
    worker.start()
    worker.join()
    assert (local.depth, seen) == (5, [0])
    with pytest.raises(AttributeError):
        _ = local.other
