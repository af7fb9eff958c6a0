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
    serve.add_argument(
        "--base-url", default="", help="the address students open, for links.csv, rewritten on every start"
    )
    serve.add_argument("--threads", type=int, default=8, help="waitress worker threads (default 8)")
    serve.add_argument(
        "--connections",
        type=int,
        default=0,
        help="connections served at once, the rest wait their turn (default 4 per thread)",
    )
    serve.add_argument(
        "--trusted-proxy",
        default="",
        metavar="ADDR",
        help="the reverse proxy's address (127.0.0.1 for one on this machine): its X-Forwarded-* headers are believed",
    )
    serve.add_argument(
        "--deadline",
        default="",
        metavar="WHEN",
        help="close the round by itself at WHEN (2026-12-10T23:59, server time, or with +09:00)",
    )
    serve.add_argument(
        "--restore-rubric",
        action="store_true",
        help="write the rubric the round started with back to ROUND/rubric.toml, and stop",
    )

    score = sub.add_parser("score", help="consensus, reviewer agreement, helpfulness and flags as CSV")
    score.add_argument("round_dir", metavar="ROUND_DIR")

    gal = sub.add_parser(
        "gallery",
        help="print the approach gallery of an exercise of a graded batch (code anonymized, authors counted)",
    )
    gal.add_argument("submissions", help="the folder `grader batch` graded (one sub-folder or .zip each)")
    gal.add_argument("--results", required=True, metavar="BATCH_OUT", help="the `grader batch --out` folder")
    gal.add_argument("--exercise", required=True, help="an exercise ID (attention.sdpa)")
    gal.add_argument(
        "--names",
        action="store_true",
        help="staff only: name each card's authors and show the code as written (not for the peer session)",
    )


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
    if not args.roster:
        print(
            "warning: no --roster: names are hidden as found in the submissions themselves (ids, folder names, "
            "author lines, __author__, emails, handles, home folders, student numbers); a roster (id,name,email) "
            "also hides the names that appear nowhere else",
            file=sys.stderr,
        )
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
    from grader.review import rounds

    if not Path(args.round_dir).is_dir():
        print(f"error: review serve: {args.round_dir} is not a folder", file=sys.stderr)
        return 2
    if args.restore_rubric:
        print(f"restored {rounds.restore_rubric(args.round_dir)}")
        return 0
    try:
        deadline = web.parse_deadline(args.deadline)
    except ValueError as exc:
        print(f"error: review serve: --deadline: {exc}", file=sys.stderr)
        return 2
    web.serve(
        args.round_dir,
        args.host,
        args.port,
        args.base_url,
        threads=args.threads,
        trusted_proxy=args.trusted_proxy,
        deadline=deadline,
        connections=args.connections,
    )
    return 0


def _score(args: argparse.Namespace) -> int:
    from grader.review import rounds

    report, paths = rounds.score_round(args.round_dir)
    works: dict[tuple[str, str], dict[str, str]] = {}
    counts: dict[tuple[str, str], int] = {}
    items: list[str] = []
    for row in report.consensus:
        if row.item not in items:
            items.append(row.item)
        works.setdefault((row.author, row.unit), {})[row.item] = "-" if row.consensus is None else f"{row.consensus:g}"
        counts[(row.author, row.unit)] = max(counts.get((row.author, row.unit), 0), row.n_reviews)
    print(f"consensus (median score per rubric item) of {len(works)} author(s):")
    _table(
        ["author", "unit", *items, "reviews"],
        [
            [author, unit, *[scores.get(i, "-") for i in items], counts[(author, unit)]]
            for (author, unit), scores in works.items()
        ],
    )
    print(f"\nreviewers ({len(report.reviewers)}):")
    _table(
        ["reviewer", "reviews", "agreement", "helpfulness", "ratings dropped"],
        [
            [
                r.reviewer,
                r.reviews,
                "-" if r.agreement is None else f"{r.agreement:.2f}",
                "-" if r.helpfulness is None else f"{r.helpfulness:.2f}",
                r.ratings_dropped,
            ]
            for r in report.reviewers
        ],
    )
    print(f"\nflags for staff ({len(report.flags)}):")
    if report.flags:
        _table(
            ["kind", "author", "reviewer", "item", "detail"],
            [[f.kind, f.author or "-", f.reviewer or "-", f.item or "-", f.detail] for f in report.flags],
        )
    else:
        print("none")
    print("\nwrote " + ", ".join(str(p) for p in paths))
    return 0


def _gallery(args: argparse.Namespace) -> int:
    from grader import rubric
    from grader.review import gallery

    if args.exercise not in rubric.BY_ID:
        print(f"error: review gallery: unknown exercise {args.exercise!r}", file=sys.stderr)
        return 2
    for folder, what in ((args.results, "results"), (args.submissions, "submissions")):
        if not Path(folder).is_dir():
            print(f"error: review gallery: {what} folder {folder} does not exist", file=sys.stderr)
            return 2
    solutions = gallery.solutions_from_batch(args.results, args.submissions, args.exercise)
    if not solutions:
        print(f"error: review gallery: no graded submission in {args.results}", file=sys.stderr)
        return 2
    cards = gallery.gallery(args.exercise, solutions)
    with_code = sum(1 for s in solutions if s.code.strip())
    print(
        f"gallery of {args.exercise}: {len(cards)} card(s) from {len(solutions)} graded submission(s), "
        f"{with_code} with code" + ("" if args.names else "; code anonymized, authors not named")
    )
    for number, card in enumerate(cards, 1):
        print(
            f"\n== card {number} of {len(cards)} | size: {card.size} | approach: {card.approach or 'unknown'} "
            f"| status: {card.status} | score: {card.score:g}/{card.max_score:g}"
        )
        if args.names:
            print(f"authors: {', '.join(card.authors)}")
        else:
            print(f"authors: {card.size} (names hidden; --names to show)")
        if card.failed:
            print(f"failed properties: {'; '.join(card.failed)}")
        if card.mistake:
            print(f"matched mistake: {card.mistake}")
        code = card.representative if args.names else gallery.for_peers(card, solutions)
        print(code.rstrip() or "(no code for this exercise)")
    return 0


def _table(header: list[str], rows: list[list[Any]]) -> None:
    """Print ``rows`` under their ``header``, columns aligned and the header underlined."""
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=False)]
    print("  ".join(str(x).ljust(w) for x, w in zip(header, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip())
