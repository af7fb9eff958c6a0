"""``nbgrader autograde`` (graded in the sandbox) per student, next to ``grader batch`` on the same code.

    python benchmarks/notebooks_autograde.py [--students 3]

Each student hands in the four notebooks filled with the reference; the batch grades the same
modules as ``.py`` folders, both with the same staff key (autograde requires one).  Prints
both wall times and the per-student ratio, measured in one run, and checks that both give
every student 100.
"""

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nbformat

from grader import rubric
from grader.notebooks import cells
from grader.notebooks import course as course_folder

KEY = "a benchmark staff key long enough to be accepted"


def _fill(nb: nbformat.NotebookNode, module: str) -> None:
    import ast

    text = (ROOT / "solutions" / f"{module}.py").read_text(encoding="utf-8")
    lines = text.splitlines()
    defs = {
        n.name: "\n".join(lines[n.lineno - 1 : n.end_lineno])
        for n in ast.parse(text).body
        if isinstance(n, ast.FunctionDef | ast.ClassDef)
    }
    wanted = cells.solution_cell_ids(module)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in wanted:
            cell.source = defs[wanted[grade_id][1]]


def _run(cmd: list[str], cwd: Path) -> float:
    env = {**os.environ, "GRADER_STAFF_KEY": KEY, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    """Build the course, autograde it, batch-grade the same code; print the times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nb-bench-") as tmp:
        course = course_folder.setup_course(Path(tmp) / "course")
        _run([sys.executable, "-m", "nbgrader", "generate_assignment", cells.ASSIGNMENT, "--force"], course)
        batch_in = Path(tmp) / "batch"
        for i in range(args.students):
            student = f"s{i:02d}"
            folder = course / "submitted" / student / cells.ASSIGNMENT
            folder.mkdir(parents=True)
            (batch_in / student).mkdir(parents=True)
            for module in rubric.MODULES:
                nb = nbformat.read(course / "release" / cells.ASSIGNMENT / f"{module}.ipynb", as_version=4)
                _fill(nb, module)
                nbformat.write(nb, folder / f"{module}.ipynb")
                shutil.copy(ROOT / "solutions" / f"{module}.py", batch_in / student / f"{module}.py")
        autograde_s = _run([sys.executable, "-m", "nbgrader", "autograde", cells.ASSIGNMENT, "--create"], course)
        _run([sys.executable, "-m", "nbgrader", "export"], course)
        with (course / "grades.csv").open(encoding="utf-8") as f:
            nb_scores = {row["student_id"]: float(row["raw_score"]) for row in csv.DictReader(f)}
        out = Path(tmp) / "batch-out"
        batch_s = _run([sys.executable, "-m", "grader", "batch", str(batch_in), "--out", str(out)], ROOT)
        with (out / "grades.csv").open(encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    n = args.students
    print(f"students: {n} (four reference notebooks each)")
    scores = sorted(nb_scores.values())
    print(f"nbgrader autograde: {autograde_s:.1f} s, {autograde_s / n:.1f} s per student; scores {scores}")
    print(f"grader batch:       {batch_s:.1f} s, {batch_s / n:.1f} s per student; {len(rows)} rows")
    print(f"autograde / batch per student: {autograde_s / batch_s:.2f}x")


if __name__ == "__main__":
    main()
