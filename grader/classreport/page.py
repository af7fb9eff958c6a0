"""The class report as one self-contained HTML page: the template ``templates/report.html``
rendered with Jinja2, the plots inlined as SVG.

Jinja2 autoescapes every value (ids, statuses, feedback text, notes: all of it may come from
a submission); only the SVG that :mod:`~grader.classreport.plots` drew from numbers and
rubric names is marked safe.  The page loads nothing (no script, no stylesheet, no image
file) and says so in its Content-Security-Policy.
"""

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from grader import rubric
from grader.classreport import data, plots, stats

TEMPLATES = Path(__file__).resolve().parent / "templates"
TEMPLATE = "report.html"


def number(value: float, digits: int = 2) -> str:
    """``value`` rounded to ``digits`` decimals, without trailing zeros (``12.5``, ``30``)."""
    text = f"{round(value, digits):.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def plural(count: int, noun: str) -> str:
    """``1 submission``, ``2 submissions``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def environment() -> Environment:
    """The Jinja2 environment of the report: autoescaped, strict about undefined names."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["num"] = number
    env.filters["plural"] = plural
    return env


def figures(summary: stats.Summary) -> dict[str, Markup]:
    """The report's plots by name (``total``, ``modules``, ``exercises-<module>``, ``time``),
    as SVG marked safe for the template; ``time`` is absent when no time was recorded."""
    svg = {
        "total": plots.histograms(
            [("total", summary.total.values, summary.total.maximum)], "total", columns=1, bins=20
        ),
        "modules": plots.histograms([(d.label, d.values, d.maximum) for d in summary.modules], "modules"),
    }
    for module in rubric.MODULES:
        panels = [
            (e.exercise.id, e.scores.values, e.scores.maximum) for e in summary.exercises if e.exercise.module == module
        ]
        svg[f"exercises-{module}"] = plots.histograms(panels, f"ex-{module}")
    seconds = [s for _, s in summary.timing.recorded]
    if seconds:
        svg["time"] = plots.histograms(
            [("grading time per submission", seconds, max(seconds))],
            "time",
            xlabel="seconds",
            columns=1,
            bins=20,
        )
    return {name: Markup(text) for name, text in svg.items()}


def render(batch: data.Batch) -> str:
    """The HTML of the class report of ``batch``: the same batch gives the same text."""
    summary = stats.summarize(batch)
    template = environment().get_template(TEMPLATE)
    return template.render(
        batch=batch,
        folder=batch.folder.name or str(batch.folder),
        summary=summary,
        figures=figures(summary),
        modules=rubric.MODULES,
        limits=stats.LIMITS,
    )
