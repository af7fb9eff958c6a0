"""End to end: `python -m grader check` on the reference, the stubs and broken submissions."""

import json
import shutil
import subprocess
import sys

import pytest

from grader import ROOT, catalog, rubric, runner
from grader.errors import NOT_IMPLEMENTED, PASSED


def _check(*args, tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "grader", "check", "--quiet", "--json", str(out), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text()), proc.stdout


def _by_id(results):
    return {t["tags"][1]: t for t in results["tests"]}


def test_reference_gets_full_marks_on_attention(tmp_path):
    results, text = _check("attention", "--submission", "solutions", tmp_path=tmp_path)
    assert results["score"] == results["max_score"] == 30
    assert all(t["status"] == "passed" and t["extra_data"]["outcome"] == PASSED for t in results["tests"])
    assert "attention total" in text and "30 / 30" in text


def test_stubs_score_zero_with_not_implemented_feedback(tmp_path):
    results, text = _check("attention", tmp_path=tmp_path)
    assert results["score"] == 0
    for test in results["tests"]:
        assert test["extra_data"]["outcome"] == NOT_IMPLEMENTED
        assert "not implemented yet" in test["output"]
    assert "not implemented" in text


def test_gradescope_schema(tmp_path):
    results, _ = _check("attention.causal_mask", "--submission", "solutions", tmp_path=tmp_path)
    assert set(results) >= {"score", "tests"}
    (test,) = results["tests"]
    assert set(test) >= {"name", "score", "max_score", "status", "output", "tags"}
    assert test["tags"] == ["attention", "attention.causal_mask"]
    assert test["status"] in ("passed", "failed")


BROKEN = {
    "syntax": ("def scaled_dot_product_attention(q, k, v, mask=None:\n    pass\n", "SyntaxError"),
    "import_raises": ("import torch\nraise RuntimeError('boom at import')\n", "boom at import"),
    "exit_at_import": ("import sys\nsys.exit(3)\n", "SystemExit"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_module_that_does_not_import_scores_zero_and_others_still_grade(kind, tmp_path):
    source, expected = BROKEN[kind]
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "attention.py").write_text(source)
    others = [m for m in rubric.MODULES[1:] if (ROOT / "solutions" / f"{m}.py").exists()]
    for module in others:
        shutil.copy(ROOT / "solutions" / f"{module}.py", sub / f"{module}.py")
    results, text = _check("--submission", str(sub), tmp_path=tmp_path)
    tests = _by_id(results)
    for ex in rubric.exercises_of("attention"):
        assert tests[ex.id]["score"] == 0
        assert expected in tests[ex.id]["output"] and "attention.py" in tests[ex.id]["output"]
    for module in others:
        for ex in rubric.exercises_of(module):
            assert tests[ex.id]["score"] == ex.points, tests[ex.id]["output"]
    missing = [m for m in rubric.MODULES[1:] if m not in others]
    for module in missing:
        assert all(tests[ex.id]["extra_data"]["outcome"] == "missing" for ex in rubric.exercises_of(module))


def test_a_missing_function_costs_only_its_exercise(tmp_path):
    source = (ROOT / "solutions" / "attention.py").read_text().replace("def causal_mask(", "def causal_mask_renamed(")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "attention.py").write_text(source)
    results, _ = _check("attention", "--submission", str(sub), tmp_path=tmp_path)
    tests = _by_id(results)
    assert tests["attention.causal_mask"]["score"] == 0
    assert "does not define causal_mask" in tests["attention.causal_mask"]["output"]
    assert tests["attention.sdpa"]["score"] == 10 and tests["attention.mha"]["score"] == 8


def test_a_crash_inside_a_call_is_reported_with_the_line(tmp_path):
    source = (ROOT / "solutions" / "attention.py").read_text().replace(
        "    batch, length, embed = x.shape\n", "    batch, length, embed = x.shape\n    raise KeyError('oops')\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "attention.py").write_text(source)
    results, _ = _check("attention.heads", "--submission", str(sub), tmp_path=tmp_path)
    out = _by_id(results)["attention.heads"]["output"]
    assert "split_heads raised KeyError: 'oops'" in out and "attention.py line" in out


def test_grading_is_deterministic(tmp_path):
    mutant = next(m for m in catalog.load("attention") if m.id == "sdpa_mask_after_softmax")
    (tmp_path / "attention.py").write_text(mutant.source())
    first = runner.grade(tmp_path, ["attention"])
    second = runner.grade(tmp_path, ["attention"])
    assert first.to_gradescope() == second.to_gradescope()
    assert first.score < 30


def test_unknown_target_is_a_usage_error():
    proc = subprocess.run([sys.executable, "-m", "grader", "check", "attention.nope"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown module or exercise" in proc.stderr
