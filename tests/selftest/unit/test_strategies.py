"""The shared hypothesis strategies: cached composites draw what plain ones draw."""

from hypothesis import given, settings
from hypothesis import strategies as st

from grader.testing import strategies as S


def _sizes(draw, n, lo=2, hi=9):
    return draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n, unique=True))


def _case(draw, sizes, masked=True):
    b, h, length = draw(sizes(3, hi=7))
    flag = draw(st.sampled_from([False, True]))
    cut = draw(st.integers(0, length - 1)) if masked else None
    return b, h, length, flag, cut


def _strategy(composite):
    """The same two-level composite (the outer one calls the inner one with arguments inside
    its draw, as the exercise tests do), built with ``composite``."""
    sizes = composite(_sizes)
    case = composite(lambda draw, masked=True: _case(draw, sizes, masked))
    return case, sizes


def _drawn(strategy, n=60):
    """The values a derandomized run of one fixed test draws from ``strategy``."""
    seen = []

    @settings(max_examples=n, derandomize=True, database=None)
    @given(strategy)
    def run(value):
        seen.append(value)

    run()
    return seen


def test_a_cached_composite_is_one_strategy_per_arguments():
    """Calling a cached composite again with the same arguments gives the same strategy
    object (nothing for hypothesis to prepare again); other arguments, another one."""
    case, sizes = _strategy(S.composite)
    assert sizes(3, hi=7) is sizes(3, hi=7)
    assert sizes(3, hi=7) is not sizes(4, hi=7)
    assert case(masked=False) is case(masked=False)
    assert case(masked=1) is not case(masked=True)  # equal, but of another type: its own strategy
    assert S.distinct_sizes(4, lo=2, hi=7) is S.distinct_sizes(4, lo=2, hi=7)


def test_a_cached_composite_draws_what_st_composite_draws():
    """Same labels, same arguments: a derandomized run draws the same examples, in the same
    order, from the cached strategies as from ``st.composite``'s (so the grades stay)."""
    plain, _ = _strategy(st.composite)
    cached, _ = _strategy(S.composite)
    expected = _drawn(plain())
    assert len(set(expected)) > 20  # a real run of distinct examples, not one repeated
    assert _drawn(cached()) == expected
    assert _drawn(cached(masked=False)) == _drawn(plain(masked=False))


def test_distinct_sizes_are_distinct_and_in_range():
    """``distinct_sizes(n, lo, hi)``: n different ints in ``[lo, hi]``."""
    for sizes in _drawn(S.distinct_sizes(4, lo=2, hi=7)):
        assert len(sizes) == 4 == len(set(sizes))
        assert all(2 <= s <= 7 for s in sizes)
