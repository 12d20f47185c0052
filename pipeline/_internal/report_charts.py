"""The report's charts: matplotlib figures rendered to inline SVG strings.

The object-oriented API (``matplotlib.figure.Figure``) is used without pyplot, so no GUI backend or global figure
state is involved. Text stays text (``svg.fonttype: none``: smaller, searchable, rendered with the page's fonts),
and every figure gets its own hash salt so the ids matplotlib generates never collide between inline SVGs.
"""

from __future__ import annotations

import html
import io
import re
import textwrap
from typing import Sequence

PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974",
           "#64B5CD"]
KEPT, DROPPED, THRESHOLD = "#4C72B0", "#DD8452", "#C44E52"
# Timeline rows by kind (pipeline.timeline.KINDS).
KIND_COLORS = {"start": "#8C8C8C", "step": "#4C72B0", "global": "#C44E52", "parts": "#CCB974", "driver": "#DA8BC3"}
# Category labels longer than this wrap onto more lines (a long filter expression must not squeeze its chart).
LABEL_CHARS = 56

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
    """One colour per source for every chart of a report: pass all of the run's sources, not a chart's own."""
    return {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(sorted(set(sources)))}


def lighter(color: str, amount: float = 0.55) -> str:
    """``color`` mixed with white (a source's colour for its target or input, next to its realized value)."""
    rgb = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * amount):02x}" for c in rgb)


def wrap(label: str) -> str:
    return "\n".join(textwrap.wrap(label, LABEL_CHARS, break_long_words=True)) or label


def overflowing_texts(fig) -> list[str]:
    """What of the figure, as drawn, reaches outside it and would be cut off in the page: the title or the
    position of each axes whose drawn extent (ticks, labels, title) does, and the figure's own title and legends.
    Called after the figure was saved as SVG: its layout is the saved one, measured as the SVG backend does."""
    from matplotlib.backends.backend_svg import RendererSVG

    renderer = RendererSVG(fig.bbox.width, fig.bbox.height, io.StringIO(), image_dpi=fig.dpi)
    box = fig.bbox

    def outside(bb) -> bool:
        return bb is not None and (bb.x0 < box.x0 - 1 or bb.x1 > box.x1 + 1 or bb.y0 < box.y0 - 1
                                   or bb.y1 > box.y1 + 1)

    out = [ax.get_title() or f"axes {i}" for i, ax in enumerate(fig.axes)
           if ax.get_visible() and outside(ax.get_tightbbox(renderer))]
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is not None and suptitle.get_text() and outside(suptitle.get_window_extent(renderer)):
        out.append(suptitle.get_text())
    out += [f"legend {i}" for i, legend in enumerate(fig.legends) if outside(legend.get_window_extent(renderer))]
    return out


def new_figure(width: float, height: float, layout: str | None = "constrained"):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout=layout, dpi=72)  # the SVG backend's (overflowing_texts)


def title(fig, text: str) -> None:
    """The chart's title over the whole figure, not one axes: a long title centred over axes that long
    category labels push right ran off the figure's edge."""
    fig.suptitle(text, fontsize=10, fontweight="bold")


def to_svg(fig, name: str, colors: dict[str, str] | None = None) -> str:
    """The figure as an ``<svg>`` element for inline use: no XML prolog, no DOCTYPE and no namespace URLs (the
    HTML parser puts inline SVG in its namespace), ids salted with ``name``. ``data-colors`` lists the colour of
    each source (or series) drawn, ``data-overflow`` how many of its texts reach outside it (see
    ``overflowing_texts``)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    overflow = overflowing_texts(fig)
    listed = ' data-colors="' + html.escape(";".join(f"{k}={v}" for k, v in colors.items())) + '"' if colors else ""
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg, count=2)
    # Scale with the page: the intrinsic size becomes the maximum width.
    svg = re.sub(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"',
                 lambda m: f'<svg class="chart" data-chart="{name}" data-overflow="{len(overflow)}"{listed} '
                           f'style="max-width:{float(m.group(1)):.0f}pt" width="100%"', svg, count=1)
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
    ax.set_yticks(ys, [wrap(label) for label in labels])
    if invert:  # first label on top; axes sharing y must be inverted once
        ax.invert_yaxis()


def _legend_above(fig, ax, n: int) -> None:
    """The legend over the axes, or under them where the figure's title is above (the two would overlap)."""
    if n > 1:
        where = "outside lower center" if getattr(fig, "_suptitle", None) is not None else "outside upper center"
        fig.legend(*ax.get_legend_handles_labels(), loc=where, ncols=min(n, 7))


def funnel_chart(stages: list[str], by_source_docs: dict[str, list[float]],
                 by_source_mb: dict[str, list[float]], colors: dict[str, str]) -> str:
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
        return to_svg(fig, "funnel", {s: colors[s] for s in by_source_docs})


def barh_chart(name: str, caption: str, labels: list[str], series: dict[str, list[float]],
               colors: dict[str, str], xlabel: str = "", log: bool = False) -> str:
    lines = sum(wrap(label).count("\n") + 1 for label in labels)
    with rc():
        fig = new_figure(9, 0.3 * lines + 0.1 * len(labels) + 1.3)
        ax = fig.subplots()
        _stacked_barh(ax, labels, series, colors)
        title(fig, caption)
        ax.set_xlabel(xlabel)
        if log:
            ax.set_xscale("log")
        style(ax)
        _legend_above(fig, ax, len(series))
        return to_svg(fig, name, {s: colors[s] for s in series})


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
            pad = 0.03 * (edges[-1] - edges[0])  # a threshold on the range's edge stays visible
            lo, hi = edges[0] - pad, edges[-1] + pad
            for op, value in p["thresholds"]:
                _threshold(ax, op, value, lo, hi)
            ax.set_title(p["column"], fontsize=8)
            ax.tick_params(labelsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(5))
            ax.yaxis.set_major_locator(MaxNLocator(4, integer=True))
            ax.set_xlim(lo, hi)
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        if panels:
            axes[0].legend(loc="upper right", fontsize=7)
        return to_svg(fig, "histograms")


def _threshold(ax, op: str, value: float, lo: float, hi: float) -> None:
    """A dashed line at a filter threshold, labelled towards the middle so the label stays inside the panel; a
    threshold beyond the drawn range (no document near it) is named at that edge with an arrow."""
    style = {"textcoords": "offset points", "va": "top", "fontsize": 7, "color": THRESHOLD}
    label = f"{op} {value:g}"
    if value > hi:
        ax.annotate(f"{label} →", xy=(1, 1), xycoords="axes fraction", xytext=(-2, -2), ha="right", **style)
    elif value < lo:
        ax.annotate(f"← {label}", xy=(0, 1), xycoords="axes fraction", xytext=(2, -2), ha="left", **style)
    else:
        ax.axvline(value, color=THRESHOLD, linestyle="--", linewidth=1.2)
        right_half = value > (lo + hi) / 2
        ax.annotate(label, xy=(value, 1), xycoords=("data", "axes fraction"), xytext=(-3 if right_half else 3, -2),
                    ha="right" if right_half else "left", **style)


def grouped_bars(name: str, caption: str, labels: list[str], series: dict[str, list[float]],
                 colors: dict[str, list[str]], ylabel: str = "", percent: bool = False, integer: bool = False,
                 xlabel: str = "", label_colors: dict[str, str] | None = None) -> str:
    """Bars per label, one per series side by side; ``colors[series]`` holds one colour per label (a source's
    own colour on a source axis). A single series needs no legend; several are told apart by lightness and
    named in the legend (drawn in grey, as the bars' hue is the source). ``label_colors`` (each source's own
    colour) is listed on the chart."""
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    with rc():
        fig = new_figure(8, 3)
        ax = fig.subplots()
        width = 0.8 / max(len(series), 1)
        handles = []
        for i, (label, values) in enumerate(series.items()):
            xs = [x + (i - (len(series) - 1) / 2) * width for x in range(len(labels))]
            ax.bar(xs, values, width=width, color=colors[label], edgecolor="#555555", linewidth=0.4)
            handles.append(Patch(facecolor=lighter("#555555", 0.55 * (len(series) - 1 - i) / max(len(series) - 1, 1)),
                                 edgecolor="#555555", linewidth=0.4, label=label))
        ax.set_xticks(range(len(labels)), labels)
        title(fig, caption)
        ax.set_ylabel(ylabel)
        ax.set_xlabel(xlabel)
        if percent:
            from matplotlib.ticker import PercentFormatter

            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        if integer:
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(axis="y", color="#e5e5e5", linewidth=0.6)
        ax.set_axisbelow(True)
        if len(series) > 1:
            fig.legend(handles=handles, loc="outside lower center", ncols=len(series))
        return to_svg(fig, name, label_colors)


def stacked_columns(name: str, caption: str, xs: list[int], series: dict[str, list[float]], ylabel: str,
                    colors: dict[str, str]) -> str:
    """Stacked columns over integer positions (shard indices): the axis ticks only whole numbers."""
    from matplotlib.ticker import MaxNLocator

    with rc():
        fig = new_figure(10, 3)
        ax = fig.subplots()
        bottom = [0.0] * len(xs)
        for s, values in series.items():
            ax.bar(xs, values, bottom=bottom, color=colors[s], label=s, width=0.85)
            bottom = [a + b for a, b in zip(bottom, values)]
        title(fig, caption)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_xlabel("shard (index in manifest.json)")
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", color="#e5e5e5", linewidth=0.6)
        ax.set_axisbelow(True)
        _legend_above(fig, ax, len(series))
        return to_svg(fig, name, {s: colors[s] for s in series})
