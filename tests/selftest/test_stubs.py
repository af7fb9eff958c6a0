"""The stubs in assignments/ are generated from solutions/ and stay in sync with the rubric."""

import ast
import re

import pytest

from grader import ROOT, rubric
from grader.authoring import stubgen
from grader.execution.calls import load_module


def test_committed_stubs_are_up_to_date():
    stale = stubgen.generate(check=True)
    assert not stale, f"run `python -m grader generate`: out of date: {[str(p) for p in stale]}"


def _public_names(path):
    tree = ast.parse(path.read_text())
    return [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_")]


@pytest.mark.parametrize("module", rubric.MODULES)
def test_rubric_covers_exactly_the_public_names(module):
    path = ROOT / "solutions" / f"{module}.py"
    if not path.exists():
        pytest.skip(f"solutions/{module}.py not written yet")
    public = set(_public_names(path))
    covered = {name for ex in rubric.exercises_of(module) for name in ex.names}
    assert public == covered, f"public names {sorted(public)} vs rubric {sorted(covered)}"


@pytest.mark.parametrize("module", rubric.MODULES)
def test_every_stub_block_raises_not_implemented_with_its_exercise_id(module):
    path = ROOT / "assignments" / f"{module}.py"
    if not path.exists():
        pytest.skip(f"assignments/{module}.py not generated yet")
    text = path.read_text()
    assert "### BEGIN SOLUTION" not in text and "### END SOLUTION" not in text
    todos = re.findall(r"# TODO\(([\w.]+)\)", text)
    raises = re.findall(r'raise NotImplementedError\("([\w.]+): ', text)
    assert todos and todos == raises
    assert set(todos) == {ex.id for ex in rubric.exercises_of(module)}
    load_module(path, f"stub_{module}")  # the stub imports cleanly


def test_stub_keeps_signature_and_docstring_and_names_the_exercise():
    source = (
        "import torch\n\n"
        "def causal_mask(length, device=None):\n"
        '    """Doc."""\n'
        "    ### BEGIN SOLUTION\n"
        "    return torch.ones(length, length).tril()\n"
        "    ### END SOLUTION\n"
    )
    stub = stubgen.make_stub(source, "attention")
    assert "def causal_mask(length, device=None):" in stub and '"""Doc."""' in stub
    assert "tril" not in stub
    assert "    # TODO(attention.causal_mask):" in stub
    assert 'raise NotImplementedError("attention.causal_mask: causal_mask is not implemented yet")' in stub


@pytest.mark.parametrize(
    "source, problem",
    [
        ("def causal_mask():\n    ### BEGIN SOLUTION\n    pass\n", "without"),
        ("def causal_mask():\n    ### END SOLUTION\n", "without"),
        ("def causal_mask():\n    ### BEGIN SOLUTION\n    ### BEGIN SOLUTION\n", "nested"),
        ("### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n", "outside"),
        ("def not_in_rubric():\n    ### BEGIN SOLUTION\n    pass\n    ### END SOLUTION\n", "not covered"),
    ],
)
def test_malformed_markers_are_reported(source, problem):
    with pytest.raises(stubgen.StubError, match=problem):
        stubgen.make_stub(source, "attention")


def test_rubric_totals_100_points_and_ids_are_unique():
    assert sum(ex.points for ex in rubric.EXERCISES) == 100
    assert len({ex.id for ex in rubric.EXERCISES}) == len(rubric.EXERCISES)
    assert rubric.MODULES == ("attention", "lstm", "param_count", "elbo")


@pytest.mark.parametrize("module", rubric.MODULES)
def test_every_exercise_has_tests(module):
    path = ROOT / "tests" / "exercises" / f"test_{module}.py"
    if not path.exists():
        pytest.skip(f"tests for {module} not written yet")
    marked = set(re.findall(r'@pytest\.mark\.exercise\("([\w.]+)"', path.read_text()))
    assert marked == {ex.id for ex in rubric.exercises_of(module)}
