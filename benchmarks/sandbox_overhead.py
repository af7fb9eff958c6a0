"""What the sandbox costs: starting one worker, one call's round trip, and staff grading's preflight.

    python benchmarks/sandbox_overhead.py [--starts 20] [--calls 500] [--before REV] [--refused]

A worker start is everything from asking the zygote for a worker to the module being
loaded: fork, confinement (namespaces, the allowlisted filesystem view, limits, the user
namespace), the static check and the import of the reference ``attention.py``.  A call is
``causal_mask(5)``: the request, the call, the reply and (since issue 11) freezing the
worker and reaping whatever it started.  ``--before REV`` measures a temporary worktree
of git revision ``REV`` in the same run, alternating with the current tree.  ``--refused``
also measures each tree under the seccomp filter of a Docker container that refuses
namespaces (the worker on Landlock and its own seccomp filter instead), in the same rounds.
The preflight (since issue 33) is one check before staff grading: a fresh ``python -I``
process confined as a worker, probing the protected paths.
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
preflights = []
try:
    from grader.grading import isolation
except ImportError:  # a tree before issue 33
    isolation = None
for _ in range(5 if isolation else 0):
    isolation._preflight.cache_clear()
    t = time.perf_counter()
    isolation.preflight()
    preflights.append(time.perf_counter() - t)
print(json.dumps({"start_ms": 1000 * statistics.median(starts), "call_ms": 1000 * statistics.median(calls),
                  "preflight_ms": 1000 * statistics.median(preflights) if preflights else None}))
"""


def measure(tree, starts, calls, refused=False):
    """``{"start_ms", "call_ms", "preflight_ms"}`` medians for the grader in ``tree`` (``refused``:
    under a container's filter that refuses namespaces)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    # this tree's filter (stdlib only, run as a script), also for a tree from before it existed
    wrap = [sys.executable, str(ROOT / "grader" / "execution" / "seccomp.py"), "--"] if refused else []
    out = subprocess.run(
        [*wrap, sys.executable, "-c", PROBE, str(tree), str(starts), str(calls)],
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
    parser.add_argument("--refused", action="store_true", help="also measure with namespaces refused")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="grader-before-") as tmp:
        trees = {"now": ROOT}
        if args.before:
            subprocess.run(
                ["git", "worktree", "add", "--detach", tmp, args.before], cwd=ROOT, check=True, capture_output=True
            )
            trees = {f"before ({args.before})": Path(tmp), "now": ROOT}
        try:
            modes = [False, True] if args.refused else [False]
            found = {(name, refused): [] for name in trees for refused in modes}
            for _ in range(args.rounds):
                for name, tree in trees.items():
                    for refused in modes:
                        found[name, refused].append(measure(tree, args.starts, args.calls, refused))
            for (name, refused), rounds in found.items():
                start = sorted(r["start_ms"] for r in rounds)[len(rounds) // 2]
                call = sorted(r["call_ms"] for r in rounds)[len(rounds) // 2]
                pre = sorted(r.get("preflight_ms") or 0 for r in rounds)[len(rounds) // 2]
                label = f"{name}{' (namespaces refused)' if refused else ''}"
                print(
                    f"{label:<36} worker start {start:6.1f} ms   call round trip {call:5.2f} ms   "
                    f"preflight {pre:5.1f} ms   (medians of {args.rounds} rounds)"
                )
        finally:
            if args.before:
                subprocess.run(["git", "worktree", "remove", "--force", tmp], cwd=ROOT, capture_output=True)


if __name__ == "__main__":
    main()
