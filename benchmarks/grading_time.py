"""Per-submission grading time of a correct, full submission (the reference), per adapter.

    python benchmarks/grading_time.py [--repeat 3] [--adapter sandbox inprocess] [--before REV]

Times ``python -m grader check --submission solutions`` end to end (a fresh process, as a
student or the batch runs it) and prints the median per adapter.  ``--before REV`` also
times the same command in a temporary worktree of git revision ``REV``, alternating runs
of the two trees so that both see the same machine, and prints the ratio.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _time_check(tree, adapter, devices):
    cmd = [sys.executable, "-m", "grader", "check", "--submission", "solutions", "--quiet", "--adapter", adapter]
    for device in devices:
        cmd += ["--device", device]
    start = time.monotonic()
    out = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, check=True).stdout
    elapsed = time.monotonic() - start
    total = [line for line in out.splitlines() if line.strip().startswith("TOTAL")][0].split()[1:4]
    return elapsed, " ".join(total)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--adapter", nargs="+", default=["inprocess", "sandbox"])
    parser.add_argument("--device", action="append", default=[])
    parser.add_argument("--before", help="a git revision to compare with (alternating runs)")
    args = parser.parse_args()
    trees = {"now": ROOT}
    with tempfile.TemporaryDirectory(prefix="grader-before-") as tmp:
        if args.before:
            subprocess.run(
                ["git", "worktree", "add", "--detach", tmp, args.before], cwd=ROOT, check=True, capture_output=True
            )
            trees = {f"before ({args.before})": Path(tmp), "now": ROOT}
        try:
            for adapter in args.adapter:
                times = {name: [] for name in trees}
                scores = {}
                for _ in range(args.repeat):
                    for name, tree in trees.items():
                        elapsed, scores[name] = _time_check(tree, adapter, args.device)
                        times[name].append(elapsed)
                for name in trees:
                    print(
                        f"{adapter:<10} {name:<22} median {statistics.median(times[name]):6.1f}s  "
                        f"runs {[round(t, 1) for t in times[name]]}  score {scores[name]}"
                    )
                if len(trees) == 2:
                    first, second = (statistics.median(t) for t in times.values())
                    print(f"{adapter:<10} now / before: {second / first:.2f}")
        finally:
            if args.before:
                subprocess.run(["git", "worktree", "remove", "--force", tmp], cwd=ROOT, capture_output=True)


if __name__ == "__main__":
    main()
