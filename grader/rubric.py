"""Exercise IDs, the names they cover and their points: the one rubric of the course.

An exercise ID (``module.name``) is used everywhere: the TODO in the stub, the
``NotImplementedError`` message, the ``@pytest.mark.exercise`` marker of its tests, the
results and the CLI (``python -m grader check attention.sdpa``).
"""

import functools
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Exercise:
    """One gradable exercise: its ID, points and the public names it covers."""

    id: str
    points: float
    names: tuple[str, ...]
    title: str

    @property
    def module(self) -> str:
        """The module (``attention``, ``lstm``, ...) the exercise belongs to."""
        return self.id.split(".", 1)[0]


EXERCISES = (
    # attention: 30 points
    Exercise("attention.sdpa", 10, ("scaled_dot_product_attention",), "Scaled dot-product attention"),
    Exercise("attention.causal_mask", 3, ("causal_mask",), "Causal mask"),
    Exercise("attention.padding_mask", 3, ("padding_mask",), "Padding mask"),
    Exercise("attention.heads", 4, ("split_heads", "merge_heads"), "Split and merge heads"),
    Exercise("attention.mha", 8, ("MultiHeadAttention",), "Multi-head attention module"),
    Exercise("attention.positional_encoding", 2, ("sinusoidal_positional_encoding",), "Sinusoidal positional encoding"),
    # lstm: 30 points
    Exercise("lstm.gates", 6, ("lstm_gates",), "LSTM gates"),
    Exercise("lstm.cell", 6, ("lstm_cell",), "LSTM cell"),
    Exercise("lstm.forward", 7, ("lstm_forward",), "LSTM over a sequence"),
    Exercise("lstm.gru", 7, ("gru_cell",), "GRU cell"),
    Exercise("lstm.param_count", 4, ("lstm_param_count", "gru_param_count"), "LSTM and GRU parameter counts"),
    # param_count: 20 points
    Exercise("param_count.categorical", 2, ("categorical_params",), "Categorical distribution"),
    Exercise("param_count.full_joint", 3, ("full_joint_params",), "Full joint distribution"),
    Exercise("param_count.independent", 3, ("independent_params",), "Independent variables"),
    Exercise("param_count.chain_rule", 4, ("chain_rule_factor_params",), "Chain-rule factors"),
    Exercise("param_count.markov", 4, ("markov_params",), "Markov assumption"),
    Exercise("param_count.bayes_net", 4, ("bayes_net_params",), "Bayesian network"),
    # elbo: 20 points
    Exercise("elbo.kl_standard_normal", 3, ("gaussian_kl_standard_normal",), "KL to a standard normal"),
    Exercise("elbo.kl", 4, ("gaussian_kl",), "KL between diagonal Gaussians"),
    Exercise("elbo.reparameterize", 3, ("reparameterize",), "Reparameterization trick"),
    Exercise("elbo.bernoulli_ll", 4, ("bernoulli_log_likelihood",), "Bernoulli log-likelihood"),
    Exercise("elbo.gaussian_ll", 3, ("gaussian_log_likelihood",), "Gaussian log-likelihood"),
    Exercise("elbo.elbo", 3, ("elbo",), "Evidence lower bound"),
)

#: Module names in course order; a submission holds ``<module>.py`` for each.
MODULES = tuple(dict.fromkeys(ex.module for ex in EXERCISES))

BY_ID = {ex.id: ex for ex in EXERCISES}


@functools.cache  # asked for on every call the tests make (how messages name it)
def exercises_of(module: str) -> tuple[Exercise, ...]:
    """The exercises of ``module``, in rubric order."""
    return tuple(ex for ex in EXERCISES if ex.module == module)


@functools.cache
def exercise_for_name(module: str, name: str) -> Exercise | None:
    """The exercise that covers public ``name`` of ``module`` (``None`` if none does)."""
    for ex in exercises_of(module):
        if name in ex.names:
            return ex
    return None


def select(targets: Sequence[str]) -> tuple[Exercise, ...]:
    """Exercises named by ``targets`` (module names or exercise IDs); all when empty.

    Raises ``ValueError`` naming an unknown target.
    """
    if not targets:
        return EXERCISES
    chosen: list[Exercise] = []
    for target in targets:
        if target in BY_ID:
            chosen.append(BY_ID[target])
        elif target in MODULES:
            chosen.extend(exercises_of(target))
        else:
            known = ", ".join(MODULES)
            raise ValueError(
                f"unknown module or exercise {target!r} (modules: {known}; exercise IDs: python -m grader list)"
            )
    return tuple(dict.fromkeys(chosen))


def module_points(module: str) -> float:
    """Points the whole of ``module`` is worth."""
    return sum(ex.points for ex in exercises_of(module))
