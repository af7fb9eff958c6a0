"""``python -m grader release OUT``: the student release, a fresh repository without the answers.

The release is built from the allowlist ``release/files.toml`` (never from markers inside
files): the stubs, the public tests, the part of ``grader/`` that ``check`` needs, the
contract, and the student README, CHANGELOG and project files of ``release/``.  It gets
the mistake fingerprints (:mod:`grader.release.fingerprints`) as data, and becomes a new
git repository with exactly one commit, never a filtered copy of this history (solutions
pushed once stay in a history forever).  Then, before the command reports success:

1. the leak check (:mod:`grader.release.leaks`) scans it, and the answer check
   (:mod:`grader.release.answers`) grades every function of its public tests pasted into
   its stubs: none may earn a point;
2. inside the release (:mod:`grader.release.verify`), the reference copied in as a
   submission gets full public marks, the stubs get 0 with "not implemented", and the
   catalog's wrong entries are graded by the public tests alone: the catch rate per module
   is printed, with the mistakes only staff grading catches.
"""

import fnmatch
import os
import shutil
import subprocess
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from grader import ROOT

#: The allowlist of the release.
FILES = ROOT / "release" / "files.toml"
#: Who commits the release, and when: fixed, so the same files give the same commit.
COMMIT_ENV = {
    "GIT_AUTHOR_NAME": "DL Basic staff",
    "GIT_AUTHOR_EMAIL": "staff@dlbasic.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_COMMITTER_NAME": "DL Basic staff",
    "GIT_COMMITTER_EMAIL": "staff@dlbasic.invalid",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}
COMMIT_MESSAGE = "DL Basic exercises: the student release"


class ReleaseError(RuntimeError):
    """The release cannot be built (an allowlist problem, stale stubs, a non-empty OUT)."""


@dataclass
class Allowlist:
    """``release/files.toml``: globs to include and exclude, and files copied from ``release/``."""

    include: list[str]
    exclude: list[str] = field(default_factory=list)
    rename: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path = FILES) -> "Allowlist":
        """Parse the allowlist at ``path``; a :class:`ReleaseError` names what is wrong."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ReleaseError(f"{path}: {exc}") from None
        unknown = set(data) - {"include", "exclude", "rename"}
        if unknown or not isinstance(data.get("include"), list):
            raise ReleaseError(
                f"{path}: needs an `include` list (and optional `exclude`, `[rename]`); got {sorted(data)}"
            )
        return cls(list(data["include"]), list(data.get("exclude", [])), dict(data.get("rename", {})))

    def files(self, root: Path = ROOT) -> dict[str, Path]:
        """``{release path: source file}``; every ``include`` glob and ``rename`` source must
        match something (a typo would silently drop a file)."""
        chosen: dict[str, Path] = {}
        for pattern in self.include:
            matched = [p for p in sorted(root.glob(pattern)) if p.is_file() and not p.is_symlink()]
            if not matched:
                raise ReleaseError(f"{FILES.name}: include {pattern!r} matches no file")
            for path in matched:
                rel = path.relative_to(root).as_posix()
                if not any(fnmatch.fnmatchcase(rel, ex) for ex in self.exclude):
                    chosen[rel] = path
        for source, target in self.rename.items():
            path = root / source
            if not path.is_file():
                raise ReleaseError(f"{FILES.name}: rename source {source!r} does not exist")
            chosen[target] = path
        return dict(sorted(chosen.items()))


def _git(out: Path, *args: str) -> str:
    env = {**os.environ, **COMMIT_ENV}
    proc = subprocess.run(["git", "-C", str(out), *args], capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise ReleaseError(f"git {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def write(out: Path, allowlist: Allowlist | None = None) -> list[str]:
    """Copy the allowlisted files into the empty folder ``out``, add the fingerprints and
    commit them as the one commit of a new repository; the release's files."""
    from grader.release import fingerprints

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ReleaseError(f"{out} exists and is not empty: give a new folder")
    files = (allowlist or Allowlist.read()).files()
    out.mkdir(parents=True, exist_ok=True)
    for rel, source in files.items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    written = [p.relative_to(out).as_posix() for p in fingerprints.write(out)]
    _git(out, "init", "-q", "-b", "main")
    _git(out, "add", "-A")
    _git(out, "commit", "-q", "-m", COMMIT_MESSAGE)
    return sorted([*files, *written])


def build(out: Path, catalog: bool = True, say: Callable[[str], None] = print) -> int:
    """Build the release in ``out``, then check it (leaks, then grading inside it); the exit
    code: 0 when every check holds, 1 when one fails (the release is then not to be published)."""
    from grader.authoring import stubgen
    from grader.release import answers, leaks, verify

    stale = stubgen.generate(check=True)
    if stale:
        raise ReleaseError(
            "the stubs are out of date: run `python -m grader generate` first ("
            + ", ".join(str(p.relative_to(ROOT)) for p in stale)
            + ")"
        )
    files = write(out)
    say(f"wrote {out}: {len(files)} files, one commit ({_git(out, 'rev-parse', '--short', 'HEAD')})")
    found = leaks.scan(out, ROOT)
    summary = answers.Summary()
    found += answers.scan(out, summary=summary)
    for leak in found:
        say(f"LEAK {leak}")
    if found:
        say(f"leak check: {len(found)} finding(s); do not publish {out}")
        return 1
    say("leak check: no solution code, marker, hidden test, staff file or generated file; one commit")
    say(
        f"answer check: none of the {summary.candidates} functions of the public tests earns a point pasted into "
        f"the stubs ({summary.pastes} pastes, {summary.graded} graded)"
    )
    ok = verify.run(out, catalog_too=catalog, say=say)
    after = leaks.scan(out, ROOT)  # grading must leave the release as it was
    for leak in after:
        say(f"LEAK after grading: {leak}")
    return 0 if ok and not after else 1
