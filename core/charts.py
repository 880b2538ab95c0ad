"""Small server-rendered SVG charts (no chart library, no CDN).

Used for the training loss curve, the sentiment timeline and usage bars. Output is a string of
SVG markup built only from numbers and escaped labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape


@dataclass
class Series:
    name: str
    points: Sequence[tuple[float, float]]
    color: str
    dashed: bool = False
    markers: bool = False


def _nice_ticks(low: float, high: float, count: int = 4, integers: bool = False) -> list[float]:
    """Round ticks over [low, high]; with `integers` (message numbers, steps) no tick falls between two."""
    if not math.isfinite(low) or not math.isfinite(high):
        return []
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    if integers:
        raw = max(raw, 1.0)
    magnitude = 10 ** math.floor(math.log10(raw))
    multiples = (1, 2, 5, 10) if integers else (1, 2, 2.5, 5, 10)
    step = min((m * magnitude for m in multiples if m * magnitude >= raw), default=raw)
    start = math.floor(low / step) * step
    ticks: list[float] = []
    value = start
    while value <= high + step * 0.5 and len(ticks) < 12:
        if value >= low - step * 0.01:
            ticks.append(round(value, 10))
        value += step
    return ticks


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value / 1000:.3g}k"
    return f"{value:.3g}"


# Text, not an SVG <text>: a chart scaled into a narrow card would shrink it to an unreadable size.
EMPTY_CHART = '<p class="empty chart-empty">No data yet</p>'


def line_chart(series: Sequence[Series], width: int = 640, height: int = 240, x_label: str = "",
               y_label: str = "", y_range: tuple[float, float] | None = None, title: str = "") -> str:
    """A responsive line chart; series without a finite point render EMPTY_CHART."""
    pad_left, pad_right, pad_top, pad_bottom = 48, 12, 14, 34
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points if math.isfinite(y)]
    if not xs or not ys:
        return EMPTY_CHART
    label = escape(title or y_label or "chart")
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{label}" '
             f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">']
    x_low, x_high = min(xs), max(xs)
    if x_high == x_low:
        x_high = x_low + 1
    y_low, y_high = y_range if y_range else (min(ys), max(ys))
    if y_high == y_low:
        y_low, y_high = y_low - 0.5, y_high + 0.5
    if not y_range:
        margin = (y_high - y_low) * 0.08
        y_low, y_high = y_low - margin, y_high + margin
    plot_w, plot_h = width - pad_left - pad_right, height - pad_top - pad_bottom

    def sx(x: float) -> float:
        return pad_left + (x - x_low) / (x_high - x_low) * plot_w

    def sy(y: float) -> float:
        return pad_top + (1 - (y - y_low) / (y_high - y_low)) * plot_h

    for tick in _nice_ticks(y_low, y_high):
        if y_low <= tick <= y_high:
            y = sy(tick)
            parts.append(f'<line x1="{pad_left}" x2="{width - pad_right}" y1="{y:.1f}" y2="{y:.1f}" '
                         f'stroke="#e3e4ee" stroke-width="1"/>')
            parts.append(f'<text x="{pad_left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
                         f'fill="#61657a">{_fmt(tick)}</text>')
    for tick in _nice_ticks(x_low, x_high, 5, integers=all(float(x).is_integer() for x in xs)):
        if x_low <= tick <= x_high:
            x = sx(tick)
            parts.append(f'<text x="{x:.1f}" y="{height - pad_bottom + 16}" text-anchor="middle" font-size="11" '
                         f'fill="#61657a">{_fmt(tick)}</text>')
    parts.append(f'<line x1="{pad_left}" x2="{width - pad_right}" y1="{pad_top + plot_h}" '
                 f'y2="{pad_top + plot_h}" stroke="#b9bccd"/>')
    if x_label:
        parts.append(f'<text x="{pad_left + plot_w / 2}" y="{height - 4}" text-anchor="middle" font-size="11" '
                     f'fill="#61657a">{escape(x_label)}</text>')
    for index, s in enumerate(series):
        points = [(sx(x), sy(y)) for x, y in s.points if math.isfinite(y)]
        if not points:
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        dash = ' stroke-dasharray="5 4"' if s.dashed else ""
        parts.append(f'<polyline fill="none" stroke="{escape(s.color)}" stroke-width="2"{dash} points="{path}">'
                     f'<title>{escape(s.name)}</title></polyline>')
        if s.markers or len(points) == 1:
            parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{escape(s.color)}"/>' for x, y in points)
        legend_x = pad_left + 8 + index * 150
        parts.append(f'<rect x="{legend_x}" y="{pad_top}" width="10" height="10" fill="{escape(s.color)}"/>'
                     f'<text x="{legend_x + 14}" y="{pad_top + 9}" font-size="11" fill="#1d1d2b">'
                     f'{escape(s.name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(bars: Sequence[tuple[str, float]], width: int = 640, height: int = 200, title: str = "",
              color: str = "#4f46e5") -> str:
    """Bars on a 0-based axis; no bars, or only zeros (a period with no usage), render EMPTY_CHART."""
    if not any(value for _, value in bars):
        return EMPTY_CHART
    pad_left, pad_bottom, pad_top = 48, 30, 10
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title or "bars")}" '
             f'xmlns="http://www.w3.org/2000/svg">']
    top = max(value for _, value in bars) or 1
    plot_w, plot_h = width - pad_left - 8, height - pad_bottom - pad_top
    slot = plot_w / len(bars)
    for tick in _nice_ticks(0, top, 4, integers=all(float(value).is_integer() for _, value in bars)):
        y = pad_top + (1 - tick / top) * plot_h
        if tick <= top:
            parts.append(f'<line x1="{pad_left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e4ee"/>'
                         f'<text x="{pad_left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
                         f'fill="#61657a">{_fmt(tick)}</text>')
    label_every = max(1, math.ceil(len(bars) / 12))
    for index, (label, value) in enumerate(bars):
        bar_h = value / top * plot_h
        x = pad_left + index * slot + slot * 0.15
        parts.append(f'<rect x="{x:.1f}" y="{pad_top + plot_h - bar_h:.1f}" width="{slot * 0.7:.1f}" '
                     f'height="{bar_h:.1f}" fill="{escape(color)}" rx="2"><title>{escape(label)}: '
                     f'{_fmt(value)}</title></rect>')
        if index % label_every == 0:
            parts.append(f'<text x="{x + slot * 0.35:.1f}" y="{height - 10}" text-anchor="middle" font-size="10" '
                         f'fill="#61657a">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)
