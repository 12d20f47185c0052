"""The report's charts: matplotlib figures rendered to inline SVG strings.

The object-oriented API (``matplotlib.figure.Figure``) is used without pyplot, so no GUI backend or global figure
state is involved. Text stays text (``svg.fonttype: none``: smaller, searchable, rendered with the page's fonts),
and every figure gets its own hash salt so the ids matplotlib generates never collide between inline SVGs.
"""

from __future__ import annotations

import io
import re
from typing import Sequence

PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974",
           "#64B5CD"]
KEPT, DROPPED, THRESHOLD = "#4C72B0", "#DD8452", "#C44E52"

_RC = {
    "svg.fonttype": "none",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "legend.fontsize": 8,
    "legend.frameon": False,
}


def source_colors(sources: Sequence[str]) -> dict[str, str]:
    return {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(sorted(set(sources)))}


def new_figure(width: float, height: float, layout: str | None = "constrained"):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout=layout)


def to_svg(fig, name: str) -> str:
    """The figure as an ``<svg>`` element for inline use: no XML prolog, no DOCTYPE and no namespace URLs (the
    HTML parser puts inline SVG in its namespace), ids salted with ``name``."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg, count=2)
    # Scale with the page: the intrinsic size becomes the maximum width.
    svg = re.sub(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"',
                 lambda m: f'<svg class="chart" data-chart="{name}" style="max-width:{float(m.group(1)):.0f}pt" '
                           f'width="100%"', svg, count=1)
    return svg


def style(ax) -> None:
    ax.grid(axis="x", color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)


def rc():
    import matplotlib

    return matplotlib.rc_context(_RC)


def _stacked_barh(ax, labels: list[str], series: dict[str, list[float]], colors: dict[str, str],
                  invert: bool = True) -> None:
    left = [0.0] * len(labels)
    ys = list(range(len(labels)))
    for name, values in series.items():
        ax.barh(ys, values, left=left, color=colors[name], label=name, height=0.7)
        left = [a + b for a, b in zip(left, values)]
    ax.set_yticks(ys, labels)
    if invert:  # first label on top; axes sharing y must be inverted once
        ax.invert_yaxis()


def _legend_above(fig, ax, n: int) -> None:
    if n > 1:
        fig.legend(*ax.get_legend_handles_labels(), loc="outside upper center", ncols=min(n, 6))


def funnel_chart(stages: list[str], by_source_docs: dict[str, list[float]],
                 by_source_mb: dict[str, list[float]]) -> str:
    colors = source_colors(by_source_docs)
    with rc():
        fig = new_figure(10, 0.32 * len(stages) + 1.2)
        ax_docs, ax_mb = fig.subplots(1, 2, sharey=True)
        _stacked_barh(ax_docs, stages, by_source_docs, colors)
        _stacked_barh(ax_mb, stages, by_source_mb, colors, invert=False)
        ax_docs.set_title("documents surviving each step")
        ax_mb.set_title("text MB surviving each step")
        for ax in (ax_docs, ax_mb):
            style(ax)
        _legend_above(fig, ax_docs, len(by_source_docs))
        return to_svg(fig, "funnel")


def barh_chart(name: str, title: str, labels: list[str], series: dict[str, list[float]],
               colors: dict[str, str] | None = None, xlabel: str = "", log: bool = False) -> str:
    colors = colors or source_colors(series)
    with rc():
        fig = new_figure(8, 0.3 * len(labels) + 1.1)
        ax = fig.subplots()
        _stacked_barh(ax, labels, series, colors)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        if log:
            ax.set_xscale("log")
        style(ax)
        _legend_above(fig, ax, len(series))
        return to_svg(fig, name)


def histogram_grid(panels: list[dict]) -> str:
    """Small multiples: per panel ``column``, ``edges`` (n+1), ``kept`` and ``dropped`` (n counts) and
    ``thresholds`` [(op, value)], drawn as dashed vertical lines."""
    cols = 3 if len(panels) > 2 else len(panels)
    rows = -(-len(panels) // cols)
    with rc():
        from matplotlib.ticker import MaxNLocator

        # A fixed grid instead of constrained layout: measuring every tick label of dozens of panels is what
        # made this figure slow.
        height = 1.9 * rows + 0.4
        fig = new_figure(10, height, layout=None)
        fig.subplots_adjust(left=0.06, right=0.98, top=1 - 0.3 / height, bottom=0.25 / height, wspace=0.25,
                            hspace=0.5 / (1.9 / 1.4))
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
        for ax, p in zip(axes, panels):
            edges = p["edges"]
            kept, dropped = p["kept"], p["dropped"]
            ax.stairs(kept, edges, fill=True, color=KEPT, label="kept")
            if any(dropped):
                ax.stairs([k + d for k, d in zip(kept, dropped)], edges, baseline=kept, fill=True,
                          color=DROPPED, label="dropped")
            for op, value in p["thresholds"]:
                ax.axvline(value, color=THRESHOLD, linestyle="--", linewidth=1.2)
                ax.annotate(f"{op} {value:g}", xy=(value, 1), xycoords=("data", "axes fraction"),
                            xytext=(3, -2), textcoords="offset points", va="top", fontsize=7, color=THRESHOLD)
            ax.set_title(p["column"], fontsize=8)
            ax.tick_params(labelsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(5))
            ax.yaxis.set_major_locator(MaxNLocator(4, integer=True))
            pad = 0.03 * (edges[-1] - edges[0])  # a threshold on the range's edge stays visible
            ax.set_xlim(edges[0] - pad, edges[-1] + pad)
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        if panels:
            axes[0].legend(loc="upper right", fontsize=7)
        return to_svg(fig, "histograms")


def grouped_bars(name: str, title: str, labels: list[str], series: dict[str, list[float]],
                 colors: list[str], ylabel: str = "", percent: bool = False) -> str:
    with rc():
        fig = new_figure(8, 3)
        ax = fig.subplots()
        width = 0.8 / max(len(series), 1)
        for i, (label, values) in enumerate(series.items()):
            xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
            ax.bar(xs, values, width=width, color=colors[i % len(colors)], label=label)
        ax.set_xticks(range(len(labels)), labels)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        if percent:
            from matplotlib.ticker import PercentFormatter

            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.grid(axis="y", color="#e5e5e5", linewidth=0.6)
        ax.set_axisbelow(True)
        _legend_above(fig, ax, len(series))
        return to_svg(fig, name)


def stacked_columns(name: str, title: str, xs: list[int], series: dict[str, list[float]], ylabel: str) -> str:
    colors = source_colors(series)
    with rc():
        fig = new_figure(10, 3)
        ax = fig.subplots()
        bottom = [0.0] * len(xs)
        for s, values in series.items():
            ax.bar(xs, values, bottom=bottom, color=colors[s], label=s, width=0.85)
            bottom = [a + b for a, b in zip(bottom, values)]
        ax.set_title(title)
        ax.set_xlabel("shard")
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", color="#e5e5e5", linewidth=0.6)
        ax.set_axisbelow(True)
        _legend_above(fig, ax, len(series))
        return to_svg(fig, name)
