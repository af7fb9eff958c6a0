"""Cost of the forbidden-call guard per call of student code (the grader makes thousands).

    python benchmarks/guard_overhead.py [--repeat 200] [--rounds 25]

Calls the reference's ``scaled_dot_product_attention``, ``lstm_cell`` and ``gaussian_kl``
on small inputs bare and inside :func:`grader.execution.guards.forbid_library_solutions`, and prints
the best-of-N microseconds per call of each, their difference (the guard's cost) and, for
scale, a whole :func:`grader.execution.calls.run_call` (what a worker runs per call).
"""

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader.execution import calls, guards


def _cases():
    torch.manual_seed(0)
    attention = calls.load_module(ROOT / "solutions" / "attention.py", "attention")
    lstm = calls.load_module(ROOT / "solutions" / "lstm.py", "lstm")
    elbo = calls.load_module(ROOT / "solutions" / "elbo.py", "elbo")
    q, k, v = torch.randn(2, 5, 8), torch.randn(2, 6, 8), torch.randn(2, 6, 4)
    x, h, c = torch.randn(3, 4), torch.randn(3, 5), torch.randn(3, 5)
    w_ih, w_hh, b_ih, b_hh = torch.randn(20, 4), torch.randn(20, 5), torch.randn(20), torch.randn(20)
    mu, lv = torch.randn(3, 6), torch.randn(3, 6)
    return {
        "sdpa": (attention.scaled_dot_product_attention, (q, k, v), ROOT / "solutions" / "attention.py"),
        "lstm_cell": (lstm.lstm_cell, (x, h, c, w_ih, w_hh, b_ih, b_hh), ROOT / "solutions" / "lstm.py"),
        "gaussian_kl": (elbo.gaussian_kl, (mu, lv, mu.flip(0), lv.flip(0)), ROOT / "solutions" / "elbo.py"),
    }


def _round(fn, repeat):
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1e6


def _measure(target, args, path, repeat, rounds):
    """Best-of-``rounds`` microseconds per call: the bare function, the function under the
    guard, and a whole :func:`calls.run_call` (rounds interleaved, so that load from
    other processes hits all three alike)."""
    call = calls.Call(target.__name__, args)
    variants = {
        "bare": lambda: target(*args),
        "guarded": lambda: _guarded(target, args),
        "run_call": lambda: calls.run_call(target, call, "bench", path),
    }
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for name, fn in variants.items():
            best[name] = min(best[name], _round(fn, repeat))
    return best


def _guarded(target, args):
    with guards.forbid_library_solutions():
        return target(*args)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=25)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name, (target, call_args, path) in _cases().items():
        _measure(target, call_args, path, 20, 1)  # warm up
        best = _measure(target, call_args, path, args.repeat, args.rounds)
        print(
            f"{name:<12} bare {best['bare']:6.1f} us   guarded {best['guarded']:6.1f} us   "
            f"guard cost {best['guarded'] - best['bare']:6.1f} us/call   (whole run_call {best['run_call']:6.1f} us)"
        )


if __name__ == "__main__":
    main()
