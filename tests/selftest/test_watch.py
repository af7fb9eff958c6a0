"""``python -m grader check --watch``: a save re-grades the module with the same scores as a
cold check, and Ctrl-C leaves no process behind."""

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from grader import ROOT, mistakes
from grader.grading import runner

REFERENCE = (ROOT / "solutions" / "attention.py").read_text()
TARGET = "attention.causal_mask"


def _mistake(entry_id: str) -> str:
    return next(m for m in mistakes.load("attention") if m.id == entry_id).source()


def _until(lines: "queue.Queue[str]", pattern: str, timeout: float, seen: list[str]) -> list[str]:
    """The lines printed until one contains ``pattern`` (then up to a TOTAL line), appended to ``seen``."""
    deadline, found, got = time.monotonic() + timeout, False, []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        got.append(line)
        found = found or pattern in line
        if found and line.strip().startswith("TOTAL"):
            seen += got
            return got
    seen += got
    raise AssertionError(f"no {pattern!r} within {timeout}s; output so far:\n" + "\n".join(seen))


def _reader(proc: subprocess.Popen) -> "queue.Queue[str]":
    """A queue of the lines ``proc`` prints (read by a thread: no buffered line is missed)."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    return lines


def _total(lines: list[str]) -> str:
    return next(line for line in lines if line.strip().startswith("TOTAL")).split(None, 1)[1].strip()


def _descendants(pid: int) -> dict[int, bytes]:
    """``{pid: cmdline}`` of every process under ``pid``."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes()
                parents[int(entry)] = int(stat[stat.rindex(b")") + 2 :].split()[1])
            except (OSError, ValueError):
                continue
    found: dict[int, bytes] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in found:
                try:
                    found[child] = Path(f"/proc/{child}/cmdline").read_bytes()
                except OSError:
                    continue
                frontier.append(child)
    return found


def _alive(pid: int, cmdline: bytes) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        state = stat[stat.rindex(b")") + 2 :].split()[0]
        return state != b"Z" and Path(f"/proc/{pid}/cmdline").read_bytes() == cmdline
    except OSError:
        return False


def test_a_save_regrades_like_a_cold_check_and_ctrl_c_stops_everything(tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "attention.py").write_text(REFERENCE)
    # A run started in the background (``nohup pytest ... &``) ignores SIGINT, and an ignored
    # signal stays ignored across exec: with a handler here the watcher starts with the default.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "grader", "check", "--watch", TARGET, "--submission", str(folder)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    seen: list[str] = []
    lines = _reader(proc)
    try:
        first = _until(lines, "first grading", 180, seen)
        assert _total(first) == "3 / 3"

        wrong = _mistake("causal_mask_no_diagonal")
        (folder / "attention.py").write_text(wrong)
        second = _until(lines, "changed:", 120, seen)
        cold_folder = tmp_path / "cold"
        cold_folder.mkdir()
        (cold_folder / "attention.py").write_text(wrong)
        cold = runner.grade(cold_folder, [TARGET])
        assert _total(second) == f"{cold.score:g} / {cold.max_score:g}" and cold.score < cold.max_score
        assert "causal_mask" in "\n".join(second) and "failed" in "\n".join(second)

        os.utime(folder / "attention.py")  # touched, not changed: no re-grade
        (folder / "lstm.py").write_text("# another module, not watched\n")
        (folder / "attention.py").write_text(REFERENCE)
        third = _until(lines, "changed:", 120, seen)
        assert any("attention.py" in line and "changed:" in line for line in third) and _total(third) == "3 / 3"
        assert sum("changed" in line for line in seen) == 2, "\n".join(seen)

        running = _descendants(proc.pid)
        assert any(b"grader.grading.warm" in cmd for cmd in running.values()), running
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        time.sleep(0.5)
        assert any("stopped watching" in line for line in list(lines.queue) + seen)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(p, c) for p, c in running.items()):
            time.sleep(0.2)
        left = {p: c for p, c in running.items() if _alive(p, c)}
        assert not left, f"left behind: {left}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
