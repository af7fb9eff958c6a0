"""How many catalog entries get their own hint in the student release, and the same hint as here?

Writes a release (``grader.release.student.write``: the allowlisted files and the
fingerprints, without the command's checks) or uses ``--release DIR``, then grades every
wrong and trivial catalog entry on its own exercise twice, public tests only: inside the
release with its own grader (hints from the fingerprints) and in this repository's local
check (hints from the catalog).  Prints how many entries' feedback names their own mistake
in each, how many get the same hints in both, the entries that differ, and the size of
each fingerprint file.

    python benchmarks/release_hints.py [--release DIR] [--modules attention ...] [--json OUT]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grader import mistakes, rubric
from grader.grading import runner

#: Run in the release: grade ``[[id, path, targets]]`` with its runner; ``{id: feedback}``.
_GRADE = """
import json, sys
from grader.grading import runner
entries = json.load(open(sys.argv[1], encoding="utf-8"))
reports = runner.grade_many([tuple(e) for e in entries], shrink=False)
json.dump({i: "\\n".join(m for x in r.results for m in x.feedback()) for i, r in reports.items()},
          open(sys.argv[2], "w", encoding="utf-8"))
"""

_HINT = re.compile(r"hint: your code matches (.+)$", re.MULTILINE)


def _named(text: str) -> list[str]:
    return sorted({m.strip() for m in _HINT.findall(text)})


def _in_release(release: Path, entries: list[tuple[str, str, list[str]]], tmp: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    for name in ("GRADER_STAFF_KEY", "GRADER_STAFF_KEY_FD", "PYTHONPATH"):
        env.pop(name, None)
    procs = []
    for i, half in enumerate(h for h in (entries[0::2], entries[1::2]) if h):
        (tmp / f"plan{i}.json").write_text(json.dumps(half), encoding="utf-8")
        cmd = [sys.executable, "-c", _GRADE, str(tmp / f"plan{i}.json"), str(tmp / f"out{i}.json")]
        procs.append((i, subprocess.Popen(cmd, cwd=release, env=env)))
    out: dict[str, str] = {}
    for i, proc in procs:
        if proc.wait() != 0:
            raise RuntimeError(f"grading in {release} failed")
        out.update(json.loads((tmp / f"out{i}.json").read_text(encoding="utf-8")))
    return out


def main() -> int:
    """Measure and print (see the module doc)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", help="an existing release folder (default: write one to a temporary folder)")
    parser.add_argument("--modules", nargs="*", default=[], choices=rubric.MODULES)
    parser.add_argument("--json", help="write every entry's hints here")
    args = parser.parse_args()
    wanted = [
        m
        for m in mistakes.load() + mistakes.trivial()
        if not m.correct and (not args.modules or m.module in args.modules)
    ]
    with tempfile.TemporaryDirectory(prefix="release-hints-") as tmp_name:
        tmp = Path(tmp_name)
        if args.release:
            release = Path(args.release)
        else:
            from grader.release import student

            release = tmp / "release"
            student.write(release)
        entries = []
        for m in wanted:
            folder = tmp / f"{m.module}-{m.id}"
            folder.mkdir()
            (folder / f"{m.module}.py").write_text(m.source(), encoding="utf-8")
            entries.append((m.id, str(folder), [m.exercise]))
        there = _in_release(release, entries, tmp)
        here = {
            i: "\n".join(msg for x in r.results for msg in x.feedback())
            for i, r in runner.grade_many(entries, shrink=False).items()
        }
        sizes = {p.name: p.stat().st_size for p in sorted((release / "tests" / "fingerprints").glob("*.pt"))}
    rows = []
    for m in wanted:
        rows.append({"id": m.id, "mistake": m.mistake, "release": _named(there[m.id]), "here": _named(here[m.id])})
    own_there = sum(r["mistake"] in r["release"] for r in rows)
    own_here = sum(r["mistake"] in r["here"] for r in rows)
    alike = sum(r["release"] == r["here"] for r in rows)
    print(f"{len(rows)} wrong and trivial entries, each graded on its own exercise, public tests only")
    print(f"  named their own mistake: in the release {own_there}, in this repository's local check {own_here}")
    print(f"  the same hints in both: {alike}")
    for r in rows:
        if r["release"] != r["here"]:
            print(f"    {r['id']}: release {r['release']} / here {r['here']}")
    print("fingerprint files: " + ", ".join(f"{name} {size / 1024:.0f} KiB" for name, size in sizes.items()))
    print(f"  total {sum(sizes.values()) / 1024:.0f} KiB")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "sizes": sizes}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
