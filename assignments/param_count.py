# Generated from solutions/param_count.py by `python -m grader generate`: fill in the TODOs.
# Check your work with `python -m grader check param_count`.
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
    # TODO(param_count.categorical): write categorical_params (delete this raise).
    raise NotImplementedError("param_count.categorical: categorical_params is not implemented yet")


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
    # TODO(param_count.full_joint): write full_joint_params (delete this raise).
    raise NotImplementedError("param_count.full_joint: full_joint_params is not implemented yet")


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
    # TODO(param_count.independent): write independent_params (delete this raise).
    raise NotImplementedError("param_count.independent: independent_params is not implemented yet")


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
    # TODO(param_count.chain_rule): write chain_rule_factor_params (delete this raise).
    raise NotImplementedError("param_count.chain_rule: chain_rule_factor_params is not implemented yet")


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
    # TODO(param_count.markov): write markov_params (delete this raise).
    raise NotImplementedError("param_count.markov: markov_params is not implemented yet")


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
    # TODO(param_count.bayes_net): write bayes_net_params (delete this raise).
    raise NotImplementedError("param_count.bayes_net: bayes_net_params is not implemented yet")
