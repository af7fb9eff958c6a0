"""The student release, built by the real command (``python -m grader release OUT``) and
used as a student would: its checks pass, its files are the allowlist's, a wrong
submission scores there exactly as in this repository's local check (hints included),
the leak check fails once a solution function is planted in it, and the answer check
once a public test computes its expected values with a formula a student could paste."""

import ast
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from grader import ROOT, mistakes, rubric
from grader.release import answers, leaks, student

ENV = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
for _name in ("GRADER_STAFF_KEY", "GRADER_STAFF_KEY_FD"):
    ENV.pop(_name, None)


def run(cmd, cwd, check=False):
    """Run ``cmd`` (arguments after ``python``) in ``cwd``; the completed process."""
    proc = subprocess.run([sys.executable, *cmd], cwd=cwd, env=ENV, capture_output=True, text=True, check=False)
    if check:
        assert proc.returncode == 0, f"{cmd} (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def git(where, *args):
    """``git -C where args`` without the user's configuration; its stdout."""
    env = dict(ENV, GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    proc = subprocess.run(["git", "-C", str(where), *args], env=env, capture_output=True, text=True, check=True)
    return proc.stdout


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """``(folder, the command's output)`` of a release built by the CLI (the catalog's catch
    rate aside: tests/selftest/test_catalog.py measures it on the same public tests)."""
    out = tmp_path_factory.mktemp("release") / "dlbasic"
    proc = run(["-m", "grader", "release", str(out), "--skip-catalog"], ROOT)
    assert proc.returncode == 0, f"release failed (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return out, proc.stdout


def test_the_release_command_reports_each_check(release):
    """The command ran the leak check and graded the reference (full public marks) and the
    stubs (0, every exercise "not implemented") inside the release."""
    _, said = release
    assert "leak check: no solution code" in said
    assert re.search(r"answer check: none of the \d+ functions of the public tests earns a point", said), said
    assert "the reference scores 100/100 in the release (full public marks)" in said
    assert f"the stubs score 0 in the release, all {len(rubric.EXERCISES)} exercises 'not implemented'" in said


def test_the_release_is_one_commit_of_the_allowlisted_files(release):
    """One commit, fixed author and date; its files are the allowlist's plus the fingerprints;
    nothing staff-only, nothing generated, even after grading inside it."""
    out, _ = release
    assert git(out, "rev-list", "--all", "--count").strip() == "1"
    assert (
        git(out, "log", "--format=%an <%ae> %aI").strip()
        == "DL Basic staff <staff@dlbasic.invalid> 2026-01-01T00:00:00+00:00"
    )
    tracked = set(git(out, "ls-files").split())
    fingerprints = {f"tests/fingerprints/{m}.pt" for m in rubric.MODULES}
    assert tracked == set(student.Allowlist.read().files()) | fingerprints
    assert not {
        p for p in tracked if p.startswith(("solutions/", "tests/hidden/", "tests/selftest/", "grader/authoring/"))
    }
    assert git(out, "status", "--porcelain", "--ignored") == ""
    assert leaks.scan(out, ROOT) == []


def test_the_student_readme_gives_the_two_commands(release):
    """The release's README is the student one, with the install and check commands, and
    links the contract that ships with it."""
    out, _ = release
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "python -m pip install -r requirements.txt" in readme and "python -m grader check" in readme
    assert "](docs/exercises.md)" in readme and (out / "docs" / "exercises.md").is_file()
    assert "solutions/" not in readme and "--staff" not in readme


def _plant_solution(folder):
    """Append to ``folder/assignments/attention.py`` the reference ``scaled_dot_product_attention``
    under another name, with its local variables renamed and its docstring dropped."""
    source = (ROOT / "solutions" / "attention.py").read_text(encoding="utf-8")
    fn = next(
        n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == "scaled_dot_product_attention"
    )
    fn.body = fn.body[1:] if isinstance(fn.body[0], ast.Expr) else fn.body
    text = ast.unparse(fn).replace("scaled_dot_product_attention", "my_helper")
    for old, new in (("scores", "logits"), ("weights", "attn"), ("d_k", "width")):
        text = re.sub(rf"\b{old}\b", new, text)
    target = folder / "assignments" / "attention.py"
    target.write_text(target.read_text(encoding="utf-8") + "\n\n" + text + "\n", encoding="utf-8")


def test_the_leak_check_finds_a_planted_solution_function(release, tmp_path):
    """A release given one solution function (renamed, variables renamed, committed as its
    one commit) fails the leak check, which names the solution and where it was found."""
    out, _ = release
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, symlinks=True)
    _plant_solution(copy)
    git(copy, "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q", "--amend", "-a", "--no-edit")
    found = leaks.scan(copy, ROOT)
    assert found, "the planted solution was not found"
    assert all(leak.path == "assignments/attention.py" for leak in found), found
    assert any("scaled_dot_product_attention" in leak.what for leak in found), found


#: Formula oracles a public test file must not hold: pasted into the stubs, each earns points.
FORMULA_ORACLES = """

def gates_formula(x, h, W_ih, W_hh, b_ih, b_hh):
    a = x.double() @ W_ih.double().T + b_ih.double() + h.double() @ W_hh.double().T + b_hh.double()
    i, f, g, o = a.chunk(4, dim=-1)
    return tuple(t.to(x.dtype) for t in (torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)))


GRU_COUNT = lambda input_size, hidden_size, bias: 3 * hidden_size * (input_size + hidden_size) + 6 * hidden_size * bias
"""


def test_the_answer_check_reports_formula_oracles_in_the_public_tests(release, tmp_path):
    """The public LSTM tests given back a formula oracle of the gates (issue 33's
    ``gates_formula``) and a lambda that counts a GRU's parameters fail the answer check: it
    names the file, the function and the exercise each earns points on, pasted into the
    stubs.  (The release itself passed it: see the command's output above.)"""
    out, _ = release
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, symlinks=True)
    target = copy / "tests" / "exercises" / "test_lstm.py"
    target.write_text(target.read_text(encoding="utf-8") + FORMULA_ORACLES, encoding="utf-8")
    found = answers.scan(copy, modules=["lstm"])
    assert all(leak.path == "tests/exercises/test_lstm.py" for leak in found), found
    reported = {(leak.what.split(" pasted")[0], leak.what.split(" points on ")[1].split(":")[0]) for leak in found}
    assert reported == {("gates_formula", "lstm.gates"), ("<lambda>", "lstm.param_count")}, found
    assert any("as lstm_gates earns 6/6 points" in leak.what for leak in found), found


def _records(results):
    """``{test node id: (status, weight)}`` of a results.json's public tests."""
    return {
        r["nodeid"]: (r["status"], r["weight"])
        for t in results["tests"]
        for r in t.get("extra_data", {}).get("tests", [])
    }


def test_a_wrong_submission_scores_the_same_in_the_release_and_here(release, tmp_path):
    """A catalogued mistake gets the same public score, test by test, from the release's
    check as from this repository's local check, and the same hint: the release names the
    mistake from its fingerprints (it has neither the reference nor the patches)."""
    out, _ = release
    entry = next(m for m in mistakes.load("attention") if m.id == "sdpa_softmax_query_axis")
    submission = tmp_path / "wrong"
    submission.mkdir()
    (submission / "attention.py").write_text(entry.source(), encoding="utf-8")
    results = {}
    for name, where in (("release", out), ("repository", ROOT)):
        target = tmp_path / f"{name}.json"
        proc = run(
            [
                "-m",
                "grader",
                "check",
                "attention.sdpa",
                "--quiet",
                "--submission",
                str(submission),
                "--json",
                str(target),
            ],
            where,
            check=True,
        )
        results[name] = (json.loads(target.read_text(encoding="utf-8")), proc.stdout)
    (released, said_there), (local, said_here) = results["release"], results["repository"]
    assert released["score"] == local["score"] < released["max_score"]
    assert _records(released) == _records(local) and _records(local)
    hint = f"hint: your code matches {entry.mistake}"
    assert hint in said_there and hint in said_here


def test_the_release_offers_students_their_commands_only(release):
    """In the release, `grader list` and `pytest` work (pytest checks assignments/ by default,
    so the stubs fail "not implemented"); the staff commands do not exist."""
    out, _ = release
    assert "attention.sdpa" in run(["-m", "grader", "list"], out, check=True).stdout
    for staff in ("mutants", "generate", "batch", "release", "gradescope"):
        proc = run(["-m", "grader", staff], out)
        assert proc.returncode == 2 and "invalid choice" in proc.stderr, (staff, proc.stderr)
    proc = run(["-m", "pytest", "tests/exercises/test_param_count.py", "-k", "categorical", "-q"], out)
    assert proc.returncode == 1 and "not implemented yet" in proc.stdout, proc.stdout[-2000:]
    assert git(out, "status", "--porcelain", "--ignored") == ""
