"""The terminal summary table of a run report.

Fields that older reports lack are left out of the table rather than shown as
zero, so that a missing measurement never reads as a measured one.
"""

from __future__ import annotations

__all__ = ["render_summary", "format_latency_ms", "format_int", "LATENCY_ROWS"]

LATENCY_ROWS = (
    ("p50", "p50"),
    ("p90", "p90"),
    ("p99", "p99"),
    ("p99_9", "p99.9"),
    ("max", "max"),
)
"""Summary keys and their labels, in the order tables show them."""


def render_summary(report: dict) -> str:
    """Return the terminal summary table of a report."""
    rows = _count_rows(report) + _latency_rows(report) + _self_check_rows(report)
    width = max(len(label) for label, _ in rows)
    lines = [f"{label:<{width}}  {value}" for label, value in rows]
    status = report["outcome"]["status"]
    if status != "completed":
        lines.append(f"{'outcome':<{width}}  {status}: {report['outcome']['error']}")
    return "\n".join(lines)


def format_int(value) -> str:
    """Format a count with thousands separators, or n/a for None."""
    return "n/a" if value is None else f"{value:,}"


def format_latency_ms(value_us, missing: str = "n/a (no probe sample)") -> str:
    """Format a latency in microseconds as milliseconds, or ``missing`` for None."""
    if value_us is None:
        return missing
    return f"{value_us / 1000:,.3f} ms"


def _count_rows(report: dict) -> list[tuple[str, str]]:
    counts = report["counts"]
    fires = report["fires"]
    throughput = report["throughput"]
    rows = [
        ("events sent", format_int(counts["sent"])),
        ("events failed", format_int(counts["failed"])),
    ]
    if "late" in counts:
        rows.append(("events late", format_int(counts["late"])))
    rows += [
        ("send rate", f"{throughput['send_rate_per_s']:,.1f} events/s"),
        ("target rate", f"{report['config']['rate_per_s']:,.1f} events/s"),
    ]
    if "rate_reached" in throughput:
        rows.append(("rate reached", "yes" if throughput["rate_reached"] else "NO"))
    for kind, count in counts["failed_by_kind"].items():
        rows.append((f"  failed: {kind}", format_int(count)))
    for kind, count in counts["connect_failures_by_kind"].items():
        rows.append((f"  connect failed: {kind}", format_int(count)))
    received = counts.get("server_received")
    rows += [
        ("server received", format_int(received)),
        ("fire count before", format_int(fires["fire_count_before"])),
        ("fire count after", format_int(fires["fire_count_after"])),
    ]
    return rows


def _latency_rows(report: dict) -> list[tuple[str, str]]:
    latency = report["latency"]
    actual = latency["send_to_fire"]
    intended = latency.get("send_to_fire_from_intended")
    rows = [
        (
            "probes (timed out)",
            f"{actual['probes_sent']:,} ({actual['probes_timed_out']:,})",
        )
    ]
    for key, label in LATENCY_ROWS:
        value = format_latency_ms(actual["summary"][key])
        if intended is not None:
            corrected = format_latency_ms(intended["summary"][key])
            value = f"{value:<14}  from intended send: {corrected}"
        rows.append((f"latency {label}", value))
    resolution_ms = actual["resolution_us"] / 1000
    rows.append(("latency resolution", f"{resolution_ms:g} ms poll interval"))
    detection = latency.get("detection")
    if detection is not None:
        rows.append(("fire detection", _describe_detection(detection)))
    return rows


def _describe_detection(detection: dict) -> str:
    bound = detection["error_bound_us"]["max"]
    text = detection["method"]
    if bound is not None:
        text += f", error at most {bound / 1000:,.3f} ms"
    validation = detection["validation"]
    if validation is not None:
        text += (
            f", {validation['within_bound']:,} of {validation['samples']:,} "
            "checked samples within bound"
        )
    return text


def _self_check_rows(report: dict) -> list[tuple[str, str]]:
    self_check = report.get("self_check")
    if self_check is None:
        return []
    lag_p99 = self_check["schedule_lag_us"]["p99"]
    rows = [
        ("generator kept up", "yes" if self_check["kept_up"] else "NO"),
        ("schedule lag p99", format_latency_ms(lag_p99, "n/a")),
        ("generator CPU", f"{self_check['generator_cpu_percent']:.0f}%"),
    ]
    rows += [("  note", note) for note in self_check["notes"]]
    return rows
