"""Hypothesis strategies for non-degenerate, bounded test inputs.

Sizes are drawn distinct (so a transposed axis cannot hide behind a square shape) and
at least 2 (a softmax over one key is always 1).  Tensor values come from a seeded
generator, uniform in ``[-scale, scale]``: hypothesis shrinks the sizes and the seed,
and the failing example it reports is the smallest it found.
"""

import torch
from hypothesis import strategies as st

FLOAT_DTYPES = (torch.float32, torch.float64)

dtypes = st.sampled_from(FLOAT_DTYPES)
seeds = st.integers(min_value=0, max_value=2**31 - 1)


@st.composite
def distinct_sizes(draw, n, lo=2, hi=9):
    """``n`` distinct ints in ``[lo, hi]``."""
    return draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n, unique=True))


def generator(seed):
    """A CPU ``torch.Generator`` seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


def uniform(gen, *shape, dtype=torch.float64, scale=1.0, device="cpu"):
    """Values uniform in ``[-scale, scale]`` drawn from ``gen``."""
    values = (torch.rand(*shape, generator=gen, dtype=torch.float64) * 2 - 1) * scale
    return values.to(device=device, dtype=dtype)


def random_mask(gen, *shape, p=0.6, keep_one=True, device="cpu"):
    """A random bool mask (True = may attend); ``keep_one`` keeps one True per last-axis row."""
    mask = torch.rand(*shape, generator=gen) < p
    if keep_one:
        first = torch.randint(0, shape[-1], shape[:-1], generator=gen)
        mask = mask | torch.nn.functional.one_hot(first, shape[-1]).bool()
    return mask.to(device)
