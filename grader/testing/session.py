"""The grading runner's test process: ``python -m grader.testing.session ARGS`` runs
``pytest ARGS`` like ``python -m pytest``, faster at both ends.

* No garbage collection until the tests are collected: importing torch, hypothesis and the
  tests makes the collector walk the growing heap again and again (about 0.2 s), and all
  that is loaded then is frozen (``gc.freeze``) and collected never anyway.
* Once the results are written nothing is left to do but exit, and with torch loaded
  Python's own finalization (every module's namespace cleared, a last collection over
  torch's heap) takes about 0.1 s.  Exit handlers still run (``atexit``: the zygote is
  closed, temporary folders removed); only that teardown is skipped.
"""

import gc

gc.disable()

import atexit  # noqa: E402
import contextlib  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402


class _CollectAgain:
    """Garbage collection back on once the tests are collected, what is loaded frozen."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Freeze what is loaded (never garbage) and collect from here on."""
        gc.freeze()
        gc.enable()


def main(args: list[str]) -> int:
    """Run pytest with ``args``; its exit code."""
    try:
        return int(pytest.main(args, plugins=[_CollectAgain()]))
    finally:
        gc.enable()  # a run that ended before its collection did


if __name__ == "__main__":
    status = 3  # pytest's internal error, should main() itself raise
    try:
        status = main(sys.argv[1:])
    finally:
        atexit._run_exitfuncs()
        with contextlib.suppress(OSError, ValueError):  # a closed or broken stdout changes nothing
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status)
