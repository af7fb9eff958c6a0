"""``python -m grader report OUT_DIR [--out FILE]``: the class report of a graded batch.

The arguments are defined here and the work (matplotlib, Jinja2) is imported when the
command runs, so that ``python -m grader --help`` imports neither.
"""

import argparse
import sys
from pathlib import Path

DEFAULT_NAME = "report.html"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``report``."""
    parser.add_argument("out_dir", metavar="OUT_DIR", help="the folder `python -m grader batch ... --out` wrote")
    parser.add_argument(
        "--out",
        metavar="FILE",
        help=f"where to write the page (default: OUT_DIR/{DEFAULT_NAME}); it loads nothing from anywhere",
    )


def run(args: argparse.Namespace) -> int:
    """Write the class report of ``args.out_dir``; returns the exit code (2: nothing to report)."""
    from grader.classreport import data, page

    target = Path(args.out) if args.out else Path(args.out_dir) / DEFAULT_NAME
    try:
        batch = data.read_batch(args.out_dir)
        html = page.render(batch)
    except data.ReportError as exc:
        print(f"error: report: {exc}", file=sys.stderr)
        return 2
    try:
        target.write_bytes(html.encode("utf-8"))
    except OSError as exc:
        print(f"error: report: cannot write {target}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    unreadable = sum(p.kind == data.UNREADABLE for p in batch.problems)
    print(
        f"class report of {len(batch.submissions)} submissions ({unreadable} unreadable, "
        f"{len(batch.problems)} problems in all): {target}"
    )
    return 0
