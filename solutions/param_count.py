"""Module `param_count`: how many parameters does a distribution need? (Generative models 1)

A discrete distribution is a table of probabilities; its *free parameters* are the
entries left once every normalisation constraint (each row sums to 1) is used.  The
lecture counts them for the unrestricted joint, for fully independent variables, for
the chain rule, under a Markov assumption and for a Bayesian network.

Conventions (see the exercise contract):

* a *cardinality* ``m`` is the number of values a variable takes: an ``int >= 1``.
  Anything else (0, a negative int, a float such as ``2.0``, a bool) raises
  ``ValueError`` with a message that names the argument;
* variables are indexed ``0 .. n-1`` in the order of ``cardinalities``, so
  ``cardinalities[i]`` is ``m_i``;
* every count is an exact Python ``int``: for 28x28 binary pixels the full joint needs
  ``2**784 - 1`` parameters, a 237-digit number that no float holds exactly.  Count with
  ints only (``math.prod`` of ints, ``**`` on ints); never ``float``, ``/`` or
  ``np.prod`` (which overflows int64 silently);
* a categorical distribution over ``m`` outcomes has ``m - 1`` free parameters: ``m``
  probabilities and one constraint ``sum_k p_k = 1``.
"""

import math


def categorical_params(num_outcomes):
    """Free parameters of a categorical distribution.  Exercise ``param_count.categorical``.

    ``p(x = k) = p_k`` for ``k = 1 .. m`` with ``sum_k p_k = 1``: ``m`` numbers and one
    constraint leave ``m - 1`` free parameters (a coin flip 1, one 256-level channel 255).

    Args:
        num_outcomes: ``m``, an ``int >= 1``.

    Returns:
        ``m - 1``, an ``int``.

    Raises:
        ValueError: ``num_outcomes`` is not an int >= 1 (0, negative, a float, a bool).
    """
    ### BEGIN SOLUTION
    if isinstance(num_outcomes, bool) or not isinstance(num_outcomes, int) or num_outcomes < 1:
        raise ValueError(f"num_outcomes must be an int >= 1, got {num_outcomes!r}")
    return num_outcomes - 1
    ### END SOLUTION


def full_joint_params(cardinalities):
    """Free parameters of the unrestricted joint distribution.  Exercise ``param_count.full_joint``.

    ``p(x_1, ..., x_n)`` is one categorical over all ``prod_i m_i`` joint outcomes, so it
    needs ``prod_i m_i - 1`` parameters: ``2**n - 1`` for ``n`` binary pixels,
    ``256**3 - 1`` for one RGB pixel.

    Args:
        cardinalities: sequence of ``n`` cardinalities ``m_i``, each an ``int >= 1``.

    Returns:
        ``prod_i m_i - 1``, an exact ``int``.

    Raises:
        ValueError: a cardinality is not an int >= 1.
    """
    ### BEGIN SOLUTION
    cards = list(cardinalities)
    for i, m in enumerate(cards):
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ValueError(f"cardinalities[{i}] must be an int >= 1, got {m!r}")
    return math.prod(cards) - 1
    ### END SOLUTION


def independent_params(cardinalities):
    """Free parameters when all variables are independent.  Exercise ``param_count.independent``.

    ``p(x_1, ..., x_n) = p(x_1) p(x_2) ... p(x_n)``: one categorical per variable, so
    ``sum_i (m_i - 1)`` parameters (``n`` for ``n`` binary pixels).

    Args:
        cardinalities: sequence of ``n`` cardinalities ``m_i``, each an ``int >= 1``.

    Returns:
        ``sum_i (m_i - 1)``, an ``int``.

    Raises:
        ValueError: a cardinality is not an int >= 1.
    """
    ### BEGIN SOLUTION
    cards = list(cardinalities)
    for i, m in enumerate(cards):
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ValueError(f"cardinalities[{i}] must be an int >= 1, got {m!r}")
    return sum(m - 1 for m in cards)
    ### END SOLUTION


def chain_rule_factor_params(cardinalities):
    """Free parameters of each factor of the chain rule.  Exercise ``param_count.chain_rule``.

    ``p(x_1, ..., x_n) = p(x_1) p(x_2 | x_1) ... p(x_n | x_1, ..., x_{n-1})``.  The factor
    ``p(x_i | x_1 .. x_{i-1})`` is one categorical over ``m_i`` values for each of the
    ``prod_{j<i} m_j`` values of its condition, so it needs ``(m_i - 1) * prod_{j<i} m_j``
    parameters.  For binary variables ``[1, 2, 4, ..., 2**(n-1)]``, and in every case
    the factors add up to the full joint's ``prod_i m_i - 1``: the chain rule restricts
    nothing.

    Args:
        cardinalities: sequence of ``n`` cardinalities ``m_i``, each an ``int >= 1``.

    Returns:
        a ``list`` of ``n`` ``int``: entry ``i`` is ``(m_i - 1) * prod_{j<i} m_j``.

    Raises:
        ValueError: a cardinality is not an int >= 1.
    """
    ### BEGIN SOLUTION
    cards = list(cardinalities)
    for i, m in enumerate(cards):
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ValueError(f"cardinalities[{i}] must be an int >= 1, got {m!r}")
    return [(m - 1) * math.prod(cards[:i]) for i, m in enumerate(cards)]
    ### END SOLUTION


def markov_params(cardinalities, order=1):
    """Free parameters under a Markov assumption of ``order`` k.  Exercise ``param_count.markov``.

    Each variable depends only on the ``k`` variables just before it:
    ``p(x_i | x_1 .. x_{i-1}) = p(x_i | x_{i-k} .. x_{i-1})``, so

        ``sum_i (m_i - 1) * prod_{j = max(0, i-k)}^{i-1} m_j``

    (0-based ``i``).  Order 0 is the independent model, order ``>= n - 1`` the full
    chain rule (the full joint); binary pixels with order 1 need ``2n - 1``.

    Args:
        cardinalities: sequence of ``n`` cardinalities ``m_i``, each an ``int >= 1``.
        order: ``k``, an ``int >= 0``.

    Returns:
        the count, an ``int``.

    Raises:
        ValueError: a cardinality is not an int >= 1, or ``order`` is negative.
    """
    ### BEGIN SOLUTION
    cards = list(cardinalities)
    for i, m in enumerate(cards):
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ValueError(f"cardinalities[{i}] must be an int >= 1, got {m!r}")
    if isinstance(order, bool) or not isinstance(order, int) or order < 0:
        raise ValueError(f"order must be an int >= 0, got {order!r}")
    total = 0
    for i, m in enumerate(cards):
        total += (m - 1) * math.prod(cards[max(0, i - order):i])
    return total
    ### END SOLUTION


def bayes_net_params(cardinalities, parents):
    """Free parameters of a Bayesian network.  Exercise ``param_count.bayes_net``.

    ``p(x_1, ..., x_n) = prod_i p(x_i | x_parents(i))``: variable ``i`` has one
    categorical over ``m_i`` values per value of its parents, so the network needs

        ``sum_i (m_i - 1) * prod_{p in parents(i)} m_p``

    parameters.  The chain rule (``parents(i) = {0 .. i-1}``) gives the full joint, no
    parents the independent model, a chain (``parents(i) = {i-1}``) the Markov model of
    order 1.

    Args:
        cardinalities: sequence of ``n`` cardinalities ``m_i``, each an ``int >= 1``.
        parents: mapping ``child index -> iterable of parent indices``; a variable that
            is not a key has no parents.  Indices are in ``0 .. n-1``.

    Returns:
        the count, an ``int``.

    Raises:
        ValueError: a cardinality is not an int >= 1, an index (child or parent) is out
            of range, or the graph has a cycle (a variable its own ancestor).
    """
    ### BEGIN SOLUTION
    cards = list(cardinalities)
    for i, m in enumerate(cards):
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ValueError(f"cardinalities[{i}] must be an int >= 1, got {m!r}")
    n = len(cards)

    def valid_index(index):
        return not isinstance(index, bool) and isinstance(index, int) and 0 <= index < n

    parent_sets = {}
    for child, pars in parents.items():
        if not valid_index(child):
            raise ValueError(f"parents: child index {child!r} is out of range for {n} variables")
        pars = set(pars)
        for p in pars:
            if not valid_index(p):
                raise ValueError(f"parents[{child}]: parent index {p!r} is out of range for {n} variables")
        parent_sets[child] = pars
    # A DAG can be emptied by repeatedly removing the variables whose parents are all
    # removed already; if at some point none can be removed, the rest contain a cycle.
    removed = set()
    while len(removed) < n:
        ready = [i for i in range(n) if i not in removed and parent_sets.get(i, set()) <= removed]
        if not ready:
            stuck = sorted(set(range(n)) - removed)
            raise ValueError(f"parents: the graph has a cycle among variables {stuck}")
        removed.update(ready)
    return sum((m - 1) * math.prod(cards[p] for p in parent_sets.get(i, ())) for i, m in enumerate(cards))
    ### END SOLUTION
