"""Charts as SVG drawn on the server: sends per day, and a bounce rate against its threshold.

The pages carry their charts as inline SVG: no script runs in them (the dashboard's
Content-Security-Policy allows none) and a report file opens with no network. The colours
come from the stylesheet through class names (``step1``, ``followups``, ``rate``,
``threshold``), so the SVG carries no style attribute either. Each bar or point has a
``<title>`` that a browser shows on hover and a screen reader reads. Pure: text in, text
out; every text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["DayBar", "RatePoint", "bar_chart", "rate_chart"]

_WIDTH = 640
_HEIGHT = 170
_LEFT = 44  # room for the y axis' labels
_RIGHT = 8
_TOP = 10
_BOTTOM = 24  # room for the first and last day
_PLOT_W = _WIDTH - _LEFT - _RIGHT
_PLOT_H = _HEIGHT - _TOP - _BOTTOM


@dataclass(frozen=True)
class DayBar:
    """One day's bar: step-1 sends below, follow-ups stacked above."""

    day: str
    step1: int
    followups: int


@dataclass(frozen=True)
class RatePoint:
    """One day's bounce rate over the window that ends that day (``None``: no sends)."""

    day: str
    bounces: int
    sends: int

    @property
    def rate(self) -> float | None:
        """Bounces over sends, or ``None`` with no sends."""
        return self.bounces / self.sends if self.sends else None


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (at least 1)."""
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)


def _frame(label: str, top: str, days: Sequence[str], body: list[str]) -> str:
    """The chart's svg element: axes, the y axis' top label, the first and last day."""
    bottom = _TOP + _PLOT_H
    parts = [
        f'<svg class="chart" viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
        f'<line class="axis" x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{bottom}"/>',
        f'<line class="axis" x1="{_LEFT}" y1="{bottom}" x2="{_WIDTH - _RIGHT}" y2="{bottom}"/>',
        f'<text class="label" x="{_LEFT - 4}" y="{_TOP + 8}" text-anchor="end">'
        f"{escape(top)}</text>",
        f'<text class="label" x="{_LEFT - 4}" y="{bottom}" text-anchor="end">0</text>',
    ]
    if days:
        parts.append(f'<text class="label" x="{_LEFT}" y="{_HEIGHT - 6}">{escape(days[0])}</text>')
        parts.append(
            f'<text class="label" x="{_WIDTH - _RIGHT}" y="{_HEIGHT - 6}" '
            f'text-anchor="end">{escape(days[-1])}</text>'
        )
    return "".join([*parts, *body, "</svg>"])


def bar_chart(label: str, bars: Sequence[DayBar]) -> str:
    """Stacked bars of sends per day: one ``<g class="day">`` a day, oldest first.

    Args:
        label: What the chart shows, for its title and screen readers.
        bars: One entry per day, every day of the range (zero days included).

    Returns:
        An ``<svg>`` element.
    """
    top = _nice_ceiling(max((bar.step1 + bar.followups for bar in bars), default=0))
    width = _PLOT_W / max(len(bars), 1)
    body = []
    for index, bar in enumerate(bars):
        x = _LEFT + index * width
        step1_h = _PLOT_H * bar.step1 / top
        followups_h = _PLOT_H * bar.followups / top
        base = _TOP + _PLOT_H
        title = f"{bar.day}: {bar.step1} step 1, {bar.followups} follow-ups"
        body.append(
            f'<g class="day" data-day="{escape(bar.day)}"><title>{escape(title)}</title>'
            f'<rect class="step1" x="{x + 0.5:.1f}" y="{base - step1_h:.1f}" '
            f'width="{max(width - 1, 0.5):.1f}" height="{step1_h:.1f}"/>'
            f'<rect class="followups" x="{x + 0.5:.1f}" y="{base - step1_h - followups_h:.1f}" '
            f'width="{max(width - 1, 0.5):.1f}" height="{followups_h:.1f}"/></g>'
        )
    return _frame(label, f"{top:g}", [bar.day for bar in bars], body)


def rate_chart(label: str, points: Sequence[RatePoint], threshold: float) -> str:
    """A day-by-day rate drawn against a threshold line.

    One ``<circle class="point">`` a day that has sends in its window, joined by a
    ``<polyline class="rate">``; the threshold is a ``<line class="threshold">``.

    Args:
        label: What the chart shows.
        points: One entry per day, oldest first.
        threshold: The rate that disables (0.05 for 5%).

    Returns:
        An ``<svg>`` element.
    """
    rates = [point.rate for point in points if point.rate is not None]
    top = max(threshold * 2, max(rates, default=0.0) * 1.1, 0.01)
    step = _PLOT_W / max(len(points) - 1, 1)
    base = _TOP + _PLOT_H
    line_y = base - _PLOT_H * threshold / top
    body = [
        f'<line class="threshold" x1="{_LEFT}" y1="{line_y:.1f}" x2="{_WIDTH - _RIGHT}" '
        f'y2="{line_y:.1f}"><title>threshold {threshold:.1%}</title></line>'
    ]
    coordinates, circles = [], []
    for index, point in enumerate(points):
        rate = point.rate
        if rate is None:
            continue
        x, y = _LEFT + index * step, base - _PLOT_H * rate / top
        coordinates.append(f"{x:.1f},{y:.1f}")
        title = f"{point.day}: {rate:.1%} ({point.bounces}/{point.sends})"
        circles.append(
            f'<circle class="point" data-day="{escape(point.day)}" cx="{x:.1f}" cy="{y:.1f}" '
            f'r="2.5"><title>{escape(title)}</title></circle>'
        )
    if coordinates:
        body.append(f'<polyline class="rate" points="{" ".join(coordinates)}"/>')
    return _frame(label, f"{top:.1%}", [point.day for point in points], [*body, *circles])
