"""A batch of 50 mixed submissions (correct, wrong, hostile), killed midway and resumed.

    python benchmarks/batch50.py [--workers 2] [--kill-after 60]

Checks that every honest submission gets exactly the score a lone ``grader check --staff``
gives it, and that the kill and resume lose nothing; prints the timings.
"""

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "selftest"))

from grader import mistakes, rubric
from grader.grading import runner


def build(folder):
    """50 submissions: 10 correct, 30 wrong (one catalog mistake each), 10 hostile."""
    import test_redteam

    honest = {}
    wrong = [m for m in mistakes.load() if not m.correct]
    for i in range(50):
        sub = folder / f"s{i:02d}"
        sub.mkdir()
        for module in rubric.MODULES:
            shutil.copy(ROOT / "solutions" / f"{module}.py", sub / f"{module}.py")
        if 10 <= i < 40:
            mutant = wrong[(i - 10) * len(wrong) // 30]
            (sub / f"{mutant.module}.py").write_text(mutant.source())
        elif i >= 40:
            attack = sorted(test_redteam.HOSTILE)[(i - 40) * 2 % len(test_redteam.HOSTILE)]
            source = test_redteam.HOSTILE[attack][0].replace("PORT", "9").replace("ROOT_DIR", repr(str(ROOT)))
            (sub / "attention.py").write_text(source.replace("TAG", f"batch50-{i}"))
            continue
        honest[sub.name] = sub
    return honest


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-after", type=float, default=90)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="batch50-") as tmp:
        subs, out = Path(tmp) / "subs", Path(tmp) / "out"
        subs.mkdir()
        honest = build(subs)
        env = dict(os.environ, GRADER_CALL_TIMEOUT="10")
        cmd = [sys.executable, "-m", "grader", "batch", str(subs), "--out", str(out), "--workers", str(args.workers)]
        start = time.monotonic()
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        time.sleep(args.kill_after)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        first = {p.parent.name: p.read_text() for p in out.glob("*/results.json")}
        print(f"killed after {args.kill_after:.0f}s with {len(first)} of 50 done")
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        total = time.monotonic() - start
        lost = [i for i, text in first.items() if (out / i / "results.json").read_text() != text]
        with open(out / "grades.csv") as fh:
            rows = {r["id"]: r for r in csv.DictReader(fh)}
        print(f"resumed: {len(rows)} rows in grades.csv, finished results changed by the resume: {lost}")
        print(f"wall time for 50 submissions (kill and resume included): {total:.0f}s, {total / 50:.1f}s each")
        mismatch, lone_start = [], time.monotonic()
        sample = sorted(honest)[::4]
        for name in sample:  # a lone check, as `python -m grader check --staff --submission s..` runs it
            lone = runner.grade(honest[name], (), staff=True).score
            batch_score = json.loads((out / name / "results.json").read_text())["score"]
            if batch_score != lone:
                mismatch.append((name, batch_score, lone))
        print(
            f"honest submissions: {len(honest)}; lone checks of {len(sample)} of them ({sample}); "
            f"batch score != lone score: {mismatch}  ({time.monotonic() - lone_start:.0f}s)"
        )
        scores = {name: rows[name]["total"] for name in sorted(honest)}
        print(f"honest totals: {scores}")
        hostile = {i: rows[i]["total"] for i in sorted(rows) if i not in honest}
        print(f"hostile submissions' totals: {hostile}")


if __name__ == "__main__":
    main()
