"""The class report's plots: histograms drawn with matplotlib (Agg, no pyplot state) and
returned as SVG text to inline in the page.

The SVG is deterministic: ``svg.hashsalt`` fixes the ids matplotlib would otherwise draw at
random (each plot gets its own salt, so ids never clash inside one page), ``svg.fonttype``
``none`` writes text as text (no glyph paths that depend on the font files) and the
metadata (the date, matplotlib's version) is left out.  Labels are the rubric's names and
numbers only: nothing a submission wrote reaches a plot.
"""

import io
import math
import re
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.typing import RcKeyType

matplotlib.use("Agg")  # never a window, whatever MPLBACKEND says; the plots are drawn without pyplot

#: matplotlib settings for every plot (the salt is added per plot).
STYLE: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
#: No metadata at all: no date, and no matplotlib version in the bytes.
METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}
COLOR = "#4c72b0"
#: Where an SVG of matplotlib defines or refers to an id.
_ID = re.compile(r'( id="|url\(#|xlink:href="#)')
BINS = 10


def to_svg(figure: Figure, salt: str) -> str:
    """``figure`` as SVG text that can sit inside an HTML page: no XML prolog or doctype, and
    every id (and each reference to one) prefixed with ``salt``, so that the plots of one page
    share no id (matplotlib names the groups of every figure ``figure_1``, ``axes_1``, ...)."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt}):
        figure.savefig(buf, format="svg", metadata=METADATA)
    text = buf.getvalue()
    text = _ID.sub(lambda m: f"{m.group(1)}{salt}-", text[text.index("<svg") :])
    return text.strip() + "\n"


def histograms(
    panels: Sequence[tuple[str, Sequence[float], float]],
    salt: str,
    xlabel: str = "points",
    columns: int = 4,
    bins: int = BINS,
) -> str:
    """One SVG of histograms side by side: ``panels`` holds ``(title, values, maximum)`` each,
    drawn over ``[0, maximum]`` in ``bins`` bins (values outside are clipped onto the ends)."""
    columns = max(1, min(columns, len(panels)))
    rows = max(1, math.ceil(len(panels) / columns))
    width, height = max(2.6 * columns, 6.0), 2.0 * rows + 0.2  # inches
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(width, height))
        for index, (title, values, maximum) in enumerate(panels):
            ax = figure.add_subplot(rows, columns, index + 1)  # only the cells with a panel
            top = maximum if maximum > 0 else 1.0
            counts, edges = numpy.histogram(numpy.clip(numpy.asarray(values, dtype=float), 0.0, top), bins, (0.0, top))
            ax.stairs(counts, edges, fill=True, color=COLOR)
            ax.set_title(title)
            ax.set_xlim(0.0, top)
            ax.set_ylim(0, max(1, int(counts.max(initial=0))) * 1.05)
            ax.set_xlabel(xlabel)
            if index % columns == 0:
                ax.set_ylabel("submissions")
            ax.xaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 5, 10]))
            ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        figure.subplots_adjust(
            left=0.6 / width, right=1 - 0.25 / width, top=1 - 0.3 / height, bottom=0.5 / height, wspace=0.3, hspace=0.75
        )
        return to_svg(figure, salt)
