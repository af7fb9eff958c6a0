"""The documentation's links: every relative link of a Markdown file of the repository
points at a file of the repository, never outside it (a student's copy has nothing else)."""

import re

import pytest

from grader import ROOT
from grader.release.student import Allowlist

LINK = re.compile(r"\[[^\]]*\]\(([^)\s#]+)(?:#[^)]*)?\)")
SKIP_PARTS = {".git", ".venv", "node_modules", ".tox"}


def markdown_files():
    """The Markdown files of the repository (not of a virtual environment inside it; not
    the student release's pages in ``release/``, whose links are relative to the release)."""
    return sorted(
        p
        for p in ROOT.rglob("*.md")
        if not SKIP_PARTS & set(p.relative_to(ROOT).parts) and p.relative_to(ROOT).parts[0] != "release"
    )


def broken_links(path, root=ROOT, placed=None, shipped=None):
    """``(target, why)`` for each relative link of ``path`` that leaves ``root`` or is missing.
    ``placed``: where the file will sit (a file of ``release/`` sits elsewhere in the
    release); ``shipped``: the files its links may name (those of the release)."""
    for target in LINK.findall(path.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        resolved = ((placed or path).parent / target).resolve()
        if root not in resolved.parents and resolved != root:
            yield target, "points outside the repository"
        elif not resolved.exists():
            yield target, "does not exist"
        elif shipped is not None and resolved.relative_to(root).as_posix() not in shipped:
            yield target, "is not in the student release (release/files.toml)"


def test_release_pages_link_only_what_the_release_holds():
    """The student README and CHANGELOG (``release/``) link files of the release, from where
    they will sit in it."""
    allowlist = Allowlist.read()
    shipped = set(allowlist.files())
    for source, target in allowlist.rename.items():
        if source.endswith(".md"):
            problems = list(broken_links(ROOT / source, placed=ROOT / target, shipped=shipped))
            assert not problems, f"{source} (the release's {target}): {problems}"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_links_stay_inside_the_repository(path):
    """Each relative link names a file of the repository."""
    problems = [f"{target}: {why}" for target, why in broken_links(path)]
    assert not problems, f"{path.relative_to(ROOT)}: " + "; ".join(problems)


def test_the_link_check_can_fail(tmp_path):
    """A link to ../shared/exercises.md and a link to a missing file are both reported."""
    page = tmp_path / "README.md"
    page.write_text("[contract](../shared/exercises.md) [gone](docs/none.md) [web](https://x.org)\n")
    found = dict(broken_links(page, tmp_path.resolve()))
    assert found == {"../shared/exercises.md": "points outside the repository", "docs/none.md": "does not exist"}
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "none.md").write_text("here, but not shipped\n")
    found = dict(broken_links(page, tmp_path.resolve(), shipped={"README.md"}))
    assert found["docs/none.md"] == "is not in the student release (release/files.toml)"


def test_readme_links_the_contract():
    """The README sends students to the contract inside the repository."""
    assert "](docs/exercises.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
