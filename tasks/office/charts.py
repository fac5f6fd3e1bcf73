"""Small hand-rolled SVG charts for the offline HTML report.

Why not a charting library: the report must open with no network (no CDN scripts), matplotlib is
not installed, and the charts are a few bars and lines over SQL aggregates of a handful of
townships, departments or periods. A hundred lines of SVG keep the dependency list short and the
output a few kilobytes of inline markup that any browser, and a printed page, renders.

Each function takes already-aggregated values (a handful of categories, never rows) and returns an
``<svg>`` string with a ``<title>`` for screen readers. Text is escaped.
"""
from __future__ import annotations

from html import escape
from typing import Sequence

PALETTE = ("#2f6db5", "#e07b39", "#3a9e5f", "#c2413b", "#8a63b8", "#7f7f7f", "#b8a23a", "#2aa3a3",
           "#e377c2", "#8c564b", "#17becf", "#1a1a6e")  # twelve: one per department
FONT = ("font-family=\"'Microsoft YaHei','PingFang SC','Noto Sans CJK SC','WenQuanYi Micro Hei',"
        "'Source Han Sans SC',sans-serif\"")


def _fmt(value: float, percent: bool) -> str:
    if percent:
        text = f"{value * 100:.1f}"
        return (text[:-2] if text.endswith(".0") else text) + "%"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def _text_width(text: str, size: float = 12) -> float:
    """Approximate rendered width: CJK characters are about a full em, others about half."""
    return sum(size if ord(c) > 0x2E80 else size * 0.58 for c in text)


LEGEND_ROW = 20


def _legend_rows(names: Sequence[str], x: float, width: float) -> list[list[tuple[float, int]]]:
    """Legend entries laid out in rows that fit the chart: [(x, index), ...] per row."""
    rows, row, cx = [], [], x
    for k, name in enumerate(names):
        step = 28 + _text_width(name)
        if row and cx + step > width - 4:
            rows.append(row)
            row, cx = [], x
        row.append((cx, k))
        cx += step
    if row:
        rows.append(row)
    return rows


def _legend(names: Sequence[str], x: float, y: float, width: float) -> list[str]:
    parts = []
    for r, row in enumerate(_legend_rows(names, x, width)):
        ry = y + r * LEGEND_ROW
        for cx, k in row:
            colour = PALETTE[k % len(PALETTE)]
            parts.append(f'<rect x="{cx:.1f}" y="{ry - 10:.1f}" width="12" height="12" '
                         f'fill="{colour}"/>')
            parts.append(f'<text x="{cx + 16:.1f}" y="{ry:.1f}" font-size="12">'
                         f'{escape(names[k])}</text>')
    return parts


def bar_chart(categories: Sequence[str], series: dict[str, Sequence[float | None]], *,
              title: str, percent: bool = False, width: int = 640,
              highlight: Sequence[bool] | None = None) -> str:
    """Horizontal grouped bars: one group per category, one bar per series.

    ``highlight`` marks categories (e.g. the bottom three townships) with a red label.
    """
    names = list(series)
    values = [[(v if v is not None else 0.0) for v in series[n]] for n in names]
    if not categories:
        return _empty(title, width)
    label_w = min(220.0, max(_text_width(c) for c in categories) + 12)
    bar_h, gap = (14, 10) if len(categories) * len(names) <= 30 else (10, 8)
    group_h = bar_h * len(names) + gap
    legend_rows = len(_legend_rows(names, label_w, width)) if len(names) > 1 else 0
    top = 34 + LEGEND_ROW * legend_rows
    height = top + group_h * len(categories) + 10
    vmax = max([max(v) for v in values if v] + [0])
    vmin = min([min(v) for v in values if v] + [0])
    span = (vmax - vmin) or 1
    plot_w = width - label_w - 70 - (40 if vmin < 0 else 0)
    origin = label_w + (40 if vmin < 0 else 0) + (-vmin) / span * plot_w
    out = [_svg_open(title, width, height)]
    if len(names) > 1:
        out += _legend(names, label_w, 40, width)
    for i, cat in enumerate(categories):
        y0 = top + i * group_h
        colour = "#c2413b" if highlight and highlight[i] else "#333"
        out.append(f'<text x="{label_w - 6:.1f}" y="{y0 + group_h / 2:.1f}" font-size="12" '
                   f'text-anchor="end" fill="{colour}">{escape(cat)}</text>')
        for k, n in enumerate(names):
            v = values[k][i]
            w = abs(v) / span * plot_w
            x = origin if v >= 0 else origin - w
            y = y0 + k * bar_h
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{bar_h - 2}" '
                       f'fill="{PALETTE[k % len(PALETTE)]}"><title>{escape(cat)} {escape(n)}: '
                       f'{_fmt(v, percent)}</title></rect>')
            tx, anchor = (x + w + 4, "start") if v >= 0 else (x - 4, "end")
            out.append(f'<text x="{tx:.1f}" y="{y + bar_h - 4:.1f}" font-size="11" '
                       f'text-anchor="{anchor}" fill="#333">{_fmt(v, percent)}</text>')
    out.append(f'<line x1="{origin:.1f}" y1="{top - 4}" x2="{origin:.1f}" y2="{height - 8}" '
               f'stroke="#999"/>')
    out.append("</svg>")
    return "".join(out)


def line_chart(x_labels: Sequence[str], series: dict[str, Sequence[float | None]], *,
               title: str, percent: bool = False, width: int = 640, height: int = 260) -> str:
    """Lines over periods (x), one per series; missing values break the line."""
    names = list(series)
    if not x_labels:
        return _empty(title, width)
    legend_rows = len(_legend_rows(names, 56, width)) if len(names) > 1 else 0
    left, right, top, bottom = 56, 20, 36 + LEGEND_ROW * legend_rows, 34
    height += LEGEND_ROW * max(0, legend_rows - 1)
    plot_w, plot_h = width - left - right, height - top - bottom
    all_values = [v for n in names for v in series[n] if v is not None]
    vmax = max(all_values + [0]) or 1
    vmin = min(all_values + [0])
    span = (vmax - vmin) or 1

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + (plot_w * i / (len(x_labels) - 1) if len(x_labels) > 1 else plot_w / 2)
        return x, top + plot_h - (v - vmin) / span * plot_h

    out = [_svg_open(title, width, height)]
    if len(names) > 1:
        out += _legend(names, left, 40, width)
    for frac in (0, 0.5, 1):
        v = vmin + span * frac
        _, y = xy(0, v)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
                   f'stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">'
                   f'{_fmt(v, percent)}</text>')
    for i, label in enumerate(x_labels):
        x, _ = xy(i, vmin)
        out.append(f'<text x="{x:.1f}" y="{height - 12}" font-size="11" text-anchor="middle">'
                   f'{escape(label)}</text>')
    for k, n in enumerate(names):
        colour = PALETTE[k % len(PALETTE)]
        points = [(i, v) for i, v in enumerate(series[n])]
        path, pen_down = [], False
        for i, v in points:
            if v is None:
                pen_down = False
                continue
            x, y = xy(i, v)
            path.append(f"{'L' if pen_down else 'M'}{x:.1f},{y:.1f}")
            pen_down = True
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"><title>'
                       f'{escape(n)} {escape(x_labels[i])}: {_fmt(v, percent)}</title></circle>')
        if path:
            out.append(f'<path d="{" ".join(path)}" fill="none" stroke="{colour}" '
                       f'stroke-width="2"/>')
    out.append("</svg>")
    return "".join(out)


def _svg_open(title: str, width: int, height: int) -> str:
    """The opening of every chart: the svg element, its accessible title and the visible one."""
    return (f'<svg class="chart" role="img" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" {FONT}>'
            f"<title>{escape(title)}</title>"
            f'<text x="4" y="18" font-size="14" font-weight="bold">{escape(title)}</text>')


def _empty(title: str, width: int) -> str:
    return _svg_open(title, width, 50) + '<text x="4" y="40" font-size="12" fill="#777">（无数据）</text></svg>'

