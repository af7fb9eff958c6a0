"""What the sandbox costs: starting one worker, and one call's round trip.

    python benchmarks/sandbox_overhead.py [--starts 20] [--calls 500] [--before REV]

A worker start is everything from asking the zygote for a worker to the module being
loaded: fork, confinement (namespaces, the allowlisted filesystem view, limits, the user
namespace), the static check and the import of the reference ``attention.py``.  A call is
``causal_mask(5)``: the request, the call, the reply and (since issue 11) freezing the
worker and reaping whatever it started.  ``--before REV`` measures a temporary worktree
of git revision ``REV`` in the same run, alternating with the current tree.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import json, statistics, sys, time
from grader.execution.calls import Call
from grader.adapters.sandboxed import Sandboxed, zygote
zygote()  # started once, as in any grading run: not part of a worker start
path = sys.argv[1] + "/solutions/attention.py"
Sandboxed("attention", path).close()  # warm
starts = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    box = Sandboxed("attention", path)
    starts.append(time.perf_counter() - t)
    box.close()
box = Sandboxed("attention", path)
call = Call("causal_mask", (5,), {})
box.invoke(call)
calls = []
for _ in range(int(sys.argv[3])):
    t = time.perf_counter()
    box.invoke(call)
    calls.append(time.perf_counter() - t)
box.close()
print(json.dumps({"start_ms": 1000 * statistics.median(starts), "call_ms": 1000 * statistics.median(calls)}))
"""


def measure(tree, starts, calls):
    """``{"start_ms", "call_ms"}`` medians for the grader in ``tree``."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(tree), str(starts), str(calls)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", help="a git revision to compare with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="grader-before-") as tmp:
        trees = {"now": ROOT}
        if args.before:
            subprocess.run(
                ["git", "worktree", "add", "--detach", tmp, args.before], cwd=ROOT, check=True, capture_output=True
            )
            trees = {f"before ({args.before})": Path(tmp), "now": ROOT}
        try:
            found = {name: [] for name in trees}
            for _ in range(args.rounds):
                for name, tree in trees.items():
                    found[name].append(measure(tree, args.starts, args.calls))
            for name, rounds in found.items():
                start = sorted(r["start_ms"] for r in rounds)[len(rounds) // 2]
                call = sorted(r["call_ms"] for r in rounds)[len(rounds) // 2]
                print(
                    f"{name:<22} worker start {start:6.1f} ms   call round trip {call:5.2f} ms   "
                    f"(medians of {args.rounds} rounds)"
                )
        finally:
            if args.before:
                subprocess.run(["git", "worktree", "remove", "--force", tmp], cwd=ROOT, capture_output=True)


if __name__ == "__main__":
    main()
