"""Generate the student stubs in ``assignments/`` from the references in ``solutions/``.

The references mark each answer with nbgrader's markers::

    ### BEGIN SOLUTION
    ...
    ### END SOLUTION

Everything outside the markers is copied verbatim (signatures, docstrings, imports);
each marked block becomes a TODO naming the exercise ID and a ``NotImplementedError``
carrying that ID, indented like the block.
"""

import os
import re
from pathlib import Path

from grader import ROOT, rubric

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
HEADER = (
    "# Generated from solutions/{module}.py by `python -m grader generate`: fill in the TODOs.\n"
    "# Check your work with `python -m grader check {module}`.\n"
)
_DEF = re.compile(r"^(?P<indent>\s*)(?:async\s+)?(?:def|class)\s+(?P<name>\w+)")


class StubError(ValueError):
    """A reference file whose markers cannot be turned into a stub."""


def make_stub(source: str, module: str) -> str:
    """Return the stub text for the reference ``source`` of ``module``."""
    out = [HEADER.format(module=module)]
    scopes: list[tuple[int, str]] = []  # (indent, name) of the enclosing def/class lines
    in_block = False
    for lineno, line in enumerate(source.splitlines(keepends=True), 1):
        stripped = line.strip()
        if in_block:
            if stripped == END:
                in_block = False
            elif stripped == BEGIN:
                raise StubError(f"{module}.py:{lineno}: nested {BEGIN}")
            continue
        if stripped == BEGIN:
            if not scopes:
                raise StubError(f"{module}.py:{lineno}: {BEGIN} outside a function or class")
            indent = line[: len(line) - len(line.lstrip())]
            out.append(_todo(module, scopes, indent, lineno))
            in_block = True
            continue
        if stripped == END:
            raise StubError(f"{module}.py:{lineno}: {END} without {BEGIN}")
        match = _DEF.match(line)
        if match:
            depth = len(match["indent"])
            scopes = [s for s in scopes if s[0] < depth] + [(depth, match["name"])]
        out.append(line)
    if in_block:
        raise StubError(f"{module}.py: {BEGIN} without {END}")
    return "".join(out)


def _todo(module: str, scopes: list[tuple[int, str]], indent: str, lineno: int) -> str:
    top = scopes[0][1]
    exercise = rubric.exercise_for_name(module, top)
    if exercise is None:
        raise StubError(f"{module}.py:{lineno}: {top} is not covered by any exercise in grader/rubric.py")
    qualname = ".".join(name for _, name in scopes)
    return (
        f"{indent}# TODO({exercise.id}): write {qualname} (delete this raise).\n"
        f'{indent}raise NotImplementedError("{exercise.id}: {qualname} is not implemented yet")\n'
    )


def generate(
    check: bool = False,
    solutions: str | os.PathLike[str] | None = None,
    assignments: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Write (or, with ``check``, compare) every stub; return the out-of-date paths."""
    solutions = Path(solutions or ROOT / "solutions")
    assignments = Path(assignments or ROOT / "assignments")
    stale: list[Path] = []
    for module in rubric.MODULES:
        src = solutions / f"{module}.py"
        if not src.exists():
            continue
        dst = assignments / f"{module}.py"
        text = make_stub(src.read_text(encoding="utf-8"), module)
        if dst.exists() and dst.read_text(encoding="utf-8") == text:
            continue
        stale.append(dst)
        if not check:
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(text, encoding="utf-8")
    return stale
