"""A small SVG chart renderer for the monitoring report: grouped bars, stacked bars, lines.

Why our own: the report needs three simple chart kinds, drawn from a few hundred numbers,
inlined into one HTML file that works offline. A plotting library would add tens of MB to
the serving image (matplotlib with its fonts and numpy wheels' friends, or plotly's
bundled JavaScript of several MB per report) for what fits in this module; SVG is text
that every browser draws, scales without blur and prints. Every string that reaches the
output is escaped; every number is rounded to 0.1 px, which keeps files small.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

PALETTE = (
    "#2b6cb0", "#dd6b20", "#2f855a", "#c53030", "#6b46c1",
    "#b7791f", "#00838f", "#d53f8c", "#4a5568", "#718096",
)  # fmt: skip
REFERENCE = "#a0aec0"
LIVE = "#2b6cb0"
DRIFTED = "#c53030"
_FONT = "font-family:system-ui,sans-serif"
_MARGIN_LEFT, _MARGIN_RIGHT, _MARGIN_TOP = 48.0, 28.0, 28.0


@dataclass(frozen=True)
class Group:
    """One series of a bar chart: a value per category, drawn in one colour."""

    name: str
    values: Sequence[float]
    color: str


@dataclass(frozen=True)
class Line:
    """A line through (x, y) points; x is any number (e.g. unix time), y a value or None."""

    name: str
    points: Sequence[tuple[float, float | None]]
    color: str
    dashed: bool = False


def escape(text: str) -> str:
    return html.escape(text, quote=True)


def _n(value: float) -> str:
    rounded = round(value, 1)
    return str(int(rounded)) if rounded == int(rounded) else f"{rounded:.1f}"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [low, high] (1, 2, 2.5 or 5 x 10^k apart)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("ticks need finite bounds")
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks, value = [], first
    while value < high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < high - step * 1e-9:
        ticks.append(round(value, 12))
    return ticks


def tick_label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.1e}"
    return f"{value:.4g}"


def _frame(width: float, height: float, title: str, body: list[str]) -> str:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_n(width)}" height="{_n(height)}" '
        f'viewBox="0 0 {_n(width)} {_n(height)}" role="img" style="{_FONT}">'
        f"<title>{escape(title)}</title>"
        f'<text x="{_n(_MARGIN_LEFT)}" y="16" font-size="13" font-weight="600">'
        f"{escape(title)}</text>"
    )
    return head + "".join(body) + "</svg>"


def _y_axis(
    ticks: list[float], *, top: float, bottom: float, left: float, right: float, label: str
) -> list[str]:
    low, high = ticks[0], ticks[-1]
    parts = []
    for tick in ticks:
        y = bottom - (tick - low) / (high - low) * (bottom - top)
        parts.append(
            f'<line x1="{_n(left)}" x2="{_n(right)}" y1="{_n(y)}" y2="{_n(y)}" stroke="#e2e8f0"/>'
            f'<text x="{_n(left - 4)}" y="{_n(y + 3)}" font-size="10" text-anchor="end" '
            f'fill="#4a5568">{escape(tick_label(tick))}</text>'
        )
    if label:
        parts.append(
            f'<text x="10" y="{_n((top + bottom) / 2)}" font-size="10" fill="#4a5568" '
            f'transform="rotate(-90 10 {_n((top + bottom) / 2)})" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
    return parts


def _baseline(left: float, right: float, bottom: float) -> str:
    return (
        f'<line x1="{_n(left)}" x2="{_n(right)}" y1="{_n(bottom)}" y2="{_n(bottom)}" '
        'stroke="#4a5568"/>'
    )


def _legend(entries: Sequence[tuple[str, str]], x: float, y: float) -> list[str]:
    parts = []
    for name, color in entries:
        parts.append(
            f'<rect x="{_n(x)}" y="{_n(y - 8)}" width="10" height="10" fill="{escape(color)}"/>'
            f'<text x="{_n(x + 14)}" y="{_n(y + 1)}" font-size="10">{escape(name)}</text>'
        )
        x += 24 + 6 * len(name)
    return parts


def bars(
    categories: Sequence[str],
    groups: Sequence[Group],
    *,
    title: str,
    y_label: str = "",
    width: float = 420,
    height: float = 240,
) -> str:
    """Grouped vertical bars: one cluster per category, one bar per group."""
    # Wider on the left: the first category's slanted label reaches left of its bar.
    bottom, left, right = height - 58, _MARGIN_LEFT + 16, width - _MARGIN_RIGHT
    top = _MARGIN_TOP + 14
    highest = max([v for g in groups for v in g.values] + [0.0])
    ticks = nice_ticks(0.0, highest if highest > 0 else 1.0, 4)
    body = _y_axis(ticks, top=top, bottom=bottom, left=left, right=right, label=y_label)
    slot = (right - left) / max(len(categories), 1)
    bar = slot * 0.8 / max(len(groups), 1)
    for k, group in enumerate(groups):
        for i, value in enumerate(group.values):
            h = value / ticks[-1] * (bottom - top)
            x = left + i * slot + slot * 0.1 + k * bar
            body.append(
                f'<rect x="{_n(x)}" y="{_n(bottom - h)}" width="{_n(max(bar - 1, 1))}" '
                f'height="{_n(h)}" fill="{escape(group.color)}"/>'
            )
    for i, name in enumerate(categories):
        x = left + (i + 0.5) * slot
        short = name if len(name) <= 16 else name[:15] + "…"
        body.append(
            f'<text x="{_n(x)}" y="{_n(bottom + 10)}" font-size="9" text-anchor="end" '
            f'transform="rotate(-35 {_n(x)} {_n(bottom + 10)})">{escape(short)}</text>'
        )
    body.append(_baseline(left, right, bottom))
    body += _legend([(g.name, g.color) for g in groups], left, _MARGIN_TOP + 4)
    return _frame(width, height, title, body)


def stacked(
    labels: Sequence[str],
    layers: Sequence[Group],
    *,
    title: str,
    y_label: str = "share",
    width: float = 860,
    height: float = 260,
) -> str:
    """Stacked bars of shares: one bar per label (e.g. a time bucket), layers summing to 1."""
    bottom, left, right = height - 48, _MARGIN_LEFT, width - _MARGIN_RIGHT
    top = _MARGIN_TOP + 14
    body = _y_axis(
        [0.0, 0.25, 0.5, 0.75, 1.0], top=top, bottom=bottom, left=left, right=right, label=y_label
    )
    slot = (right - left) / max(len(labels), 1)
    for i in range(len(labels)):
        total = sum(layer.values[i] for layer in layers) or 1.0
        y = bottom
        for layer in layers:
            h = layer.values[i] / total * (bottom - top)
            body.append(
                f'<rect x="{_n(left + i * slot + slot * 0.08)}" y="{_n(y - h)}" '
                f'width="{_n(max(slot * 0.84, 1))}" height="{_n(h)}" fill="{escape(layer.color)}"/>'
            )
            y -= h
    body += _x_labels(labels, left, slot, bottom)
    body += _legend([(g.name, g.color) for g in layers], left, _MARGIN_TOP + 4)
    return _frame(width, height, title, body)


def _x_labels(labels: Sequence[str], left: float, slot: float, bottom: float) -> list[str]:
    every = max(1, math.ceil(len(labels) / 8))
    return [
        f'<text x="{_n(left + (i + 0.5) * slot)}" y="{_n(bottom + 14)}" font-size="9" '
        f'text-anchor="middle" fill="#4a5568">{escape(label)}</text>'
        for i, label in enumerate(labels)
        if i % every == 0
    ]


def lines(
    series: Sequence[Line],
    *,
    title: str,
    x_labels: Sequence[tuple[float, str]],
    y_label: str = "",
    y_range: tuple[float, float] | None = None,
    width: float = 860,
    height: float = 260,
) -> str:
    """Lines with a dot per point over a numeric x axis labelled at ``x_labels``."""
    bottom, left, right = height - 48, _MARGIN_LEFT, width - _MARGIN_RIGHT
    top = _MARGIN_TOP + 14
    xs = [x for s in series for x, _ in s.points] + [x for x, _ in x_labels]
    ys = [y for s in series for _, y in s.points if y is not None]
    x_low, x_high = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1
    y_low, y_high = y_range or ((min(ys), max(ys)) if ys else (0.0, 1.0))
    ticks = nice_ticks(y_low, y_high, 5)
    body = _y_axis(ticks, top=top, bottom=bottom, left=left, right=right, label=y_label)

    def px(x: float) -> float:
        return left + (x - x_low) / (x_high - x_low) * (right - left)

    def py(y: float) -> float:
        return bottom - (y - ticks[0]) / (ticks[-1] - ticks[0]) * (bottom - top)

    for s in series:
        points = [(px(x), py(y)) for x, y in s.points if y is not None]
        dash = ' stroke-dasharray="5 4"' if s.dashed else ""
        if len(points) > 1:
            path = " ".join(f"{_n(x)},{_n(y)}" for x, y in points)
            body.append(
                f'<polyline points="{path}" fill="none" stroke="{escape(s.color)}" '
                f'stroke-width="2"{dash}/>'
            )
        if not s.dashed:
            body += [
                f'<circle cx="{_n(x)}" cy="{_n(y)}" r="2.5" fill="{escape(s.color)}"/>'
                for x, y in points
            ]
    body += [
        f'<text x="{_n(px(x))}" y="{_n(bottom + 14)}" font-size="9" text-anchor="middle" '
        f'fill="#4a5568">{escape(label)}</text>'
        for x, label in x_labels
    ]
    body.append(_baseline(left, right, bottom))
    body += _legend([(s.name, s.color) for s in series], left, _MARGIN_TOP + 4)
    return _frame(width, height, title, body)
