"""Batch throughput on a local Dask cluster: submissions per minute per number of workers.

    python benchmarks/batch_dask.py [--submissions 100] [--workers 1 2] [--processes] [--modules attention ...]

Builds N submissions (the reference, one in four with a catalogued mistake in one module),
grades them with ``grader.grading.batch.run`` into a fresh folder once per worker count, with
one staff key, and prints the wall time and submissions per minute of each run, the mean
``execution_time`` of a submission, and whether every run gave the same gradebook.
``--processes`` also runs each worker count with worker processes instead of threads.
"""

import argparse
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader import mistakes, rubric, staffkey
from grader.grading import batch


def build(folder, count, modules):
    """``count`` submissions of ``modules``: the reference, every fourth with one catalogued mistake."""
    wrong = [m for m in mistakes.load() if not m.correct and m.module in modules]
    for i in range(count):
        sub = folder / f"s{i:03d}"
        sub.mkdir(parents=True)
        for module in modules:
            shutil.copy(ROOT / "solutions" / f"{module}.py", sub / f"{module}.py")
        if i % 4 == 3 and wrong:
            mutant = wrong[(i // 4) * 7 % len(wrong)]
            (sub / f"{mutant.module}.py").write_text(mutant.source())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--submissions", type=int, default=100, help="how many submissions (default 100)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default 1 2)")
    parser.add_argument("--processes", action="store_true", help="also run with worker processes")
    parser.add_argument("--modules", nargs="+", default=list(rubric.MODULES), choices=rubric.MODULES)
    parser.add_argument("--device", action="append", default=[], help="as grader batch --device")
    args = parser.parse_args()
    os.environ[staffkey.ENV] = secrets.token_hex(32)  # worker processes read it from their environment
    runs = [(w, False) for w in args.workers] + ([(w, True) for w in args.workers] if args.processes else [])
    with tempfile.TemporaryDirectory(prefix="batch-dask-") as tmp:
        subs = Path(tmp) / "subs"
        build(subs, args.submissions, args.modules)
        print(
            f"{args.submissions} submissions ({', '.join(args.modules)}), {os.cpu_count()} CPUs, "
            f"devices {args.device or 'default'}"
        )
        print(f"{'workers':>7}  {'kind':<9} {'wall':>8}  {'per minute':>10}  {'mean execution_time':>19}")
        books = {}
        for workers, processes in runs:
            out = Path(tmp) / f"out-{workers}-{'p' if processes else 't'}"
            start = time.monotonic()
            with open(os.devnull, "w") as devnull:
                graded, _ = batch.run(subs, out, workers=workers, processes=processes, out=devnull, devices=args.device)
            wall = time.monotonic() - start
            times = [json.loads(p.read_text())["execution_time"] for p in out.glob("*/results.json")]
            books[(workers, processes)] = (out / "grades.csv").read_text()
            kind = "processes" if processes else "threads"
            print(
                f"{workers:>7}  {kind:<9} {wall:>7.1f}s  {graded / wall * 60:>10.2f}  {statistics.fmean(times):>18.1f}s"
            )
        print(f"the same gradebook in every run: {len(set(books.values())) == 1}")


if __name__ == "__main__":
    main()
