"""Does staff grading keep the local check's promise?  Every catalog entry graded both ways.

Each catalog entry (``grader/mistakes/*.toml`` and the trivial entries), plus extra
submission folders named on the command line, is graded twice on its whole module: as a
student's local check (``staff=False``) and as staff grading (``staff=True``, hidden tests
included; no key unless ``--key``: the public examples, so pass/fail cannot differ by the
examples drawn).
Per exercise it compares the local score with the visible Gradescope entry of the staff
``results.json`` and prints every exercise where they differ, every exercise whose staff
total is above its local score, and the maxima of each entry (which must be the same for
every submission).

    python benchmarks/local_vs_staff.py [--modules attention ...] [--extra DIR ...] [--key KEY] [--json OUT]
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grader import mistakes, rubric
from grader.grading import runner


def _entries(tmp: Path, modules: list[str], extra: list[str]) -> list[tuple[str, Path, list[str]]]:
    out = []
    for m in mistakes.load() + mistakes.trivial():
        if modules and m.module not in modules:
            continue
        folder = tmp / f"{m.module}-{m.id}"
        folder.mkdir()
        (folder / f"{m.module}.py").write_text(m.source(), encoding="utf-8")
        out.append((f"{m.module}-{m.id}", folder, [m.module]))
    for path in extra:
        out.append((f"extra:{path}", Path(path), list(modules)))
    return out


def main() -> int:
    """Grade both ways, print the differences; exit 1 when the visible part differs anywhere."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", nargs="*", default=[], choices=rubric.MODULES)
    parser.add_argument("--extra", nargs="*", default=[], help="more submission folders")
    parser.add_argument("--key", help="grade the staff side with this staff key")
    parser.add_argument("--json", help="write every row here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="local-vs-staff-") as tmp_name:
        entries = _entries(Path(tmp_name), args.modules, args.extra)
        local = runner.grade_many(entries, shrink=False)
        staff = runner.grade_many(entries, shrink=False, staff=True, staff_key=args.key)
    rows = []
    maxima: dict[str, set[tuple[str, float]]] = {}
    for ident, _, _ in entries:
        tests = staff[ident].to_gradescope()["tests"]
        for r in local[ident].results:
            mine = [t for t in tests if t["tags"][1] == r.exercise.id]
            visible = next(t for t in mine if t["visibility"] == "visible")
            for t in mine:
                maxima.setdefault(t["name"], set()).add((ident, t["max_score"]))
            total = round(sum(t["score"] for t in mine), 2)
            rows.append(
                {
                    "entry": ident,
                    "exercise": r.exercise.id,
                    "local": r.score,
                    "staff_visible": visible["score"],
                    "staff_total": total,
                    "visible_max": visible["max_score"],
                }
            )
    differ = [row for row in rows if abs(row["local"] - row["staff_visible"]) > 1e-9]
    above = [row for row in rows if row["staff_total"] > row["local"] + 1e-9]
    print(f"{len(entries)} submissions, {len(rows)} exercise gradings")
    print(f"visible part of staff grading != local check: {len(differ)}")
    for row in differ:
        local, visible = row["local"], row["staff_visible"]
        print(f"  {row['entry']:<48} {row['exercise']:<24} local {local:>6}  staff visible {visible:>6}")
    print(f"staff total above the local score: {len(above)}")
    for row in above:
        print(
            f"  {row['entry']:<48} {row['exercise']:<24} local {row['local']:>6}  staff total {row['staff_total']:>6}"
        )
    varying = {name: sorted({m for _, m in seen}) for name, seen in maxima.items() if len({m for _, m in seen}) > 1}
    print(f"Gradescope entries whose max_score varies between submissions: {len(varying)}")
    for name, values in varying.items():
        print(f"  {name}: {values}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 1 if differ or above or varying else 0


if __name__ == "__main__":
    sys.exit(main())
