"""``--fork-files`` (a local check on every core): one forked process per test file (a lone
file's tests dealt into two), the same grades as one process, and a child's crash is the
session's."""

import json
import os
import signal
import subprocess
import sys

import pytest

from grader import ROOT, mistakes, rubric
from grader.grading import runner

LOGGING = """
import json, os

def log(name):
    with open(os.environ["FORK_LOG"], "a") as fh:
        fh.write(json.dumps([name, os.getpid(), os.getppid()]) + "\\n")
"""


def _session(tmp_path, files, *options):
    """Run pytest on ``files`` ({name: source}) with the grader's plugin; ``(proc, rows)``
    where rows are ``[test, pid, parent pid]`` in the order the tests logged them."""
    (tmp_path / "logging_helper.py").write_text(LOGGING)
    for name, source in files.items():
        (tmp_path / name).write_text("from logging_helper import log\n" + source)
    log = tmp_path / "log.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "grader.testing.plugin", *files, "-q", "-p", "no:cacheprovider"]
        + ["--rootdir", str(tmp_path), "-c", os.devnull, *options],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{tmp_path}", FORK_LOG=str(log)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return proc, rows


TWO_FILES = {
    "test_one.py": "def test_a():\n    log('a')\n\ndef test_b():\n    log('b')\n",
    "test_two.py": "def test_c():\n    log('c')\n\ndef test_d():\n    log('d')\n",
}


def test_each_file_runs_in_a_child_of_its_own_in_its_order(tmp_path):
    proc, rows = _session(tmp_path, TWO_FILES, "--fork-files")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    where = {name: (pid, parent) for name, pid, parent in rows}
    assert sorted(where) == ["a", "b", "c", "d"]
    assert [n for n, *_ in rows if n in "ab"] == ["a", "b"] and [n for n, *_ in rows if n in "cd"] == ["c", "d"]
    assert where["a"] == where["b"] and where["c"] == where["d"]  # one process per file
    (one, session), (two, same_session) = where["a"], where["c"]
    assert one != two and session == same_session  # two children of the session
    assert session not in (one, two)


def test_without_the_option_or_with_one_test_the_tests_run_in_the_session(tmp_path):
    for options, files in (((), TWO_FILES), (("--fork-files",), {"test_one.py": "def test_a():\n    log('a')\n"})):
        for stale in tmp_path.glob("log.jsonl"):
            stale.unlink()
        proc, rows = _session(tmp_path, files, *options)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert len({pid for _, pid, _ in rows}) == 1 and len(rows) == sum(s.count("def test_") for s in files.values())


def test_a_lone_files_tests_are_dealt_into_two_children_each_in_its_order(tmp_path):
    source = "".join(f"def test_{n}():\n    log('{n}')\n\n" for n in "abcde")
    proc, rows = _session(tmp_path, {"test_one.py": source}, "--fork-files")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    where = {name: (pid, parent) for name, pid, parent in rows}
    assert sorted(where) == list("abcde")
    # plain tests weigh one each: a, c, e to the first child, b, d to the second
    first, second = where["a"][0], where["b"][0]
    assert first != second and {where[n][0] for n in "ace"} == {first} and {where[n][0] for n in "bd"} == {second}
    assert [n for n, *_ in rows if n in "ace"] == list("ace") and [n for n, *_ in rows if n in "bd"] == list("bd")
    assert where["a"][1] == where["b"][1] not in (first, second)  # two children of the session


def test_a_failure_in_a_child_fails_the_session(tmp_path):
    files = dict(TWO_FILES, **{"test_two.py": "def test_c():\n    log('c')\n    assert 1 == 2\n"})
    proc, rows = _session(tmp_path, files, "--fork-files")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert {n for n, *_ in rows} == {"a", "b", "c"}


def test_a_child_killed_by_a_signal_kills_the_session_the_same_way(tmp_path):
    killed = "import os, signal\n\ndef test_c():\n    log('c')\n    os.kill(os.getpid(), signal.SIGKILL)\n"
    files = dict(TWO_FILES, **{"test_two.py": killed})
    proc, rows = _session(tmp_path, files, "--fork-files")
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    assert {n for n, *_ in rows} == {"a", "b", "c"}  # the other file's tests ran to the end


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A submission with a catalogued mistake in three modules and the reference in the fourth."""
    folder = tmp_path_factory.mktemp("mixed")
    wrong = {"attention": "sdpa_mask_after_softmax", "lstm": None, "elbo": None}
    for module in rubric.MODULES:
        source = (ROOT / "solutions" / f"{module}.py").read_text()
        if module in wrong:
            found = [m for m in mistakes.load(module) if wrong[module] in (None, m.id) and not m.correct]
            source = found[0].source()
        (folder / f"{module}.py").write_text(source)
    return folder


def test_a_forked_check_grades_exactly_as_one_process(mixed):
    one = runner.grade(mixed)
    forked = runner.grade(mixed, fork_files=True)
    assert one.score < one.max_score
    for module in ("attention", "lstm", "elbo"):
        assert sum(r.score for r in one.results if r.exercise.module == module) < sum(
            ex.points for ex in rubric.exercises_of(module)
        )
    assert [(r.exercise.id, r.score, r.status, r.feedback()) for r in forked.results] == [
        (r.exercise.id, r.score, r.status, r.feedback()) for r in one.results
    ]


def test_an_exercise_split_between_two_children_grades_exactly_as_one_process(tmp_path):
    """A check of one exercise deals its tests into two children.  This catalogued mistake
    ties with a trivial output on a failing example, and the tie is decided on the examples
    of every test of the exercise: the session's process decides it on both children's."""
    mistake = next(m for m in mistakes.load("attention") if m.id == "causal_mask_no_diagonal")
    (tmp_path / "attention.py").write_text(mistake.source())
    one = runner.grade(tmp_path, [mistake.exercise])
    forked = runner.grade(tmp_path, [mistake.exercise], fork_files=True)
    assert one.score < one.max_score
    assert any(f"hint: your code matches {mistake.mistake}" in line for line in one.results[0].feedback())
    assert [(r.exercise.id, r.score, r.status, r.feedback()) for r in forked.results] == [
        (r.exercise.id, r.score, r.status, r.feedback()) for r in one.results
    ]


def test_an_internal_error_in_a_child_ends_the_session_with_pytests_code_for_one(tmp_path):
    (tmp_path / "conftest.py").write_text(
        "def pytest_runtest_logfinish(nodeid, location):\n"
        "    if 'test_two' in nodeid:\n"
        "        raise RuntimeError('a bug of the grader')\n"
    )
    proc, rows = _session(tmp_path, TWO_FILES, "--fork-files")
    assert proc.returncode == pytest.ExitCode.INTERNAL_ERROR, proc.stdout + proc.stderr
    assert "a bug of the grader" in proc.stdout + proc.stderr
    assert {n for n, *_ in rows} == {"a", "b", "c"}
