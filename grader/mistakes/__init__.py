"""The catalog of known mistakes: wrong (and correct alternative) implementations.

Each entry of ``grader/mistakes/<module>.toml`` is a small patch of the reference with a
one-line description::

    [[mutant]]
    id = "sdpa_scale_by_dk"
    exercise = "attention.sdpa"
    mistake = "dividing the scores by d_k instead of sqrt(d_k)"
    find = "/ math.sqrt(d_k)"
    replace = "/ d_k"

``patches = [{find = ..., replace = ...}, ...]`` applies several edits; each ``find``
must occur exactly once in the reference.  ``correct = true`` marks a correct
alternative, which must keep full marks.  The catalog serves twice: ``python -m grader
mutants`` proves the tests catch every mistake, and failing tests name the mistake
whose calls give what the student's code gave (:mod:`grader.testing.diagnose`, which
picks the one to name with :func:`precise`).

Besides the file's entries, every exercise gets **trivial** entries (:func:`trivial`):
the reference with the exercise's outputs replaced by zeros, ones, seeded noise or an
input echoed back, of the right shape, dtype and device, never raising.  They must score
0 on their exercise: no test may pay for an output that does not do the exercise.
"""

import contextlib
import functools
import tomllib
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from grader import ROOT, rubric

MISTAKES_DIR = ROOT / "grader" / "mistakes"


class CatalogError(ValueError):
    """A catalog entry that does not apply to the reference."""


@dataclass(frozen=True)
class Mutant:
    """One catalog entry: a patch of the reference of ``module``."""

    id: str
    module: str
    exercise: str
    mistake: str
    patches: tuple[tuple[str, str], ...]
    correct: bool = False
    #: ``""`` for a catalogued mistake, else the trivial output kind (zeros, ones, noise, echo)
    trivial: str = ""

    def source(self) -> str:
        """The patched reference source."""
        text = (ROOT / "solutions" / f"{self.module}.py").read_text(encoding="utf-8")
        for find, replace in self.patches:
            count = text.count(find)
            if count != 1:
                raise CatalogError(f"{self.module}:{self.id}: {find!r} occurs {count} times in the reference, not once")
            text = text.replace(find, replace)
        if self.trivial:
            text += _trivial_suffix(text, [rubric.BY_ID[self.exercise]], self.trivial)
        return text


#: Trivial output kinds and how a hint names them.
TRIVIAL_KINDS = {
    "zeros": "returning zeros of the right shape instead of computing the result",
    "ones": "returning ones of the right shape instead of computing the result",
    "noise": "returning seeded random values of the right shape instead of computing the result",
    "echo": "returning an input unchanged (or a constant where no input fits) instead of computing the result",
}

_TRIVIAL_HELPERS = """

# ---- trivial catalog entry (grader/mistakes): {kind} of the right shape, never raising
import torch as _torch


def _trivial_tensors(value):
    if isinstance(value, _torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _trivial_tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _trivial_tensors(v)]
    return []


def _trivial(value, inputs, kind={kind!r}):
    if isinstance(value, (tuple, list)):
        return type(value)(_trivial(v, inputs, kind) for v in value)
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        numbers = [a for a in inputs if type(a) is type(value)]
        made = {{"zeros": 0, "ones": 1, "noise": 7919, "echo": numbers[0] if numbers else 3}}[kind]
        return type(value)(made)
    if not isinstance(value, _torch.Tensor):
        return value
    if kind == "echo":
        tensors = [a for a in _trivial_tensors(inputs) if a.dtype == value.dtype and a.device == value.device]
        for a in tensors:
            if a.shape == value.shape:
                return a.detach().clone()
        for a in tensors:
            if a.numel() == value.numel():
                return a.detach().reshape(value.shape).clone()
        # no input fits: a constant that no other trivial entry returns
        if value.dtype == _torch.bool:
            return (_torch.arange(value.numel(), device=value.device) % 2 == 0).reshape(value.shape)
        return _torch.full_like(value, 3)
    if kind == "zeros":
        return _torch.zeros_like(value)
    if kind == "ones":
        return _torch.ones_like(value)
    noise = _torch.rand(value.shape, generator=_torch.Generator().manual_seed(1234), dtype=_torch.float64)
    if value.dtype == _torch.bool:
        noise = noise < 0.5
    elif not value.is_floating_point():
        noise = (noise * 10).long()
    return noise.to(device=value.device, dtype=value.dtype)


def _trivial_call(fn, args, kwargs, counts=False):
    try:
        out = fn(*args, **kwargs)
    except Exception:
        out = 2 if counts else _torch.zeros(())
    return _trivial(out, list(args) + list(kwargs.values()))
"""

_TRIVIAL_FUNCTION = """

_trivial_{name} = {name}


def {name}(*args, **kwargs):
    return _trivial_call(_trivial_{name}, args, kwargs, {counts})
"""

_TRIVIAL_CLASS = """

class {name}({name}):
    def __init__(self, *args, **kwargs):
        try:
            super().__init__(*args, **kwargs)
        except Exception:
            super().__init__(args[0], 1, *args[2:], **kwargs)

    def forward(self, *args, **kwargs):
        return _trivial_call(super().forward, args, kwargs, {counts})
"""


def _trivial_suffix(source: str, exercises: Sequence[rubric.Exercise], kind: str) -> str:
    """Code appended to the reference that makes the names of ``exercises`` trivial."""
    text = _TRIVIAL_HELPERS.format(kind=kind)
    for exercise in exercises:
        counts = exercise.module == "param_count" or exercise.id.endswith("param_count")  # exact Python ints
        for name in exercise.names:
            template = _TRIVIAL_CLASS if f"\nclass {name}" in source else _TRIVIAL_FUNCTION
            text += template.format(name=name, counts=counts)
    return text


def trivial_submission(module: str, kind: str) -> str:
    """The source of a whole ``module`` whose every exercise returns ``kind`` outputs."""
    source = (ROOT / "solutions" / f"{module}.py").read_text(encoding="utf-8")
    return source + _trivial_suffix(source, rubric.exercises_of(module), kind)


def trivial(module: str | None = None) -> tuple[Mutant, ...]:
    """The trivial entries of ``module`` (all modules when ``None``): per exercise, one per
    kind of :data:`TRIVIAL_KINDS`."""
    modules = [module] if module else rubric.MODULES
    return tuple(
        Mutant(f"trivial_{kind}_{ex.id.split('.', 1)[1]}", ex.module, ex.id, mistake, (), False, kind)
        for mod in modules
        for ex in rubric.exercises_of(mod)
        for kind, mistake in TRIVIAL_KINDS.items()
    )


@functools.cache
def load(module: str | None = None) -> tuple[Mutant, ...]:
    """Catalog entries of ``module`` (all modules when ``None``), in file order."""
    modules = [module] if module else rubric.MODULES
    out = []
    for mod in modules:
        path = MISTAKES_DIR / f"{mod}.toml"
        if not path.exists():
            continue
        for entry in tomllib.loads(path.read_text(encoding="utf-8")).get("mutant", []):
            absent = [key for key in ("id", "exercise", "mistake") if key not in entry]
            absent += [] if "patches" in entry else [key for key in ("find", "replace") if key not in entry]
            if absent:
                raise CatalogError(f"{path.name}: entry {entry.get('id', '?')!r} lacks {', '.join(absent)}")
            patches = entry.get("patches") or [{"find": entry["find"], "replace": entry["replace"]}]
            if entry["exercise"] not in rubric.BY_ID:
                raise CatalogError(f"{mod}:{entry['id']}: unknown exercise {entry['exercise']!r}")
            out.append(
                Mutant(
                    entry["id"],
                    mod,
                    entry["exercise"],
                    entry["mistake"],
                    tuple((p["find"], p["replace"]) for p in patches),
                    entry.get("correct", False),
                )
            )
    return tuple(out)


@functools.cache
def namespace(mutant: Mutant) -> types.ModuleType:
    """The patched reference executed as a module (staff code: trusted)."""
    mod = types.ModuleType(f"mutant_{mutant.module}_{mutant.id}")
    exec(compile(mutant.source(), f"<mutant {mutant.id}>", "exec"), mod.__dict__)
    return mod


def same(a: Any, b: Any) -> bool:
    """Whether two outputs agree: tensors of one shape and dtype within tolerance, else ``==``."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return False
        if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
            return False
        if a.device.type == "meta":
            return True
        if a.dtype == torch.bool or not a.is_floating_point():
            return bool(torch.equal(a, b))
        tol = 1e-4 if a.dtype == torch.float64 else 1e-3
        return bool(torch.allclose(a, b, atol=tol, rtol=tol, equal_nan=True))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


#: The exercise whose test is running (set by the pytest plugin): hints prefer its mistakes.
_focus: dict[str, str | None] = {"exercise": None}


@contextlib.contextmanager
def focus(exercise: str | None) -> Iterator[None]:
    """Hints computed inside the block prefer mistakes of ``exercise``."""
    old = _focus["exercise"]
    _focus["exercise"] = exercise
    try:
        yield
    finally:
        _focus["exercise"] = old


def current_exercise() -> str | None:
    """The exercise whose test is running, if any."""
    return _focus["exercise"]


def hint_candidates(module: str) -> tuple[Mutant, ...]:
    """The wrong entries of ``module`` that hints may name: the catalogued mistakes and the
    trivial outputs."""
    return tuple(m for m in load(module) if not m.correct) + trivial(module)


def precise(matched: Sequence[Mutant], exercise: str | None = None) -> list[str]:
    """The one mistake to name among the entries whose output matched, or none.

    Entries of ``exercise`` (the test's) come first; a hint is given only when exactly one
    distinct mistake remains, never when several unrelated ones match equally."""
    mistakes = list(dict.fromkeys(m.mistake for m in matched))
    if exercise is not None:
        own = list(dict.fromkeys(m.mistake for m in matched if m.exercise == exercise))
        if own:
            mistakes = own
    return mistakes if len(mistakes) == 1 else []
