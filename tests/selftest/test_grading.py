"""End to end: `python -m grader check` on the reference, the stubs and broken submissions."""

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from grader import ROOT, mistakes, rubric
from grader.adapters import open_implementation, zygote
from grader.grading import runner
from grader.outcomes import NOT_IMPLEMENTED, PASSED


def _check(*args, tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "grader", "check", "--quiet", "--json", str(out), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text()), proc.stdout


def _by_id(results):
    return {t["tags"][1]: t for t in results["tests"]}


def test_reference_gets_full_marks_on_attention_in_gradescope_schema(tmp_path):
    results, text = _check("attention", "--submission", "solutions", tmp_path=tmp_path)
    assert results["score"] == results["max_score"] == 30
    assert all(t["status"] == "passed" and t["extra_data"]["outcome"] == PASSED for t in results["tests"])
    assert "attention total" in text and "30 / 30" in text
    for test in results["tests"]:
        assert set(test) >= {"name", "score", "max_score", "status", "output", "tags"}
        assert test["tags"] == ["attention", test["name"].split(":")[0]]


def test_stubs_score_zero_with_not_implemented_feedback(tmp_path):
    results, text = _check("attention", tmp_path=tmp_path)
    assert results["score"] == 0
    for test in results["tests"]:
        assert test["extra_data"]["outcome"] == NOT_IMPLEMENTED
        assert "not implemented yet" in test["output"]
    assert "not implemented" in text


BROKEN = {
    "syntax": ("def scaled_dot_product_attention(q, k, v, mask=None:\n    pass\n", "SyntaxError"),
    "import_raises": ("import torch\nraise RuntimeError('boom at import')\n", "boom at import"),
    "exit_at_import": ("import sys\nsys.exit(3)\n", "SystemExit"),
}
REFERENCE = (ROOT / "solutions" / "attention.py").read_text()
OTHERS = [m for m in rubric.MODULES[1:] if (ROOT / "solutions" / f"{m}.py").exists()]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Broken and wrong submissions, graded in one run (each in its own worker)."""
    root = tmp_path_factory.mktemp("subs")
    sources = {kind: source for kind, (source, _) in BROKEN.items()}
    sources["missing_function"] = REFERENCE.replace("def causal_mask(", "def causal_mask_renamed(")
    sources["crash_in_call"] = REFERENCE.replace(
        "    batch, length, embed = x.shape\n", "    batch, length, embed = x.shape\n    raise KeyError('oops')\n"
    )
    mutant = next(m for m in mistakes.load("attention") if m.id == "sdpa_mask_after_softmax").source()
    sources["mutant_a"] = sources["mutant_b"] = mutant
    entries = []
    for name, source in sources.items():
        sub = root / name
        sub.mkdir()
        (sub / "attention.py").write_text(source)
        if name in BROKEN:
            for module in OTHERS:
                shutil.copy(ROOT / "solutions" / f"{module}.py", sub / f"{module}.py")
        entries.append((name, sub, () if name in BROKEN else ["attention"]))
    with ThreadPoolExecutor(max_workers=2) as pool:  # two grading runs side by side: one per core
        halves = [
            pool.submit(runner.grade_many, [e for e in entries if (e[0] in BROKEN) == broken])
            for broken in (True, False)
        ]
        return {ident: report for half in halves for ident, report in half.result().items()}


def _outputs(report):
    return {r.exercise.id: (r.score, r.status, "\n".join(r.feedback())) for r in report.results}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_a_module_that_does_not_import_scores_zero_and_others_still_grade(kind, graded):
    expected = BROKEN[kind][1]
    results = _outputs(graded[kind])
    for ex in rubric.exercises_of("attention"):
        score, status, feedback = results[ex.id]
        assert score == 0 and status == "error"
        assert expected in feedback and "attention.py" in feedback
    for module in OTHERS:
        for ex in rubric.exercises_of(module):
            assert results[ex.id][0] == ex.points, results[ex.id]
    for module in (m for m in rubric.MODULES[1:] if m not in OTHERS):
        assert all(results[ex.id][1] == "missing" for ex in rubric.exercises_of(module))


def test_a_missing_function_costs_only_its_exercise(graded):
    results = _outputs(graded["missing_function"])
    assert results["attention.causal_mask"][0] == 0
    assert "does not define causal_mask" in results["attention.causal_mask"][2]
    assert results["attention.sdpa"][0] == 10 and results["attention.mha"][0] == 8


def test_a_crash_inside_a_call_is_reported_with_the_line(graded):
    score, status, feedback = _outputs(graded["crash_in_call"])["attention.heads"]
    assert score < 4 and status == "error"  # merge_heads still earns its share
    assert "split_heads raised KeyError: 'oops'" in feedback and "attention.py line" in feedback


def test_grading_is_deterministic(graded, tmp_path):
    first, second = graded["mutant_a"], graded["mutant_b"]
    assert first.score < 30
    assert [(r.score, r.feedback()) for r in first.results] == [(r.score, r.feedback()) for r in second.results]
    (tmp_path / "attention.py").write_text(
        next(m for m in mistakes.load("attention") if m.id == "sdpa_mask_after_softmax").source()
    )
    again = runner.grade(tmp_path, ["attention.sdpa"])  # a separate run: same score, same messages
    assert [(r.score, r.feedback()) for r in again.results] == [
        (r.score, r.feedback()) for r in first.results if r.exercise.id == "attention.sdpa"
    ]


def test_unknown_target_is_a_usage_error():
    proc = subprocess.run(
        [sys.executable, "-m", "grader", "check", "attention.nope"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 2 and "unknown module or exercise" in proc.stderr


META_DODGE = REFERENCE.replace(
    "    ### BEGIN SOLUTION\n",
    "    ### BEGIN SOLUTION\n    if q.device.type == 'meta':\n"
    "        raise RuntimeError('Tensor.item() cannot be called on meta tensors')\n",
    1,
)


@pytest.fixture(scope="module")
def staff_graded(tmp_path_factory):
    """Staff grading (hidden tests, a secret key) of a submission that fails a hidden test,
    and of one that raises torch's meta-tensor error on meta inputs to dodge the device test."""
    root = tmp_path_factory.mktemp("staff")
    wrong = next(m for m in mistakes.load("attention") if m.id == "sdpa_scale_by_dk").source()
    entries = []
    for name, source in (("wrong", wrong), ("meta_dodge", META_DODGE)):
        (root / name).mkdir()
        (root / name / "attention.py").write_text(source)
        entries.append((name, root / name, ["attention.sdpa"]))
    return runner.grade_many(entries, staff=True, staff_key="grading-selftest-key")


def test_a_hidden_test_shows_its_name_and_passed_or_failed_only(staff_graded):
    data = staff_graded["wrong"].to_gradescope()
    visible = [t for t in data["tests"] if t["visibility"] == "visible"]
    hidden = [t for t in data["tests"] if t["visibility"] == "after_published"]
    assert len(visible) == 1 and len(hidden) == 1
    records = hidden[0]["extra_data"]["tests"]
    assert records and all(r["hidden"] and r["message"] == "" and r["status"] in ("passed", "failed") for r in records)
    assert any(r["status"] == "failed" for r in records)
    assert "input" not in hidden[0]["output"] and "expected" not in hidden[0]["output"]
    assert not any(r["hidden"] for r in visible[0]["extra_data"]["tests"])
    assert sum(t["score"] for t in data["tests"]) == pytest.approx(data["score"], abs=0.02)
    assert all(t["visibility"] in ("visible", "after_published") for t in data["tests"])


def test_raising_torch_meta_error_on_meta_is_a_failure_not_a_skip(staff_graded):
    result = next(r for r in staff_graded["meta_dodge"].results if r.exercise.id == "attention.sdpa")
    meta = [rec for rec in result.records if "-meta-" in rec.nodeid]
    assert meta and all(rec.status == "failed" for rec in meta)
    assert not any(rec.status == "skipped" for rec in result.records if "-cuda-" not in rec.nodeid)
    assert result.score < result.max_score
    assert "cannot be called on meta tensors" in "\n".join(result.feedback())


def test_a_plain_pytest_run_starts_its_own_zygote_and_a_runner_run_adopts_one(tmp_path):
    """Without the runner (a student's ``pytest``) the first sandboxed test starts the zygote
    itself; the runner's prestarted one is adopted. Both grade, neither hangs."""
    code = (
        "from grader.adapters import open_implementation\n"
        "impl = open_implementation('solutions', 'attention', 'sandbox')\n"
        "print(impl.call('causal_mask', 2).tolist())\n"
        "impl.close()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "[[True, False], [True, True]]" in proc.stdout, proc.stderr[-2000:]
    report = runner.grade(ROOT / "solutions", ["attention.causal_mask"], timeout=120)
    assert report.score == report.max_score > 0


def test_the_runner_takes_the_zygote_started_early(monkeypatch):
    """``python -m grader check`` starts its zygote first thing; the runner grades with that
    one instead of starting another."""
    zygote.start_early(os.environ)

    def no_second(environ):
        raise AssertionError("the runner started a second zygote")

    monkeypatch.setattr(zygote, "prestart", no_second)
    report = runner.grade(ROOT / "solutions", ["attention.causal_mask"], timeout=120)
    assert report.score == report.max_score > 0
    assert zygote.take_early(os.environ) is None  # taken


def test_an_early_zygote_started_for_other_devices_is_reaped_not_taken():
    """A zygote started with other values of the variables it keeps (the GPU to use) is not
    the one a grading asks for: it is reaped, and the grading starts its own."""
    zygote.start_early(dict(os.environ, CUDA_VISIBLE_DEVICES="7"))
    early = zygote._early[0]
    assert zygote.take_early({k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}) is None
    assert early.proc.poll() is not None


def test_an_early_zygote_nobody_takes_is_gone_when_the_command_ends():
    """``check`` with a bad target exits 2 before grading; the zygote it started is reaped at
    exit (``atexit`` runs the later-registered reaping before this test's probe)."""
    code = (
        "import atexit, runpy, sys\n"
        "from grader.adapters import zygote\n"
        "seen = {}\n"
        "atexit.register(lambda: print('gone' if seen['z'].proc.poll() is not None else 'alive'))\n"
        "real = zygote.start_early\n"
        "def spy(environ):\n"
        "    real(environ)\n"
        "    seen['z'] = zygote._early[0]\n"
        "zygote.start_early = spy\n"
        "sys.argv = ['grader', 'check', 'nosuch.thing']\n"
        "runpy.run_module('grader', run_name='__main__')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "unknown module or exercise 'nosuch.thing'" in proc.stderr
    assert proc.stdout.strip() == "gone"


def test_a_worker_collects_its_garbage_though_its_zygote_started_without(tmp_path):
    """The zygote imports torch with the garbage collector off (a quarter of its start);
    the workers it forks run the student's code with the collector on."""
    source = (ROOT / "solutions" / "attention.py").read_text()
    source += (
        "\n\ndef causal_mask(length, device=None):\n"
        "    import gc\n\n"
        "    return torch.full((length, length), gc.isenabled(), dtype=torch.bool, device=device)\n"
    )
    (tmp_path / "attention.py").write_text(source)
    impl = open_implementation(tmp_path, "attention", "sandbox")
    try:
        assert impl.call("causal_mask", 2).all()
    finally:
        impl.close()
