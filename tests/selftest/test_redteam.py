"""Red team: hostile submissions against the isolated grading engine.

Each submission is the reference ``attention.py`` with one attack added.  Every attack
must earn no points it did not earn honestly, leave the grader running, finish within
its time bound, and leave no process or file behind.
"""

import os
import socket
import textwrap
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from grader import ROOT, runner

REFERENCE = (ROOT / "solutions" / "attention.py").read_text()
# Wrong on every property: no scale, softmax over queries, mask ignored, rows sum to 2, float64 on the CPU.
WRONG_SDPA = """
def scaled_dot_product_attention(q, k, v, mask=None):
    weights = 2 * torch.softmax(q.double().cpu() @ k.double().cpu().transpose(-2, -1), dim=-2)
    return weights @ v.double().cpu(), weights
"""
ALL_ATTENTION = ["attention"]
TIME_BOUND = 150  # seconds for one hostile submission, start to finish


def _override(code):
    return REFERENCE + "\n\n" + textwrap.dedent(code)


# name -> (source, files besides attention.py, targets, {exercise: "zero" | "full"}, expected status of the attacked one)
HOSTILE = {
    "exit_at_import": (
        "import sys\nsys.exit(0)\n" + REFERENCE, {}, ["attention.causal_mask", "attention.heads"],
        {"attention.causal_mask": "zero", "attention.heads": "zero"}, "error"),
    "os_exit_in_call": (
        _override("""
            import os
            def causal_mask(length, device=None):
                os._exit(3)
        """), {}, ["attention.causal_mask", "attention.heads"],
        {"attention.causal_mask": "zero", "attention.heads": "full"}, "crashed"),
    "segfault": (
        _override("""
            import ctypes
            def padding_mask(lengths, max_len):
                return ctypes.string_at(0)
        """), {}, ["attention.padding_mask", "attention.causal_mask"],
        {"attention.padding_mask": "zero", "attention.causal_mask": "full"}, "crashed"),
    "infinite_loop": (
        _override("""
            def causal_mask(length, device=None):
                while True:
                    pass
        """), {}, ["attention.causal_mask", "attention.padding_mask"],
        {"attention.causal_mask": "zero", "attention.padding_mask": "full"}, "timeout"),
    "long_sleep": (
        _override("""
            import time
            def sinusoidal_positional_encoding(max_len, d_model):
                time.sleep(3600)
        """), {}, ["attention.positional_encoding", "attention.causal_mask"],
        {"attention.positional_encoding": "zero", "attention.causal_mask": "full"}, "timeout"),
    "memory_bomb": (
        _override("""
            def causal_mask(length, device=None):
                hog = bytearray(64 * 2**30)
                return hog
        """), {}, ["attention.causal_mask", "attention.padding_mask"],
        {"attention.causal_mask": "zero", "attention.padding_mask": "full"}, "out of memory"),
    "fork_bomb": (
        _override("""
            import os, time
            def causal_mask(length, device=None):
                while True:
                    try:
                        os.fork()
                    except OSError:
                        time.sleep(0.01)
        """), {}, ["attention.causal_mask", "attention.padding_mask"],
        {"attention.causal_mask": "zero", "attention.padding_mask": "full"}, "timeout"),
    "stdout_flood": (
        _override("""
            import sys
            _causal = causal_mask
            def causal_mask(length, device=None):
                sys.stdout.write("spam " * 200_000)
                sys.stderr.write("spam " * 200_000)
                return _causal(length, device)
        """), {}, ["attention.causal_mask"], {"attention.causal_mask": "full"}, "passed"),
    "monkeypatch_comparisons": (
        _override("""
            import numpy, torch, torch.testing
            torch.allclose = lambda *a, **k: True
            torch.equal = lambda *a, **k: True
            torch.testing.assert_close = lambda *a, **k: None
            numpy.allclose = lambda *a, **k: True
            numpy.testing.assert_allclose = lambda *a, **k: None
        """) + WRONG_SDPA, {}, ["attention.sdpa"], {"attention.sdpa": "zero"}, "failed"),
    "patch_pytest_internals": (
        _override("""
            try:
                import pytest, _pytest.outcomes, _pytest.runner
                _pytest.outcomes.fail = lambda *a, **k: None
                _pytest.runner.call_and_report = lambda *a, **k: None
                pytest.fail = lambda *a, **k: None
            except Exception:
                pass
        """) + WRONG_SDPA, {}, ["attention.sdpa"], {"attention.sdpa": "zero"}, "failed"),
    "conftest_in_submission": (
        REFERENCE + WRONG_SDPA,
        {"conftest.py": "import pytest\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
                        "    out = yield\n    rep = out.get_result()\n    rep.outcome = 'passed'\n"},
        ["attention.sdpa"], {"attention.sdpa": "zero"}, "failed"),
    "shadow_torch_and_json": (
        REFERENCE + WRONG_SDPA,
        {"torch.py": "raise SystemExit('shadow torch imported')\n", "json.py": "dumps = lambda *a, **k: '{\"score\": 100}'\n"},
        ["attention.sdpa", "attention.causal_mask"], {"attention.sdpa": "zero", "attention.causal_mask": "full"},
        "failed"),
    "print_fake_results": (
        _override("""
            import json, sys
            print(json.dumps({"score": 100, "tests": [{"name": "attention.sdpa", "score": 10, "max_score": 10}]}))
            print('{"nodeid": "x", "exercise": "attention.sdpa", "weight": 1000, "status": "passed"}')
            sys.stdout.flush()
        """) + WRONG_SDPA, {}, ["attention.sdpa"], {"attention.sdpa": "zero"}, "failed"),
    "overwrite_result_files": (
        _override("""
            import os, glob
            line = '{"nodeid": "fake", "exercise": "attention.sdpa", "weight": 1000, "status": "passed"}\\n'
            for pattern in ("/tmp/**/results.jsonl", "/tmp/**/*.json", os.path.expanduser("~") + "/**/results.json"):
                for path in glob.glob(pattern, recursive=True):
                    try:
                        with open(path, "a") as fh:
                            fh.write(line)
                    except OSError:
                        pass
        """) + WRONG_SDPA, {}, ["attention.sdpa"], {"attention.sdpa": "zero"}, "failed"),
    "steal_the_reference": (
        f"ROOT = {str(ROOT)!r}\n" + textwrap.dedent("""
            import sys
            sys.path.insert(0, ROOT)
            try:
                from solutions.attention import *  # noqa
            except Exception:
                try:
                    exec(open(ROOT + "/solutions/attention.py").read())
                except Exception:
                    pass
        """) + (ROOT / "assignments" / "attention.py").read_text().replace("import math", "import math as _m"),
        {}, ["attention.sdpa", "attention.causal_mask"],
        # exec at import: the forbidden-call check flags every name (failed) before the stubs' TODOs show
        {"attention.sdpa": "zero", "attention.causal_mask": "zero"}, "failed"),
    "read_grader_memory": (
        _override("""
            import gc, sys
            def scaled_dot_product_attention(q, k, v, mask=None):
                for obj in gc.get_objects():
                    if isinstance(obj, dict) and "expected" in obj and isinstance(obj.get("expected"), torch.Tensor):
                        return obj["expected"], obj["expected"]
                frame = sys._getframe()
                while frame is not None:
                    if "expected" in frame.f_locals:
                        return frame.f_locals["expected"], frame.f_locals["expected"]
                    frame = frame.f_back
                for name, mod in list(sys.modules.items()):
                    if ("reference" in name or name.startswith(("tests", "solutions"))) and \
                            hasattr(mod, "scaled_dot_product_attention"):
                        return mod.scaled_dot_product_attention(q, k, v, mask)
                return q[..., :1] * 0, q[..., :1] * 0
        """), {}, ["attention.sdpa"], {"attention.sdpa": "zero"}, "failed"),
    "malicious_objects": (
        _override("""
            import os
            class Evil:
                def __eq__(self, other):
                    return True
                def __reduce__(self):
                    return (os.system, ("touch /tmp/pwned-by-reduce",))
                def __getattr__(self, name):
                    return lambda *a, **k: self
            def scaled_dot_product_attention(q, k, v, mask=None):
                return Evil(), Evil()
            def causal_mask(length, device=None):
                return Evil()
        """), {}, ["attention.sdpa", "attention.causal_mask"],
        {"attention.sdpa": "zero", "attention.causal_mask": "zero"}, "failed|error"),
    "tensor_subclass": (
        _override("""
            class Liar(torch.Tensor):
                @classmethod
                def __torch_function__(cls, func, types, args=(), kwargs=None):
                    return True
            def causal_mask(length, device=None):
                return torch.zeros(length, length, dtype=torch.bool).as_subclass(Liar)
        """), {}, ["attention.causal_mask"], {"attention.causal_mask": "zero"}, "failed"),
    "nan_outputs": (
        _override("""
            def scaled_dot_product_attention(q, k, v, mask=None):
                nan = float("nan")
                return (torch.full((*q.shape[:-1], v.shape[-1]), nan, dtype=q.dtype),
                        torch.full((*q.shape[:-1], k.shape[-2]), nan, dtype=q.dtype))
        """), {}, ["attention.sdpa"], {"attention.sdpa": "zero"}, "failed"),
    "network_connection": (
        _override("""
            import socket
            _causal = causal_mask
            def causal_mask(length, device=None):
                try:
                    socket.create_connection(("127.0.0.1", PORT), timeout=1).sendall(b"leak")
                except OSError:
                    pass
                return _causal(length, device)
        """), {}, ["attention.causal_mask"], {"attention.causal_mask": "full"}, "passed"),
    "write_outside_folder": (
        _override("""
            import os
            _causal = causal_mask
            def causal_mask(length, device=None):
                for path in (ROOT_DIR + "/pwned-TAG", "/tmp/pwned-TAG", os.path.expanduser("~/pwned-TAG"),
                             "/var/tmp/pwned-TAG", "/dev/shm/pwned-TAG"):
                    try:
                        with open(path, "w") as fh:
                            fh.write("pwned")
                    except OSError:
                        pass
                return _causal(length, device)
        """), {}, ["attention.causal_mask"], {"attention.causal_mask": "full"}, "passed"),
}


def _leftover_processes(tag):
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                if tag.encode() in fh.read():
                    found.append(int(name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def listener():
    """A TCP server on loopback that records every connection it gets."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    hits, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                hits.append(conn.recv(16))
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], hits
    stop.set()
    thread.join()
    server.close()


#: Attacks about time and resources: each graded in a run of its own, timed.
TIMED = ("infinite_loop", "long_sleep", "memory_bomb", "fork_bomb", "stdout_flood", "os_exit_in_call", "segfault")


def _write(attack, folder, port, tag):
    source, extra_files, targets, _, _ = HOSTILE[attack]
    source = source.replace("PORT", str(port)).replace("ROOT_DIR", repr(str(ROOT))).replace("TAG", tag)
    sub = folder / attack
    sub.mkdir()
    (sub / "attention.py").write_text(source)
    for name, text in extra_files.items():
        (sub / name).write_text(text)
    return attack, sub, targets


def _settle(tag):
    deadline = time.monotonic() + 10
    while _leftover_processes(tag) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _leftover_processes(tag)


def _env(tag):
    return {"GRADER_CALL_TIMEOUT": "5", "GRADER_MODULE_BUDGET": "30", "GRADER_SANDBOX_TAG": tag}


def _grade_timed(attack, folder, port):
    tag = f"redteam-{uuid.uuid4().hex}"
    start = time.monotonic()
    report = runner.grade_many([_write(attack, folder, port, tag)], env=_env(tag))[attack]
    elapsed = time.monotonic() - start
    return {attack: (report, elapsed, _settle(tag), tag)}


def _grade_rest(attacks, folder, port):
    tag = f"redteam-{uuid.uuid4().hex}"
    start = time.monotonic()
    reports = runner.grade_many([_write(a, folder, port, tag) for a in attacks], env=_env(tag))
    elapsed = time.monotonic() - start
    leftover = _settle(tag)
    return {a: (reports[a], elapsed / len(attacks), leftover, tag) for a in attacks}


@pytest.fixture(scope="module")
def graded(tmp_path_factory, listener):
    """Every hostile submission graded: the timed attacks one run each, the others together
    in one run (each still in its own worker), two runs at a time."""
    folder = tmp_path_factory.mktemp("hostile")
    port, _ = listener
    rest = [a for a in sorted(HOSTILE) if a not in TIMED]
    out = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(_grade_rest, rest, folder, port)]
        futures += [pool.submit(_grade_timed, a, folder, port) for a in TIMED]
        for future in futures:
            out.update(future.result())
    return out


@pytest.mark.parametrize("attack", sorted(HOSTILE))
def test_hostile_submission_earns_nothing_and_leaves_nothing(attack, graded, listener):
    _, hits = listener
    _, _, _, expected, status = HOSTILE[attack]
    report, elapsed, leftover, tag = graded[attack]

    results = {r.exercise.id: r for r in report.results}
    feedback = {k: "\n".join(r.feedback()) for k, r in results.items()}
    for exercise, want in expected.items():
        got = results[exercise]
        if want == "zero":
            assert got.score == 0, f"{attack}: {exercise} earned {got.score}\n{feedback[exercise]}"
        else:
            assert got.score == got.max_score, f"{attack}: {exercise} lost honest points\n{feedback[exercise]}"
    attacked = next(iter(expected))
    assert results[attacked].status in status.split("|"), f"{attack}: {results[attacked].status}\n{feedback[attacked]}"
    assert elapsed < TIME_BOUND, f"{attack} took {elapsed:.0f}s"
    assert not leftover, f"{attack} left processes behind"
    for path in (ROOT / f"pwned-{tag}", f"/tmp/pwned-{tag}", os.path.expanduser(f"~/pwned-{tag}"),
                 f"/var/tmp/pwned-{tag}", f"/dev/shm/pwned-{tag}", "/tmp/pwned-by-reduce"):
        assert not os.path.exists(path), f"{attack} left {path}"
    assert not hits, f"{attack} reached the network: {hits}"
    assert (ROOT / "solutions" / "attention.py").read_text() == REFERENCE
