"""Line charts as inline SVG, so that an HTML report needs no script or network.

Each chart is ``<svg id=CHART_ID class="chart">`` with one
``<polyline class="series" data-series=NAME data-count=N>`` per series, which
lets tests and scripts find the plotted data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["Series", "line_chart"]

WIDTH = 720
HEIGHT = 300
MARGIN_LEFT = 70
MARGIN_RIGHT = 20
MARGIN_TOP = 30
MARGIN_BOTTOM = 50
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd")


@dataclass
class Series:
    """One line: a name for the legend and (x, y) points in data units."""

    name: str
    points: Sequence[tuple[float, float]]


def line_chart(
    chart_id: str,
    title: str,
    series: Sequence[Series],
    x_label: str,
    y_label: str,
    x_ticks: Sequence[tuple[float, str]] | None = None,
) -> str:
    """Return an ``<svg>`` element with axes, ticks, a legend and one line per series.

    ``x_ticks`` replaces the default five evenly spaced x ticks, for example
    with percentile labels on a log axis. A chart without points shows a
    "no data" label instead of lines.
    """
    points = [point for line in series for point in line.points]
    parts = [
        f'<svg id="{escape(chart_id)}" class="chart" '
        'xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<text class="title" x="{WIDTH / 2}" y="18" text-anchor="middle">'
        f"{escape(title)}</text>",
    ]
    if not points:
        parts.append(
            f'<text class="no-data" x="{WIDTH / 2}" y="{HEIGHT / 2}" '
            'text-anchor="middle">no data</text></svg>'
        )
        return "\n".join(parts)

    # Scale data units to the plot area.
    x_low = min(x for x, _ in points)
    x_high = max(x for x, _ in points)
    if x_ticks:
        x_low = min(x_low, min(x for x, _ in x_ticks))
        x_high = max(x_high, max(x for x, _ in x_ticks))
    y_high = _nice_ceiling(max(y for _, y in points))
    x_span = (x_high - x_low) or 1.0

    def to_x(x: float) -> float:
        return MARGIN_LEFT + (x - x_low) / x_span * (WIDTH - MARGIN_LEFT - MARGIN_RIGHT)

    def to_y(y: float) -> float:
        plot_height = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
        return HEIGHT - MARGIN_BOTTOM - y / y_high * plot_height

    # Draw the axes and ticks.
    bottom = HEIGHT - MARGIN_BOTTOM
    parts.append(
        f'<g class="axes"><line x1="{MARGIN_LEFT}" y1="{bottom}" '
        f'x2="{WIDTH - MARGIN_RIGHT}" y2="{bottom}" stroke="#333"/>'
        f'<line x1="{MARGIN_LEFT}" y1="{MARGIN_TOP}" x2="{MARGIN_LEFT}" '
        f'y2="{bottom}" stroke="#333"/></g>'
    )
    if x_ticks is None:
        x_ticks = [
            (x_low + x_span * step / 4, f"{x_low + x_span * step / 4:g}")
            for step in range(5)
        ]
    for x, label in x_ticks:
        parts.append(
            f'<g class="x-tick"><line x1="{to_x(x):.1f}" y1="{bottom}" '
            f'x2="{to_x(x):.1f}" y2="{MARGIN_TOP}" stroke="#ddd"/>'
            f'<text x="{to_x(x):.1f}" y="{bottom + 16}" text-anchor="middle">'
            f"{escape(label)}</text></g>"
        )
    for step in range(5):
        y = y_high * step / 4
        parts.append(
            f'<g class="y-tick"><line x1="{MARGIN_LEFT}" y1="{to_y(y):.1f}" '
            f'x2="{WIDTH - MARGIN_RIGHT}" y2="{to_y(y):.1f}" stroke="#eee"/>'
            f'<text x="{MARGIN_LEFT - 6}" y="{to_y(y) + 4:.1f}" text-anchor="end">'
            f"{y:g}</text></g>"
        )
    parts.append(
        f'<text class="x-label" x="{WIDTH / 2}" y="{HEIGHT - 8}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
        f'<text class="y-label" x="14" y="{HEIGHT / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {HEIGHT / 2})">{escape(y_label)}</text>'
    )

    # Draw one line and one legend entry per series.
    for index, line in enumerate(series):
        color = COLORS[index % len(COLORS)]
        coordinates = " ".join(f"{to_x(x):.1f},{to_y(y):.1f}" for x, y in line.points)
        parts.append(
            f'<polyline class="series" data-series="{escape(line.name)}" '
            f'data-count="{len(line.points)}" fill="none" stroke="{color}" '
            f'stroke-width="2" points="{coordinates}"/>'
        )
        legend_y = MARGIN_TOP + 4 + 16 * index
        parts.append(
            f'<g class="legend"><rect x="{MARGIN_LEFT + 10}" y="{legend_y}" '
            f'width="12" height="4" fill="{color}"/><text x="{MARGIN_LEFT + 28}" '
            f'y="{legend_y + 6}">{escape(line.name)}</text></g>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _nice_ceiling(value: float) -> float:
    """Round up to 1, 2 or 5 times a power of ten, so y ticks read cleanly."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 5, 10):
        if value <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude
