"""One self-contained HTML page per run report: charts, configuration, errors.

The page loads nothing: styles are inline and charts are inline SVG drawn here,
so it opens offline and can be stored as a CI artifact.

Element ids that tests and scripts rely on: ``chart-percentiles`` (latency by
percentile on a log "nines" axis), ``chart-latency-time`` (per-second latency
percentiles), ``chart-throughput`` (events sent, failed and fires per second),
``summary``, ``config`` and ``errors``.
"""

from __future__ import annotations

import math
from html import escape

import numpy as np

from loadgen.bootstrap import ResamplingSource, values_at_percentile
from loadgen.render_text import render_summary
from loadgen.svg_chart import Series, line_chart

__all__ = ["render_html", "percentile_points"]

MAX_NINES = 6
"""Deepest tick of the percentile axis: 99.9999%."""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }
pre { background: #f6f6f6; padding: 1em; }
svg.chart { display: block; margin: 1em 0; font-size: 11px; }
svg .title { font-size: 13px; font-weight: bold; }
"""


def render_html(report: dict, title: str = "loadgen run report") -> str:
    """Return the full HTML document of a report."""
    sections = [
        f"<h1>{escape(title)}</h1>",
        f"<p>Started {escape(report['started_at'])}, "
        f"{report['duration_s']:g} s, outcome "
        f"<strong>{escape(report['outcome']['status'])}</strong>.</p>",
        '<h2>Summary</h2>\n<pre id="summary">'
        + escape(render_summary(report))
        + "</pre>",
        "<h2>Latency by percentile</h2>",
        _percentile_chart(report),
        "<h2>Over time</h2>",
        _latency_time_chart(report),
        _throughput_chart(report),
        "<h2>Configuration</h2>",
        _config_table(report),
        "<h2>Errors</h2>",
        _errors(report),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(sections)
        + "\n</body>\n</html>\n"
    )


def percentile_points(encoded: str) -> list[tuple[float, float]]:
    """Return (nines, latency in ms) points of a histogram for the percentile chart.

    ``nines`` is log10(1 / (1 - percentile)): 1 at 90%, 2 at 99%, 3 at 99.9%.
    The curve stops at the deepest percentile the sample count supports, about
    log10(count) nines, because beyond it every point is the maximum.
    """
    source = ResamplingSource.from_encoded(encoded)
    if source.count == 0:
        return []
    deepest = min(MAX_NINES, math.log10(source.count))
    nines = np.linspace(0.0, deepest, 60)
    percentiles = 100 * (1 - 10 ** (-nines))
    counts = source.total_counts[None, :]
    return [
        (float(x), float(values_at_percentile(counts, source.values_us, p)[0]) / 1000)
        for x, p in zip(nines, percentiles, strict=True)
    ]


def _percentile_chart(report: dict) -> str:
    latency = report["latency"]
    series = []
    for key, name in (
        ("send_to_fire", "from actual send"),
        ("send_to_fire_from_intended", "from intended send"),
    ):
        if key in latency:
            series.append(Series(name, percentile_points(latency[key]["histogram"])))
    ticks = [(float(n), _nines_label(n)) for n in range(MAX_NINES + 1)]
    deepest = max((x for line in series for x, _ in line.points), default=0.0)
    ticks = [tick for tick in ticks if tick[0] <= max(1.0, math.ceil(deepest))]
    return line_chart(
        "chart-percentiles",
        "Send-to-fire latency by percentile",
        series,
        "percentile (log scale of 1 / (1 - percentile))",
        "latency (ms)",
        x_ticks=ticks,
    )


def _latency_time_chart(report: dict) -> str:
    timeline = report.get("timeline") or {}
    intervals = timeline.get("latency_intervals") or []
    interval_s = timeline.get("interval_s", 1.0)
    lines = {"p50": [], "p99": [], "max": []}
    for index, encoded in enumerate(intervals):
        if encoded is None:
            continue
        source = ResamplingSource.from_encoded(encoded)
        counts = source.total_counts[None, :]
        for name, percentile in (("p50", 50.0), ("p99", 99.0), ("max", 100.0)):
            value_us = values_at_percentile(counts, source.values_us, percentile)[0]
            lines[name].append(((index + 1) * interval_s, float(value_us) / 1000))
    return line_chart(
        "chart-latency-time",
        "Send-to-fire latency from intended send, per interval",
        [Series(name, points) for name, points in lines.items()],
        "time since start (s)",
        "latency (ms)",
    )


def _throughput_chart(report: dict) -> str:
    timeline = report.get("timeline") or {}
    interval_s = timeline.get("interval_s", 1.0)
    series = []
    for name, label in (("sent", "sent"), ("failed", "failed"), ("fired", "fires")):
        values = timeline.get(name)
        if values is None:
            continue
        points = [
            ((index + 1) * interval_s, value / interval_s)
            for index, value in enumerate(values)
        ]
        series.append(Series(f"{label} per second", points))
    return line_chart(
        "chart-throughput",
        "Events sent, events failed and fires per second",
        series,
        "time since start (s)",
        "per second",
    )


def _config_table(report: dict) -> str:
    rows = []
    for section in ("target", "config", "tool", "host"):
        for name, value in (report.get(section) or {}).items():
            if isinstance(value, list):
                value = ", ".join(str(item) for item in value) or "-"
            rows.append(
                f"<tr><th>{escape(section)}.{escape(name)}</th>"
                f"<td>{escape(str(value))}</td></tr>"
            )
    return '<table id="config">\n' + "\n".join(rows) + "\n</table>"


def _errors(report: dict) -> str:
    counts = report["counts"]
    items = []
    for kind, count in counts["failed_by_kind"].items():
        items.append(f"send failed ({kind}): {count:,}")
    for kind, count in counts["connect_failures_by_kind"].items():
        items.append(f"connect failed ({kind}): {count:,}")
    timed_out = report["latency"]["send_to_fire"]["probes_timed_out"]
    if timed_out:
        items.append(f"probes timed out: {timed_out:,}")
    outcome = report["outcome"]
    if outcome["error"]:
        items.append(f"run {outcome['status']}: {outcome['error']}")
    outages = report.get("outages")
    if isinstance(outages, dict):
        # The runner's outage counters, for example probe_outages and probes_missed.
        for name, value in outages.items():
            if isinstance(value, int) and value:
                items.append(f"{name.replace('_', ' ')}: {value:,}")
    for note in (report.get("self_check") or {}).get("notes", []):
        items.append(f"self-check: {note}")
    if not items:
        return '<p id="errors">No errors.</p>'
    listed = "\n".join(f"<li>{escape(item)}</li>" for item in items)
    return f'<ul id="errors">\n{listed}\n</ul>'


def _nines_label(nines: int) -> str:
    if nines == 0:
        return "0%"
    return f"{100 * (1 - 10.0**-nines):.{max(0, nines - 2)}f}%"
