"""``python -m grader mutants``: measure the tests by the wrong answers they catch.

Every catalog entry (:mod:`grader.catalog`) is written out as a one-module submission
and graded through the normal path.  A wrong entry must lose points on its module (it
is "killed"); a correct alternative must keep full marks.
"""

import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from grader import catalog, rubric, runner
from grader.errors import CRASHED, ERROR, FAILED, NOT_IMPLEMENTED, OUT_OF_MEMORY, PASSED, TIMEOUT


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
        """Wrong entries must lose points to a failing test (not to a broken grading run);
        correct ones must keep them all."""
        full = self.score >= self.max_score
        if self.mutant.correct:
            return full
        return not full and any(rec.status in (FAILED, NOT_IMPLEMENTED, ERROR, TIMEOUT, CRASHED, OUT_OF_MEMORY)
                                for r in self.report.results for rec in r.records)


def _grade(mutants, targets_of, modules_dir, workers):
    """Grade ``mutants`` in one grading run each per module; ``{mutant: report}``."""
    entries = []
    for m in mutants:
        folder = modules_dir / f"{m.module}-{m.id}"
        folder.mkdir(exist_ok=True)
        (folder / f"{m.module}.py").write_text(m.source(), encoding="utf-8")
        entries.append((m, folder, targets_of(m)))
    by_module = {}
    for m, folder, targets in entries:
        by_module.setdefault(m.module, []).append((f"{m.module}-{m.id}", folder, targets))
    reports = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for done in pool.map(lambda group: runner.grade_many(group, shrink=False, staff=True), _chunks(by_module)):
            reports.update(done)
    return {m: reports[f"{m.module}-{m.id}"] for m, _, _ in entries}


def _chunks(by_module, size=24):
    """Groups of at most ``size`` entries of one module, so both cores stay busy."""
    for group in by_module.values():
        for i in range(0, len(group), size):
            yield group[i:i + size]


def run(modules=(), workers=2):
    """Grade the catalog entries of ``modules`` (all when empty); the verdicts in order.

    A wrong entry is graded on its own exercise first (points lost there are lost on the
    module) and on the whole module only if it survives that; a correct alternative is
    always graded on the whole module.
    """
    mutants = [m for m in catalog.load() if not modules or m.module in modules]
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        tmp = Path(tmp)
        reports = _grade(mutants, lambda m: [m.module if m.correct else m.exercise], tmp, workers)
        survivors = [m for m in mutants if not m.correct and reports[m].score >= reports[m].max_score]
        if survivors:
            reports.update(_grade(survivors, lambda m: [m.module], tmp, workers))
    verdicts = []
    for m in mutants:
        report = reports[m]
        sub = f"{m.module}-{m.id}"
        killers = [rec.nodeid.rsplit("::", 1)[-1].replace(f"[{sub}]", "").replace(f"[{sub}-", "[")
                   for r in report.results for rec in r.records if rec.status != PASSED]
        verdicts.append(Verdict(m, report.score, report.max_score, killers, report))
    return verdicts


def main(modules=(), workers=2, out=sys.stdout, json_path=None):
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
    if json_path:
        entries = [{"module": v.mutant.module, "id": v.mutant.id, "exercise": v.mutant.exercise,
                    "mistake": v.mutant.mistake, "correct": v.mutant.correct, "score": v.score,
                    "max_score": v.max_score, "ok": v.ok, "killers": sorted(set(v.killers)),
                    "feedback": [m for r in v.report.results for m in r.feedback()]} for v in verdicts]
        Path(json_path).write_text(json.dumps({"ok": not bad, "entries": entries}, indent=2) + "\n")
    return 1 if bad else 0
