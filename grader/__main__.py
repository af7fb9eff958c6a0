"""``python -m grader``: see :mod:`grader.cli`."""

import os
import sys


def _start_the_zygote_early(argv: list[str]) -> None:
    """For a sandboxed ``check`` (not ``--watch``, not ``--help``): start the sandbox's zygote
    now, before the command line's own imports (the grading takes it; at exit one nobody
    took is reaped)."""
    if argv[:1] != ["check"] or any(a in ("--watch", "-h", "--help") or "inprocess" in a for a in argv):
        return
    from grader.adapters import zygote

    try:
        zygote.start_early(os.environ)
    except OSError:
        pass  # the grading starts its own


_start_the_zygote_early(sys.argv[1:])

from grader.cli import main  # noqa: E402

sys.exit(main())
