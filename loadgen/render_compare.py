"""Text, Markdown and JSON forms of a ``Comparison``."""

from __future__ import annotations

import json

from loadgen.compare import Comparison, MetricComparison
from loadgen.thresholds import LATENCY_METRICS

__all__ = ["render_comparison"]

LABELS = {
    "throughput": "throughput",
    "p50": "p50",
    "p90": "p90",
    "p99": "p99",
    "p99_9": "p99.9",
    "max": "max",
    "error_rate": "error rate",
}

HEADER = (
    "metric",
    "baseline",
    "candidate",
    "change",
    "change %",
    "interval",
    "threshold",
    "verdict",
)


def render_comparison(comparison: Comparison, output_format: str) -> str:
    """Render a comparison as ``text``, ``markdown`` or ``json``."""
    if output_format == "json":
        return json.dumps(_as_dict(comparison), indent=2)
    rows = [_cells(row) for row in comparison.metrics]
    if output_format == "markdown":
        return _markdown(comparison, rows)
    return _text(comparison, rows)


def _verdict_line(comparison: Comparison) -> str:
    verdict = "REGRESSION" if comparison.regressed else "PASS"
    return (
        f"verdict: {verdict} ({comparison.candidate_name} against "
        f"{comparison.baseline_name}, latency.{comparison.latency}, "
        f"{comparison.confidence:.0%} bootstrap interval of "
        f"{comparison.iterations:,} replicates)"
    )


def _text(comparison: Comparison, rows: list[tuple[str, ...]]) -> str:
    table = [HEADER, *rows]
    widths = [max(len(row[column]) for row in table) for column in range(len(HEADER))]
    lines = [
        "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in table
    ]
    lines.append(_verdict_line(comparison))
    lines += [f"note: {note}" for note in comparison.notes]
    return "\n".join(lines)


def _markdown(comparison: Comparison, rows: list[tuple[str, ...]]) -> str:
    verdict = "REGRESSION" if comparison.regressed else "PASS"
    lines = [
        f"### loadgen compare: {verdict}",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join(["---"] + ["---:"] * 5 + ["---", "---"]) + "|",
    ]
    for row in rows:
        cells = list(row)
        if cells[-1] == "regression":
            cells[-1] = "**regression**"
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", _verdict_line(comparison)]
    lines += [f"- {note}" for note in comparison.notes]
    return "\n".join(lines)


def _cells(row: MetricComparison) -> tuple[str, ...]:
    relative = row.relative_change
    return (
        LABELS[row.metric],
        _value(row.metric, row.baseline),
        _value(row.metric, row.candidate),
        _change(row.metric, row.change),
        "n/a" if relative is None else f"{relative * 100:+.1f}%",
        _interval(row),
        "-" if row.threshold is None else row.threshold.describe(),
        row.verdict,
    )


def _value(metric: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if metric in LATENCY_METRICS:
        return f"{value / 1000:,.3f} ms"
    if metric == "error_rate":
        return f"{value * 100:.3f}%"
    return f"{value:,.1f}/s"


def _change(metric: str, change: float | None) -> str:
    if change is None:
        return "n/a"
    if metric in LATENCY_METRICS:
        return f"{change / 1000:+,.3f} ms"
    if metric == "error_rate":
        return f"{change * 100:+.3f} pp"
    return f"{change:+,.1f}/s"


def _interval(row: MetricComparison) -> str:
    if row.interval is None:
        return "-"
    low, high = row.interval
    return f"[{low / 1000:+,.3f}, {high / 1000:+,.3f}] ms"


def _as_dict(comparison: Comparison) -> dict:
    return {
        "baseline": comparison.baseline_name,
        "candidate": comparison.candidate_name,
        "verdict": "regression" if comparison.regressed else "pass",
        "latency": comparison.latency,
        "confidence": comparison.confidence,
        "iterations": comparison.iterations,
        "resampling": comparison.resampling,
        "metrics": [
            {
                "metric": row.metric,
                "baseline": row.baseline,
                "candidate": row.candidate,
                "change": row.change,
                "relative_change": row.relative_change,
                "interval": None if row.interval is None else list(row.interval),
                "threshold": None
                if row.threshold is None
                else {
                    "kind": row.threshold.kind,
                    "value": row.threshold.value,
                    "text": row.threshold.describe(),
                },
                "verdict": row.verdict,
            }
            for row in comparison.metrics
        ],
        "notes": comparison.notes,
    }
