"""``python -m grader mutants``: measure the tests by the wrong answers they catch.

Every catalog entry (:mod:`grader.mistakes`) is written out as a one-module submission
and graded through the normal path.  A wrong entry must lose points on its module (it
is "killed"); a correct alternative must keep full marks; a trivial entry (zeros, ones,
seeded noise, an echoed input) must score 0 on its exercise.  The report also counts the
wrong entries that keep more than half of their exercise's points, and measures the
hints: how many entries' feedback names their own mistake, and how many name another.
"""

import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from grader import mistakes, rubric
from grader.grading import runner
from grader.grading.scoring import Report
from grader.outcomes import CRASHED, ERROR, FAILED, NOT_IMPLEMENTED, OUT_OF_MEMORY, PASSED, TIMEOUT


@dataclass
class Verdict:
    """The grading of one catalog entry."""

    mutant: mistakes.Mutant
    score: float
    max_score: float
    killers: list[str]
    report: Report

    @property
    def exercise_score(self) -> tuple[float, float]:
        """``(score, max_score)`` on the entry's own exercise."""
        for r in self.report.results:
            if r.exercise.id == self.mutant.exercise:
                return r.score, r.max_score
        return 0.0, 0.0

    @property
    def keeps_half(self) -> bool:
        """A wrong entry that keeps more than half of its exercise's points."""
        got, possible = self.exercise_score
        return not self.mutant.correct and possible > 0 and got > possible / 2

    @property
    def ok(self) -> bool:
        """Wrong entries must lose points to a failing test (not to a broken grading run);
        trivial ones must earn nothing on their exercise; correct ones must keep them all."""
        full = self.score >= self.max_score
        if self.mutant.correct:
            return full
        if self.mutant.trivial and self.exercise_score[0] > 0:
            return False
        return not full and any(
            rec.status in (FAILED, NOT_IMPLEMENTED, ERROR, TIMEOUT, CRASHED, OUT_OF_MEMORY)
            for r in self.report.results
            for rec in r.records
        )

    @property
    def passed(self) -> list[str]:
        """The tests the entry passed."""
        return sorted(
            {rec.nodeid.rsplit("::", 1)[-1] for r in self.report.results for rec in r.records if rec.status == PASSED}
        )

    def feedback(self) -> list[str]:
        """Every feedback message of the grading."""
        return [m for r in self.report.results for m in r.feedback()]

    def named(self) -> list[str]:
        """The catalog mistakes the feedback's hints name."""
        return named_mistakes("\n".join(self.feedback()))


_HINT = re.compile(r"hint: your code matches (.+)$", re.MULTILINE)


def named_mistakes(text: str) -> list[str]:
    """The mistakes named by catalog hints (``hint: your code matches <mistake>``) in ``text``."""
    return list(dict.fromkeys(m.strip() for m in _HINT.findall(text)))


def hint_quality(verdicts: Iterable[Verdict]) -> tuple[int, int, int]:
    """``(named_own, named_other, total)`` over the wrong entries of ``verdicts``: entries
    whose hints name their own mistake, entries whose hints name a mistake of another
    exercise, and how many wrong entries there are."""
    own = other = total = 0
    for v in verdicts:
        if v.mutant.correct:
            continue
        total += 1
        named = v.named()
        own += v.mutant.mistake in named
        theirs = {m.mistake for m in mistakes.hint_candidates(v.mutant.module) if m.exercise == v.mutant.exercise}
        other += any(n not in theirs for n in named)
    return own, other, total


def _grade(
    mutants: Iterable[mistakes.Mutant],
    targets_of: Callable[[mistakes.Mutant], list[str]],
    modules_dir: Path,
    workers: int,
) -> dict[mistakes.Mutant, Report]:
    """Grade ``mutants`` in one grading run each per module; ``{mutant: report}``."""
    entries = []
    for m in mutants:
        folder = modules_dir / f"{m.module}-{m.id}"
        folder.mkdir(exist_ok=True)
        (folder / f"{m.module}.py").write_text(m.source(), encoding="utf-8")
        entries.append((m, folder, targets_of(m)))
    by_module: dict[str, list[tuple[str, Path, list[str]]]] = {}
    for m, folder, targets in entries:
        by_module.setdefault(m.module, []).append((f"{m.module}-{m.id}", folder, targets))
    reports: dict[str, Report] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for done in pool.map(lambda group: runner.grade_many(group, shrink=False, staff=True), _chunks(by_module)):
            reports.update(done)
    return {m: reports[f"{m.module}-{m.id}"] for m, _, _ in entries}


def _chunks(
    by_module: dict[str, list[tuple[str, Path, list[str]]]], size: int = 24
) -> Iterator[list[tuple[str, Path, list[str]]]]:
    """Groups of at most ``size`` entries of one module, so both cores stay busy."""
    for group in by_module.values():
        for i in range(0, len(group), size):
            yield group[i : i + size]


def run(modules: Sequence[str] = (), workers: int = 2) -> list[Verdict]:
    """Grade the catalog entries of ``modules`` (all when empty); the verdicts in order.

    A wrong entry is graded on its own exercise first (points lost there are lost on the
    module) and on the whole module only if it survives that; a correct alternative is
    always graded on the whole module.
    """
    mutants = [m for m in mistakes.load() + mistakes.trivial() if not modules or m.module in modules]
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp_name:
        tmp = Path(tmp_name)
        reports = _grade(mutants, lambda m: [m.module if m.correct else m.exercise], tmp, workers)
        survivors = [m for m in mutants if not m.correct and reports[m].score >= reports[m].max_score]
        if survivors:
            reports.update(_grade(survivors, lambda m: [m.module], tmp, workers))
    verdicts = []
    for m in mutants:
        report = reports[m]
        sub = f"{m.module}-{m.id}"
        killers = [
            rec.nodeid.rsplit("::", 1)[-1].replace(f"[{sub}]", "").replace(f"[{sub}-", "[")
            for r in report.results
            for rec in r.records
            if rec.status != PASSED
        ]
        verdicts.append(Verdict(m, report.score, report.max_score, killers, report))
    return verdicts


def main(
    modules: Sequence[str] = (),
    workers: int = 2,
    out: TextIO = sys.stdout,
    json_path: str | os.PathLike[str] | None = None,
) -> int:
    """Print killed/total per module and every entry's killers (and write them as JSON to
    ``json_path``); exit code 1 when a wrong entry keeps full marks or a correct one loses."""
    unknown = [m for m in modules if m not in rubric.MODULES]
    if unknown:
        print(f"error: unknown module(s) {unknown}", file=sys.stderr)
        return 2
    start = time.monotonic()
    verdicts = run(modules, workers)
    bad = [v for v in verdicts if not v.ok]
    for module in rubric.MODULES:
        mine = [v for v in verdicts if v.mutant.module == module]
        if not mine:
            continue
        wrong = [v for v in mine if not v.mutant.correct and not v.mutant.trivial]
        trivial = [v for v in mine if v.mutant.trivial]
        right = [v for v in mine if v.mutant.correct]
        killed = sum(v.ok for v in wrong)
        half = sum(v.keeps_half for v in wrong)
        zero = sum(v.exercise_score[0] == 0 for v in trivial)
        own, other, total = hint_quality(wrong)
        print(
            f"\n{module}: killed {killed}/{len(wrong)} wrong implementations "
            f"({half} keep more than half of their exercise's points); "
            f"{zero}/{len(trivial)} trivial entries score 0; "
            f"{sum(v.ok for v in right)}/{len(right)} correct alternatives keep full marks; "
            f"hints name their own mistake for {own}/{total}, another exercise's for {other}",
            file=out,
        )
        for v in mine:
            mark = "ok  " if v.ok else "FAIL"
            kind = "correct" if v.mutant.correct else "trivial" if v.mutant.trivial else "wrong"
            score = f"{v.score:g}/{v.max_score:g}"
            killers = ", ".join(sorted(set(v.killers))[:4]) + (" ..." if len(set(v.killers)) > 4 else "")
            print(f"  {mark} {v.mutant.id:<28} {kind:<7} {score:>7}  {v.mutant.mistake}", file=out)
            if killers and not v.mutant.correct:
                print(f"       killed by: {killers}", file=out)
            elif v.mutant.correct and not v.ok:
                print(f"       lost points in: {killers}", file=out)
    print(
        f"\n{len(verdicts) - len(bad)}/{len(verdicts)} catalog entries behave as expected "
        f"({time.monotonic() - start:.0f}s)",
        file=out,
    )
    for v in bad:
        why = (
            "loses points"
            if v.mutant.correct
            else f"earns {v.exercise_score[0]:g} points on {v.mutant.exercise}"
            if v.mutant.trivial
            else "keeps full marks"
        )
        print(f"  SURVIVOR: {v.mutant.module}:{v.mutant.id} ({v.mutant.mistake}) {why}", file=out)
    if json_path:
        entries = [
            {
                "module": v.mutant.module,
                "id": v.mutant.id,
                "exercise": v.mutant.exercise,
                "mistake": v.mutant.mistake,
                "correct": v.mutant.correct,
                "trivial": v.mutant.trivial,
                "score": v.score,
                "max_score": v.max_score,
                "exercise_score": v.exercise_score[0],
                "exercise_max": v.exercise_score[1],
                "keeps_half": v.keeps_half,
                "ok": v.ok,
                "killers": sorted(set(v.killers)),
                "passed": v.passed,
                "named": v.named(),
                "feedback": v.feedback(),
            }
            for v in verdicts
        ]
        Path(json_path).write_text(json.dumps({"ok": not bad, "entries": entries}, indent=2) + "\n")
    return 1 if bad else 0
