"""Red team: hostile submissions against the isolated grading engine.

Each submission is the reference ``attention.py`` with one attack added.  Every attack
must earn no points it did not earn honestly, leave the grader running, finish within
its time bound, and leave no process, file or SysV IPC object behind.  Some entries are
probes: correct code that turns wrong if the sandbox lets it see or keep what it must
not (other processes, its own background children): they must keep full marks.

Every case runs in two modes: ``namespaces`` (the grading as this machine allows it) and
``refused``, the grading process and everything it starts under the seccomp filter of a
Docker container without ``CAP_SYS_ADMIN`` (:mod:`grader.execution.seccomp`: ``unshare``,
``mount``, ``setns``, ``pivot_root`` and ``clone`` with namespace flags refused), as
Gradescope grades.  There the worker has no namespaces and relies on Landlock, its own uid
and its seccomp filter; each case must hold all the same (or the staff run refuse).
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

from grader import ROOT
from grader.execution import cgroup, confine
from grader.grading import batch, runner

REFERENCE = (ROOT / "solutions" / "attention.py").read_text()
# Wrong on every property: no scale, softmax over queries, mask ignored, rows sum to 2, float64 on the CPU.
WRONG_SDPA = """
def scaled_dot_product_attention(q, k, v, mask=None):
    weights = 2 * torch.softmax(q.double().cpu() @ k.double().cpu().transpose(-2, -1), dim=-2)
    return weights @ v.double().cpu(), weights
"""
ALL_ATTENTION = ["attention"]
TIME_BOUND = 150  # seconds for one hostile submission, start to finish
MEMORY_LIMIT = 1 << 30  # the workers' memory limit in these runs (8 GiB attacks must hit it)
HAS_MEMORY_CGROUP = cgroup.locate()[0] is not None
NO_CGROUP = "no writable memory cgroup here: shared memory is not limited (README, Isolation)"
ZEROS_SDPA = """
def scaled_dot_product_attention(q, k, v, mask=None):
    return (torch.zeros(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device),
            torch.zeros(*q.shape[:-1], k.shape[-2], dtype=q.dtype, device=q.device))
"""


#: As this machine allows, and as in a container whose seccomp profile refuses namespaces.
MODES = ("namespaces", "refused")
#: Where a case ends otherwise without namespaces: the worker's seccomp filter refuses ``shmget``,
#: the attack then writes through ``shmat(-1)`` and faults (it still earns nothing).
REFUSED_STATUS = {"sysv_segment_8g": "crashed"}


def _override(code):
    return REFERENCE + "\n\n" + textwrap.dedent(code)


# name -> (source, files besides attention.py, targets, {exercise: "zero" | "full"},
#          expected status of the attacked one)
HOSTILE = {
    "exit_at_import": (
        "import sys\nsys.exit(0)\n" + REFERENCE,
        {},
        ["attention.causal_mask", "attention.heads"],
        {"attention.causal_mask": "zero", "attention.heads": "zero"},
        "error",
    ),
    "os_exit_in_call": (
        _override("""
            import os
            def causal_mask(length, device=None):
                os._exit(3)
        """),
        {},
        ["attention.causal_mask", "attention.heads"],
        {"attention.causal_mask": "zero", "attention.heads": "full"},
        "crashed",
    ),
    "segfault": (
        _override("""
            import ctypes
            def padding_mask(lengths, max_len):
                return ctypes.string_at(0)
        """),
        {},
        ["attention.padding_mask", "attention.causal_mask"],
        {"attention.padding_mask": "zero", "attention.causal_mask": "full"},
        "crashed",
    ),
    "infinite_loop": (
        _override("""
            def causal_mask(length, device=None):
                while True:
                    pass
        """),
        {},
        ["attention.causal_mask", "attention.padding_mask"],
        {"attention.causal_mask": "zero", "attention.padding_mask": "full"},
        "timeout",
    ),
    "long_sleep": (
        _override("""
            import time
            def sinusoidal_positional_encoding(max_len, d_model):
                time.sleep(3600)
        """),
        {},
        ["attention.positional_encoding", "attention.causal_mask"],
        {"attention.positional_encoding": "zero", "attention.causal_mask": "full"},
        "timeout",
    ),
    "memory_bomb": (
        _override("""
            def causal_mask(length, device=None):
                hog = bytearray(64 * 2**30)
                return hog
        """),
        {},
        ["attention.causal_mask", "attention.padding_mask"],
        {"attention.causal_mask": "zero", "attention.padding_mask": "full"},
        "out of memory",
    ),
    "fork_bomb": (
        _override("""
            import os, time
            def causal_mask(length, device=None):
                while True:
                    try:
                        os.fork()
                    except OSError:
                        time.sleep(0.01)
        """),
        {},
        ["attention.causal_mask", "attention.padding_mask"],
        {"attention.causal_mask": "zero", "attention.padding_mask": "full"},
        "timeout",
    ),
    "stdout_flood": (
        _override("""
            import sys
            _causal = causal_mask
            def causal_mask(length, device=None):
                sys.stdout.write("spam " * 200_000)
                sys.stderr.write("spam " * 200_000)
                return _causal(length, device)
        """),
        {},
        ["attention.causal_mask"],
        {"attention.causal_mask": "full"},
        "passed",
    ),
    "monkeypatch_comparisons": (
        _override("""
            import numpy, torch, torch.testing
            torch.allclose = lambda *a, **k: True
            torch.equal = lambda *a, **k: True
            torch.testing.assert_close = lambda *a, **k: None
            numpy.allclose = lambda *a, **k: True
            numpy.testing.assert_allclose = lambda *a, **k: None
        """)
        + WRONG_SDPA,
        {},
        ["attention.sdpa"],
        {"attention.sdpa": "zero"},
        "failed",
    ),
    "patch_pytest_internals": (
        _override("""
            try:
                import pytest, _pytest.outcomes, _pytest.runner
                _pytest.outcomes.fail = lambda *a, **k: None
                _pytest.runner.call_and_report = lambda *a, **k: None
                pytest.fail = lambda *a, **k: None
            except Exception:
                pass
        """)
        + WRONG_SDPA,
        {},
        ["attention.sdpa"],
        {"attention.sdpa": "zero"},
        "failed",
    ),
    "conftest_in_submission": (
        REFERENCE + WRONG_SDPA,
        {
            "conftest.py": "import pytest\n@pytest.hookimpl(hookwrapper=True)\n"
            "def pytest_runtest_makereport(item, call):\n"
            "    out = yield\n    rep = out.get_result()\n    rep.outcome = 'passed'\n"
        },
        ["attention.sdpa"],
        {"attention.sdpa": "zero"},
        "failed",
    ),
    "shadow_torch_and_json": (
        REFERENCE + WRONG_SDPA,
        {
            "torch.py": "raise SystemExit('shadow torch imported')\n",
            "json.py": "dumps = lambda *a, **k: '{\"score\": 100}'\n",
        },
        ["attention.sdpa", "attention.causal_mask"],
        {"attention.sdpa": "zero", "attention.causal_mask": "full"},
        "failed",
    ),
    "print_fake_results": (
        _override("""
            import json, sys
            print(json.dumps({"score": 100, "tests": [{"name": "attention.sdpa", "score": 10, "max_score": 10}]}))
            print('{"nodeid": "x", "exercise": "attention.sdpa", "weight": 1000, "status": "passed"}')
            sys.stdout.flush()
        """)
        + WRONG_SDPA,
        {},
        ["attention.sdpa"],
        {"attention.sdpa": "zero"},
        "failed",
    ),
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
        """)
        + WRONG_SDPA,
        {},
        ["attention.sdpa"],
        {"attention.sdpa": "zero"},
        "failed",
    ),
    "steal_the_reference": (
        f"ROOT = {str(ROOT)!r}\n"
        + textwrap.dedent("""
            import sys
            sys.path.insert(0, ROOT)
            try:
                from solutions.attention import *  # noqa
            except Exception:
                try:
                    exec(open(ROOT + "/solutions/attention.py").read())
                except Exception:
                    pass
        """)
        + (ROOT / "assignments" / "attention.py").read_text().replace("import math", "import math as _m"),
        {},
        ["attention.sdpa", "attention.causal_mask"],
        # exec at import: the forbidden-call check flags every name (failed) before the stubs' TODOs show
        {"attention.sdpa": "zero", "attention.causal_mask": "zero"},
        "failed",
    ),
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
        """),
        {},
        ["attention.sdpa"],
        {"attention.sdpa": "zero"},
        "failed",
    ),
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
        """),
        {},
        ["attention.sdpa", "attention.causal_mask"],
        {"attention.sdpa": "zero", "attention.causal_mask": "zero"},
        "failed|error",
    ),
    "tensor_subclass": (
        _override("""
            class Liar(torch.Tensor):
                @classmethod
                def __torch_function__(cls, func, types, args=(), kwargs=None):
                    return True
            def causal_mask(length, device=None):
                return torch.zeros(length, length, dtype=torch.bool).as_subclass(Liar)
        """),
        {},
        ["attention.causal_mask"],
        {"attention.causal_mask": "zero"},
        "failed",
    ),
    "nan_outputs": (
        _override("""
            def scaled_dot_product_attention(q, k, v, mask=None):
                nan = float("nan")
                return (torch.full((*q.shape[:-1], v.shape[-1]), nan, dtype=q.dtype),
                        torch.full((*q.shape[:-1], k.shape[-2]), nan, dtype=q.dtype))
        """),
        {},
        ["attention.sdpa"],
        {"attention.sdpa": "zero"},
        "failed",
    ),
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
        """),
        {},
        ["attention.causal_mask"],
        {"attention.causal_mask": "full"},
        "passed",
    ),
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
        """),
        {},
        ["attention.causal_mask"],
        {"attention.causal_mask": "full"},
        "passed",
    ),
    "read_a_reference_elsewhere": (
        # Copies of the reference in another clone, a classmate's folder beside the
        # submission, a staff folder under /root and /var/tmp: imported without any call the
        # forbidden-call check flags.  Found nowhere, the module keeps all-zero attention.
        _override("""
            import sys
            sys.path[:0] = [OTHER_CLONE, SIBLING, STAFF_DIR, VARTMP_DIR]
            try:
                from attention import scaled_dot_product_attention
            except ImportError:
                try:
                    from peer_attention import scaled_dot_product_attention
                except ImportError:
                    try:
                        from staff_attention import scaled_dot_product_attention
                    except ImportError:
                        try:
                            from vt_attention import scaled_dot_product_attention
                        except ImportError:
                            ZEROS
        """).replace("ZEROS", textwrap.indent(ZEROS_SDPA.strip(), " " * 16).lstrip()),
        {},
        ["attention.sdpa"],
        {"attention.sdpa": "zero"},
        "failed",
    ),
    "shared_mapping_8g": (
        _override("""
            import ctypes, mmap
            _causal = causal_mask
            def causal_mask(length, device=None):
                size = 8 << 30
                block = mmap.mmap(-1, size, flags=mmap.MAP_SHARED)
                ctypes.memset(ctypes.addressof(ctypes.c_char.from_buffer(block)), 1, size)
                return _causal(length, device)
        """),
        {},
        ["attention.causal_mask", "attention.padding_mask"],
        {"attention.causal_mask": "zero", "attention.padding_mask": "full"},
        "out of memory",
    ),
    "memfd_8g": (
        # 16 MiB memfds (under the file-size limit), each mapped, its descriptor closed (under
        # the open-files limit), 8 GiB in all.
        _override("""
            import ctypes, mmap, os
            _causal = causal_mask
            _blocks = []
            def causal_mask(length, device=None):
                chunk = 16 << 20
                for _ in range(512):
                    fd = os.memfd_create("hog")
                    os.ftruncate(fd, chunk)
                    block = mmap.mmap(fd, chunk)
                    os.close(fd)
                    ctypes.memset(ctypes.addressof(ctypes.c_char.from_buffer(block)), 1, chunk)
                    _blocks.append(block)
                return _causal(length, device)
        """),
        {},
        ["attention.causal_mask", "attention.padding_mask"],
        {"attention.causal_mask": "zero", "attention.padding_mask": "full"},
        "out of memory",
    ),
    "sysv_segment_8g": (
        _override("""
            import ctypes
            _causal = causal_mask
            def causal_mask(length, device=None):
                libc = ctypes.CDLL(None, use_errno=True)
                libc.shmat.restype = ctypes.c_void_p
                size = 8 << 30
                seg = libc.shmget(0, ctypes.c_size_t(size), 0o1600)
                addr = libc.shmat(seg, None, 0)
                ctypes.memset(addr, 1, size)
                return _causal(length, device)
        """),
        {},
        ["attention.causal_mask", "attention.padding_mask"],
        {"attention.causal_mask": "zero", "attention.padding_mask": "full"},
        "out of memory",
    ),
    "background_children": (
        # Probe: children started at import and in every call must be gone by the next
        # call (frozen and killed after each one); a survivor turns the masks wrong.
        _override("""
            import os
            _causal, _padding = causal_mask, padding_mask
            _started = []

            def _spin():
                pid = os.fork()
                if pid == 0:
                    while True:
                        pass
                _started.append(pid)

            def _survivors():
                alive = []
                for pid in _started:
                    try:
                        with open(f"/proc/{pid}/stat") as fh:
                            state = fh.read().rsplit(")", 1)[1].split()[0]
                    except PermissionError:  # /proc closed but for the worker itself (Landlock)
                        try:
                            os.kill(pid, 0)  # children are reaped at once (SIGCHLD ignored): no zombie
                            state = "R"
                        except OSError:
                            continue
                    except OSError:
                        continue
                    if state not in "ZX":
                        alive.append(pid)
                return alive

            _spin()

            def causal_mask(length, device=None):
                mask = _causal(length, device)
                if _survivors():
                    return ~mask
                _spin()
                return mask

            def padding_mask(lengths, max_len):
                mask = _padding(lengths, max_len)
                if _survivors():
                    return ~mask
                _spin()
                return mask
        """),
        {},
        ["attention.causal_mask", "attention.padding_mask"],
        {"attention.causal_mask": "full", "attention.padding_mask": "full"},
        "passed",
    ),
    "list_processes": (
        # Probe: the worker must see no process but its own in /proc (not the grader's,
        # not other submissions'), nor be able to signal one.
        _override("""
            import os
            _causal = causal_mask
            _seen = []

            def _others():
                mine = {os.getpid(), *(int(t) for t in os.listdir("/proc/self/task"))}
                try:
                    found = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in mine]
                except PermissionError:  # no /proc to list (Landlock, without namespaces): nothing seen
                    found = []
                for pid in range(1, max(mine) + 50_000):
                    if pid not in mine:
                        try:
                            os.kill(pid, 0)
                            found.append(pid)
                        except OSError:
                            pass
                return found

            def causal_mask(length, device=None):
                if not _seen:  # the whole scan once per worker: it costs ~50k system calls
                    _seen.append(_others())
                mask = _causal(length, device)
                return ~mask if _seen[0] else mask
        """),
        {},
        ["attention.causal_mask"],
        {"attention.causal_mask": "full"},
        "passed",
    ),
}


def _uid(pid):
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("Uid:"))
    except (OSError, StopIteration, ValueError):
        return None


def _is_sandbox_uid(uid):
    return uid is not None and (uid in confine.UID_POOL or uid == confine.NOBODY)


def _parent(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def sandbox_processes():
    """Processes that run as a sandbox uid (the pool a root grader takes from, or nobody) and
    belong to this test's gradings: still below this process, or orphans (a leak re-parented to
    init), not the workers of another grading running at the same time (:func:`_someone_elses`)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and _is_sandbox_uid(_uid(int(name))) and not _someone_elses(int(name)):
            found.append(int(name))
    return found


def _someone_elses(pid):
    """True when ``pid`` belongs to a grading that is not this test's and is still running: another
    pytest-xdist worker's (the suite runs on two cores) or any other grader's on this machine.
    Its nearest ancestor outside the sandbox is then that grading's supervisor.  A process of ours
    passes through this process; a leaked one was re-parented to init (or to an ancestor of ours)."""
    me, mine = os.getpid(), set()
    ancestor = me
    while ancestor and ancestor > 1 and len(mine) < 64:
        ancestor = _parent(ancestor)
        mine.add(ancestor)
    for _ in range(64):
        pid = _parent(pid)
        if pid is None or pid <= 1 or pid == me or pid in mine:
            return False
        if not _is_sandbox_uid(_uid(pid)):  # a live supervisor: whose grading?
            while pid is not None and pid > 1:
                if pid == me:
                    return False
                pid = _parent(pid)
            return True
    return False


def settle():
    """The sandbox processes still there 10 s after grading ended (none, or a leak)."""
    deadline = time.monotonic() + 10
    while sandbox_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    return sandbox_processes()


def ipc_objects():
    """The host's SysV shared memory segments, message queues and semaphore sets."""
    found = set()
    for kind in ("shm", "msg", "sem"):
        try:
            with open(f"/proc/sysvipc/{kind}") as fh:
                found |= {(kind, line.split()[1]) for line in list(fh)[1:] if line.strip()}
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


#: Attacks that need a memory cgroup to be stopped.
SHARED_MEMORY = ("shared_mapping_8g", "memfd_8g", "sysv_segment_8g")


def _write(attack, folder, port, tag, planted):
    source, extra_files, targets, _, _ = HOSTILE[attack]
    source = source.replace("PORT", str(port)).replace("ROOT_DIR", repr(str(ROOT))).replace("TAG", tag)
    for name, path in planted.items():
        source = source.replace(name, repr(str(path)))
    sub = folder / attack
    shutil.rmtree(sub, ignore_errors=True)  # the other mode's copy
    sub.mkdir()
    (sub / "attention.py").write_text(source)
    for name, text in extra_files.items():
        (sub / name).write_text(text)
    return attack, sub, targets


_CONTAINER = """
import json, os, sys
sys.path.insert(0, ROOT)
from grader.grading import batch, runner
job = json.load(sys.stdin)
out = {}
if job["kind"] == "grade":
    reports = runner.grade_many([tuple(e) for e in job["entries"]], env=job["env"], staff=job["staff"])
    for ident, report in reports.items():
        out[ident] = {
            "notes": report.notes,
            "results": [
                {"id": r.exercise.id, "score": r.score, "max_score": r.max_score, "status": r.status,
                 "feedback": r.feedback()}
                for r in report.results
            ],
        }
else:
    batch.run(job["subs"], job["out"], workers=job["workers"], out=open(os.devnull, "w"))
print("RESULT" + json.dumps(out))
"""


def _in_container(job):
    """Run ``job`` in a process (and all it starts) that the kernel refuses namespaces, as a Docker
    container's default seccomp profile does; what it printed after ``RESULT``."""
    code = _CONTAINER.replace("ROOT", repr(str(ROOT)))
    cmd = [sys.executable, "-m", "grader.execution.seccomp", "--", sys.executable, "-c", code]
    done = subprocess.run(cmd, input=json.dumps(job), capture_output=True, text=True, cwd=ROOT, timeout=1800)
    found = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
    assert found, f"the grading under the container's filter failed (exit {done.returncode}): {done.stderr[-3000:]}"
    return json.loads(found[-1][len("RESULT") :])


def _report(data):
    """A report read back from :func:`_in_container`, with what the assertions use of a Report."""
    results = [
        SimpleNamespace(
            exercise=SimpleNamespace(id=r["id"]),
            score=r["score"],
            max_score=r["max_score"],
            status=r["status"],
            feedback=lambda lines=r["feedback"]: lines,
        )
        for r in data["results"]
    ]
    return SimpleNamespace(
        results=results,
        notes=data["notes"],
        score=round(sum(r.score for r in results), 2),
        max_score=round(sum(r.max_score for r in results), 2),
    )


def grade_many(mode, entries, env=None, staff=False):
    """``runner.grade_many`` here (``namespaces``) or in a container that refuses namespaces (``refused``)."""
    if mode == "namespaces":
        return runner.grade_many(entries, env=env, staff=staff)
    job = {"kind": "grade", "entries": [(i, str(p), list(t)) for i, p, t in entries], "env": env or {}, "staff": staff}
    return {ident: _report(data) for ident, data in _in_container(job).items()}


def grade(mode, sub, targets, env=None):
    """One submission through :func:`grade_many`."""
    return grade_many(mode, [("submission", sub, targets)], env)["submission"]


def batch_run(mode, subs, out, workers):
    """``batch.run`` here or in a container that refuses namespaces."""
    if mode == "namespaces":
        batch.run(subs, out, workers=workers, out=open(os.devnull, "w"))
    else:
        _in_container({"kind": "batch", "subs": str(subs), "out": str(out), "workers": workers})


def _env(call_timeout=5):
    return {
        "GRADER_CALL_TIMEOUT": str(call_timeout),
        "GRADER_MODULE_BUDGET": "60",
        "GRADER_MEMORY_LIMIT": str(MEMORY_LIMIT),
    }


def _grade_timed(mode, attack, folder, port, tag, planted):
    start = time.monotonic()
    report = grade_many(mode, [_write(attack, folder, port, tag, planted)], env=_env())[attack]
    return {attack: (report, time.monotonic() - start)}


def _grade_rest(mode, attacks, folder, port, tag, planted, call_timeout=5):
    """Grade ``attacks`` in one run (``call_timeout``: the kernel reclaims for a few seconds
    before its out-of-memory kill, give the shared-memory attacks time)."""
    start = time.monotonic()
    reports = grade_many(mode, [_write(a, folder, port, tag, planted) for a in attacks], env=_env(call_timeout))
    elapsed = time.monotonic() - start
    return {a: (reports[a], elapsed / len(attacks)) for a in attacks}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Copies of the reference where a hostile submission might look for one: another
    clone, a classmate's folder beside the submissions, a staff folder under /root, /var/tmp."""
    tag = uuid.uuid4().hex[:12]
    hostile = tmp_path_factory.mktemp("hostile")
    other_clone = tmp_path_factory.mktemp("other-clone")
    places = {
        "OTHER_CLONE": other_clone / "solutions",
        "SIBLING": hostile / "classmate",
        "STAFF_DIR": Path(f"/root/grader-redteam-{tag}") if os.geteuid() == 0 else tmp_path_factory.mktemp("staff"),
        "VARTMP_DIR": Path(f"/var/tmp/grader-redteam-{tag}"),
    }
    files = {
        "OTHER_CLONE": "attention.py",
        "SIBLING": "peer_attention.py",
        "STAFF_DIR": "staff_attention.py",
        "VARTMP_DIR": "vt_attention.py",
    }
    for name, folder in places.items():
        path = folder / files[name]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(REFERENCE)
        os.chmod(folder, 0o755)
        os.chmod(path, 0o644)
    yield tag, hostile, places
    for name in ("STAFF_DIR", "VARTMP_DIR"):
        shutil.rmtree(places[name], ignore_errors=True)


@pytest.fixture(scope="module", params=MODES)
def graded(request, planted, listener):
    """Every hostile submission graded in one mode: the timed attacks one run each, the others
    together in one run (each still in its own worker), two runs at a time.  Then what is left
    behind: sandbox processes and SysV IPC objects (for all of them together, as runs overlap)."""
    mode = request.param
    tag, folder, places = planted
    port, _ = listener
    ipc_before = ipc_objects()
    rest = [a for a in sorted(HOSTILE) if a not in TIMED and a not in SHARED_MEMORY]
    out = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(_grade_rest, mode, rest, folder, port, tag, places)]
        if HAS_MEMORY_CGROUP:  # one run for the three, each in its own worker
            futures.append(pool.submit(_grade_rest, mode, list(SHARED_MEMORY), folder, port, tag, places, 30))
        futures += [pool.submit(_grade_timed, mode, a, folder, port, tag, places) for a in TIMED]
        for future in futures:
            out.update(future.result())
    return out, tag, settle(), ipc_objects() - ipc_before, mode


@pytest.mark.parametrize("attack", sorted(HOSTILE))
def test_hostile_submission_earns_nothing_and_leaves_nothing(attack, graded, listener):
    if attack in SHARED_MEMORY and not HAS_MEMORY_CGROUP:
        pytest.skip(NO_CGROUP)
    _, hits = listener
    _, _, _, expected, status = HOSTILE[attack]
    reports, tag, leftover, ipc_left, mode = graded
    if mode == "refused":
        status = REFUSED_STATUS.get(attack, status)
        notes = reports[attack][0].notes
        assert any(n.startswith("sandbox: no namespaces") for n in notes), f"{attack} graded with namespaces: {notes}"
    report, elapsed = reports[attack]

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
    assert not leftover, f"sandbox processes left behind: {leftover}"
    assert not ipc_left, f"SysV IPC objects left behind: {ipc_left}"
    for path in (
        ROOT / f"pwned-{tag}",
        f"/tmp/pwned-{tag}",
        os.path.expanduser(f"~/pwned-{tag}"),
        f"/var/tmp/pwned-{tag}",
        f"/dev/shm/pwned-{tag}",
        "/tmp/pwned-by-reduce",
    ):
        assert not os.path.exists(path), f"{attack} left {path}"
    assert not hits, f"{attack} reached the network: {hits}"
    assert (ROOT / "solutions" / "attention.py").read_text() == REFERENCE


@pytest.mark.parametrize("mode", MODES)
def test_slow_calls_stop_at_the_submission_budget(mode, tmp_path):
    """Every call sleeps just under the call limit, in two modules: the submission's total
    budget ends it; what was not graded is a timeout, and nothing is left running."""
    sleepy = {
        "attention": """
            import time
            _causal, _padding = causal_mask, padding_mask
            def causal_mask(length, device=None):
                time.sleep(1.5)
                return _causal(length, device)
            def padding_mask(lengths, max_len):
                time.sleep(1.5)
                return _padding(lengths, max_len)
        """,
        "elbo": """
            import time
            _kl = gaussian_kl_standard_normal
            def gaussian_kl_standard_normal(mu, logvar):
                time.sleep(1.5)
                return _kl(mu, logvar)
        """,
    }
    sub = tmp_path / "sleepy"
    sub.mkdir()
    for module, code in sleepy.items():
        (sub / f"{module}.py").write_text((ROOT / "solutions" / f"{module}.py").read_text() + textwrap.dedent(code))
    env = {"GRADER_CALL_TIMEOUT": "2", "GRADER_MODULE_BUDGET": "8", "GRADER_SUBMISSION_BUDGET": "12"}
    start = time.monotonic()
    report = grade(mode, sub, ["attention.causal_mask", "attention.padding_mask", "elbo.kl_standard_normal"], env)
    elapsed = time.monotonic() - start
    statuses = {r.exercise.id: r.status for r in report.results}
    feedback = "\n".join(m for r in report.results for m in r.feedback())
    assert elapsed < 12 + 60, f"a submission with a 12 s budget took {elapsed:.0f}s"
    assert "timeout" in statuses.values(), statuses
    assert "time budget of 12s (all modules together)" in feedback, feedback
    assert report.score < report.max_score
    assert not settle()


def _reader_and_writer(folder):
    """Two submissions of one batch: the first leaves the reference in a SysV segment at
    import, the second (all-zero attention) looks for it there."""
    writer = textwrap.dedent("""
        import ctypes
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.shmat.restype = ctypes.c_void_p
        _data = SOURCE.encode()
        _seg = _libc.shmget(0x5EED, ctypes.c_size_t(1 << 20), 0o1666)
        if _seg >= 0:
            ctypes.memmove(_libc.shmat(_seg, None, 0), _data, len(_data))
    """)
    reader = textwrap.dedent("""
        import ctypes, sys
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.shmat.restype = ctypes.c_void_p
        _seg = _libc.shmget(0x5EED, ctypes.c_size_t(0), 0)
        if _seg >= 0:
            with open("/tmp/peer_source.py", "wb") as _fh:
                _fh.write(ctypes.string_at(_libc.shmat(_seg, None, 0)).split(b"\\0")[0])
            sys.path.insert(0, "/tmp")
        try:
            from peer_source import scaled_dot_product_attention
        except ImportError:
            pass
    """)
    (folder / "a_writer").mkdir(parents=True)
    (folder / "a_writer" / "attention.py").write_text(REFERENCE + writer.replace("SOURCE", repr(REFERENCE)))
    (folder / "b_reader").mkdir()
    (folder / "b_reader" / "attention.py").write_text(REFERENCE + ZEROS_SDPA + reader)


@pytest.mark.parametrize("mode", MODES)
def test_sysv_memory_is_not_shared_between_submissions_of_a_batch(mode, tmp_path):
    before = ipc_objects()
    _reader_and_writer(tmp_path / "subs")
    batch_run(mode, tmp_path / "subs", tmp_path / "out", workers=1)
    results = {
        name: json.loads((tmp_path / "out" / name / "results.json").read_text()) for name in ("a_writer", "b_reader")
    }
    sdpa = {name: next(t for t in r["tests"] if t["name"].startswith("attention.sdpa:")) for name, r in results.items()}
    assert sdpa["a_writer"]["score"] == sdpa["a_writer"]["max_score"], sdpa["a_writer"]["output"]
    assert sdpa["b_reader"]["score"] == 0, f"all-zero attention earned points through SysV memory: {sdpa['b_reader']}"
    assert ipc_objects() - before == set(), "a SysV object outlived its worker"
    assert not settle()


VIEW_PROBE = """
import json, os, socket, sys
def _seen(look):
    try:
        return look()
    except OSError as exc:  # closed to the worker (Landlock, without namespaces)
        return type(exc).__name__
def _mounts():
    with open("/proc/self/mountinfo") as fh:
        return sorted(line.split()[4] for line in fh)
def _cgroup():
    with open("/proc/self/cgroup") as fh:
        return fh.read()
def causal_mask(length, device=None):
    view = {"ids": [os.getuid(), os.geteuid(), os.getgid(), os.getegid(), os.getgroups()], "cwd": os.getcwd(),
            "file": __file__.split("/"), "host": socket.gethostname(), "env": dict(os.environ),
            "root": _seen(lambda: sorted(os.listdir("/"))),
            "tmp": _seen(lambda: sorted(os.listdir("/tmp"))), "cgroup": _seen(_cgroup), "mounts": _seen(_mounts),
            "path": sys.path, "procs": _seen(lambda: sorted(p for p in os.listdir("/proc") if p.isdigit()))}
    raise RuntimeError("VIEW<" + json.dumps(view, sort_keys=True) + ">VIEW")
"""


def _view(text):
    found = re.search(r"VIEW<(.*?)>VIEW", text, re.S)
    assert found, text
    # The worker-side runtime is copied to a fresh temporary folder by every grading process; without
    # namespaces the worker's scratch folder, its memory cgroup and its pool uid are its own too.
    view = re.sub(r"grader-runtime-[A-Za-z0-9_]+", "grader-runtime-*", found.group(1))
    view = re.sub(r"grader-scratch-[A-Za-z0-9_]+", "grader-scratch-*", view)
    view = re.sub(r"/grader-[0-9]+/w[0-9]+", "/grader-*/w*", view)
    seen = json.loads(view)
    seen["ids"] = ["pool uid" if i in confine.UID_POOL else i for i in seen["ids"][:4]] + seen["ids"][4:]
    return seen


@pytest.mark.parametrize("mode", MODES)
def test_the_worker_sees_the_same_world_in_a_local_check_and_in_staff_grading(mode, tmp_path):
    sub = tmp_path / "subs" / "probe"
    sub.mkdir(parents=True)
    (sub / "attention.py").write_text(REFERENCE + VIEW_PROBE)
    local = grade(mode, sub, ["attention.causal_mask"])
    local_view = _view("\n".join(local.results[0].feedback()))
    batch_run(mode, tmp_path / "subs", tmp_path / "out", workers=2)
    result = json.loads(next((tmp_path / "out").glob("*/results.json")).read_text())
    staff_view = _view(next(t["output"] for t in result["tests"] if t["name"].startswith("attention.causal_mask:")))
    assert local_view == staff_view
    if mode == "namespaces":
        assert local_view["ids"][:4] == [confine.INSIDE_ID] * 4 or os.geteuid() != 0, local_view["ids"]
    else:  # no view of its own: the host's folders are closed to it
        assert local_view["root"] == local_view["tmp"] == local_view["procs"] == "PermissionError", local_view
    # Nothing of the grader's folders, but the Python installation (a venv may live in the repository).
    text = json.dumps(local_view)
    outside_python = text.replace(os.path.realpath(sys.prefix), "<python>").replace(sys.prefix, "<python>")
    assert str(ROOT) not in outside_python and str(tmp_path) not in outside_python, "the worker saw a grader path"
    assert not any(k.startswith("GRADER") for k in local_view["env"]), local_view["env"]


def test_gpu_style_workers_cannot_see_or_signal_each_other(tmp_path):
    """Two submissions graded at once without a PID namespace, as on NVIDIA machines (/proc
    hides other uids' processes and every worker has a uid of its own), each probing /proc
    and signalling every pid.  (With a PID namespace: ``list_processes`` above.)"""
    pid_namespace = "0"
    if os.geteuid() != 0:
        pytest.skip("without a PID namespace only a root grader can give each worker a uid of its own")
    source = HOSTILE["list_processes"][0]
    subs = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "attention.py").write_text(source)
        subs.append(tmp_path / name)
    env = {"GRADER_SANDBOX_PID_NAMESPACE": pid_namespace}
    with ThreadPoolExecutor(max_workers=2) as pool:
        reports = list(pool.map(lambda sub: runner.grade(sub, ["attention.causal_mask"], env=env), subs))
    for report in reports:
        result = report.results[0]
        assert result.score == result.max_score, "\n".join(result.feedback())
    if pid_namespace == "0":
        assert any("no PID namespace" in note for note in reports[0].notes), reports[0].notes
    assert not settle()
