"""The terminal report: a table of exercises, then the feedback for each failure."""

from grader.grading.scoring import Report
from grader.outcomes import HIDDEN, PASSED

_MARK = {PASSED: "ok"}


def render(report: Report, max_messages: int = 3, totals: bool = True) -> str:
    """The report as text: table, per-module totals (unless not ``totals``: the report of one
    exercise in a notebook's test cell), then feedback for each exercise lost."""
    labels = [r.exercise.id for r in report.results] + [f"{m} total" for m in report.module_scores()]
    width = max(len(label) for label in ["exercise", "TOTAL", *labels]) if report.results else 10
    lines = [
        f"Submission: {report.submission}",
        "",
        f"  {'exercise':<{width}}  {'points':>13}  status",
        f"  {'-' * width}  {'-' * 13}  {'-' * 20}",
    ]
    for r in report.results:
        status = r.status
        hidden = sum(1 for rec in r.records if rec.status == HIDDEN)
        if hidden:
            status += f" ({hidden} hidden test{'s' if hidden > 1 else ''}, graded later)"
        lines.append(f"  {r.exercise.id:<{width}}  {_pts(r.score, r.max_score):>13}  {status}")
    if totals:
        lines.append(f"  {'-' * width}  {'-' * 13}")
        for module, (got, possible) in report.module_scores().items():
            lines.append(f"  {module + ' total':<{width}}  {_pts(got, possible):>13}")
        lines.append(f"  {'TOTAL':<{width}}  {_pts(report.score, report.max_score):>13}")
    ran_hidden = [(r, rec) for r in report.results for rec in r.records if rec.hidden and rec.status != HIDDEN]
    if ran_hidden:  # staff grading: a hidden test shows its name and passed/failed, nothing else
        lines += ["", "Hidden tests"]
        lines += [f"  {r.exercise.id:<{width}}  {rec.redacted().status:<6}  {rec.property}" for r, rec in ran_hidden]
        lines += [
            f"  {r.exercise.id:<{width}}  {_num(r.hidden_score)} points: {_num(r.public_score)} from the public tests,"
            f" {_num(r.score)} with the hidden ones"
            for r in report.results
            if r.hidden_score < 0
        ]
    if report.notes:
        lines += ["", "Notes"] + [f"  - {note}" for note in report.notes]
    failing = [r for r in report.results if r.feedback()]
    if failing:
        lines += ["", "Feedback"]
    for r in failing:
        lines.append(f"\n[{r.exercise.id}] {r.exercise.title}: {r.status}")
        messages = r.feedback()
        for msg in messages[:max_messages]:
            first, *rest = msg.splitlines()
            lines.append(f"  - {first}")
            lines += [f"    {line}" for line in rest]
        if len(messages) > max_messages:
            lines.append(
                f"  ... and {len(messages) - max_messages} more not shown (fixing the ones above often fixes them)"
            )
    return "\n".join(lines)


def _pts(got: float, possible: float) -> str:
    return f"{_num(got)} / {_num(possible)}"


def _num(x: float) -> str:
    return f"{x:g}" if float(x).is_integer() else f"{x:.2f}"
