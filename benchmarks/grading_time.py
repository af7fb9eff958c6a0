"""Per-submission grading time of a correct, full submission (the reference), per adapter.

    python benchmarks/grading_time.py [--repeat 3] [--adapter sandbox inprocess]

Times ``python -m grader check --submission solutions`` end to end (a fresh process, as a
student or the batch runs it) and prints the median per adapter.
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--adapter", nargs="+", default=["inprocess", "sandbox"])
    parser.add_argument("--device", action="append", default=[])
    args = parser.parse_args()
    for adapter in args.adapter:
        times = []
        for _ in range(args.repeat):
            cmd = [sys.executable, "-m", "grader", "check", "--submission", "solutions", "--quiet", "--adapter", adapter]
            for device in args.device:
                cmd += ["--device", device]
            start = time.monotonic()
            out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
            times.append(time.monotonic() - start)
            total = [line for line in out.splitlines() if line.strip().startswith("TOTAL")][0].split()[1:4]
        print(f"{adapter:<10} median {statistics.median(times):6.1f}s  runs {[round(t, 1) for t in times]}  "
              f"score {' '.join(total)}")


if __name__ == "__main__":
    main()
