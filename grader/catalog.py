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
whose output matches the student's (:func:`matching_mistakes`).
"""

import functools
import tomllib
import types
from dataclasses import dataclass

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
    patches: tuple
    correct: bool = False

    def source(self):
        """The patched reference source."""
        text = (ROOT / "solutions" / f"{self.module}.py").read_text(encoding="utf-8")
        for find, replace in self.patches:
            count = text.count(find)
            if count != 1:
                raise CatalogError(f"{self.module}:{self.id}: {find!r} occurs {count} times in the reference, not once")
            text = text.replace(find, replace)
        return text


@functools.lru_cache(maxsize=None)
def load(module=None):
    """Catalog entries of ``module`` (all modules when ``None``), in file order."""
    modules = [module] if module else rubric.MODULES
    out = []
    for mod in modules:
        path = MISTAKES_DIR / f"{mod}.toml"
        if not path.exists():
            continue
        for entry in tomllib.loads(path.read_text(encoding="utf-8")).get("mutant", []):
            patches = entry.get("patches") or [{"find": entry["find"], "replace": entry["replace"]}]
            if entry["exercise"] not in rubric.BY_ID:
                raise CatalogError(f"{mod}:{entry['id']}: unknown exercise {entry['exercise']!r}")
            out.append(Mutant(entry["id"], mod, entry["exercise"], entry["mistake"],
                              tuple((p["find"], p["replace"]) for p in patches), entry.get("correct", False)))
    return tuple(out)


@functools.lru_cache(maxsize=None)
def namespace(mutant):
    """The patched reference executed as a module (staff code: trusted)."""
    mod = types.ModuleType(f"mutant_{mutant.module}_{mutant.id}")
    exec(compile(mutant.source(), f"<mutant {mutant.id}>", "exec"), mod.__dict__)
    return mod


def same(a, b):
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


def matching_mistakes(module, replay, got, expected):
    """Mistakes of ``module`` whose output ``replay(namespace)`` equals ``got`` but not
    ``expected``: the likely bugs behind a wrong answer."""
    found = []
    for mutant in load(module):
        if mutant.correct:
            continue
        try:
            theirs = replay(namespace(mutant))
        except Exception:  # a mutant that cannot run this input explains nothing
            continue
        if same(theirs, got) and not same(theirs, expected) and mutant.mistake not in found:
            found.append(mutant.mistake)
    return found
