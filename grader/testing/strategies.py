"""Hypothesis strategies for non-degenerate, bounded test inputs.

Sizes are drawn distinct (so a transposed axis cannot hide behind a square shape) and
at least 2 (a softmax over one key is always 1).  Sizes of one come as explicit
examples instead (:func:`with_one`, :func:`edge_examples`): one size is 1 and the others
stay distinct, so that a ``.squeeze()`` that drops the batch axis fails every time.
Tensor values come from a seeded generator, uniform in ``[-scale, scale]``: hypothesis
shrinks the sizes and the seed, and the failing example it reports is the smallest it
found.
"""

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Concatenate, ParamSpec, TypeVar

import torch
from hypothesis import example
from hypothesis import strategies as st

FLOAT_DTYPES = (torch.float32, torch.float64)

dtypes = st.sampled_from(FLOAT_DTYPES)
seeds = st.integers(min_value=0, max_value=2**31 - 1)
_Test = TypeVar("_Test", bound=Callable[..., Any])
_P = ParamSpec("_P")
_T = TypeVar("_T")


def composite(definition: Callable[Concatenate[st.DrawFn, _P], _T]) -> Callable[_P, st.SearchStrategy[_T]]:
    """``st.composite``, with one strategy object for each set of arguments.

    A composite strategy is built anew each time it is called, and hypothesis prepares every
    new one before its first draw (unwraps it, validates it, works out its label and whether
    it can be empty): about 0.2 ms, a fifth of what an example costs, for a strategy called
    inside another one's draw (``draw(distinct_sizes(4))``).  The strategy objects are the
    same kind with the same label and arguments, so the draws are the same.  The arguments
    must be hashable; equal ones of different types (``1``, ``1.0``, ``True``) get strategies
    of their own.
    """
    return functools.lru_cache(maxsize=None, typed=True)(st.composite(definition))  # type: ignore[return-value]


@composite
def distinct_sizes(draw: st.DrawFn, n: int, lo: int = 2, hi: int = 9) -> list[int]:
    """``n`` distinct ints in ``[lo, hi]``."""
    return draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n, unique=True))


def generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed``.

    In staff grading with a secret key (:mod:`grader.staffkey`) the torch seed is
    ``HMAC-SHA256(key, seed)`` truncated to 63 bits, so every tensor value, fixed seeds
    included, changes with the key; without a key it is ``seed`` (local runs).
    """
    from grader import staffkey

    return torch.Generator().manual_seed(staffkey.tensor_seed(seed))


def uniform(
    gen: torch.Generator,
    *shape: int,
    dtype: torch.dtype = torch.float64,
    scale: float = 1.0,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Values uniform in ``[-scale, scale]`` drawn from ``gen``."""
    values = (torch.rand(*shape, generator=gen, dtype=torch.float64) * 2 - 1) * scale
    return values.to(device=device, dtype=dtype)


def random_mask(
    gen: torch.Generator, *shape: int, p: float = 0.6, keep_one: bool = True, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """A random bool mask (True = may attend); ``keep_one`` keeps one True per last-axis row."""
    mask = torch.rand(*shape, generator=gen) < p
    if keep_one:
        first = torch.randint(0, shape[-1], shape[:-1], generator=gen)
        mask = mask | torch.nn.functional.one_hot(first, shape[-1]).bool()
    return mask.to(device)


# ----------------------------------------------------------------------------- sizes of one


def with_one(base: Mapping[str, int], *names: str) -> list[dict[str, int]]:
    """For each of ``names``, a copy of the sizes ``base`` with that one size set to 1.

    ``base`` maps size names to distinct sizes >= 2, so that in every copy the other
    sizes stay distinct (a transposed axis still shows) and exactly one axis has size 1
    (a ``.squeeze()`` that drops it shows too).
    """
    values = list(base.values())
    if len(set(values)) != len(values) or min(values) < 2:
        raise ValueError(f"the base sizes must be distinct and >= 2: {base}")
    unknown = set(names) - set(base)
    if unknown:
        raise ValueError(f"unknown size name(s) {sorted(unknown)}: the base sizes are {sorted(base)}")
    return [dict(base, **{name: 1}) for name in names]


def edge_examples(arg_name: str | Iterable[str], cases: Iterable[Any]) -> Callable[[_Test], _Test]:
    """A decorator that adds every case of ``cases`` as an explicit hypothesis example
    (``@example(**{arg_name: case})``): explicit examples run in ``Phase.explicit``,
    before any generated one, whatever hypothesis draws.

    ``arg_name`` is the name of the test's ``@given`` argument, or a tuple of names when
    the test has several, each case then a tuple of values in that order.  Build the
    cases per test (not in a shared list): an explicit example's objects are passed to
    the test as they are.  Put the decorator between the markers and ``@given``.

    The cases are built when the test module is imported, so their tensor values must
    come from :func:`generator` like the drawn ones: the plugin installs the staff key
    (``pytest_configure``) before the test modules are collected.
    """
    names = (arg_name,) if isinstance(arg_name, str) else tuple(arg_name)

    def decorate(test: _Test) -> _Test:
        for case in reversed(list(cases)):
            values = (case,) if isinstance(arg_name, str) else tuple(case)
            test = example(**dict(zip(names, values, strict=True)))(test)
        return test

    return decorate
