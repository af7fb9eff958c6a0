"""Peer review reads every submission shape the grader accepts, and keeps its anonymity and record.

Folders (module files up to two folders down), ``.zip`` files (folders inside) and modules
handed in as notebooks reach the gallery (grader/review/gallery.py) and a round
(grader/review/rounds.py) through :func:`grader.notebooks.cells.stage_modules`, as they reach a
Gradescope upload; a wrong submissions folder or a round without code is refused; a round's
files are mode 600 in a folder of mode 700; hidden tests reach peers as a count only; and the
gallery command names nobody unless staff ask.  The batch folder is written with the grader's
own ``Report.to_gradescope`` (nothing is graded here).
"""

import json
import os
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest

from grader import ROOT, rubric
from grader.cli import main
from grader.grading import scoring
from grader.grading.scoring import Report, score_exercise
from grader.notebooks import cells
from grader.review import consensus, gallery, rounds
from grader.review.normalize import exercise_source

SDPA = "attention.sdpa"
REFERENCE = (ROOT / "solutions" / "attention.py").read_text(encoding="utf-8")


def _variant(marker: str) -> str:
    """The reference attention module with one line in its sdpa that names ``marker``."""
    head = "def scaled_dot_product_attention(q, k, v, mask=None):\n"
    assert head in REFERENCE
    return REFERENCE.replace(head, f"{head}    {marker} = 1\n", 1)


def _notebook(module_text: str) -> str:
    """attention.ipynb (the course's source notebook) with its sdpa solution cell replaced by
    the sdpa of ``module_text``: a student's notebook, as saved."""
    nb = json.loads(cells.notebook_path("attention").read_text(encoding="utf-8"))
    cell_id = "attention-sdpa-impl-scaled_dot_product_attention"
    sdpa = exercise_source(module_text, SDPA)
    (cell,) = [c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == cell_id]
    start = sdpa.index("def scaled_dot_product_attention")
    cell["source"] = sdpa[start:].splitlines(keepends=True)
    return json.dumps(nb)


def _records(exercise: str, hidden: tuple[tuple[str, str], ...] = ()) -> list[scoring.TestRecord]:
    """Two passing public records of ``exercise`` and the hidden ones ``(title, status)``."""
    out = [
        scoring.TestRecord(f"t::{exercise}::shape", exercise, 1.0, "passed", "", "output shape"),
        scoring.TestRecord(f"t::{exercise}::rows", exercise, 1.0, "passed", "", "weights sum to 1 over the keys"),
    ]
    for n, (title, status) in enumerate(hidden):
        out.append(scoring.TestRecord(f"h::{exercise}::h{n}", exercise, 1.0, status, "", title, hidden=True))
    return out


def _result(batch: Path, ident: str, source: dict | None, exercise: str = SDPA, hidden=(("secret", "passed"),)):
    """``batch/<ident>/results.json`` as ``grader batch`` writes it, passing ``exercise``."""
    graded = score_exercise(rubric.BY_ID[exercise], _records(exercise, hidden))
    result = Report(ident, [graded]).to_gradescope()
    extra: dict[str, Any] = {"submission": ident, "status": "graded", "notes": [], "files_sha256": None}
    if source is not None:
        extra["source"] = source
    result.setdefault("extra_data", {}).update(extra)
    (batch / ident).mkdir(parents=True)
    (batch / ident / "results.json").write_text(json.dumps(result), encoding="utf-8")


def _folder(subs: Path, name: str, files: dict[str, str]) -> dict:
    for rel, text in files.items():
        (subs / name / rel).parent.mkdir(parents=True, exist_ok=True)
        (subs / name / rel).write_text(text, encoding="utf-8")
    (subs / name).mkdir(parents=True, exist_ok=True)
    return {"path": str(subs / name), "name": name, "kind": "folder"}


def _zip(subs: Path, name: str, files: dict[str, str]) -> dict:
    subs.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(subs / name, "w") as zf:
        for rel, text in files.items():
            zf.writestr(rel, text)
    return {"path": str(subs / name), "name": name, "kind": "zip"}


#: id -> the marker in its sdpa (None: no code expected: its module is three folders down).
SHAPES: dict[str, str | None] = {
    "ann_flat": "alpha_mark",
    "bob_nested": "bravo_mark",
    "cat_zip": "charlie_mark",
    "dan_notebook": "delta_mark",
    "eve_zipnb": "echo_mark",
    "fay_nozipsource": "foxtrot_mark",
    "gus_toodeep": None,
}


def _code(ident: str) -> str:
    """The module of ``ident`` in :data:`SHAPES`."""
    return _variant(str(SHAPES[ident]))


@pytest.fixture
def shapes(tmp_path):
    """A batch of every shape: (batch, submissions)."""
    batch, subs = tmp_path / "out", tmp_path / "subs"
    subs.mkdir()
    _result(batch, "ann_flat", _folder(subs, "ann_flat", {"attention.py": _code("ann_flat")}))
    nested = {"hw/src/attention.py": _code("bob_nested"), "hw/notes.txt": "x"}
    _result(batch, "bob_nested", _folder(subs, "bob nested", nested))  # recorded name with a blank
    _result(batch, "cat_zip", _zip(subs, "cat_zip.zip", {"cat/hw/attention.py": _code("cat_zip")}))
    notebook = {"attention.ipynb": _notebook(_code("dan_notebook")), "lstm.py": "x = 1\n"}
    _result(batch, "dan_notebook", _folder(subs, "dan_notebook", notebook))
    _result(batch, "eve_zipnb", _zip(subs, "eve_zipnb.zip", {"eve/attention.ipynb": _notebook(_code("eve_zipnb"))}))
    _zip(subs, "fay_nozipsource.zip", {"attention.py": _code("fay_nozipsource")})
    _result(batch, "fay_nozipsource", None)  # an older results.json without a source: <id>.zip
    _result(batch, "gus_toodeep", _folder(subs, "gus_toodeep", {"a/b/c/attention.py": _variant("golf_mark")}))
    return batch, subs


def test_stage_modules_reads_notebooks_and_prefers_the_py(tmp_path):
    """A module handed in only as a notebook is read out of its solution cells; a .py beside a
    notebook of the same module wins; a broken notebook is a note."""
    sub = tmp_path / "sub"
    _folder(sub.parent, "sub", {"attention.ipynb": _notebook(_variant("from_nb")), "lstm.py": "y = 2\n"})
    into = tmp_path / "staged"
    into.mkdir()
    notes = cells.stage_modules(sub, into)
    assert notes == []
    assert sorted(p.name for p in into.iterdir()) == ["attention.py", "lstm.py"]
    assert "from_nb = 1" in (into / "attention.py").read_text()

    (sub / "attention.py").write_text(_variant("from_py"))
    (sub / "elbo.ipynb").write_text("{not a notebook")
    into2 = tmp_path / "staged2"
    into2.mkdir()
    notes = cells.stage_modules(sub, into2)
    assert "from_py = 1" in (into2 / "attention.py").read_text()
    assert not (into2 / "elbo.py").exists()
    assert len(notes) == 1 and notes[0].startswith("elbo.ipynb: ") and notes[0].endswith("the module scores 0")


def test_every_shape_reaches_the_gallery(shapes):
    batch, subs = shapes
    sols = {s.author: s for s in gallery.solutions_from_batch(batch, subs, SDPA)}
    assert sorted(sols) == sorted(SHAPES)
    for ident, marker in SHAPES.items():
        if marker is None:
            assert sols[ident].code == "" and sols[ident].status == "passed", ident
        else:
            assert sols[ident].code == exercise_source(_variant(marker), SDPA), ident
            assert f"{marker} = 1" in sols[ident].code
    assert sols["bob_nested"].entry == "bob nested" and sols["cat_zip"].entry == "cat_zip.zip"
    assert sols["fay_nozipsource"].entry == "fay_nozipsource.zip"
    assert gallery.submission_module(subs, "dan_notebook", {}, "lstm") == "x = 1\n"  # <id> without a source


def test_entries_refuse_unsafe_or_mismatched_names(shapes, tmp_path):
    _, subs = shapes
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "attention.py").write_text(_variant("outside"))
    for name in ("../outside", "..", ".", "", "a\0b", "sub/../../outside"):
        result = {"extra_data": {"source": {"name": name, "kind": "folder"}}}
        assert gallery.submission_entry(subs, "x", result) is None, name
        assert gallery.submission_module(subs, "x", result, "attention") == ""
    # the recorded kind must match: a zip recorded as a folder is not read
    assert (
        gallery.submission_entry(subs, "x", {"extra_data": {"source": {"name": "cat_zip.zip", "kind": "folder"}}})
        is None
    )
    os.symlink(subs / "ann_flat", subs / "link")
    assert gallery.submission_entry(subs, "link", {}) is None  # links are never followed


def test_every_shape_reaches_the_round(shapes):
    batch, subs = shapes
    entries, notes = rounds.entries_from_batch(batch, subs, SDPA)
    by_id = {e.id: e for e in entries}
    assert sorted(by_id) == sorted(SHAPES)
    for ident, marker in SHAPES.items():
        if marker is not None:
            assert f"{marker} = 1" in by_id[ident].code, ident
            assert by_id[ident].approach, ident
    assert by_id["gus_toodeep"].code == "" and by_id["gus_toodeep"].status == "passed"
    assert any(n.startswith("gus_toodeep: no readable attention.py") for n in notes), notes
    assert not any("in the submissions but not in the results" in n for n in notes), notes


def test_a_wrong_submissions_folder_is_refused(shapes, tmp_path, capsys):
    batch, subs = shapes
    with pytest.raises(rounds.RoundError, match="submissions folder .* does not exist"):
        rounds.make_round(batch, tmp_path / "subs-typo", tmp_path / "round", unit=SDPA, k=2, seed="s")
    args = ["review", "plan", str(tmp_path / "subs-typo"), "--results", str(batch), "--unit", SDPA]
    assert main([*args, "--seed", "s", "--out", str(tmp_path / "round")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "round").exists()


def test_a_round_with_no_code_is_refused(shapes, tmp_path):
    batch, subs = shapes
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(rounds.RoundError, match=r"7 submission\(s\) were graded but none has code for attention.sdpa"):
        rounds.make_round(batch, empty, tmp_path / "round", unit=SDPA, k=2, seed="s")
    # a unit they did not hand in: graded (missing), no code either
    with pytest.raises(rounds.RoundError, match="none has code for lstm.cell"):
        rounds.make_round(batch, subs, tmp_path / "round", unit="lstm.cell", k=2, seed="s")
    assert not (tmp_path / "round").exists()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_round_files_are_600_in_a_folder_of_700(shapes, tmp_path):
    batch, subs = shapes
    old = os.umask(0)  # the most open umask: the modes must come from the code, not from the umask
    try:
        made = rounds.make_round(batch, subs, tmp_path / "new" / "round", unit=SDPA, k=2, seed="s")
    finally:
        os.umask(old)
    folder = made.folder
    assert _mode(folder) == 0o700
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(
        [rounds.PLAN_FILE, rounds.SOLUTIONS_FILE, rounds.ASSIGNMENTS_FILE, rounds.RUBRIC_FILE, rounds.KEY_FILE]
    )
    assert {name: _mode(folder / name) for name in names} == dict.fromkeys(names, 0o600)
    assert not any("may list it" in n for n in made.notes)

    # a folder staff made themselves is left as it is, with a note; an older world-readable file is replaced
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    (shared / rounds.PLAN_FILE).write_text("{}")
    (shared / rounds.PLAN_FILE).chmod(0o644)
    made = rounds.make_round(batch, subs, shared, unit=SDPA, k=2, seed="s")
    assert _mode(shared) == 0o755
    assert any("mode 755" in n and "chmod 700" in n for n in made.notes), made.notes
    assert all(_mode(shared / name) == 0o600 for name in names)
    assert json.loads((shared / rounds.PLAN_FILE).read_text())["unit"] == SDPA
    assert not [p for p in shared.iterdir() if p.name.endswith(".tmp")]


def test_hidden_test_names_never_reach_peers(tmp_path):
    batch = tmp_path / "out"
    hidden = (("the secret title", "passed"), ("another secret title", "failed"), ("third secret", "passed"))
    _result(batch, "ann_flat", None, hidden=hidden)
    result = gallery.load_result(batch / "ann_flat" / "results.json")
    assert result is not None and "the secret title" in json.dumps(result)  # the batch keeps them
    evidence = rounds.evidence_of(result, SDPA)
    (exercise,) = evidence["exercises"]
    assert exercise["hidden"] == {"passed": 2, "total": 3}
    shown = json.dumps(evidence)
    assert "secret" not in shown and "h::" not in shown
    module = rounds.evidence_of(result, "attention")["exercises"]  # every exercise of the module
    assert [e["hidden"] for e in module if e["id"] != SDPA] == [{"passed": 0, "total": 0}] * (len(module) - 1)


AUTHORED = '''"""My attention module."""

__author__ = "Ann Lee"

import math

import torch


def scaled_dot_product_attention(q, k, v, mask=None):
    # written by ann_flat for the course, see /home/annlee/hw
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights
'''


def test_the_gallery_command_names_nobody_unless_asked(tmp_path, capsys):
    batch, subs = tmp_path / "out", tmp_path / "subs"
    subs.mkdir()
    ids = ["ann_flat", "bob_nested", "cat_zip"]
    for ident in ids:
        _result(batch, ident, _folder(subs, ident, {"attention.py": AUTHORED.replace("ann_flat", ident)}))
    args = ["review", "gallery", str(subs), "--results", str(batch), "--exercise", SDPA]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "authors: 3 (names hidden; --names to show)" in out
    assert "size: 3" in out and "status: passed" in out and "score: " in out and "approach: " in out
    assert "def scaled_dot_product_attention" in out
    for secret in (*ids, "/home/annlee"):
        assert secret not in out, secret

    assert main([*args, "--names"]) == 0
    named = capsys.readouterr().out
    assert "authors: ann_flat, bob_nested, cat_zip" in named
    assert "# written by ann_flat for the course" in named  # staff see the code as written

    assert main([*args[:2], str(tmp_path / "nope"), *args[3:]]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_score_prints_labelled_tables(tmp_path, monkeypatch, capsys):
    report = consensus.ScoreReport(
        consensus=(
            consensus.Consensus("ann_flat", SDPA, "correctness", 3.5, 2),
            consensus.Consensus("ann_flat", SDPA, "clarity", None, 0),
        ),
        reviewers=(consensus.ReviewerScore("bob_nested", 2, 0.75, None, 1),),
        flags=(consensus.Flag(consensus.EMPTY_REVIEW, "bob_nested", "ann_flat", SDPA, "", "no scores"),),
    )
    monkeypatch.setattr(rounds, "score_round", lambda folder: (report, [tmp_path / "scores" / "flags.csv"]))
    assert main(["review", "score", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("author"))
    assert header.split() == ["author", "unit", "correctness", "clarity", "reviews"]
    row = lines[lines.index(header) + 2].split()
    assert row == ["ann_flat", SDPA, "3.5", "-", "2"]
    flags = next(line for line in lines if line.startswith("kind"))
    assert flags.split() == ["kind", "author", "reviewer", "item", "detail"]
    assert lines[lines.index(flags) + 2].split() == ["empty", "review", "ann_flat", "bob_nested", "-", "no", "scores"]
    assert any(line.split()[:1] == ["reviewer"] for line in lines)
