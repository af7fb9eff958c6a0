"""Batch grading: safe staging, results equal to a lone check, and kill-and-resume."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import pytest

from grader import ROOT, batch, catalog, runner, staffkey

REFERENCE = (ROOT / "solutions" / "attention.py").read_text()


def _mutant(mutant_id):
    return next(m for m in catalog.load("attention") if m.id == mutant_id).source()


@pytest.fixture
def submissions(tmp_path):
    """A folder of mixed submissions: folders and zips, honest, wrong, hostile, unsafe."""
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "alice").mkdir()
    (subs / "alice" / "attention.py").write_text(REFERENCE)
    (subs / "bob").mkdir()
    (subs / "bob" / "attention.py").write_text(_mutant("sdpa_softmax_query_axis"))
    (subs / "mallory").mkdir()
    (subs / "mallory" / "attention.py").write_text(REFERENCE + "\nimport os\ndef causal_mask(length, device=None):\n"
                                                   "    os._exit(1)\n")
    with zipfile.ZipFile(subs / "carol.zip", "w") as zf:  # a zipped folder, as students send it
        zf.writestr("carol_hw/attention.py", _mutant("mha_no_out_proj"))
        zf.writestr("../../escape.py", "print('escaped')")
        zf.writestr("/abs/attention.py", "raise SystemExit")
        link = zipfile.ZipInfo("carol_hw/lstm.py")
        link.external_attr = 0o120777 << 16
        zf.writestr(link, "/etc/passwd")
    (subs / "broken.zip").write_bytes(b"PK\x03\x04 definitely not a zip")
    (subs / "dave").mkdir()
    os.symlink(ROOT / "solutions" / "attention.py", subs / "dave" / "attention.py")
    return subs


def test_staging_refuses_unsafe_entries(submissions, tmp_path):
    dst = tmp_path / "carol"
    dst.mkdir()
    notes = batch.stage_zip(submissions / "carol.zip", dst)
    assert sorted(p.name for p in dst.iterdir()) == ["attention.py"]
    assert any("unsafe path" in n for n in notes) and any("a link" in n for n in notes)
    assert not (tmp_path / "escape.py").exists() and not (ROOT / "escape.py").exists()
    dst2 = tmp_path / "dave"
    dst2.mkdir()
    notes = batch.stage_folder(submissions / "dave", dst2)
    assert not list(dst2.iterdir()) and "not a regular file" in notes[0]
    with pytest.raises(batch.Rejected):
        batch.stage_zip(submissions / "broken.zip", tmp_path)


def _rows(out):
    with open(out / "grades.csv") as fh:
        return {row["id"]: row for row in csv.DictReader(fh)}


def test_batch_grades_everyone_like_a_lone_check_and_resumes(submissions, tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, GRADER_CALL_TIMEOUT="5")
    cmd = [sys.executable, "-m", "grader", "batch", str(submissions), "--out", str(out), "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not any(out.glob("*/results.json")):
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # kill the batch halfway
    proc.wait()
    first = {p.parent.name: (p.stat().st_mtime_ns, p.read_text()) for p in out.glob("*/results.json")}
    assert first, "nothing finished before the kill"
    assert len(first) < 6

    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert f"{len(first)} already done" in done.stdout
    for ident, (mtime, text) in first.items():  # finished work is neither lost nor regraded
        path = out / ident / "results.json"
        assert path.stat().st_mtime_ns == mtime and path.read_text() == text

    rows = _rows(out)
    assert set(rows) == {"alice", "bob", "mallory", "carol", "broken", "dave"}
    assert rows["broken"]["status"].startswith("rejected") and rows["dave"]["status"].startswith("rejected")
    assert float(rows["mallory"]["attention"]) < 30
    for ident, source_dir in (("alice", submissions / "alice"), ("bob", submissions / "bob"),
                              ("mallory", submissions / "mallory")):
        lone = runner.grade(source_dir, (), staff=True, staff_key=staffkey.for_batch(out))  # the batch's own key
        result = json.loads((out / ident / "results.json").read_text())
        assert result["score"] == lone.score, ident
        assert float(rows[ident]["total"]) == lone.score
    assert float(rows["alice"]["attention"]) == 30
    assert rows["alice"]["status"].startswith("incomplete")  # only attention.py was handed in
