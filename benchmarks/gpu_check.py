"""The device checks of the GPU machine, in one run (see BENCHMARKS.md).

    python benchmarks/gpu_check.py

1. the reference on cpu, meta and cuda (every device test, float16/bfloat16 included);
2. the device-bug entries of the catalog (a mask or positions built on the CPU), graded
   on cpu only, meta only and cuda only: they must pass on cpu and lose points on the others;
3. a batch of mixed submissions on the GPU (one worker per GPU), timed.
"""

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader import mistakes
from grader.grading import batch, gpu, runner

DEVICE_BUGS = ("causal_mask_ignores_device", "padding_mask_on_cpu", "sdpa_fill_tensor_on_cpu")


def main():
    import torch

    print(f"torch {torch.__version__}, cuda available: {torch.cuda.is_available()}, GPUs: {gpu.count()}")
    if torch.cuda.is_available():
        print(f"device: {torch.cuda.get_device_name(0)}")
    start = time.monotonic()
    report = runner.grade(ROOT / "solutions", (), devices=["all"])
    print(f"\n1. reference, --device all: {report.score}/{report.max_score} in {time.monotonic() - start:.0f}s")
    for r in report.results:
        if r.score < r.max_score:
            print(f"   {r.exercise.id}: {r.score}/{r.max_score} {r.status}\n   " + "\n   ".join(r.feedback())[:1500])
    print("\n2. device bugs (exercise score per device)")
    for mutant_id in DEVICE_BUGS:
        mutant = next(m for m in mistakes.load("attention") if m.id == mutant_id)
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "attention.py").write_text(mutant.source())
            line = []
            for device in ("cpu", "meta", "cuda"):
                rep = runner.grade(tmp, [mutant.exercise], devices=[device])
                r = rep.results[0]
                lost = [rec for rec in r.records if rec.status != "passed" and f"-{device}-" in rec.nodeid]
                line.append(f"{device}: {r.score:g}/{r.max_score:g}")
                if lost and device == "cuda":
                    first_message = lost[0].message.splitlines()[0]
            print(f"   {mutant_id:<28} " + "  ".join(line))
            if "first_message" in locals():
                print(f"      cuda message: {first_message}")
                del first_message
    print("\n3. batch on the GPU")
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "subs"
        subs.mkdir()
        for i in range(6):
            folder = subs / f"student{i:02d}"
            folder.mkdir()
            for module in ("attention", "lstm", "param_count", "elbo"):
                shutil.copy(ROOT / "solutions" / f"{module}.py", folder / f"{module}.py")
        wrong = next(m for m in mistakes.load("attention") if m.id == "padding_mask_on_cpu")
        (subs / "student05" / "attention.py").write_text(wrong.source())
        start = time.monotonic()
        batch.run(subs, Path(tmp) / "out", devices=["all"])
        elapsed = time.monotonic() - start
        print(f"   6 full submissions in {elapsed:.0f}s ({elapsed / 6:.1f}s each) with {gpu.count()} GPU worker(s)")
        print("   " + (Path(tmp) / "out" / "grades.csv").read_text().replace("\n", "\n   "))
        notes = [
            json.loads(p.read_text())["extra_data"].get("notes") for p in (Path(tmp) / "out").glob("*/results.json")
        ]
        print(f"   GPU memory leftovers noted: {[n for n in notes if n]}")
        print(f"   processes holding GPU memory now: {gpu.compute_processes()}")


if __name__ == "__main__":
    main()
