"""The fingerprint files a student release ships (``grader/release/fingerprints.py``), written
by the real writer for every module: no output of the reference is in them, nor any value of
a mistake's output, and a catalog entry run on the cases is still named by them."""

import pytest
import torch

from grader import mistakes, rubric
from grader.execution.calls import CallResult
from grader.release import fingerprints as writer
from grader.testing import fingerprints, reference
from grader.testing.replay import replay


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """``{module: the data of its fingerprint file}``, as ``release`` writes them."""
    out = tmp_path_factory.mktemp("release")
    written = writer.write(out)
    assert sorted(p.stem for p in written) == sorted(rubric.MODULES)
    return {p.stem: torch.load(p, weights_only=True) for p in written}


def _tensors(value):
    """Every tensor inside plain data or an outcome, in order."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, CallResult):
        for part in (value.outputs, value.grads, value.param_grads, value.inputs_after):
            yield from _tensors(part)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _tensors(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)


def _close(a, b):
    """Equal (integers, bools) or within the catalog's float32 tolerance (floats)."""
    if a.shape != b.shape or a.is_floating_point() != b.is_floating_point():
        return False
    if not a.is_floating_point():
        return a.dtype == b.dtype and bool(torch.equal(a, b))
    return bool(torch.allclose(a.double(), b.double(), atol=1e-3, rtol=1e-3, equal_nan=True))


def _numbers(value, key=None):
    """``(the dict key above, leaf)`` for every number in plain data (bools aside)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(v, k)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _numbers(v, key)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield key, value


def _reference_outputs(module, data):
    """Every tensor the reference gives on the cases of ``data``: outputs and gradients (the
    inputs after a call are the case's own inputs)."""
    found = []
    for info in data["exercises"].values():
        steps = [fingerprints.step(s) for s in info["steps"]]
        for outcome in replay(steps, reference.load(module), module):
            value = outcome[1] if outcome[0] == "ok" else None
            if isinstance(value, CallResult):
                value = (value.outputs, value.grads, value.param_grads)
            found += list(_tensors(value))
    return found


@pytest.mark.parametrize("module", rubric.MODULES)
def test_no_reference_output_and_no_value_in_the_fingerprints(files, module):
    """No tensor of the file (the cases' inputs included) is equal or close to an output or
    gradient of the reference on its cases; past the cases' inputs the file holds no tensor,
    and no number but the dimensions of tensor shapes."""
    data = files[module]
    outputs = _reference_outputs(module, data)  # none for param_count, whose outputs are numbers
    assert data["exercises"]
    for exercise, info in data["exercises"].items():
        assert info["entries"], exercise
        found = [t for t in _tensors([info["steps"], info["entries"]]) if any(_close(t, r) for r in outputs)]
        assert not found, f"{exercise}: {len(found)} tensors equal to reference outputs"
        assert not list(_tensors(info["entries"])), exercise
        assert {key for key, _ in _numbers(info["entries"])} <= {"tensor"}, exercise


def test_every_entry_is_named_by_its_own_outcomes(files):
    """Each fingerprinted entry, run on its exercise's cases, agrees with its own signatures
    (the hint a student who makes that mistake gets); the reference agrees with none."""
    for module, data in files.items():
        for exercise, info in data["exercises"].items():
            steps = [fingerprints.step(s) for s in info["steps"]]
            assert not fingerprints.matching(data, exercise, replay(steps, reference.load(module), module))
            by_id = {m.id: m for m in mistakes.hint_candidates(module)}
            for entry in info["entries"]:
                theirs = replay(steps, mistakes.namespace(by_id[entry["id"]]), module)
                assert entry["id"] in [m.id for m in fingerprints.matching(data, exercise, theirs)], entry["id"]
