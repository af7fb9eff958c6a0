"""``python -m grader review {plan,serve,score,gallery}``: the peer-review round from the command line.

The arguments are defined here and the work is imported when a command runs, so that
``python -m grader --help`` never imports Flask.
"""

import argparse
import sys
from pathlib import Path
from typing import Any

from grader.review.form import DEFAULT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``review`` sub-commands of ``parser``."""
    sub = parser.add_subparsers(dest="review_command", required=True)

    plan = sub.add_parser(
        "plan",
        help="plan a round from a graded batch: who reviews whom, aliases, anonymized solutions with the evidence",
    )
    plan.add_argument("submissions", help="the folder `grader batch` graded (one sub-folder or .zip each)")
    plan.add_argument("--results", required=True, metavar="BATCH_OUT", help="the `grader batch --out` folder")
    plan.add_argument("--unit", required=True, help="an exercise ID (attention.sdpa) or a module (attention)")
    plan.add_argument("--k", type=int, default=2, help="reviews each student writes and receives (default 2)")
    plan.add_argument("--seed", required=True, help="the same seed gives the same plan")
    plan.add_argument("--out", required=True, metavar="ROUND_DIR", help="the round's folder (kept by staff)")
    plan.add_argument("--round", default="", help="the round's name (default: UNIT-SEED); aliases depend on it")
    plan.add_argument("--conflicts", metavar="CSV", help="pairs 'a,b' that must not review each other")
    plan.add_argument("--roster", metavar="CSV", help="id,name[,email] per student: names hidden from peers")
    plan.add_argument("--staff", action="append", default=[], metavar="ID", help="a staff reviewer (repeat)")
    plan.add_argument("--staff-load", type=int, default=0, help="authors each staff reviewer takes (on top)")
    plan.add_argument(
        "--leave-out",
        action="append",
        default=[],
        choices=("missing", "failing"),
        help="leave out submissions with no code for the unit (missing) or that did not pass it (failing); "
        "by default they are reviewed with their grader status shown",
    )
    plan.add_argument("--rubric", default=str(DEFAULT), help=f"the rubric (default {DEFAULT.name})")

    serve = sub.add_parser("serve", help="run the round's web pages (creates review.db and links.csv first)")
    serve.add_argument("round_dir", metavar="ROUND_DIR")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--base-url", default="", help="the address students open, for links.csv (default: host:port)")

    score = sub.add_parser("score", help="consensus, reviewer agreement, helpfulness and flags as CSV")
    score.add_argument("round_dir", metavar="ROUND_DIR")

    gal = sub.add_parser("gallery", help="print the approach gallery of an exercise of a graded batch")
    gal.add_argument("submissions")
    gal.add_argument("--results", required=True, metavar="BATCH_OUT")
    gal.add_argument("--exercise", required=True)


def run(args: argparse.Namespace) -> int:
    """Run the ``review`` sub-command ``args`` names; returns the exit code."""
    from grader.review import form, plan, rounds, store

    commands = {"plan": _plan, "serve": _serve, "score": _score, "gallery": _gallery}
    try:
        return commands[args.review_command](args)
    except (rounds.RoundError, plan.PlanError, form.RubricError, store.StoreError) as exc:
        print(f"error: review {args.review_command}: {exc}", file=sys.stderr)
        return 2


def _plan(args: argparse.Namespace) -> int:
    from grader.review import rounds

    made = rounds.make_round(
        args.results,
        args.submissions,
        args.out,
        unit=args.unit,
        k=args.k,
        seed=args.seed,
        round_id=args.round,
        conflicts=rounds.read_conflicts(args.conflicts),
        staff=args.staff,
        staff_load=args.staff_load,
        leave_out=args.leave_out,
        rubric_path=args.rubric,
        roster=rounds.read_roster(args.roster),
    )
    _table(
        ["author", "grader status", "approach", "reviewers"],
        [[e.id, e.status, e.approach or "-", ", ".join(made.plan.reviewers_of(e.id))] for e in made.entries],
    )
    for note in made.notes + made.plan.notes:
        print(f"note: {note}")
    print(
        f"planned {len(made.plan.assignments)} reviews of {args.unit} for {len(made.entries)} students (k={args.k}); "
        f"wrote {made.folder}/plan.json, assignments.csv; next: python -m grader review serve {made.folder}"
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    try:
        from grader.review import web
    except ImportError as exc:  # Flask and Pygments come with requirements-dev.txt (staff tools)
        print(f"error: review serve: {exc}: pip install -r requirements-dev.txt", file=sys.stderr)
        return 2
    if not Path(args.round_dir).is_dir():
        print(f"error: review serve: {args.round_dir} is not a folder", file=sys.stderr)
        return 2
    web.serve(args.round_dir, args.host, args.port, args.base_url)
    return 0


def _score(args: argparse.Namespace) -> int:
    from grader.review import rounds

    report, paths = rounds.score_round(args.round_dir)
    reviewed = {(c.author, c.unit) for c in report.consensus}
    print(f"{len(reviewed)} author(s) with a consensus, {len(report.flags)} flag(s) for staff")
    for flag in report.flags:
        print(f"flag: {flag.kind}: {flag.author or ''} {flag.reviewer or ''} {flag.detail}".rstrip())
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _gallery(args: argparse.Namespace) -> int:
    from grader import rubric
    from grader.review import gallery

    if args.exercise not in rubric.BY_ID:
        print(f"error: review gallery: unknown exercise {args.exercise!r}", file=sys.stderr)
        return 2
    cards = gallery.gallery(args.exercise, gallery.solutions_from_batch(args.results, args.submissions, args.exercise))
    for card in cards:
        print(
            f"\n== {card.size} solution(s), {card.approach or 'approach unknown'}, {card.status} "
            f"{card.score:g}/{card.max_score:g}: {', '.join(card.authors)}"
        )
        if card.mistake:
            print(f"matched mistake: {card.mistake}")
        print(card.representative.rstrip())
    return 0


def _table(header: list[str], rows: list[list[Any]]) -> None:
    """Print a plain aligned table."""
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=False)]
    for row in [header, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip())
