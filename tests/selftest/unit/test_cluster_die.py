"""A guarded grading process whose batch died writes nothing after the kill, even when the
kill is what ended its grading (the watcher thread kills, the main thread would write)."""

import subprocess
import sys

from grader import ROOT

PROGRAM = """
import subprocess, sys, threading, time
from pathlib import Path
from grader.grading import cluster
target = Path(sys.argv[1])
child = subprocess.Popen(["sleep", "30"])
threading.Thread(target=lambda: (time.sleep(0.3), cluster._die(3)), daemon=True).start()
child.wait()  # returns when _die kills it: the grading "ended"
with cluster.WRITES:  # as batch.grade_one writes a result
    target.write_text("a result of a grading the batch's death cut short")
time.sleep(5)
"""


def test_no_result_is_written_once_the_batch_is_gone(tmp_path):
    target = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-c", PROGRAM, str(target)], cwd=ROOT, timeout=60)
    assert proc.returncode == 3
    assert not target.exists()
