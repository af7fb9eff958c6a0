"""Property tests of module ``param_count`` (exercise IDs ``param_count.*``).

Every test reaches the submission through the ``impl`` adapter.  Expected values are the
closed-form counts of the lecture, computed inline in each test with exact Python ints,
and a brute force: :func:`cpt_table` builds a conditional probability table with numpy and
each test counts the entries that normalisation leaves free.  No function of this file
returns a count, so none can be pasted into the stubs as an answer (``python -m grader
release`` grades every function of this file pasted into the stubs, and fails when one
earns a point).  Cardinalities are drawn mixed (never all equal, so never all 2): a
formula that only holds for binary variables cannot pass.
"""

import itertools
import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from grader.testing import strategies as S
from grader.testing.checks import INT_HINT, describe, expect_int, expect_int_list, expect_raises, fail
from grader.testing.plugin import implementation_fixture

MODULE = "param_count"
impl = implementation_fixture(MODULE)


# ----------------------------------------------------------------------------- inputs


@S.composite
def mixed_cardinalities(draw, min_size=2, max_size=5, lo=2, hi=6):
    """Cardinalities in ``[lo, hi]`` with at least two different values (so not all 2).
    ``lo`` is 2 by default: a cardinality of 1 is valid but adds no parameter, and the
    shrunk failing examples are clearer without it."""
    cards = draw(st.lists(st.integers(lo, hi), min_size=min_size, max_size=max_size))
    if len(set(cards)) < 2:
        i = draw(st.integers(0, len(cards) - 1))
        cards[i] = cards[i] + 1 if cards[i] < hi else cards[i] - 1
    return cards


#: Long lists of large cardinalities: products far beyond 2**53, where floats are inexact.
huge_cardinalities = mixed_cardinalities(min_size=12, max_size=30, lo=2, hi=1000)

#: Mixed small lists (sometimes with a constant variable, m = 1) or huge ones.
any_cardinalities = st.one_of(mixed_cardinalities(), mixed_cardinalities(lo=1), huge_cardinalities)

#: Values that are not a cardinality, with what makes each one wrong.
INVALID = [
    (0, "a cardinality of 0"),
    (-1, "a negative cardinality"),
    (-5, "a negative cardinality"),
    (2.0, "a float cardinality (2.0)"),
    (3.5, "a float cardinality (3.5)"),
    (True, "a bool cardinality (True)"),
    (False, "a bool cardinality (False)"),
]


@S.composite
def invalid_cardinalities(draw):
    """A mixed list with one entry replaced by something that is not an int >= 1."""
    cards = draw(mixed_cardinalities())
    bad, why = draw(st.sampled_from(INVALID))
    cards[draw(st.integers(0, len(cards) - 1))] = bad
    return cards, why


@S.composite
def dags(draw, min_size=2, max_size=5):
    """``(cardinalities, parents)``: a random DAG over mixed cardinalities.

    The variables are wired along a random topological order; each may take any earlier
    variables as parents, and the last one takes at least two when it can.  Variables
    without parents are left out of the mapping or given an empty list.
    """
    cards = draw(mixed_cardinalities(min_size=min_size, max_size=max_size))
    n = len(cards)
    order = draw(st.permutations(range(n)))
    parents = {}
    for pos, child in enumerate(order):
        earlier = list(order[:pos])
        least = min(2, pos) if pos == n - 1 else 0
        chosen = draw(st.lists(st.sampled_from(earlier), min_size=least, max_size=pos, unique=True)) if pos else []
        if chosen or draw(st.booleans()):
            parents[child] = chosen
    return cards, parents


def cpt_table(cards, child, parents):
    """The conditional probability table ``p(x_child | x_parents)`` built with numpy: one row
    per joint value of the parents, random entries normalised so that each row sums to 1.
    Its free entries are all but the last of each row: ``table[..., :-1].size``."""
    rng = np.random.default_rng(child)
    shape = tuple(cards[p] for p in sorted(set(parents))) + (cards[child],)
    table = rng.random(shape) + 0.1
    table /= table.sum(axis=-1, keepdims=True)
    assert np.allclose(table.sum(axis=-1), 1.0)
    return table


def cpt_tables(cards, parents):
    """The tables of a network, one per variable (``parents``: child -> its parents)."""
    return [cpt_table(cards, i, parents.get(i, ())) for i in range(len(cards))]


def markov_parents(n, order):
    """A Markov model of ``order`` as a network: variable i has parents max(0, i - order) .. i-1."""
    return {i: list(range(max(0, i - order), i)) for i in range(n)}


# ----------------------------------------------------------------------------- helpers


def _expect_value_error(impl, name, args, why, io, hints=()):
    """Calling ``name(*args)`` must raise ``ValueError``."""
    expect_raises(impl.call, name, *args, prop=f"{name} must raise ValueError for {why}", inputs=io, hints=hints)


CARD_HINTS = [
    "check every cardinality: an int (not a bool, not a float) >= 1, else raise ValueError",
    "bool is a subclass of int: isinstance(True, int) is True, test isinstance(m, bool) first",
]


# ----------------------------------------------------------------------------- param_count.categorical


@pytest.mark.exercise("param_count.categorical")
@pytest.mark.oracle("library")
@given(st.one_of(st.integers(1, 10**6), st.integers(2**60, 2**200)))
def test_categorical_is_m_minus_one(impl, m):
    """a categorical over m outcomes has m - 1 free parameters, an exact int"""
    got = impl.call("categorical_params", m)
    expect_int(
        got,
        m - 1,
        "count",
        prop="categorical_params(m) must be m - 1 (the probabilities sum to 1)",
        inputs=describe(num_outcomes=m),
    )


@pytest.mark.exercise("param_count.categorical", kind="property")
@pytest.mark.oracle("library")
@given(st.sampled_from(INVALID))
def test_categorical_rejects_invalid(impl, case):
    """categorical_params raises ValueError for 0, a negative number, a float or a bool"""
    m, why = case
    _expect_value_error(impl, "categorical_params", (m,), why, describe(num_outcomes=m), CARD_HINTS)


# ----------------------------------------------------------------------------- param_count.full_joint


@pytest.mark.exercise("param_count.full_joint", weight=2)
@pytest.mark.oracle("library")
@given(any_cardinalities)
def test_full_joint_is_product_minus_one(impl, cards):
    """the full joint needs prod(m_i) - 1 parameters, an exact int"""
    got = impl.call("full_joint_params", cards)
    expect_int(
        got,
        math.prod(cards) - 1,
        "count",
        prop="full_joint_params must be prod(m_i) - 1 (one categorical over all joint outcomes)",
        inputs=describe(cardinalities=cards),
    )


@pytest.mark.exercise("param_count.full_joint", weight=2)
@pytest.mark.oracle("library")
@given(
    st.sampled_from(
        [
            ([2] * 784, "28x28 binary pixels"),
            ([256] * 3, "one RGB pixel"),
            ([2] * 64, "64 binary pixels"),
            ([10] * 30, "30 decimal digits"),
            ([256] * 3 * 16, "16 RGB pixels"),
        ]
    )
)
def test_full_joint_lecture_examples(impl, case):
    """the lecture's examples: 2**784 - 1 for 28x28 binary pixels, 256**3 - 1 for one RGB pixel"""
    cards, what = case
    got = impl.call("full_joint_params", cards)
    expect_int(
        got,
        math.prod(cards) - 1,
        "count",
        prop=f"full_joint_params for {what} must be exactly prod(m_i) - 1",
        inputs=f"cardinalities = [{cards[0]}] * {len(cards)} ({what})",
        hints=["np.prod overflows int64 silently and float loses digits past 2**53"],
    )


@pytest.mark.exercise("param_count.full_joint", kind="property")
@pytest.mark.oracle("library")
@given(invalid_cardinalities())
def test_full_joint_rejects_invalid(impl, case):
    """full_joint_params raises ValueError for a cardinality that is 0, negative, a float or a bool"""
    cards, why = case
    _expect_value_error(impl, "full_joint_params", (cards,), why, describe(cardinalities=cards), CARD_HINTS)


# ----------------------------------------------------------------------------- param_count.independent


@pytest.mark.exercise("param_count.independent", weight=2)
@pytest.mark.oracle("library")
@given(any_cardinalities)
def test_independent_is_sum_of_categoricals(impl, cards):
    """independent variables need sum(m_i - 1) parameters, one categorical each"""
    got = impl.call("independent_params", cards)
    expect_int(
        got,
        sum(m - 1 for m in cards),
        "count",
        prop="independent_params must be sum(m_i - 1) (one categorical per variable)",
        inputs=describe(cardinalities=cards),
    )


@pytest.mark.exercise("param_count.independent")
@pytest.mark.oracle("library")
@given(st.sampled_from([([2] * 784, 784), ([256] * 3, 765), ([2] * 5 + [3], 7), ([7], 6)]))
def test_independent_lecture_examples(impl, case):
    """n binary pixels need n parameters, an RGB pixel of independent channels 3 * 255"""
    cards, expected = case
    got = impl.call("independent_params", cards)
    expect_int(
        got,
        expected,
        "count",
        prop="independent_params must be sum(m_i - 1)",
        inputs=f"cardinalities = {cards if len(cards) < 10 else f'[{cards[0]}] * {len(cards)}'}",
    )


@pytest.mark.exercise("param_count.independent", kind="property")
@pytest.mark.oracle("library")
@given(invalid_cardinalities())
def test_independent_rejects_invalid(impl, case):
    """independent_params raises ValueError for a cardinality that is 0, negative, a float or a bool"""
    cards, why = case
    _expect_value_error(impl, "independent_params", (cards,), why, describe(cardinalities=cards), CARD_HINTS)


# ----------------------------------------------------------------------------- param_count.chain_rule


@pytest.mark.exercise("param_count.chain_rule", weight=2)
@pytest.mark.oracle("library")
@given(st.one_of(mixed_cardinalities(), huge_cardinalities))
def test_chain_rule_factors_match_tables(impl, cards):
    """factor i = (m_i - 1) * prod_{j<i} m_j: the free entries of the table p(x_i | x_<i)"""
    got = impl.call("chain_rule_factor_params", cards)
    if math.prod(cards) <= 10**5:  # small enough to build the tables
        expected = [cpt_table(cards, i, range(i))[..., :-1].size for i in range(len(cards))]
    else:
        expected = [(m - 1) * math.prod(cards[:i]) for i, m in enumerate(cards)]
    expect_int_list(
        got,
        expected,
        "factors",
        prop="chain_rule_factor_params[i] must be (m_i - 1) * prod_{j<i} m_j",
        inputs=describe(cardinalities=cards),
    )


@pytest.mark.exercise("param_count.chain_rule")
@pytest.mark.oracle("library")
@given(st.integers(1, 40))
def test_chain_rule_binary_is_powers_of_two(impl, n):
    """for n binary variables the factors are [1, 2, 4, ..., 2**(n-1)]"""
    cards = [2] * n
    got = impl.call("chain_rule_factor_params", cards)
    expect_int_list(
        got,
        [2**i for i in range(n)],
        "factors",
        prop="binary chain-rule factors must be [1, 2, 4, ..., 2**(n-1)]",
        inputs=f"cardinalities = [2] * {n}",
    )


@pytest.mark.exercise("param_count.chain_rule", weight=2)
@pytest.mark.oracle("library")
@given(mixed_cardinalities(min_size=2, max_size=4, lo=2, hi=7))
def test_chain_rule_sums_to_full_joint_in_every_order(impl, cards):
    """for every ordering of the variables the chain-rule factors sum to prod(m_i) - 1"""
    full = math.prod(cards) - 1
    for perm in sorted(set(itertools.permutations(cards))):
        perm = list(perm)
        got = impl.call("chain_rule_factor_params", perm)
        io = describe(cardinalities=perm)
        if not isinstance(got, list) or any(type(v) is not int for v in got):
            expect_int_list(
                got,
                [(m - 1) * math.prod(perm[:i]) for i, m in enumerate(perm)],
                "factors",
                prop="chain_rule_factor_params must return a list of ints",
                inputs=io,
            )
        if sum(got) != full:
            fail(
                "the chain rule restricts nothing: its factors must sum to the full joint prod(m_i) - 1",
                [f"sum of yours: {sum(got)} ({got})", f"expected:     {full}"],
                io,
                ["factor i conditions on all earlier variables: (m_i - 1) * prod_{j<i} m_j"],
            )


@pytest.mark.exercise("param_count.chain_rule", kind="property")
@pytest.mark.oracle("library")
@given(invalid_cardinalities())
def test_chain_rule_rejects_invalid(impl, case):
    """chain_rule_factor_params raises ValueError for a cardinality that is 0, negative, a float or a bool"""
    cards, why = case
    _expect_value_error(impl, "chain_rule_factor_params", (cards,), why, describe(cardinalities=cards), CARD_HINTS)


# ----------------------------------------------------------------------------- param_count.markov


@pytest.mark.exercise("param_count.markov", weight=2)
@pytest.mark.oracle("library")
@given(mixed_cardinalities(min_size=2, max_size=6), st.data())
def test_markov_matches_tables(impl, cards, data):
    """markov_params(order=k): each variable's table conditions on the k previous ones"""
    order = data.draw(st.integers(0, len(cards)), label="order")
    got = impl.call("markov_params", cards, order)
    expected = sum(table[..., :-1].size for table in cpt_tables(cards, markov_parents(len(cards), order)))
    expect_int(
        got,
        expected,
        "count",
        prop=f"markov_params(order={order}) must be sum_i (m_i - 1) * prod of the {order} previous m_j",
        inputs=describe(cardinalities=cards, order=order),
        hints=[f"variable i conditions on variables max(0, i - {order}) .. i - 1"],
    )


@pytest.mark.exercise("param_count.markov", weight=2)
@pytest.mark.oracle("library")
@given(st.one_of(mixed_cardinalities(min_size=3, max_size=6), huge_cardinalities))
def test_markov_lies_between_independent_and_full_joint(impl, cards):
    """independent = markov(0) <= markov(k) <= markov(k+1) <= full joint = markov(k >= n-1)"""
    n = len(cards)
    orders = list(range(0, n + 2)) if n <= 6 else [0, 1, 2, 3, n // 2, n - 2, n - 1, n, n + 5]
    counts = {}
    for k in orders:
        counts[k] = impl.call("markov_params", cards, k)
        if type(counts[k]) is not int:
            fail(
                "markov_params must return an exact Python int",
                [f"yours: {counts[k]!r}"[:200]],
                describe(cardinalities=cards, order=k),
                [INT_HINT],
            )
    io = describe(cardinalities=cards)
    independent, full = sum(m - 1 for m in cards), math.prod(cards) - 1
    if counts[0] != independent:
        expect_int(
            counts[0],
            independent,
            "count",
            prop="markov_params(order=0) must equal the independent model",
            inputs=describe(cardinalities=cards, order=0),
        )
    for lo, hi in zip(orders, orders[1:]):
        if not counts[lo] <= counts[hi]:
            fail(
                "a longer Markov window can only add parameters: markov(k) <= markov(k+1)",
                [f"yours: order {lo} -> {counts[lo]}, order {hi} -> {counts[hi]}"],
                io,
            )
    for k in orders:
        if k >= n - 1 and counts[k] != full:
            expect_int(
                counts[k],
                full,
                "count",
                prop=f"markov_params(order={k}) with order >= n - 1 = {n - 1} must equal the full joint",
                inputs=describe(cardinalities=cards, order=k),
                hints=[
                    "is the order ignored, or is the window off by one? variable i conditions on "
                    "variables max(0, i - order) .. i - 1"
                ],
            )


@pytest.mark.exercise("param_count.markov")
@pytest.mark.oracle("library")
@given(st.integers(1, 200), st.booleans())
def test_markov_binary_order_one_is_2n_minus_1(impl, n, explicit):
    """n binary variables under a first-order Markov assumption need 2n - 1 parameters (order defaults to 1)"""
    cards = [2] * n
    got = impl.call("markov_params", cards, 1) if explicit else impl.call("markov_params", cards)
    expect_int(
        got,
        2 * n - 1,
        "count",
        prop="markov_params([2] * n" + (", 1)" if explicit else ") (order defaults to 1)") + " must be 2n - 1",
        inputs=f"cardinalities = [2] * {n}" + (", order=1" if explicit else ""),
    )


@pytest.mark.exercise("param_count.markov", kind="property")
@pytest.mark.oracle("library")
@given(
    st.one_of(
        mixed_cardinalities().map(lambda c: (c, -1, "a negative order (-1)")),
        mixed_cardinalities().map(lambda c: (c, -3, "a negative order (-3)")),
        invalid_cardinalities().map(lambda case: (case[0], 1, case[1])),
    )
)
def test_markov_rejects_invalid(impl, case):
    """markov_params raises ValueError for a negative order or a cardinality that is not an int >= 1"""
    cards, order, why = case
    hints = ["check order >= 0 before using it"] if "order" in why else CARD_HINTS
    _expect_value_error(impl, "markov_params", (cards, order), why, describe(cardinalities=cards, order=order), hints)


# ----------------------------------------------------------------------------- param_count.bayes_net


@pytest.mark.exercise("param_count.bayes_net", weight=2)
@pytest.mark.oracle("library")
@example(net=([2, 4, 3], {1: [0], 2: [0, 1]}))  # a parent's m_p differs from m_p - 1, m_child and m_child - 1
@given(dags())
def test_bayes_net_matches_tables(impl, net):
    """sum_i (m_i - 1) * prod_{p in parents(i)} m_p: the free entries of every table p(x_i | parents)"""
    cards, parents = net
    got = impl.call("bayes_net_params", cards, parents)
    expect_int(
        got,
        sum(table[..., :-1].size for table in cpt_tables(cards, parents)),
        "count",
        prop="bayes_net_params must be sum_i (m_i - 1) * prod of the parents' cardinalities m_p",
        inputs=describe(cardinalities=cards, parents=parents),
        hints=["variable i has one categorical (m_i - 1 parameters) per joint value of its parents"],
    )


@pytest.mark.exercise("param_count.bayes_net", weight=2)
@pytest.mark.oracle("library")
@given(st.one_of(mixed_cardinalities(max_size=6), huge_cardinalities), st.data())
def test_bayes_net_special_cases(impl, cards, data):
    """chain-rule parents give the full joint (in any order), no parents the independent model, a chain markov(1)"""
    n = len(cards)
    perm = data.draw(st.permutations(range(n)), label="ordering")
    cases = [
        (
            {perm[i]: [perm[j] for j in range(i)] for i in range(n)},
            math.prod(cards) - 1,
            "chain-rule parents (every earlier variable, in the drawn ordering) must give the full joint",
        ),
        ({}, sum(m - 1 for m in cards), "no parents at all ({}) must give the independent model"),
        ({i: [] for i in range(n)}, sum(m - 1 for m in cards), "empty parent lists must give the independent model"),
        (
            {i: [i - 1] for i in range(1, n)},
            sum((m - 1) * (cards[i - 1] if i else 1) for i, m in enumerate(cards)),
            "a chain (parents(i) = [i - 1]) must give markov_params(order=1)",
        ),
    ]
    for parents, expected, prop in cases:
        got = impl.call("bayes_net_params", cards, parents)
        expect_int(got, expected, "count", prop=prop, inputs=describe(cardinalities=cards, parents=parents))


@S.composite
def bad_networks(draw):
    """``(cardinalities, parents, why)``: an index out of range or a bad cardinality."""
    cards, parents = draw(dags())
    n = len(cards)
    kind = draw(st.sampled_from(["parent", "negative parent", "child", "negative child", "cardinality"]))
    parents = {k: list(v) for k, v in parents.items()}
    if kind == "parent":
        bad = draw(st.integers(n, n + 3))
        parents.setdefault(draw(st.integers(0, n - 1)), []).append(bad)
        return cards, parents, f"a parent index out of range ({bad} with {n} variables)"
    if kind == "negative parent":
        parents.setdefault(draw(st.integers(0, n - 1)), []).append(-1)
        return cards, parents, "a negative parent index (-1)"
    if kind == "child":
        bad = draw(st.integers(n, n + 3))
        parents[bad] = [0]
        return cards, parents, f"a child index out of range ({bad} with {n} variables)"
    if kind == "negative child":
        parents[-1] = [0]
        return cards, parents, "a negative child index (-1)"
    value, why = draw(st.sampled_from(INVALID))
    cards = list(cards)
    cards[draw(st.integers(0, n - 1))] = value
    return cards, parents, why


@pytest.mark.exercise("param_count.bayes_net", kind="property")
@pytest.mark.oracle("library")
@given(bad_networks())
def test_bayes_net_rejects_bad_indices_and_cardinalities(impl, case):
    """bayes_net_params raises ValueError for an index out of range or a cardinality that is not an int >= 1"""
    cards, parents, why = case
    hints = (
        CARD_HINTS
        if "cardinality" in why
        else ["check every child and parent index is an int in 0 .. n-1 (a negative index is out of range too)"]
    )
    _expect_value_error(
        impl, "bayes_net_params", (cards, parents), why, describe(cardinalities=cards, parents=parents), hints
    )


@S.composite
def cyclic_networks(draw):
    """``(cardinalities, parents, why)``: a DAG plus edges that close a cycle."""
    cards, parents = draw(dags(min_size=3, max_size=6))
    n = len(cards)
    parents = {k: list(v) for k, v in parents.items()}
    kind = draw(st.sampled_from(["self", "two", "long"]))
    if kind == "self":
        i = draw(st.integers(0, n - 1))
        parents.setdefault(i, []).append(i)
        return cards, parents, f"a self-loop (variable {i} its own parent)"
    length = 2 if kind == "two" else draw(st.integers(3, n))
    loop = draw(st.permutations(range(n)))[:length]
    for a, b in zip(loop, loop[1:] + loop[:1]):
        if a not in parents.setdefault(b, []):
            parents[b].append(a)
    return cards, parents, f"a cycle {' -> '.join(map(str, loop + loop[:1]))}"


@pytest.mark.exercise("param_count.bayes_net", kind="property")
@pytest.mark.oracle("library")
@given(cyclic_networks())
def test_bayes_net_rejects_cycles(impl, case):
    """bayes_net_params raises ValueError when the graph has a cycle"""
    cards, parents, why = case
    _expect_value_error(
        impl,
        "bayes_net_params",
        (cards, parents),
        why,
        describe(cardinalities=cards, parents=parents),
        [
            "a Bayesian network is a DAG: detect cycles (depth-first search, or repeatedly remove "
            "the variables whose parents are all removed)"
        ],
    )
