"""The tests catch every catalogued mistake, keep correct alternatives at full marks,
and turn a catalogued mistake into a hint that names it."""

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from grader import ROOT, catalog, runner

ENTRIES = catalog.load()

#: Issue 2's wrong copies and the property their feedback must name.
NAMED = {
    "sdpa_scale_by_dk": "sqrt(d_k)",
    "sdpa_softmax_query_axis": "over the keys",
    "sdpa_mask_inverted": "mask",
    "sdpa_mask_after_softmax": "masked",
    "split_heads_no_transpose": "split_heads",
    "mha_no_out_proj": "nn.MultiheadAttention",
}


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    """Every catalog entry graded by the real command, ``python -m grader mutants``."""
    out = tmp_path_factory.mktemp("mutants") / "mutants.json"
    proc = subprocess.run([sys.executable, "-m", "grader", "mutants", "--json", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=3000)
    data = json.loads(out.read_text())
    assert (proc.returncode == 0) == data["ok"], proc.stdout[-3000:]
    assert "killed" in proc.stdout
    return {(e["module"], e["id"]): SimpleNamespace(**e) for e in data["entries"]}


def test_every_patch_applies_once():
    for entry in ENTRIES:
        entry.source()


@pytest.mark.parametrize("entry", ENTRIES, ids=[f"{e.module}:{e.id}" for e in ENTRIES])
def test_catalog_entry_is_graded_as_expected(entry, verdicts):
    verdict = verdicts[entry.module, entry.id]
    if entry.correct:
        assert verdict.score == verdict.max_score, f"correct alternative lost points in {verdict.killers}"
    else:
        assert verdict.score < verdict.max_score, f"{entry.mistake}: not caught by any test"


@pytest.mark.parametrize("mutant_id", sorted(NAMED))
def test_issue_2_wrong_copies_name_the_failing_property(mutant_id, verdicts):
    feedback = "\n".join(verdicts["attention", mutant_id].feedback)
    assert NAMED[mutant_id] in feedback


@pytest.mark.parametrize("mutant_id", ["sdpa_softmax_query_axis", "sdpa_scale_by_dk", "padding_mask_off_by_one"])
def test_a_catalogued_mistake_gets_its_hint(mutant_id, tmp_path):
    entry = next(e for e in ENTRIES if e.id == mutant_id)
    (tmp_path / f"{entry.module}.py").write_text(entry.source())
    report = runner.grade(tmp_path, [entry.exercise])
    feedback = "\n".join(msg for r in report.results for msg in r.feedback())
    assert f"match {entry.mistake}" in feedback
