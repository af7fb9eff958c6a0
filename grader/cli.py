"""Command line: ``python -m grader {check,generate,list,mutants}``."""

import argparse
import json
import sys
from pathlib import Path

from grader import ROOT, report, rubric, runner, stubgen


def main(argv=None):
    """Run the CLI; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m grader", description="DL Basic autograder")
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="grade a submission folder (default: assignments/)")
    check.add_argument("targets", nargs="*", metavar="MODULE_OR_EXERCISE",
                       help="modules (attention, lstm, ...) or exercise IDs (attention.sdpa); default: all")
    check.add_argument("--submission", default=str(ROOT / "assignments"),
                       help="folder holding attention.py, lstm.py, param_count.py, elbo.py")
    check.add_argument("--json", metavar="PATH", help="also write Gradescope results.json here")
    check.add_argument("--staff", action="store_true", help="also run the hidden tests")
    check.add_argument("--quiet", action="store_true", help="no progress bar")

    gen = sub.add_parser("generate", help="write assignments/ stubs from solutions/")
    gen.add_argument("--check", action="store_true", help="only report stubs that are out of date (exit 1)")

    sub.add_parser("list", help="list the exercises and their points")

    mut = sub.add_parser("mutants", help="grade every catalog entry and check the tests catch it")
    mut.add_argument("modules", nargs="*", help="only these modules")
    mut.add_argument("--workers", type=int, default=2)

    args = parser.parse_args(argv)
    return {"check": _check, "generate": _generate, "list": _list, "mutants": _mutants}[args.command](args)


def _check(args):
    try:
        rubric.select(args.targets)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    folder = Path(args.submission)
    if not folder.is_dir():
        print(f"error: submission folder {folder} does not exist", file=sys.stderr)
        return 2
    result = runner.grade(folder, args.targets, staff=args.staff, progress=not args.quiet and sys.stderr.isatty())
    print(report.render(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_gradescope(), indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


def _generate(args):
    stale = stubgen.generate(check=args.check)
    for path in stale:
        print(("out of date: " if args.check else "wrote ") + str(path.relative_to(ROOT)))
    if args.check and stale:
        print("run `python -m grader generate` and commit the stubs", file=sys.stderr)
        return 1
    if not stale:
        print("stubs are up to date")
    return 0


def _list(args):
    for module in rubric.MODULES:
        print(f"{module} ({rubric.module_points(module):g} points)")
        for ex in rubric.exercises_of(module):
            print(f"  {ex.id:<32} {ex.points:>4g}  {ex.title}  [{', '.join(ex.names)}]")
    return 0


def _mutants(args):
    from grader import mutants
    return mutants.main(args.modules, workers=args.workers)
