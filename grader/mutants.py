"""``python -m grader mutants``: measure the tests by the wrong answers they catch.

Every catalog entry (:mod:`grader.catalog`) is written out as a one-module submission
and graded through the normal path.  A wrong entry must lose points on its module (it
is "killed"); a correct alternative must keep full marks.
"""

import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from grader import catalog, rubric, runner
from grader.errors import PASSED


@dataclass
class Verdict:
    """The grading of one catalog entry."""

    mutant: catalog.Mutant
    score: float
    max_score: float
    killers: list
    report: object

    @property
    def ok(self):
        """Wrong entries must lose points; correct ones must keep them all."""
        full = self.score >= self.max_score
        return full if self.mutant.correct else not full


def grade_mutant(mutant):
    """Grade ``mutant`` as a submission holding only its module; a :class:`Verdict`.

    A wrong entry is graded on its own exercise first (points lost there are lost on the
    module) and on the whole module only if it survives that; a correct alternative is
    always graded on the whole module.
    """
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutant.id}-") as tmp:
        (Path(tmp) / f"{mutant.module}.py").write_text(mutant.source(), encoding="utf-8")
        report = runner.grade(tmp, [mutant.module if mutant.correct else mutant.exercise], shrink=False)
        if not mutant.correct and report.score >= report.max_score:
            report = runner.grade(tmp, [mutant.module], shrink=False)
    killers = [rec.nodeid.rsplit("::", 1)[-1] for r in report.results for rec in r.records if rec.status != PASSED]
    return Verdict(mutant, report.score, report.max_score, killers, report)


def run(modules=(), workers=2):
    """Grade the catalog entries of ``modules`` (all when empty); the verdicts in order."""
    mutants = [m for m in catalog.load() if not modules or m.module in modules]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(grade_mutant, mutants))


def main(modules=(), workers=2, out=sys.stdout):
    """Print killed/total per module and every entry's killers; exit code 1 on a survivor."""
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
        wrong = [v for v in mine if not v.mutant.correct]
        right = [v for v in mine if v.mutant.correct]
        killed = sum(v.ok for v in wrong)
        print(f"\n{module}: killed {killed}/{len(wrong)} wrong implementations; "
              f"{sum(v.ok for v in right)}/{len(right)} correct alternatives keep full marks", file=out)
        for v in mine:
            mark = "ok  " if v.ok else "FAIL"
            kind = "correct" if v.mutant.correct else "wrong"
            score = f"{v.score:g}/{v.max_score:g}"
            killers = ", ".join(sorted(set(v.killers))[:4]) + (" ..." if len(set(v.killers)) > 4 else "")
            print(f"  {mark} {v.mutant.id:<28} {kind:<7} {score:>7}  {v.mutant.mistake}", file=out)
            if killers and not v.mutant.correct:
                print(f"       killed by: {killers}", file=out)
            elif v.mutant.correct and not v.ok:
                print(f"       lost points in: {killers}", file=out)
    print(f"\n{len(verdicts) - len(bad)}/{len(verdicts)} catalog entries behave as expected "
          f"({time.monotonic() - start:.0f}s)", file=out)
    for v in bad:
        why = "keeps full marks" if not v.mutant.correct else "loses points"
        print(f"  SURVIVOR: {v.mutant.module}:{v.mutant.id} ({v.mutant.mistake}) {why}", file=out)
    return 1 if bad else 0
