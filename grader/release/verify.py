"""Grade inside a student release, with the release's own grader, as its students will.

* The reference, copied in as a submission, must get full public marks from
  ``python -m grader check`` run in the release; the release's stubs must get 0, every
  exercise "not implemented".
* The catalog's wrong entries (written out from this repository: the release holds no
  patch) are graded by the release's public tests alone; :func:`catalog` prints the catch
  rate per module and lists the mistakes only staff grading catches (hidden tests, or the
  examples of the secret key).

Every grading runs in a child process whose working directory is the release, with
``PYTHONDONTWRITEBYTECODE`` so that it leaves no generated file behind.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from grader import ROOT, mistakes, rubric
from grader.outcomes import NOT_IMPLEMENTED

#: The public catch rate per module the release aims for (the issue's 90%).
AIM = 0.9

#: Run in the release: grade ``[{id, path, targets}]`` with its runner, public tests only.
_GRADE_MANY = """
import json, sys
from grader.grading import runner
entries = json.load(open(sys.argv[1], encoding="utf-8"))
reports = runner.grade_many([(e["id"], e["path"], e["targets"]) for e in entries], shrink=False)
out = {i: {"score": r.score, "max_score": r.max_score,
           "failed": [rec.nodeid for x in r.results for rec in x.records if rec.status != "passed"]}
       for i, r in reports.items()}
json.dump(out, open(sys.argv[2], "w", encoding="utf-8"))
"""


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    for name in ("GRADER_STAFF_KEY", "GRADER_STAFF_KEY_FD", "PYTHONPATH"):
        env.pop(name, None)
    return env


def check(release: Path, submission: Path) -> dict[str, Any]:
    """``python -m grader check --submission SUBMISSION --json`` run in ``release``; its results.json."""
    with tempfile.TemporaryDirectory(prefix="release-check-") as tmp:
        out = Path(tmp) / "results.json"
        cmd = [sys.executable, "-m", "grader", "check", "--quiet", "--submission", str(submission), "--json", str(out)]
        proc = subprocess.run(cmd, cwd=release, env=_env(), capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(
                f"`grader check` failed in {release} (rc {proc.returncode}):\n{proc.stdout}{proc.stderr}"
            )
        return json.loads(out.read_text(encoding="utf-8"))


def outcomes(results: dict[str, Any]) -> dict[str, tuple[float, float, str]]:
    """``{exercise ID: (score, max_score, outcome)}`` of a results.json's visible tests."""
    found = {}
    for test in results["tests"]:
        if test.get("visibility") == "visible":
            ex_id = test["name"].split(":", 1)[0]
            found[ex_id] = (test["score"], test["max_score"], test.get("extra_data", {}).get("outcome", ""))
    return found


def reference_and_stubs(release: Path, say: Callable[[str], None] = print) -> bool:
    """The reference gets full public marks in ``release``; its stubs get 0, "not implemented"
    (the two checks run side by side)."""
    with tempfile.TemporaryDirectory(prefix="release-reference-") as tmp:
        reference = Path(tmp) / "submission"
        shutil.copytree(ROOT / "solutions", reference, ignore=shutil.ignore_patterns("__pycache__"))
        with ThreadPoolExecutor(max_workers=2) as pool:
            got, stubs = pool.map(lambda folder: check(release, folder), [reference, release / "assignments"])
    ok = True
    short = sorted(ex for ex, (score, top, _) in outcomes(got).items() if score < top)
    if short or got["score"] < got["max_score"] or len(outcomes(got)) != len(rubric.EXERCISES):
        say(f"FAIL the reference scores {got['score']:g}/{got['max_score']:g} in the release (short: {short})")
        ok = False
    else:
        say(f"the reference scores {got['score']:g}/{got['max_score']:g} in the release (full public marks)")
    wrong = sorted(ex for ex, (score, _, why) in outcomes(stubs).items() if score != 0 or why != NOT_IMPLEMENTED)
    if wrong or stubs["score"] != 0 or len(outcomes(stubs)) != len(rubric.EXERCISES):
        say(f"FAIL the stubs score {stubs['score']:g} in the release; not 'not implemented': {wrong}")
        ok = False
    else:
        say(f"the stubs score 0 in the release, all {len(outcomes(stubs))} exercises 'not implemented'")
    return ok


def grade_sources(release: Path, plan: Sequence[tuple[str, str, str, Sequence[str]]]) -> dict[str, dict[str, Any]]:
    """Grade one-module submissions ``plan`` = ``[(id, module, source, targets)]`` with the
    release's runner, public tests only, in two processes side by side; ``{id: {score,
    max_score, failed}}`` (the scores are those of the exercises ``targets`` select)."""
    with tempfile.TemporaryDirectory(prefix="release-grade-") as tmp_name:
        tmp = Path(tmp_name)
        entries = []
        for n, (ident, module, source, targets) in enumerate(plan):
            folder = tmp / f"{n}"
            folder.mkdir()
            (folder / f"{module}.py").write_text(source, encoding="utf-8")
            entries.append({"id": ident, "path": str(folder), "targets": list(targets)})
        halves = [entries[0::2], entries[1::2]]
        procs = []
        for i, half in enumerate(h for h in halves if h):
            (tmp / f"plan{i}.json").write_text(json.dumps(half), encoding="utf-8")
            cmd = [sys.executable, "-c", _GRADE_MANY, str(tmp / f"plan{i}.json"), str(tmp / f"out{i}.json")]
            procs.append((i, subprocess.Popen(cmd, cwd=release, env=_env(), stderr=subprocess.PIPE, text=True)))
        graded: dict[str, dict[str, Any]] = {}
        for i, proc in procs:
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"grading in {release} failed:\n{err}")
            graded.update(json.loads((tmp / f"out{i}.json").read_text(encoding="utf-8")))
        return graded


def grade_entries(
    release: Path, entries: Sequence[mistakes.Mutant], whole_module: bool = False
) -> dict[str, dict[str, Any]]:
    """Grade catalog ``entries`` on their own exercise (``whole_module``: on their module)
    with the release's runner, in two processes side by side; ``{entry id: {score,
    max_score, failed}}``."""
    plan = [(m.id, m.module, m.source(), [m.module if whole_module else m.exercise]) for m in entries]
    return grade_sources(release, plan)


def catalog(release: Path, modules: Sequence[str] = (), say: Callable[[str], None] = print) -> dict[str, float]:
    """Grade the catalog's wrong entries in ``release`` by its public tests alone; print the
    catch rate per module and the mistakes only staff grading catches; ``{module: rate}``."""
    wrong = [m for m in mistakes.load() if not m.correct and (not modules or m.module in modules)]
    graded = grade_entries(release, wrong)
    # as `grader mutants` does: points lost on the exercise are lost on the module; an entry
    # that keeps them is graded on its whole module
    survivors = [m for m in wrong if graded[m.id]["score"] >= graded[m.id]["max_score"]]
    if survivors:
        graded.update(grade_entries(release, survivors, whole_module=True))
    rates = {}
    for module in rubric.MODULES:
        mine = [m for m in wrong if m.module == module]
        if not mine:
            continue
        missed = [m for m in mine if graded[m.id]["score"] >= graded[m.id]["max_score"]]
        rates[module] = 1 - len(missed) / len(mine)
        mark = "" if rates[module] >= AIM else f"  (below the {AIM:.0%} aim)"
        caught = len(mine) - len(missed)
        say(f"{module}: the public tests catch {caught}/{len(mine)} wrong entries ({rates[module]:.0%}){mark}")
        for m in missed:
            say(f"    only staff grading catches {m.id} ({m.exercise}): {m.mistake}")
    return rates


def run(release: Path, catalog_too: bool = True, say: Callable[[str], None] = print) -> bool:
    """The in-release checks (see the module doc); whether they hold.  The catalog's catch
    rate is reported, not enforced here: ``tests/selftest/test_catalog.py`` enforces it."""
    ok = reference_and_stubs(release, say)
    if catalog_too:
        catalog(release, say=say)
    return ok
