"""Command line: ``python -m grader {check,list}`` for students; staff also have
``generate``, ``batch``, ``mutants``, ``gradescope``, ``release``, ``notebooks``, ``review`` and ``report``.

The staff commands import their modules lazily, and a student release (which lacks those
modules) does not offer them.
"""

import argparse
import json
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from grader import ROOT, rubric, staffkey
from grader.grading import report, runner

#: Each staff command and the file it needs: a student release has none of them.
STAFF_COMMANDS = {
    "generate": "grader/authoring/stubgen.py",
    "batch": "grader/grading/batch.py",
    "mutants": "grader/authoring/mutants.py",
    "gradescope": "grader/release/gradescope.py",
    "release": "grader/release/student.py",
    "notebooks": "grader/notebooks/build.py",
    "review": "grader/review/commands.py",
    "report": "grader/classreport/commands.py",
}


def offered(command: str) -> bool:
    """Whether this checkout offers ``command`` (a student release offers check and list)."""
    needs = STAFF_COMMANDS.get(command)
    return needs is None or (ROOT / needs).is_file()


def _add(sub: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    """The parser of sub-command ``name``; a staff command this checkout does not offer
    gets a detached parser, never shown or used."""
    return sub.add_parser(name, **kwargs) if offered(name) else argparse.ArgumentParser(prog=name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m grader", description="DL Basic autograder")
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="grade a submission folder (default: assignments/)")
    check.add_argument(
        "targets",
        nargs="*",
        metavar="MODULE_OR_EXERCISE",
        help="modules (attention, lstm, ...), exercise IDs (attention.sdpa) or notebooks (path/to/attention.ipynb: "
        "their modules are graded); default: all",
    )
    check.add_argument(
        "--submission",
        default=str(ROOT / "assignments"),
        help="folder holding attention.py, lstm.py, param_count.py, elbo.py (or their notebooks, attention.ipynb, ...)",
    )
    check.add_argument("--json", metavar="PATH", help="also write Gradescope results.json here")
    check.add_argument(
        "--staff",
        action="store_true",
        help="also run the hidden tests; the examples come from the secret GRADER_STAFF_KEY "
        "(without it: the public examples of a local check)",
    )
    check.add_argument(
        "--weak-isolation",
        action="store_true",
        help="with --staff: grade even where the sandbox could not keep staff files from the worker "
        "(refused otherwise; the notes say so)",
    )
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    check.add_argument(
        "--serial",
        action="store_true",
        help="run the test files one after another in one process (slower; the grades are the same)",
    )
    check.add_argument(
        "--device",
        action="append",
        default=[],
        metavar="DEVICE",
        help="device tests to run: cpu, meta, cuda or all (default: cpu, meta and cuda when present)",
    )
    check.add_argument(
        "--watch",
        action="store_true",
        help="keep the grader warm and re-grade a module each time you save it (Ctrl-C to stop)",
    )
    check.add_argument(
        "--adapter",
        choices=("sandbox", "inprocess"),
        default="sandbox",
        help="sandbox: isolated worker processes (default); inprocess: trusted code only",
    )

    gen = _add(sub, "generate", help="write assignments/ stubs from solutions/")
    gen.add_argument("--check", action="store_true", help="only report stubs that are out of date (exit 1)")

    batch = _add(sub, "batch", help="grade every submission (sub-folder or .zip) of a folder")
    batch.add_argument(
        "submissions",
        help="folder of submissions: one sub-folder or .zip each, holding attention.py, ... or their notebooks "
        "(attention.ipynb, ...; a .py file wins)",
    )
    batch.add_argument(
        "--out",
        required=True,
        help="results folder: <id>/results.json and grades.csv; the examples come from "
        "GRADER_STAFF_KEY, else from a random key kept in OUT/.staff_key (mode 600)",
    )
    batch.add_argument(
        "--workers",
        type=int,
        default=None,
        help="submissions graded at once, by as many workers of a local Dask cluster "
        "(default: one per GPU, or 2 without a GPU); not with --scheduler",
    )
    batch.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="grade on the existing Dask cluster whose scheduler is at ADDRESS (tcp://host:8786) instead: "
        "its workers need GRADER_STAFF_KEY (the batch's key), this commit, and SUBMISSIONS and OUT at the same paths",
    )
    batch.add_argument(
        "--device",
        action="append",
        default=[],
        metavar="DEVICE",
        help="device tests to run: cpu, meta, cuda or all (default: cpu, meta and cuda when present)",
    )
    batch.add_argument(
        "--weak-isolation",
        action="store_true",
        help="grade even where the sandbox could not keep staff files and other submissions from the worker "
        "(refused otherwise; each result's notes say so)",
    )

    sub.add_parser("list", help="list the exercises and their points")

    mut = _add(sub, "mutants", help="grade every catalog entry and check the tests catch it")
    mut.add_argument("modules", nargs="*", help="only these modules")
    mut.add_argument("--workers", type=int, default=2, help="entries graded at once (default 2)")
    mut.add_argument("--json", metavar="PATH", help="also write every verdict, its killers and feedback here")

    gs = _add(
        sub,
        "gradescope",
        help="build a Gradescope autograder zip (hidden tests, reference, staff key), or try one here",
        description="`gradescope OUT.zip` builds the package (the key: GRADER_STAFF_KEY, else a new one written "
        "to OUT.zip.staff_key); `gradescope try ZIP SUBMISSION` runs a package here in Gradescope's layout "
        "and prints its results",
    )
    gs.add_argument("zip", metavar="OUT.zip|try", help="where to write the package (keep it as secret as the key)")
    gs.add_argument("rest", nargs="*", metavar="ZIP SUBMISSION", help="with try: the package and the upload")
    gs.add_argument(
        "--weak-isolation",
        action="store_true",
        help="build a package that grades even where its sandbox cannot keep staff files from the worker",
    )
    gs.add_argument(
        "--refuse-namespaces",
        action="store_true",
        help="with try: run as in Gradescope's container (Docker's seccomp profile refuses namespaces)",
    )
    gs.add_argument("--no-landlock", action="store_true", help="with try and --refuse-namespaces: refuse Landlock too")
    gs.add_argument("--keep", metavar="DIR", help="with try: build the /autograder layout in DIR and keep it")

    nbs = _add(sub, "notebooks", help="write the nbgrader source notebooks (nbgrader/source/dlbasic/) from solutions/")
    nbs.add_argument("--check", action="store_true", help="only report notebooks that are out of date (exit 1)")
    nbs.add_argument(
        "--course",
        metavar="DIR",
        help="also make DIR an nbgrader course folder (nbgrader_config.py, source/dlbasic/) graded in the sandbox; "
        "an existing nbgrader_config.py keeps its own lines (only the grader's marked block is written)",
    )
    nbs.add_argument(
        "--course-id",
        metavar="ID",
        default=None,
        help="with --course: nbgrader's c.CourseDirectory.course_id (default: dlbasic-course)",
    )
    nbs.add_argument(
        "--force",
        action="store_true",
        help="with --course: overwrite source notebooks that differ, and write the grader's block even where "
        "nbgrader_config.py already sets its keys",
    )

    rel = _add(sub, "release", help="write the student release (a new one-commit git repository) and check it")
    rel.add_argument("out", metavar="OUT", help="a new or empty folder")
    rel.add_argument(
        "--skip-catalog",
        action="store_true",
        help="do not grade the catalog's wrong entries in the release (the leak check and the "
        "reference/stub gradings still run)",
    )

    if offered("review"):
        from grader.review import commands as review_commands

        review_commands.add_arguments(
            sub.add_parser("review", help="peer review rounds: plan, serve the review pages, score, gallery")
        )

    if offered("report"):
        from grader.classreport import commands as report_commands

        report_commands.add_arguments(
            sub.add_parser("report", help="an HTML page about a graded batch for staff: scores, mistakes, limits, time")
        )

    args = parser.parse_args(argv)
    commands = {
        "check": _check,
        "generate": _generate,
        "list": _list,
        "mutants": _mutants,
        "batch": _batch,
        "gradescope": _gradescope,
        "release": _release,
        "notebooks": _notebooks,
        "review": _review,
        "report": _report,
    }
    return commands[args.command](args)


def _check(args: argparse.Namespace) -> int:
    notebooks = [Path(t) for t in args.targets if t.endswith(".ipynb")]
    args.targets = [t for t in args.targets if not t.endswith(".ipynb")]
    try:
        rubric.select(args.targets)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    folder = Path(args.submission)
    if not notebooks and not folder.is_dir():
        print(f"error: submission folder {folder} does not exist", file=sys.stderr)
        return 2
    if args.watch:
        return _watch(folder, args, notebooks)
    label = None
    with tempfile.TemporaryDirectory(prefix="grader-notebooks-") as tmp:
        read = None
        if notebooks:
            label = ", ".join(str(p) for p in notebooks)
            read = _from_notebooks(notebooks, Path(tmp))
            # a check of named notebooks grades their modules (unless exercises are named)
            args.targets = args.targets or sorted({p.stem for p in notebooks if p.stem in rubric.MODULES})
        elif _notebooks_in(folder):
            label = str(folder)
            read = _from_notebooks(_notebooks_in(folder), Path(tmp))
        if read is None:
            return _grade_and_report(folder, args, label)
        notes, texts = read
        return _grade_and_report(Path(tmp), args, label, notes=notes, from_notebooks=texts)


def _watch(folder: Path, args: argparse.Namespace, notebooks: list[Path]) -> int:
    if notebooks or _notebooks_in(folder):
        print(
            "error: check --watch watches .py files; grade notebooks with `check` (or their test cells)",
            file=sys.stderr,
        )
        return 2
    if args.staff or args.adapter != "sandbox" or args.json:
        print("error: check --watch is a local check: no --staff, --adapter inprocess or --json", file=sys.stderr)
        return 2
    from grader.grading import watch

    return watch.watch(folder, args.targets, args.device)


def _notebooks_in(folder: Path) -> list[Path]:
    """The notebooks of a submission folder whose module has no ``.py`` file there."""
    if not folder.is_dir():
        return []
    return [p for p in sorted(folder.glob("*.ipynb")) if p.stem in rubric.MODULES and not p.with_suffix(".py").exists()]


def _from_notebooks(notebooks: list[Path], into: Path) -> tuple[list[str], dict[str, str]]:
    """Write the modules of ``notebooks`` into ``into``, beside the module ``.py`` files of
    their folders.  ``(notes, {module: its text})``: the notes say why a notebook gives no
    module (that module then scores 0) and which locked cells were restored."""
    from grader.notebooks import cells

    for path in {p.parent for p in notebooks}:
        for module_file in path.glob("*.py"):
            if module_file.stem in rubric.MODULES:
                shutil.copyfile(module_file, into / module_file.name)
    ok, problems = cells.submission_folder(notebooks, into)
    notes = [f"{problem}: every exercise of {module} scores 0" for module, problem in problems.items()]
    notes += [note for restored in ok.values() for note in restored]
    return notes, {m: (into / f"{m}.py").read_text(encoding="utf-8") for m in ok}


def _grade_and_report(
    folder: Path,
    args: argparse.Namespace,
    label: str | None = None,
    notes: Sequence[str] = (),
    from_notebooks: Mapping[str, str] | None = None,
) -> int:
    """Grade ``folder`` as ``args`` ask and print the report (naming the submission ``label``
    when given, with ``notes`` first); lines of the modules read out of notebooks
    (``from_notebooks``: ``{module: its text}``) are named by cell."""
    staff_key = None
    if args.staff:
        try:
            staff_key = staffkey.from_environment()
        except staffkey.StaffKeyError as exc:
            print(f"error: {staffkey.ENV}: {exc}", file=sys.stderr)
            return 2
        if staff_key is None:
            print(
                f"note: {staffkey.ENV} is not set: the hidden tests run, but every example is the public one a "
                f"student's local check draws (a replayable grade); set {staffkey.ENV} to grade as batch does",
                file=sys.stderr,
            )
        else:
            staffkey.hide_this_process()
    from grader.grading import isolation

    try:
        result = runner.grade(
            folder,
            args.targets,
            adapter=args.adapter,
            staff=args.staff,
            devices=args.device,
            progress=not args.quiet and sys.stderr.isatty(),
            staff_key=staff_key,
            fork_files=not args.serial,
            weak_isolation=args.weak_isolation,
        )
    except isolation.IsolationRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if label:
        result.submission = label
    result.notes[:0] = notes
    text = report.render(result)
    if from_notebooks:
        from grader.notebooks import cells

        for module, module_text in from_notebooks.items():
            text = cells.in_cells(text, module, module_text)  # lines of the notebook, not of the module read out of it
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_gradescope(), indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from grader.authoring import stubgen

    return _written(stubgen.generate(check=args.check), args.check, "generate", "stubs")


def _notebooks(args: argparse.Namespace) -> int:
    from grader.notebooks import build

    if (args.course_id is not None or args.force) and not args.course:
        print("error: --course-id and --force go with --course DIR", file=sys.stderr)
        return 2
    status = _written(build.write(check=args.check), args.check, "notebooks", "notebooks")
    if args.course and status == 0:
        from grader.notebooks import course

        try:
            root = course.setup_course(
                args.course, course_id=args.course_id or course.DEFAULT_COURSE_ID, force=args.force
            )
        except course.CourseError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"wrote the nbgrader course {root} (nbgrader_config.py: the grader's block; source notebooks)")
        print(course.next_steps(root))
    return status


def _written(paths: list[Path], check: bool, command: str, what: str) -> int:
    """Report files a generator wrote (or, with ``check``, found out of date: exit 1)."""
    for path in paths:
        print(("out of date: " if check else "wrote ") + str(path.relative_to(ROOT)))
    if check and paths:
        print(f"run `python -m grader {command}` and commit the {what}", file=sys.stderr)
        return 1
    if not paths:
        print(f"{what} are up to date")
    return 0


def _batch(args: argparse.Namespace) -> int:
    from grader.grading import batch, cluster, isolation
    from grader.notebooks import cells

    if not Path(args.submissions).is_dir():
        print(f"error: {args.submissions} is not a folder", file=sys.stderr)
        return 2
    try:
        graded, skipped = batch.run(
            args.submissions,
            args.out,
            workers=args.workers,
            scheduler=args.scheduler,
            devices=args.device,
            weak_isolation=args.weak_isolation,
            stager=cells.stage_modules,  # .py files, and a module handed in only as a notebook
        )
    except (staffkey.StaffKeyError, cluster.ClusterError, isolation.IsolationRefused) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished submissions are kept; run the same command again to go on", file=sys.stderr)
        return 130
    print(f"graded {graded} submission(s), {skipped} already done; gradebook: {Path(args.out) / 'grades.csv'}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from grader.classreport import commands as report_commands

    return report_commands.run(args)


def _review(args: argparse.Namespace) -> int:
    from grader.review import commands as review_commands

    return review_commands.run(args)


def _list(args: argparse.Namespace) -> int:
    for module in rubric.MODULES:
        print(f"{module} ({rubric.module_points(module):g} points)")
        for ex in rubric.exercises_of(module):
            print(f"  {ex.id:<32} {ex.points:>4g}  {ex.title}  [{', '.join(ex.names)}]")
    return 0


def _mutants(args: argparse.Namespace) -> int:
    from grader.authoring import mutants

    return mutants.main(args.modules, workers=args.workers, json_path=args.json)


def _gradescope(args: argparse.Namespace) -> int:
    from grader.release import gradescope

    if args.zip == "try":
        if len(args.rest) != 2:
            print("error: usage: python -m grader gradescope try ZIP SUBMISSION", file=sys.stderr)
            return 2
        package, submission = (Path(p) for p in args.rest)
        if not zipfile.is_zipfile(package) or not submission.exists():
            print(f"error: {package} is no zip, or {submission} does not exist", file=sys.stderr)
            return 2
        result, output = gradescope.try_package(
            package, submission, args.refuse_namespaces, not args.no_landlock, args.keep
        )
        print(output.rstrip())
        if "output" in result:
            print(f"\nwhat the student sees:\n{result['output']}")
        return 0
    if args.rest:
        print("error: gradescope OUT.zip takes no other argument (did you mean `gradescope try`?)", file=sys.stderr)
        return 2
    try:
        fingerprint, new_key = gradescope.build(args.zip, weak_isolation=args.weak_isolation)
    except staffkey.StaffKeyError as exc:
        print(f"error: {staffkey.ENV}: {exc}", file=sys.stderr)
        return 2
    if new_key is not None:
        print(
            f"note: {staffkey.ENV} is not set: made a new staff key and wrote it to {new_key} (mode 600); keep it "
            f"secret; `{staffkey.ENV}=$(cat {new_key}) python -m grader batch ...` grades with the same examples",
            file=sys.stderr,
        )
    print(f"wrote {args.zip} (staff key {fingerprint}); upload it as the assignment's autograder")
    return 0


def _release(args: argparse.Namespace) -> int:
    from grader.release import student

    try:
        return student.build(Path(args.out), catalog=not args.skip_catalog)
    except RuntimeError as exc:  # a ReleaseError, or a grading inside the release that could not run
        print(f"error: {exc}", file=sys.stderr)
        return 2
