"""Batch grading on Dask: a local cluster and an existing one (``--scheduler``) give exactly what
the batch gave before (one ``grade_one`` per submission in a thread pool), and refuse what they must."""

import json
import os
import re
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest

from grader import ROOT, mistakes, staffkey
from grader.cli import main
from grader.grading import batch

distributed = pytest.importorskip(
    "distributed", reason="grader batch runs on Dask: pip install -r requirements-dev.txt"
)

KEY = "dask-batch-test-key"
REFERENCE = (ROOT / "solutions" / "attention.py").read_text()


def _mutant(mutant_id):
    return next(m for m in mistakes.load("attention") if m.id == mutant_id).source()


def _batch(subs, out, *args, key=KEY):
    """``python -m grader batch SUBS --out OUT --device cpu ARGS`` with ``GRADER_STAFF_KEY=key``."""
    env = {k: v for k, v in os.environ.items() if k != staffkey.ENV} | {"GRADER_CALL_TIMEOUT": "5"}
    if key:
        env[staffkey.ENV] = key
    cmd = [sys.executable, "-m", "grader", "batch", str(subs), "--out", str(out), "--device", "cpu", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _normalized(out, ident):
    """A results.json without what differs from run to run: its execution time, the staging folder's name."""
    result = json.loads((out / ident / "results.json").read_text())
    result.pop("execution_time", None)
    return json.loads(re.sub(r"grader-stage-\w+", "grader-stage-X", json.dumps(result)))


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Four submissions (the reference, two catalogued mistakes, one zipped, and a folder with
    no module) graded four ways with one staff key: as the batch did before Dask (``grade_one``
    per submission, two threads), on a local Dask cluster of 2 workers, refused by a cluster
    whose workers lack the key, and on that cluster (an in-process ``LocalCluster``) with it."""
    tmp = tmp_path_factory.mktemp("dask")
    subs = tmp / "subs"
    for name, source in (("alice", REFERENCE), ("bob", _mutant("sdpa_softmax_query_axis"))):
        (subs / name).mkdir(parents=True)
        (subs / name / "attention.py").write_text(source)
    with zipfile.ZipFile(subs / "carol.zip", "w") as zf:
        zf.writestr("carol_hw/attention.py", _mutant("mha_no_out_proj"))
    (subs / "dave").mkdir()
    (subs / "dave" / "notes.txt").write_text("no module here")
    out = {name: tmp / name for name in ("before", "local", "refused", "remote")}

    entries, conflicts = batch.discover(subs)
    out["before"].mkdir()
    with ThreadPoolExecutor(2) as pool:  # the batch before Dask: grade_one per submission, in threads
        list(pool.map(lambda e: batch.grade_one(*e, out["before"], staff_key=KEY, devices=["cpu"]), entries))
    batch.write_gradebook(out["before"], entries, conflicts)

    runs = {"local": _batch(subs, out["local"], "--workers", "2")}
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None
    )
    try:
        with pytest.MonkeyPatch.context() as mp:  # the workers' own environment: threads of this process
            mp.delenv(staffkey.ENV, raising=False)
            runs["refused"] = _batch(subs, out["refused"], "--scheduler", cluster.scheduler_address)
            mp.setenv(staffkey.ENV, KEY)
            runs["remote"] = _batch(subs, out["remote"], "--scheduler", cluster.scheduler_address)
            runs["both"] = _batch(subs, tmp / "both", "--scheduler", cluster.scheduler_address, "--workers", "2")
    finally:
        cluster.close()
    return dict(subs=subs, out=out, runs=runs, ids=[ident for ident, _ in entries])


def test_a_local_dask_batch_gives_what_the_batch_gave_before(graded):
    out, run = graded["out"], graded["runs"]["local"]
    assert run.returncode == 0, run.stderr[-3000:]
    assert "graded 4 submission(s), 0 already done" in run.stdout
    assert sorted(graded["ids"]) == ["alice", "bob", "carol", "dave"]
    for ident in graded["ids"]:
        assert _normalized(out["local"], ident) == _normalized(out["before"], ident), ident
    assert (out["local"] / "grades.csv").read_text() == (out["before"] / "grades.csv").read_text()
    scores = {i: _normalized(out["local"], i)["score"] for i in graded["ids"]}
    assert scores["alice"] == 30 and 0 < scores["bob"] < 30 and 0 < scores["carol"] < 30 and scores["dave"] == 0


def test_a_batch_on_an_existing_cluster_gives_the_same(graded):
    out, run = graded["out"], graded["runs"]["remote"]
    assert run.returncode == 0, run.stderr[-3000:]
    assert "graded 4 submission(s), 0 already done" in run.stdout
    for ident in graded["ids"]:
        assert _normalized(out["remote"], ident) == _normalized(out["before"], ident), ident
    assert (out["remote"] / "grades.csv").read_text() == (out["before"] / "grades.csv").read_text()


def test_workers_without_the_key_are_refused_before_anything_is_graded(graded):
    run = graded["runs"]["refused"]
    assert run.returncode == 2
    assert "a Dask worker cannot grade this batch" in run.stderr and f"no {staffkey.ENV}" in run.stderr
    assert not list(graded["out"]["refused"].glob("*/results.json"))
    assert KEY not in run.stdout + run.stderr


def test_workers_is_for_the_local_cluster_only(graded):
    run = graded["runs"]["both"]
    assert run.returncode == 2 and "leave --workers out" in run.stderr


def test_every_result_records_its_execution_time(graded):
    for name in ("before", "local", "remote"):
        for ident in graded["ids"]:
            seconds = json.loads((graded["out"][name] / ident / "results.json").read_text())["execution_time"]
            assert isinstance(seconds, float) and seconds >= 0 and round(seconds, 1) == seconds, (name, ident)
            if ident != "dave":  # graded, not rejected
                assert seconds > 1, (name, ident)


def test_without_distributed_the_batch_names_the_package_and_the_pip_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed: ModuleNotFoundError
    (tmp_path / "subs").mkdir()
    assert main(["batch", str(tmp_path / "subs"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "'distributed' is not installed" in err and "pip install" in err
    assert not (tmp_path / "out").exists()
