"""The run report: a JSON document, its atomic write, and the summary table."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

__all__ = ["SCHEMA_VERSION", "write_report", "render_summary", "default_report_path"]

SCHEMA_VERSION = 1
"""Version of the report layout; readers reject versions they do not know."""


def default_report_path(started_at: str, directory: str | Path = "reports") -> Path:
    """Return ``reports/run-YYYYmmddTHHMMSSZ.json`` for a run started at that time."""
    stamp = started_at.replace("-", "").replace(":", "").split(".")[0]
    return Path(directory) / f"run-{stamp}Z.json"


def write_report(report: dict, path: str | Path) -> Path:
    """Write the report through a temporary file and a rename.

    A crash therefore leaves either the old file or the complete new one, never
    half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(report, file, indent=2)
            file.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def render_summary(report: dict) -> str:
    """Return the terminal summary table of a report."""
    counts = report["counts"]
    fires = report["fires"]
    latency = report["latency"]["send_to_fire"]
    summary = latency["summary"]
    rows = [
        ("events sent", _int(counts["sent"])),
        ("events failed", _int(counts["failed"])),
        ("send rate", f"{report['throughput']['send_rate_per_s']:,.1f} events/s"),
        ("target rate", f"{report['config']['rate_per_s']:,.1f} events/s"),
    ]
    for kind, count in counts["failed_by_kind"].items():
        rows.append((f"  failed: {kind}", _int(count)))
    for kind, count in counts["connect_failures_by_kind"].items():
        rows.append((f"  connect failed: {kind}", _int(count)))
    received = counts.get("server_received")
    rows.append(("server received", "n/a" if received is None else _int(received)))
    rows += [
        ("fire count before", _int(fires["fire_count_before"])),
        ("fire count after", _int(fires["fire_count_after"])),
        (
            "probes (timed out)",
            f"{latency['probes_sent']:,} ({latency['probes_timed_out']:,})",
        ),
    ]
    for key, label in (
        ("p50", "latency p50"),
        ("p90", "latency p90"),
        ("p99", "latency p99"),
        ("p99_9", "latency p99.9"),
        ("max", "latency max"),
    ):
        rows.append((label, _latency(summary[key])))
    rows.append(
        ("latency resolution", f"{latency['resolution_us'] / 1000:g} ms poll interval")
    )
    width = max(len(label) for label, _ in rows)
    lines = [f"{label:<{width}}  {value}" for label, value in rows]
    status = report["outcome"]["status"]
    if status != "completed":
        lines.append(f"{'outcome':<{width}}  {status}: {report['outcome']['error']}")
    return "\n".join(lines)


def _int(value) -> str:
    return "n/a" if value is None else f"{value:,}"


def _latency(value_us) -> str:
    if value_us is None:
        return "n/a (no probe sample)"
    return f"{value_us / 1000:,.3f} ms"
