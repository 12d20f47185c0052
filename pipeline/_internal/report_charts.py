"""The report's charts, written as inline SVG by hand: every chart is rectangles, lines and text.

No plotting library is imported (matplotlib's import alone cost half a CPU-second per report). Text is laid out
with the advance widths of the font the charts set (DejaVu Sans, the widest of the usual sans fonts, so a
fallback font draws narrower text), which keeps the overflow check real: a text whose measured box reaches
outside its chart (or its histogram panel) is counted in ``data-overflow``. Bars of one colour are one path, and
coordinates have one decimal, which keeps the page small.
"""

from __future__ import annotations

import html
import math
import textwrap
import unicodedata
from typing import Sequence

PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974",
           "#64B5CD"]
KEPT, DROPPED, THRESHOLD = "#4C72B0", "#DD8452", "#C44E52"
# Timeline rows by kind (pipeline.timeline.KINDS).
KIND_COLORS = {"start": "#8C8C8C", "step": "#4C72B0", "global": "#C44E52", "parts": "#CCB974", "driver": "#DA8BC3"}
# Category labels longer than this wrap onto more lines (a long filter expression must not squeeze its chart).
LABEL_CHARS = 56

FONT = "DejaVu Sans,Verdana,sans-serif"
SIZE, TITLE_SIZE, SMALL = 11, 12, 9
WIDE = 900  # px: a full-width chart (the page's sections are about this wide)
GRID, AXIS, INK = "#e5e5e5", "#888888", "#333333"

# DejaVu Sans advance widths, in hundredths of an em, of the characters " " to "~" (regular, then bold).
_ASCII = "".join(chr(c) for c in range(32, 127))
_REGULAR = dict(zip(_ASCII, [
    32, 40, 46, 84, 64, 95, 78, 27, 39, 39, 50, 84, 32, 36, 32, 34, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 34, 34,
    84, 84, 84, 53, 100, 68, 69, 70, 77, 63, 58, 77, 75, 29, 29, 66, 56, 86, 75, 79, 60, 79, 69, 63, 61, 73, 68, 99,
    69, 61, 69, 39, 34, 39, 84, 50, 50, 61, 63, 55, 63, 62, 35, 63, 63, 28, 28, 58, 28, 97, 63, 61, 63, 63, 41, 52,
    39, 63, 59, 82, 59, 59, 52, 64, 34, 64, 84]))
_BOLD = dict(zip(_ASCII, [
    35, 46, 52, 84, 70, 100, 87, 31, 46, 46, 52, 84, 38, 42, 38, 37, 70, 70, 70, 70, 70, 70, 70, 70, 70, 70, 40, 40,
    84, 84, 84, 58, 100, 77, 76, 73, 83, 68, 68, 82, 84, 37, 37, 77, 64, 100, 84, 85, 73, 85, 77, 72, 68, 81, 77, 110,
    77, 72, 73, 46, 37, 46, 84, 50, 50, 67, 72, 59, 72, 68, 44, 72, 71, 34, 34, 67, 34, 104, 71, 69, 72, 72, 49, 60,
    48, 71, 65, 92, 65, 65, 58, 71, 37, 71, 84]))
_OTHER = {"→": 84, "←": 84, "·": 32, "−": 84, "…": 100}


def text_width(text: str, size: float, bold: bool = False) -> float:
    """Pixels ``text`` takes at ``size`` px; a character outside the table counts a full em if East Asian wide,
    else as wide as "M" (never narrower than the font draws it)."""
    table = _BOLD if bold else _REGULAR
    units = 0
    for ch in text:
        w = table.get(ch) or _OTHER.get(ch)
        if w is None:
            w = 100 if unicodedata.east_asian_width(ch) in "WF" else 86
        units += w
    return units * size / 100


def source_colors(sources: Sequence[str]) -> dict[str, str]:
    """One colour per source for every chart of a report: pass all of the run's sources, not a chart's own."""
    return {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(sorted(set(sources)))}


def lighter(color: str, amount: float = 0.55) -> str:
    """``color`` mixed with white (a source's colour for its target or input, next to its realized value)."""
    rgb = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * amount):02x}" for c in rgb)


def wrap(label: str) -> list[str]:
    return textwrap.wrap(label, LABEL_CHARS, break_long_words=True) or [label]


def _n(v: float) -> str:
    """A coordinate with one decimal, no trailing zero."""
    s = f"{v:.1f}"
    return s[:-2] if s.endswith(".0") else s


# --- axis scales ------------------------------------------------------------------------------------------------

def nice_ticks(hi: float, most: int = 5, integer: bool = False) -> list[float]:
    """Ticks 0, step, 2*step, ... up to the first at or above ``hi``, at most about ``most`` intervals, the step
    1, 2 or 5 times a power of ten (a whole number where ``integer``)."""
    if hi <= 0:
        return [0.0, 1.0]
    step = _nice_step(hi / most)
    if integer:
        step = max(1.0, float(round(step)))
    count = math.ceil(hi / step - 1e-9)
    return [i * step for i in range(count + 1)]


def _nice_step(raw: float) -> float:
    """The smallest step of 1, 2 or 5 times a power of ten that is at least ``raw``."""
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def tick_label(v: float, percent: bool = False) -> str:
    if percent:
        return f"{v * 100:g}%"
    a = abs(v)
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e4, "k")):
        if a >= scale:
            return f"{v / (scale if suffix != 'k' else 1e3):.3g}{suffix}"
    return f"{round(v, 6):g}".replace("-", "−")


# --- the drawing surface ----------------------------------------------------------------------------------------

class Canvas:
    """Shapes and texts of one chart; texts keep their measured box for the overflow count."""

    def __init__(self, width: float) -> None:
        self.width = width
        self.height = 0.0
        self.fills: dict[str, list[str]] = {}  # colour -> rectangles, drawn as one path
        self.strokes: dict[tuple, list[str]] = {}  # (colour, dashed, width) -> line segments, drawn as one path
        self.texts: list[str] = []
        self.boxes: list[tuple[float, float, float, float, float, float]] = []  # x0 x1 y0 y1 and the x range

    def rect(self, x: float, y: float, w: float, h: float, color: str) -> None:
        if w > 0 and h > 0:
            self.fills.setdefault(color.lower(), []).append(f"M{_n(x)} {_n(y)}h{_n(w)}v{_n(h)}h{_n(-w)}z")

    def area(self, d: str, color: str) -> None:
        """A closed outline, filled with ``color`` (drawn with the bars of that colour)."""
        self.fills.setdefault(color.lower(), []).append(d)

    def text(self, x: float, y: float, text: str, size: float = SIZE, anchor: str = "start", bold: bool = False,
             color: str | None = None, cls: str = "", vertical: bool = False,
             within: tuple[float, float] | None = None) -> float:
        """``text`` with its baseline at ``y``; counted as overflowing where its box leaves the chart (its final
        height) or the horizontal range ``within``. Returns its width."""
        w = text_width(text, size, bold)
        shift = {"start": 0.0, "middle": w / 2, "end": w}[anchor]
        if vertical:  # rotated a quarter turn left: the text runs upwards, centred at y
            x0, x1, y0, y1 = x - size * 0.8, x + size * 0.2, y - shift, y - shift + w
        else:
            x0, x1, y0, y1 = x - shift, x - shift + w, y - size * 0.8, y + size * 0.25
        self.boxes.append((x0, x1, y0, y1, *(within or (0.0, self.width))))
        attrs = [f'x="{_n(x)}" y="{_n(y)}"']
        if anchor != "start":
            attrs.append(f'text-anchor="{anchor}"')
        if size != SIZE:
            attrs.append(f'font-size="{size:g}"')
        if bold:
            attrs.append('font-weight="bold"')
        if color:
            attrs.append(f'fill="{color}"')
        if cls:
            attrs.append(f'class="{cls}"')
        if vertical:
            attrs.append(f'transform="rotate(-90 {_n(x)} {_n(y)})"')
        self.texts.append(f"<text {' '.join(attrs)}>{html.escape(text, quote=False)}</text>")
        return w

    def line_path(self, segments: list[str], color: str, dash: bool = False, width: float = 1) -> None:
        """Lines of one style join one path; dashed ones (thresholds) are drawn over the bars, the others
        (grid, axes) under them."""
        self.strokes.setdefault((color, dash, width), []).extend(segments)

    def _strokes(self, dashed: bool) -> str:
        return "".join(
            f'<path d="{"".join(d)}" fill="none" stroke="{color}"'
            + (f' stroke-width="{width:g}"' if width != 1 else "") + (' stroke-dasharray="4 3"' if dash else "")
            + "/>" for (color, dash, width), d in self.strokes.items() if dash == dashed and d)

    def overflow(self) -> int:
        return sum(1 for x0, x1, y0, y1, lo, hi in self.boxes
                   if x0 < max(lo, 0) - 1 or x1 > min(hi, self.width) + 1 or y0 < -1 or y1 > self.height + 1)

    def svg(self, name: str, colors: dict[str, str] | None = None) -> str:
        """The ``<svg>`` element: ``data-colors`` lists the colour of each source (or series) drawn,
        ``data-overflow`` how many of its texts reach outside it."""
        listed = (' data-colors="' + html.escape(";".join(f"{k}={v}" for k, v in colors.items())) + '"'
                  if colors else "")
        w, h = _n(self.width), _n(self.height)
        bars = "".join(f'<path style="fill: {c}" d="{"".join(d)}"/>' for c, d in self.fills.items())
        return (f'<svg class="chart" data-chart="{name}" data-overflow="{self.overflow()}"{listed} viewBox="0 0 {w} '
                f'{h}" width="100%" style="max-width:{w}px" font-family="{FONT}" font-size="{SIZE}" '
                f'fill="{INK}">{self._strokes(False)}{bars}{self._strokes(True)}{"".join(self.texts)}</svg>')


def _title(c: Canvas, caption: str, y: float) -> float:
    c.text(c.width / 2, y + TITLE_SIZE, caption, TITLE_SIZE, "middle", bold=True)
    return y + TITLE_SIZE + 8


def _legend(c: Canvas, items: dict[str, str], y: float) -> float:
    """Swatch and name per item, centred rows under ``y``; returns the y below them."""
    if len(items) < 2:
        return y
    widths = [14 + text_width(k, SIZE) + 14 for k in items]
    rows: list[list[int]] = [[]]
    for i, w in enumerate(widths):
        if rows[-1] and sum(widths[j] for j in rows[-1]) + w > c.width - 20:
            rows.append([])
        rows[-1].append(i)
    names = list(items)
    for row in rows:
        x = (c.width - sum(widths[j] for j in row)) / 2
        for j in row:
            c.rect(x, y + 2, 10, 10, items[names[j]])
            c.text(x + 14, y + 11, names[j])
            x += widths[j]
        y += 16
    return y + 4


def _x_axis(c: Canvas, x0: float, x1: float, y_top: float, y_axis: float, ticks: list[float],
            percent: bool = False) -> None:
    """Vertical grid lines at ``ticks`` over [y_top, y_axis] and their labels under the axis."""
    top = ticks[-1] or 1
    grid = []
    for t in ticks:
        x = x0 + (x1 - x0) * t / top
        grid.append(f"M{_n(x)} {_n(y_top)}V{_n(y_axis)}")
        c.text(x, y_axis + 13, tick_label(t, percent), SMALL + 1, "middle", cls="xtick")
    c.line_path(grid, GRID)
    c.line_path([f"M{_n(x0)} {_n(y_top)}V{_n(y_axis)}H{_n(x1)}"], AXIS)


def _y_axis(c: Canvas, x_axis: float, x_right: float, y_top: float, y_base: float, ticks: list[float],
            percent: bool = False) -> None:
    top = ticks[-1] or 1
    grid = []
    for t in ticks:
        y = y_base - (y_base - y_top) * t / top
        grid.append(f"M{_n(x_axis)} {_n(y)}H{_n(x_right)}")
        c.text(x_axis - 4, y + 3.5, tick_label(t, percent), SMALL + 1, "end", cls="ytick")
    c.line_path(grid, GRID)
    c.line_path([f"M{_n(x_axis)} {_n(y_top)}V{_n(y_base)}H{_n(x_right)}"], AXIS)


def _y_tick_width(ticks: list[float], percent: bool = False) -> float:
    return max(text_width(tick_label(t, percent), SMALL + 1) for t in ticks)


# --- charts -----------------------------------------------------------------------------------------------------

def _row_layout(labels: list[str], y: float) -> tuple[list[list[str]], list[tuple[float, float]], float]:
    """Wrapped labels and each category's (top, height) from ``y``; returns them and the y below."""
    wrapped = [wrap(label) for label in labels]
    rows = []
    for lines in wrapped:
        h = 14 * len(lines) + 6
        rows.append((y, h))
        y += h
    return wrapped, rows, y


def _hbars(c: Canvas, x0: float, x1: float, rows: list[tuple[float, float]], series: dict[str, list[float]],
           colors: dict[str, str], top: float) -> None:
    for i, (y, h) in enumerate(rows):
        left = 0.0
        for name, values in series.items():
            v = values[i]
            c.rect(x0 + (x1 - x0) * left / top, y + 2.5, (x1 - x0) * v / top, h - 5, colors[name])
            left += v


def _labels(c: Canvas, x: float, wrapped: list[list[str]], rows: list[tuple[float, float]]) -> None:
    for lines, (y, h) in zip(wrapped, rows):
        first = y + h / 2 - 7 * (len(lines) - 1) + 4
        for k, line in enumerate(lines):
            c.text(x, first + 14 * k, line, anchor="end", cls="ytick")


def _label_width(wrapped: list[list[str]]) -> float:
    return max((text_width(line, SIZE) for lines in wrapped for line in lines), default=0.0)


def _stack_top(series: dict[str, list[float]], n: int) -> float:
    return max((sum(values[i] for values in series.values()) for i in range(n)), default=0.0)


def funnel_chart(stages: list[str], by_source_docs: dict[str, list[float]],
                 by_source_mb: dict[str, list[float]], colors: dict[str, str]) -> str:
    """Two panels side by side over the same steps: documents and text MB surviving each."""
    c = Canvas(WIDE)
    y = _legend(c, {s: colors[s] for s in by_source_docs}, 4)
    panel_titles = y + TITLE_SIZE
    wrapped, rows, bottom = _row_layout(stages, panel_titles + 8)
    x_labels = _label_width(wrapped) + 8
    gap = 30
    width = (WIDE - x_labels - 4 - gap - 16) / 2
    for k, (caption, series) in enumerate((("documents surviving each step", by_source_docs),
                                           ("text MB surviving each step", by_source_mb))):
        x0 = x_labels + 4 + k * (width + gap)
        ticks = nice_ticks(_stack_top(series, len(stages)), 5)
        _x_axis(c, x0, x0 + width, panel_titles + 6, bottom, ticks)
        _hbars(c, x0, x0 + width, rows, series, colors, ticks[-1])
        c.text(x0 + width / 2, panel_titles, caption, SIZE, "middle", bold=True)
    _labels(c, x_labels, wrapped, rows)
    c.height = bottom + 20
    return c.svg("funnel", {s: colors[s] for s in by_source_docs})


def barh_chart(name: str, caption: str, labels: list[str], series: dict[str, list[float]],
               colors: dict[str, str], xlabel: str = "", width: float = WIDE) -> str:
    """Horizontal bars, one per label, stacked by series (first label on top)."""
    c = Canvas(width)
    y = _title(c, caption, 2)
    y = _legend(c, {s: colors[s] for s in series}, y)
    wrapped, rows, bottom = _row_layout(labels, y + 4)
    x0 = _label_width(wrapped) + 12
    x1 = width - 16
    ticks = nice_ticks(_stack_top(series, len(labels)), 6)
    _x_axis(c, x0, x1, y, bottom, ticks)
    _hbars(c, x0, x1, rows, series, colors, ticks[-1])
    _labels(c, x0 - 4, wrapped, rows)
    c.height = bottom + 20 + (18 if xlabel else 0)
    if xlabel:
        c.text((x0 + x1) / 2, bottom + 32, xlabel, anchor="middle")
    return c.svg(name, {s: colors[s] for s in series})


def _columns(c: Canvas, caption: str, labels: list[str], ylabel: str, xlabel: str, ticks: list[float],
             percent: bool, legend: dict[str, str], show: list[int] | None = None
             ) -> tuple[float, float, float, float]:
    """Title, legend, value axis and category labels of a column chart; returns the plot's x0, x1, top and
    base."""
    y = _title(c, caption, 2)
    y = _legend(c, legend, y)
    top, base = y + 6, y + 6 + 180
    x0 = 8 + (SIZE + 6 if ylabel else 0) + _y_tick_width(ticks, percent) + 8
    x1 = c.width - 12
    c.height = base + 20 + (18 if xlabel else 0)
    _y_axis(c, x0, x1, top, base, ticks, percent)
    slot = (x1 - x0) / max(len(labels), 1)
    if show is None:  # every k-th label where they would run into each other
        widest = max((text_width(label, SMALL + 1) for label in labels), default=0.0)
        show = list(range(0, len(labels), max(1, math.ceil((widest + 6) / slot))))
    for i in show:
        c.text(x0 + slot * (i + 0.5), base + 13, labels[i], SMALL + 1, "middle", cls="xtick")
    if ylabel:
        c.text(8 + SIZE * 0.8, (top + base) / 2, ylabel, anchor="middle", vertical=True)
    if xlabel:
        c.text((x0 + x1) / 2, base + 32, xlabel, anchor="middle")
    return x0, x1, top, base


def grouped_bars(name: str, caption: str, labels: list[str], series: dict[str, list[float]],
                 colors: dict[str, list[str]], ylabel: str = "", percent: bool = False, integer: bool = False,
                 xlabel: str = "", label_colors: dict[str, str] | None = None) -> str:
    """Bars per label, one per series side by side; ``colors[series]`` holds one colour per label (a source's
    own colour on a source axis). A single series needs no legend; several are told apart by lightness and
    named in the legend (drawn in grey, as the bars' hue is the source). ``label_colors`` (each source's own
    colour) is listed on the chart."""
    n = max(len(series), 1)
    legend = {s: lighter("#555555", 0.55 * (n - 1 - i) / max(n - 1, 1)) for i, s in enumerate(series)}
    top_value = max((v for values in series.values() for v in values), default=0.0)
    ticks = nice_ticks(top_value, 5, integer)
    c = Canvas(WIDE * 0.8)
    x0, x1, top, base = _columns(c, caption, labels, ylabel, xlabel, ticks, percent, legend)
    slot = (x1 - x0) / max(len(labels), 1)
    width = min(0.8 * slot / n, 60)  # one bar in a wide slot stays a bar
    outline = []
    for k, (s, values) in enumerate(series.items()):
        for i, v in enumerate(values):
            h = (base - top) * v / (ticks[-1] or 1)
            x = x0 + slot * (i + 0.5) + (k - (n - 1) / 2) * width - width / 2
            c.rect(x, base - h, width, h, colors[s][i])
            if h > 0:
                outline.append(f"M{_n(x)} {_n(base)}v{_n(-h)}h{_n(width)}v{_n(h)}")
    c.line_path(outline, "#555555", width=0.5)
    return c.svg(name, label_colors)


def stacked_columns(name: str, caption: str, xs: list[int], series: dict[str, list[float]], ylabel: str,
                    colors: dict[str, str]) -> str:
    """Stacked columns over integer positions (shard indices): the axis ticks only whole numbers, at most
    about a dozen of them."""
    ticks = nice_ticks(_stack_top(series, len(xs)), 5)
    every = nice_ticks(max(len(xs) - 1, 1), 12, integer=True)[1]
    shown = [i for i, x in enumerate(xs) if x % int(every) == 0]
    c = Canvas(WIDE)
    x0, x1, top, base = _columns(c, caption, [str(x) for x in xs], ylabel, "shard (index in manifest.json)", ticks,
                                 False, {s: colors[s] for s in series}, shown)
    slot = (x1 - x0) / max(len(xs), 1)
    for i in range(len(xs)):
        bottom = 0.0
        for s, values in series.items():
            scale = (base - top) / (ticks[-1] or 1)
            c.rect(x0 + slot * (i + 0.075), base - (bottom + values[i]) * scale, slot * 0.85, values[i] * scale,
                   colors[s])
            bottom += values[i]
    return c.svg(name, {s: colors[s] for s in series})


def histogram_grid(panels: list[dict]) -> str:
    """Small multiples: per panel ``column``, ``edges`` (n+1), ``kept`` and ``dropped`` (n counts) and
    ``thresholds`` [(op, value)], drawn as dashed vertical lines."""
    cols = 3 if len(panels) > 2 else max(len(panels), 1)
    c = Canvas(WIDE)
    y = _legend(c, {"kept": KEPT, "dropped": DROPPED}, 4) if panels else 4
    panel_w, panel_h = WIDE / cols, 150
    c.height = y + panel_h * -(-len(panels) // cols) + 4
    for k, p in enumerate(panels):
        _histogram(c, p, (k % cols) * panel_w, y + (k // cols) * panel_h, panel_w, panel_h)
    return c.svg("histograms")


def _histogram(c: Canvas, p: dict, left: float, top: float, width: float, height: float) -> None:
    edges, kept, dropped = p["edges"], p["kept"], p["dropped"]
    totals = [k + d for k, d in zip(kept, dropped)]
    yt = nice_ticks(max(totals, default=0), 3, integer=True)
    x0 = left + 10 + _y_tick_width(yt)
    x1, y0, base = left + width - 14, top + 26, top + height - 24
    pad = 0.03 * ((edges[-1] - edges[0]) or 1)  # a threshold on the range's edge stays visible
    lo, hi = edges[0] - pad, edges[-1] + pad

    def sx(v: float) -> float:
        return x0 + (x1 - x0) * (v - lo) / (hi - lo)

    def sy(v: float) -> float:
        return base - (base - y0) * v / (yt[-1] or 1)

    c.text((x0 + x1) / 2, top + 14, p["column"], SIZE, "middle", bold=True,
           within=(left, left + width))
    _y_axis(c, x0, x1, y0, base, yt)
    c.area(_stairs(edges, kept, [0] * len(kept), sx, sy), KEPT)
    if any(dropped):
        c.area(_stairs(edges, totals, kept, sx, sy), DROPPED)
    for t in nice_ticks_between(lo, hi, 5):
        c.text(sx(t), base + 13, tick_label(t), SMALL + 1, "middle", cls="xtick", within=(left, left + width))
    for op, value in p["thresholds"]:
        _threshold(c, f"{op} {value:g}", value, lo, hi, sx, x0, x1, y0, base)


def _stairs(edges: list[float], upper: list[float], lower: list[float], sx, sy) -> str:
    """The outline of a filled step function between ``lower`` and ``upper`` (one polygon for all bins), steps
    that change nothing left out."""
    xs = [_n(sx(e)) for e in edges]
    d, y = [f"M{xs[0]} {_n(sy(lower[0]))}"], _n(sy(lower[0]))
    walk = [(v, xs[i + 1]) for i, v in enumerate(upper)] + [(v, xs[i]) for i, v in reversed(list(enumerate(lower)))]
    for k, (v, x) in enumerate(walk):
        if _n(sy(v)) != y:
            y = _n(sy(v))
            d.append(f"V{y}")
        if k + 1 == len(walk) or _n(sy(walk[k + 1][0])) != y or k + 1 == len(upper):
            d.append(f"H{x}")
    return "".join(d) + "z"


def nice_ticks_between(lo: float, hi: float, most: int) -> list[float]:
    """Round ticks inside [lo, hi]."""
    span = hi - lo
    if span <= 0:
        return [lo]
    step = _nice_step(span / most)
    first = math.ceil(lo / step - 1e-9)
    return [i * step for i in range(first, math.floor(hi / step + 1e-9) + 1)]


def _threshold(c: Canvas, label: str, value: float, lo: float, hi: float, sx, x0: float, x1: float,
               y0: float, base: float) -> None:
    """A dashed line at a filter threshold, labelled towards the middle so the label stays inside the panel; a
    threshold beyond the drawn range (no document near it) is named at that edge with an arrow."""
    y = y0 + SMALL
    if value > hi:
        c.text(x1 - 2, y, f"{label} →", SMALL, "end", color=THRESHOLD, within=(x0, x1))
    elif value < lo:
        c.text(x0 + 2, y, f"← {label}", SMALL, color=THRESHOLD, within=(x0, x1))
    else:
        x = sx(value)
        c.line_path([f"M{_n(x)} {_n(y0)}V{_n(base)}"], THRESHOLD, dash=True, width=1.2)
        right_half = value > (lo + hi) / 2
        c.text(x - 3 if right_half else x + 3, y, label, SMALL, "end" if right_half else "start",
               color=THRESHOLD, within=(x0, x1))
