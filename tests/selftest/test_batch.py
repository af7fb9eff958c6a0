"""Batch grading: safe staging, results equal to a lone check, kill-and-resume, ids that cannot collide."""

import csv
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from grader import ROOT, mistakes, staffkey
from grader.grading import batch, files, runner, staging

REFERENCE = (ROOT / "solutions" / "attention.py").read_text()


def _mutant(mutant_id):
    return next(m for m in mistakes.load("attention") if m.id == mutant_id).source()


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
    (subs / "mallory" / "attention.py").write_text(
        REFERENCE + "\nimport os\ndef causal_mask(length, device=None):\n    os._exit(1)\n"
    )
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
    notes = staging.stage_zip(submissions / "carol.zip", dst)
    assert sorted(p.name for p in dst.iterdir()) == ["attention.py"]
    assert any("unsafe path" in n for n in notes) and any("a link" in n for n in notes)
    assert not (tmp_path / "escape.py").exists() and not (ROOT / "escape.py").exists()
    dst2 = tmp_path / "dave"
    dst2.mkdir()
    notes = staging.stage_folder(submissions / "dave", dst2)
    assert not list(dst2.iterdir()) and "not a regular file" in notes[0]
    with pytest.raises(staging.Rejected):
        staging.stage_zip(submissions / "broken.zip", tmp_path)


def _rows(out):
    with open(out / "grades.csv") as fh:
        return {row["id"]: row for row in csv.DictReader(fh)}


def _tagged(tag):
    """Pids of the processes whose environment holds ``BATCH_TEST_TAG=tag``: the batch and all it
    started but the sandbox's own processes (built from scratch, they die with their pytest)."""
    found, entry = [], f"BATCH_TEST_TAG={tag}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                if entry in fh.read().split(b"\0"):
                    found.append(int(pid))
        except OSError:  # gone, or not ours to read (a non-dumpable process of a grader that is not root)
            pass
    return found


def test_batch_grades_everyone_like_a_lone_check_and_resumes(submissions, tmp_path):
    out = tmp_path / "out"
    tag = os.urandom(8).hex()
    env = dict(os.environ, GRADER_CALL_TIMEOUT="5", BATCH_TEST_TAG=tag)
    cmd = [sys.executable, "-m", "grader", "batch", str(submissions), "--out", str(out), "--workers", "2"]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not any(out.glob("*/results.json")):
        time.sleep(0.5)
    assert _tagged(tag) or os.geteuid() != 0, "the batch's processes are not found by their tag"
    os.killpg(proc.pid, signal.SIGKILL)  # kill the batch halfway
    proc.wait()
    deadline = time.monotonic() + 10
    while _tagged(tag) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _tagged(tag), "a grading process outlived the killed batch"
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
    for ident, source_dir in (
        ("alice", submissions / "alice"),
        ("bob", submissions / "bob"),
        ("mallory", submissions / "mallory"),
    ):
        lone = runner.grade(source_dir, (), staff=True, staff_key=staffkey.for_batch(out))  # the batch's own key
        result = json.loads((out / ident / "results.json").read_text())
        assert result["score"] == lone.score, ident
        assert float(rows[ident]["total"]) == lone.score
    assert float(rows["alice"]["attention"]) == 30
    assert rows["alice"]["status"].startswith("incomplete")  # only attention.py was handed in


# Ids that cannot collide: `alice smith` and `alice_smith` are two students, `alice` and `alice.zip` one too many.

PARAM_COUNT = (ROOT / "solutions" / "param_count.py").read_text()
BROKEN = "def param_count(:\n"  # a syntax error: scores 0, and grades fastest

_near_safe = st.text(alphabet="aB1 _.-~:é/", min_size=1, max_size=5)  # names whose slugs collide often
names = st.one_of(st.text(min_size=1, max_size=24), _near_safe, _near_safe.map(lambda n: n + ".zip"))


@settings(max_examples=300)
@example(["alice smith", "alice_smith", "alice:smith", "alice.zip", "alice", "Alice", "grades.csv"])
@given(st.lists(names, unique=True, max_size=30))
def test_submission_ids_are_injective_well_formed_and_zips_share_their_stems_id(folder_names):
    ids = [batch.submission_id(n) for n in folder_names]
    assert len(set(ids)) == len(ids)
    for name, ident in zip(folder_names, ids):
        assert ident == batch.submission_id(name), "the id depends on the name alone"
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._~-]*", ident) and ident.lower() not in batch.RESERVED
        if batch.SAFE_NAME.fullmatch(name) and not name.lower().endswith(".zip") and name.lower() not in batch.RESERVED:
            assert ident == name
        else:
            assert "~" in ident and len(ident) <= 51
        assert batch.submission_id(name + ".zip", zipped=True) == ident  # alice.zip is alice


def test_submission_ids_are_stable():
    assert batch.submission_id("alice_smith") == "alice_smith"
    assert batch.submission_id("alice smith") == "alice_smith~038bd15a1e"  # sha256("alice smith")[:10]
    assert batch.submission_id("carol.zip", zipped=True) == "carol"
    assert batch.submission_id("carol.zip") == "carol.zip~" + hashlib.sha256(b"carol.zip").hexdigest()[:10]
    assert batch.submission_id("grades.csv") != "grades.csv"


def test_discover_keeps_distinct_names_apart_and_lists_shared_ids(tmp_path):
    for name in ("alice smith", "alice_smith", "alice", "Bob"):
        (tmp_path / name).mkdir()
    for name in ("alice.zip", "carol.zip", "Bob.zip"):
        (tmp_path / name).write_bytes(b"")
    entries, conflicts = batch.discover(tmp_path)
    assert dict(entries) == {
        "alice_smith": tmp_path / "alice_smith",
        "carol": tmp_path / "carol.zip",
        batch.submission_id("alice smith"): tmp_path / "alice smith",
    }
    assert conflicts == {
        "alice": [tmp_path / "alice", tmp_path / "alice.zip"],
        "Bob": [tmp_path / "Bob", tmp_path / "Bob.zip"],
    }


def test_is_done_only_for_the_same_entry_with_the_same_files(tmp_path):
    entry = tmp_path / "subs" / "alice"
    entry.mkdir(parents=True)
    (entry / "param_count.py").write_text(PARAM_COUNT)
    out = tmp_path / "out"

    def record(**extra):
        extra = {"status": "graded", "source": {"name": "alice"}, "files_sha256": staging.staged_sha256(entry)} | extra
        files.write_atomic(batch.result_path(out, "alice"), json.dumps({"score": 20.0, "extra_data": extra}))

    assert not batch.is_done(out, "alice", entry)
    record()
    assert batch.is_done(out, "alice", entry)
    (entry / "notes.txt").write_text("not a module file: not graded, no change")
    assert batch.is_done(out, "alice", entry)
    record(status="error: RuntimeError: the grader broke")
    assert not batch.is_done(out, "alice", entry)
    record(source={"name": "alice.zip"})
    assert not batch.is_done(out, "alice", entry)
    record(files_sha256=None)
    assert not batch.is_done(out, "alice", entry)
    record()
    (entry / "param_count.py").write_text(PARAM_COUNT + "\n# changed\n")
    assert not batch.is_done(out, "alice", entry)
    batch.result_path(out, "alice").write_text('{"score": 20.0}')  # a result from before sources were recorded
    assert not batch.is_done(out, "alice", entry)


def _snapshot(out):
    return {p.parent.name: (p.stat().st_mtime_ns, p.read_text()) for p in out.glob("*/results.json")}


@pytest.fixture(scope="module")
def late(tmp_path_factory):
    """One batch in three runs: `alice_smith` graded (`alice` + `alice.zip` in conflict);
    a late `alice smith` added and the batch resumed; `alice_smith`'s file changed and resumed again."""
    tmp = tmp_path_factory.mktemp("late")
    subs, out = tmp / "subs", tmp / "out"
    (subs / "alice_smith").mkdir(parents=True)
    (subs / "alice_smith" / "param_count.py").write_text(PARAM_COUNT)
    (subs / "alice").mkdir()
    (subs / "alice" / "param_count.py").write_text(PARAM_COUNT)
    with zipfile.ZipFile(subs / "alice.zip", "w") as zf:
        zf.writestr("param_count.py", PARAM_COUNT)
    env = dict(os.environ, GRADER_CALL_TIMEOUT="5")
    cmd = [sys.executable, "-m", "grader", "batch", str(subs), "--out", str(out), "--workers", "1"]
    runs = []

    def run():
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        runs.append(
            dict(
                stdout=proc.stdout,
                stderr=proc.stderr,
                results=_snapshot(out),
                rows=_rows(out),
                notes=(out / "notes.txt").read_text(),
            )
        )

    run()
    (subs / "alice smith").mkdir()  # late, and sorted before alice_smith
    (subs / "alice smith" / "param_count.py").write_text(BROKEN)
    run()
    (subs / "alice_smith" / "param_count.py").write_text(BROKEN)
    run()
    return dict(subs=subs, out=out, runs=runs, late_id=batch.submission_id("alice smith"))


def test_a_late_alice_smith_gets_her_own_id_and_grade(late):
    first, second = late["runs"][:2]
    late_id = late["late_id"]
    assert set(first["results"]) == {"alice_smith"} and "graded 1 submission(s), 0 already done" in first["stdout"]
    assert set(second["results"]) == {"alice_smith", late_id}
    assert "graded 1 submission(s), 1 already done" in second["stdout"]
    assert second["results"]["alice_smith"] == first["results"]["alice_smith"]  # neither regraded nor lost
    scores = {i: json.loads(text)["score"] for i, (_, text) in second["results"].items()}
    assert scores == {"alice_smith": 20.0, late_id: 0.0}
    rows = second["rows"]
    assert (rows["alice_smith"]["source"], rows[late_id]["source"]) == ("alice_smith", "alice smith")
    assert (float(rows["alice_smith"]["total"]), float(rows[late_id]["total"])) == (20, 0)


def test_every_result_records_its_source_and_the_hash_of_the_files_graded(late):
    for ident, name, text in (("alice_smith", "alice_smith", PARAM_COUNT), (late["late_id"], "alice smith", BROKEN)):
        extra = json.loads(late["runs"][1]["results"][ident][1])["extra_data"]
        assert extra["source"] == {"path": str(late["subs"] / name), "name": name, "kind": "folder"}
        expected = hashlib.sha256(b"param_count.py\0" + hashlib.sha256(text.encode()).digest()).hexdigest()
        assert extra["files_sha256"] == expected


def test_resume_regrades_a_changed_folder_and_keeps_the_rest(late):
    second, third = late["runs"][1:]
    late_id = late["late_id"]
    assert "graded 1 submission(s), 1 already done" in third["stdout"]
    assert third["results"][late_id] == second["results"][late_id]
    changed = json.loads(third["results"]["alice_smith"][1])
    assert third["results"]["alice_smith"][0] != second["results"]["alice_smith"][0]
    assert changed["score"] == 0.0 and float(third["rows"]["alice_smith"]["total"]) == 0
    assert changed["extra_data"]["files_sha256"] == staging.staged_sha256(late["subs"] / "alice_smith")


def test_a_folder_and_a_zip_with_one_id_are_a_conflict_and_neither_is_graded(late):
    for run in late["runs"]:
        assert "alice" not in run["results"]
        notes = run["notes"].splitlines()
        assert len(notes) == 1 and "'alice' (folder)" in notes[0] and "'alice.zip' (zip)" in notes[0]
        assert notes[0] in run["stderr"]
        row = run["rows"]["alice"]
        assert row["status"].startswith("conflict") and row["total"] == "" and row["source"] == "alice, alice.zip"
