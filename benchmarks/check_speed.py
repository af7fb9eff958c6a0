"""How fast a student's check is, against the floor of starting Python with torch, pytest and hypothesis.

    python benchmarks/check_speed.py [--repeat 5] [--exercise attention.sdpa] [--watch-saves 5]

From one run, interleaving the commands so that all see the same machine, it prints the
median wall time of

* the floor: ``python -c "import torch, pytest, hypothesis"``;
* ``python -m grader check <exercise> --submission solutions`` (one exercise) and
  ``python -m grader check --submission solutions`` (everything), cold processes as a student
  runs them, with their ratios to the floor (goals: <= 2x and <= 3x), and the full check with
  ``--serial`` (every test file in one process, as before the test files ran side by side);
  ``x round`` is the median of each run's ratio to the floor of its own round (steadier where
  the machine's speed drifts during the run);
* watch mode: ``check --watch <exercise>`` on a copy of the reference; each save (alternately
  a catalogued mistake and the reference) is timed from the write to the report's TOTAL line
  (goal: <= 1.5 s).
"""

import argparse
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed(cmd: list[str]) -> float:
    """Wall time of ``cmd`` (it must succeed)."""
    start = time.monotonic()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - start


def watch_times(exercise: str, saves: int) -> list[float]:
    """Seconds from each save to the end of the re-graded report, in ``check --watch``."""
    from grader import mistakes

    module = exercise.split(".")[0]
    good = (ROOT / "solutions" / f"{module}.py").read_text()
    wrong = next(m for m in mistakes.load(module) if m.exercise == exercise).source()
    folder = Path(tempfile.mkdtemp(prefix="watch-bench-"))
    (folder / f"{module}.py").write_text(good)
    proc = subprocess.Popen(
        [sys.executable, "-m", "grader", "check", "--watch", exercise, "--submission", str(folder)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or []], daemon=True).start()

    def next_total() -> None:
        while not lines.get(timeout=300).strip().startswith("TOTAL"):
            pass

    try:
        next_total()  # the first grading
        times = []
        for i in range(saves):
            time.sleep(1.0)  # an idle moment, as between two saves
            start = time.monotonic()
            (folder / f"{module}.py").write_text(wrong if i % 2 == 0 else good)
            next_total()
            times.append(time.monotonic() - start)
        return times
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--exercise", default="attention.sdpa")
    parser.add_argument("--watch-saves", type=int, default=6)
    args = parser.parse_args()
    floor_cmd = [sys.executable, "-c", "import torch, pytest, hypothesis"]
    check = [sys.executable, "-m", "grader", "check", "--submission", "solutions", "--quiet"]
    runs: dict[str, list[float]] = {"floor": [], "one exercise": [], "full check": [], "full, --serial": []}
    timed(check + [args.exercise])  # warm the page cache
    for _ in range(args.repeat):
        runs["floor"].append(timed(floor_cmd))
        runs["one exercise"].append(timed(check + [args.exercise]))
        runs["full check"].append(timed(check))
        runs["full, --serial"].append(timed(check + ["--serial"]))
    floor = statistics.median(runs["floor"])
    print(f"{'what':<16} {'median':>8}  {'x floor':>7}  {'x round':>7}  runs")
    for name, values in runs.items():
        med = statistics.median(values)
        # each command against the floor of its own round: steadier on a machine whose speed drifts
        paired = statistics.median(v / f for v, f in zip(values, runs["floor"], strict=True))
        print(f"{name:<16} {med:7.2f}s  {med / floor:6.2f}x  {paired:6.2f}x  {', '.join(f'{v:.2f}' for v in values)}")
    saves = watch_times(args.exercise, args.watch_saves)
    print(
        f"{'watch re-grade':<16} {statistics.median(saves):7.2f}s  {'':>7}  "
        f"{', '.join(f'{v:.2f}' for v in saves)} (save to report, {args.exercise})"
    )


if __name__ == "__main__":
    main()
