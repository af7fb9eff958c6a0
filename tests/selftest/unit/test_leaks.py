"""The leak check (grader/release/leaks.py) on a small fake repository and fake releases:
the canonical form sees through renaming and reformatting but not through a real change;
each kind of leak is found and named; a clean release passes; and on the real repository,
every marked block is a secret and the released code holds none of them."""

import ast
import json
import os
import re
import shutil
import subprocess
import textwrap

import pytest

from grader import ROOT
from grader.release import leaks
from grader.release.leaks import MIN_SIZE, Leak, canonical, scan, secrets

GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t.invalid",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00",
}

SOLUTION = '''\
"""Module ``mod``: a fake reference."""

import math

import torch


def softmax_rows(x, temperature=1.0):
    """Softmax over the last axis."""
    ### BEGIN SOLUTION
    scaled = x / temperature
    # subtract the row maximum: exp never overflows
    shifted = scaled - scaled.max(dim=-1, keepdim=True).values
    weights = torch.exp(shifted)
    return weights / weights.sum(dim=-1, keepdim=True)
    ### END SOLUTION


def attend(q, k, v):
    """Attention with the helper above."""
    d = q.size(-1)
    ### BEGIN SOLUTION
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)
    weights = softmax_rows(scores, temperature=1.0)
    return weights @ v, weights
    ### END SOLUTION


def identity(x):
    """Too small to be a secret."""
    ### BEGIN SOLUTION
    return x
    ### END SOLUTION
'''

HIDDEN = '''\
"""Hidden tests of ``mod``."""

import pytest
import torch

from mod import softmax_rows


@pytest.mark.hidden
def test_hidden_rows_sum_to_one():
    """Every row sums to one, at any temperature."""
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    out = softmax_rows(x, temperature=2.0)
    assert torch.allclose(out.sum(dim=-1), torch.ones(3))
    assert bool((out >= 0).all())
'''

STUB = '''\
"""Module ``mod``: a fake reference."""

import math

import torch


def softmax_rows(x, temperature=1.0):
    """Softmax over the last axis."""
    # TODO(mod.softmax): write softmax_rows (delete this raise).
    raise NotImplementedError("mod.softmax: softmax_rows is not implemented yet")


def attend(q, k, v):
    """Attention with the helper above."""
    d = q.size(-1)
    # TODO(mod.attend): write attend (delete this raise).
    raise NotImplementedError("mod.attend: attend is not implemented yet")


def identity(x):
    """Too small to be a secret."""
    # TODO(mod.identity): write identity (delete this raise).
    raise NotImplementedError("mod.identity: identity is not implemented yet")
'''

PUBLIC = '''\
"""Public tests of ``mod``."""

import pytest
import torch


@pytest.mark.oracle("library")
def test_softmax_matches_torch(impl):
    x = torch.randn(2, 4)
    assert torch.allclose(impl.softmax_rows(x), torch.softmax(x, dim=-1))
'''

#: ``softmax_rows``'s block inside a larger function, variables renamed, comments, an
#: annotation and a docstring changed, reformatted.
PLANTED_BLOCK = '''\
import torch


def helper(logits: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Something else entirely."""
    logits = logits.float()
    if logits.dim() == 1:
        logits = logits[None]
    z: torch.Tensor = logits / tau
    centred = z - z.max(
        dim=-1, keepdim=True
    ).values  # stable
    p = torch.exp(centred)
    return p / p.sum(dim=-1, keepdim=True)
'''

#: ``attend``, whole, under another name, with its local variables renamed.
COPIED_FUNCTION = """\
import math

from mod import softmax_rows


def my_attention(query, key, value):
    width = query.size(-1)
    logits = query @ key.transpose(-2, -1) / math.sqrt(width)
    attn = softmax_rows(logits, temperature=1.0)
    return attn @ value, attn
"""


def write(root, files):
    """Write ``{relative path: text}`` under ``root``."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def git(where, *args):
    """``git -C where args`` without the user's configuration; its stdout."""
    proc = subprocess.run(["git", "-C", str(where), *args], env=GIT_ENV, capture_output=True, text=True, check=True)
    return proc.stdout


@pytest.fixture
def repo(tmp_path):
    """A fake staff repository: one reference module with two real blocks and a trivial
    one, and one hidden test."""
    root = tmp_path / "repo"
    write(root, {"solutions/mod.py": SOLUTION, "tests/hidden/test_mod.py": HIDDEN})
    return root


def release(tmp_path, extra=None, commit=True):
    """A fake release (the stub, a public test, a README) plus ``extra`` files, committed as
    the one commit of a fresh repository."""
    out = tmp_path / "release"
    files = {
        "assignments/mod.py": STUB,
        "tests/exercises/test_mod.py": PUBLIC,
        "README.md": "# Exercises\n\nFill in `assignments/mod.py`, then run `python -m grader check`.\n",
    }
    write(out, {**files, **(extra or {})})
    if commit:
        git(out, "init", "-q", "-b", "main")
        git(out, "add", "-A")
        git(out, "commit", "-q", "-m", "release")
    return out


def body(source, name=None):
    """The body of function ``name`` in ``source`` (the first function when None)."""
    tree = ast.parse(textwrap.dedent(source))
    return next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and name in (None, n.name)).body


def copies(found):
    """The findings of secret code."""
    return [leak for leak in found if " copy " in leak.what]


# ---- canonical --------------------------------------------------------------------------

ORIGINAL = """
def f(x, temperature=1.0):
    scaled = x / temperature
    shifted = scaled - scaled.max(dim=-1, keepdim=True).values
    return torch.exp(shifted)
"""


def test_canonical_sees_through_renaming_reformatting_comments_docstrings_annotations():
    """Consistent renaming, another layout, comments, a docstring and annotations (an
    annotated assignment, a bare annotation, argument and return annotations) change nothing."""
    disguised = '''
    def g(inp: "Tensor", t: float = 1.0) -> "Tensor":
        """Doc."""
        total: int
        s: "Tensor" = (inp /
                       t)  # scale
        # shift
        sh = s - s.max(dim=-1,
                       keepdim=True).values
        return torch.exp(sh)
    '''
    known = {"torch"}
    assert canonical(body(ORIGINAL), known) == canonical(body(disguised), known)
    # the whole def too: the function's name, its arguments, its nested docstring and annotations
    assert canonical(ast.parse(ORIGINAL).body, known) == canonical(ast.parse(textwrap.dedent(disguised)).body, known)
    assert len(canonical(body(disguised), known)) == 3
    assert "_v0" in canonical(body(ORIGINAL), known)[0] and "torch" in canonical(body(ORIGINAL), known)[2]


def test_canonical_sees_a_real_change():
    """Another axis, another constant, another attribute: another canonical form."""
    original = canonical(body(ORIGINAL), {"torch"})
    for old, new in (("dim=-1", "dim=-2"), ("keepdim=True", "keepdim=False"), (".max(", ".min(")):
        assert canonical(body(ORIGINAL.replace(old, new)), {"torch"}) != original, new


def test_canonical_sees_an_inconsistent_renaming():
    """Renaming one variable to two different names (or two to one) is a different program."""
    original = canonical(body(ORIGINAL))
    split = ORIGINAL.replace("scaled - scaled", "scaled - other")
    merged = ORIGINAL.replace("x / temperature", "x / x")
    assert canonical(body(split)) != original
    assert canonical(body(merged)) != original


def test_canonical_keeps_known_globals_and_builtins_and_leaves_its_input_alone():
    """Known globals and builtins stay as written (torch.exp is not np.exp), other names
    become _v0, _v1, ... in order of appearance; the statements given are not changed."""
    statements = body("def f(a):\n    b: int = len(a)\n    return torch.exp(a) + b\n")
    before = [ast.dump(s) for s in statements]
    numpy = body("def f(a):\n    b = len(a)\n    return np.exp(a) + b\n")
    assert canonical(statements, {"torch"}) != canonical(numpy, {"torch", "np"})
    assert canonical(statements) == canonical(numpy)  # torch and np both renamed
    assert "len" in canonical(statements)[0] and "'_v0'" in canonical(statements)[0]
    assert [ast.dump(s) for s in statements] == before


# ---- secrets ----------------------------------------------------------------------------


def test_secrets_are_the_blocks_the_bodies_and_the_hidden_tests(repo):
    """Each real block, the body of ``attend`` (given code before its block; the body of
    ``softmax_rows`` is its block, one secret), the hidden test; not the trivial block."""
    labels = [s.label for s in secrets(repo)]
    assert labels == [
        "solutions/mod.py:10-16 (softmax_rows)",
        "solutions/mod.py:22-26 (attend)",
        "solutions/mod.py:21-25 (the body of attend)",
        "tests/hidden/test_mod.py:12-15 (hidden test test_hidden_rows_sum_to_one)",
    ]
    assert all(s.size >= MIN_SIZE for s in secrets(repo))
    assert "solutions/mod.py:31-33 (identity)" in [s.label for s in secrets(repo, min_size=0)]


def test_secrets_without_hidden_tests(repo):
    """A repository without tests/hidden/ (or without solutions/) is no error."""
    shutil.rmtree(repo / "tests")
    assert [s.label for s in secrets(repo)][-1] == "solutions/mod.py:21-25 (the body of attend)"
    shutil.rmtree(repo / "solutions")
    assert secrets(repo) == []


# ---- scan: secret code ------------------------------------------------------------------


def test_a_clean_release_passes(repo, tmp_path):
    """The stub (the reference outside its blocks), a public test and a README: no finding."""
    assert scan(release(tmp_path), repo) == []


def test_a_block_planted_in_a_larger_function_is_found(repo, tmp_path):
    """``softmax_rows``'s block, renamed and reformatted, inside a larger function, is named
    with the secret and where it was found."""
    found = scan(release(tmp_path, {"grader/util.py": PLANTED_BLOCK}), repo)
    assert found == [
        Leak("grader/util.py", 9, "lines 9-14 copy solutions/mod.py:10-16 (softmax_rows), variables renamed")
    ]


def test_a_function_copied_under_another_name_is_found(repo, tmp_path):
    """``attend`` copied whole as ``my_attention``: its body and its block are both named."""
    found = copies(scan(release(tmp_path, {"tools/attn.py": COPIED_FUNCTION}), repo))
    assert {(leak.path, leak.line) for leak in found} == {("tools/attn.py", 7), ("tools/attn.py", 8)}
    whats = " | ".join(leak.what for leak in found)
    assert "copy solutions/mod.py:21-25 (the body of attend), variables renamed" in whats
    assert "copy solutions/mod.py:22-26 (attend)" in whats


def test_a_verbatim_hidden_test_body_is_found(repo, tmp_path):
    """A hidden test's body under a public name, word for word (not "renamed")."""
    stolen = HIDDEN.replace("@pytest.mark.hidden\n", "").replace("test_hidden_rows_sum_to_one", "test_rows")
    found = copies(scan(release(tmp_path, {"tests/exercises/test_more.py": stolen}), repo))
    assert [leak.what for leak in found] == [
        "lines 11-14 copy tests/hidden/test_mod.py:12-15 (hidden test test_hidden_rows_sum_to_one)"
    ]


def test_a_solution_in_a_notebook_cell_is_found(repo, tmp_path):
    """A code cell holding ``softmax_rows``'s block (after a magic) is read as Python."""
    cell = "%matplotlib inline\n" + textwrap.dedent("".join(SOLUTION.splitlines(True)[10:15]))
    notebook = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# Try it"]},
            {"cell_type": "code", "metadata": {}, "source": cell.splitlines(True), "outputs": []},
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    found = scan(release(tmp_path, {"notebooks/try.ipynb": json.dumps(notebook, indent=1)}), repo)
    assert found == [
        Leak("notebooks/try.ipynb", 0, "code cell 1, lines 2-6 copy solutions/mod.py:10-16 (softmax_rows)")
    ]


def test_trivial_bodies_are_ignored(repo, tmp_path):
    """The trivial block (``return x``) and one-line raises repeat by chance: no finding."""
    trivial = "def same(y):\n    return y\n\n\ndef no(v):\n    raise ValueError('no')\n"
    assert scan(release(tmp_path, {"grader/small.py": trivial}), repo) == []


def test_a_file_that_does_not_parse_is_a_finding(repo, tmp_path):
    """An unparsable ``.py`` file (and an unreadable notebook) is reported, not raised."""
    found = scan(release(tmp_path, {"grader/broken.py": "def f(:\n    pass\n", "nb.ipynb": "{not json"}), repo)
    assert [(leak.path, leak.line) for leak in found] == [("grader/broken.py", 1), ("nb.ipynb", 0)]
    assert "does not parse" in found[0].what and "not a readable notebook" in found[1].what


# ---- scan: text, hidden tests, files, git -----------------------------------------------


def test_marker_text_is_found(repo, tmp_path):
    """Marker text in any text file is reported with its line; binary and oversized files are skipped."""
    out = release(
        tmp_path, {"docs/notes.md": "Notes\n\n    ### BEGIN SOLUTION\nx\n### END HIDDEN TESTS\n"}, commit=False
    )
    (out / "weights.pt").write_bytes(b"PK\x03\x04\x00\x00BEGIN SOLUTION")  # binary, though valid UTF-8
    (out / "big.txt").write_text("BEGIN SOLUTION\n" + "x" * leaks.MAX_TEXT_BYTES, encoding="utf-8")
    found = [leak for leak in scan(out, repo) if leak.path]
    assert found == [
        Leak("docs/notes.md", 3, "solution marker text 'BEGIN SOLUTION'"),
        Leak("docs/notes.md", 5, "solution marker text 'END HIDDEN TESTS'"),
    ]


def test_a_hidden_test_name_in_a_readme_is_found(repo, tmp_path):
    """A hidden test's name as a word; not as part of a longer word."""
    readme = "# Hints\n\nSee test_hidden_rows_sum_to_one.\nNot test_hidden_rows_sum_to_one_more.\n"
    assert scan(release(tmp_path, {"README.md": readme}), repo) == [
        Leak("README.md", 3, "names the hidden test test_hidden_rows_sum_to_one (tests/hidden/test_mod.py)")
    ]


@pytest.mark.parametrize(
    "decorators, mark",
    [
        ("@pytest.mark.hidden\n", "hidden"),
        ('@pytest.mark.oracle("reference")\n', 'oracle("reference")'),
        ("@staff\n", 'oracle("reference")'),
        ("@mark.hidden()\n", "hidden"),
    ],
)
def test_a_test_marked_for_staff_is_found(repo, tmp_path, decorators, mark):
    """A test marked hidden or oracle("reference"), directly or through an alias."""
    source = (
        "import pytest\nfrom pytest import mark\n\nstaff = pytest.mark.oracle(kind='reference')\n\n\n"
        f'@pytest.mark.oracle("library")\n{decorators}def test_x():\n    pass\n'
    )
    found = scan(release(tmp_path, {"tests/exercises/test_x.py": source}), repo)
    assert found == [Leak("tests/exercises/test_x.py", 8, f"test_x is marked {mark} (staff only)")]


def test_pytestmark_for_staff_is_found(repo, tmp_path):
    """``pytestmark = [pytest.mark.hidden]`` marks every test of the module."""
    source = "import pytest\n\npytestmark = [pytest.mark.hidden]\n\n\ndef test_x():\n    pass\n"
    found = scan(release(tmp_path, {"tests/exercises/test_x.py": source}), repo)
    assert found == [Leak("tests/exercises/test_x.py", 3, "pytestmark marks every test hidden (staff only)")]


def test_generated_files_are_found(repo, tmp_path):
    """``__pycache__``, ``.pyc`` and ``.hypothesis`` anywhere, reported once each; not inside .git."""
    out = release(tmp_path, {".gitignore": "__pycache__/\n*.pyc\n.hypothesis/\n"})
    write(
        out,
        {
            "assignments/__pycache__/mod.cpython-311.pyc": "x",
            "tests/stray.pyc": "x",
            ".hypothesis/examples/abc": "x",
            ".git/__pycache__/x.pyc": "x",
        },
    )
    assert scan(out, repo) == [
        Leak(".hypothesis", 0, "generated folder .hypothesis/"),
        Leak("assignments/__pycache__", 0, "generated folder __pycache__/"),
        Leak("tests/stray.pyc", 0, "generated file stray.pyc"),
    ]


def test_staff_only_paths_are_found(repo, tmp_path):
    """A staff folder and a staff file, even without solution code in them."""
    out = release(tmp_path, {"tests/selftest/test_a.py": "X = 1\n", "grader/mistakes/mod.toml": "x = 1\n"})
    assert scan(out, repo) == [
        Leak("grader/mistakes/mod.toml", 0, "staff-only file grader/mistakes/mod.toml"),
        Leak("tests/selftest", 0, "staff-only folder tests/selftest/"),
    ]


def test_git_needs_one_commit_and_a_clean_tree(repo, tmp_path):
    """Two commits, an uncommitted change, no repository at all: each is a finding."""
    out = release(tmp_path)
    (out / "README.md").write_text("changed\n", encoding="utf-8")
    assert [leak.what.split(":")[0] for leak in scan(out, repo)] == ["uncommitted changes"]
    git(out, "commit", "-q", "-am", "second")
    assert scan(out, repo) == [Leak("", 0, "2 commits, not exactly one: the history may hold anything ever committed")]
    shutil.rmtree(out / ".git")
    assert [str(leak) for leak in scan(out, repo)] == [
        ":0: not a git repository: the release must be a fresh repository with one commit"
    ]


# ---- the real repository ----------------------------------------------------------------


def test_the_real_secrets_and_the_real_released_code(tmp_path):
    """Every marked block of solutions/ is a secret (none is too small) and so is every hidden
    test; the stubs, the public tests and grader/testing/ hold none of them; a solution
    function planted among the stubs, renamed, is found."""
    found = secrets(ROOT)
    for path in sorted((ROOT / "solutions").glob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        blocks = len(re.findall(r"^\s*### BEGIN SOLUTION", path.read_text(encoding="utf-8"), re.M))
        mine = [s.label for s in found if s.label.startswith(f"{rel}:") and "(the body of " not in s.label]
        assert blocks and len(mine) == blocks, (rel, mine)
    hidden = sorted((ROOT / "tests" / "hidden").glob("*.py"))
    tests = sum(len(re.findall(r"^\s*def test_", p.read_text(encoding="utf-8"), re.M)) for p in hidden)
    assert len([s for s in found if "(hidden test " in s.label]) == tests

    copy = tmp_path / "copy"
    for folder in ("assignments", "tests/exercises", "grader/testing"):
        shutil.copytree(ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__", "reference.py"))
    assert scan(copy, ROOT) == [
        Leak("", 0, "not a git repository: the release must be a fresh repository with one commit")
    ]

    source = (ROOT / "solutions" / "attention.py").read_text(encoding="utf-8")
    fn = next(f for f in ast.parse(source).body if getattr(f, "name", "") == "scaled_dot_product_attention")
    planted = re.sub(r"\bscores\b", "logits", ast.unparse(fn).replace("scaled_dot_product_attention", "helper"))
    target = copy / "assignments" / "attention.py"
    target.write_text(target.read_text(encoding="utf-8") + "\n\n" + planted + "\n", encoding="utf-8")
    stolen = copies(scan(copy, ROOT))
    assert stolen and all(leak.path == "assignments/attention.py" for leak in stolen)
    assert any("(scaled_dot_product_attention), variables renamed" in leak.what for leak in stolen), stolen


def test_leak_prints_as_path_line_what():
    """``str(Leak)`` is ``path:line: what``; findings sort by path, then line."""
    assert str(Leak("a.py", 3, "x")) == "a.py:3: x"
    assert sorted([Leak("b", 1, "x"), Leak("a", 9, "x"), Leak("a", 2, "y")])[0] == Leak("a", 2, "y")
    assert leaks.MIN_SIZE == MIN_SIZE
