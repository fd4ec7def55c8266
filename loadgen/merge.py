"""Exact merge of run reports from load generators that ran at the same time.

Histograms are added bucket by bucket, so every percentile of the merged report
is the percentile of all runs' samples together, not an average of
percentiles. Counts are summed, timelines are aligned on their start times to
the nearest interval, and rates are recomputed over the merged time span.

Statistics that only exist as summaries (``self_check.schedule_lag_us`` and
``latency.detection.error_bound_us``) cannot be merged exactly, so the merged
report leaves ``self_check`` and ``latency.detection`` out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from loadgen import __version__
from loadgen.histogram import LatencyHistogram
from loadgen.report import SCHEMA_VERSION
from loadgen.report_schema import ReportError, decode_histogram, validate_report

__all__ = ["merge_reports"]

COUNT_FIELDS = ("attempted", "sent", "failed", "bytes_sent", "connects")
TIMELINE_COUNTS = ("sent", "failed", "late")


def merge_reports(reports: Sequence[dict], names: Sequence[str]) -> dict:
    """Merge validated reports into one report of the same schema.

    Args:
        reports: two or more reports (see ``load_report``).
        names: how the merged report and messages name each input, usually paths.

    Raises:
        ReportError: fewer than two reports, or timelines with different
            interval lengths.
    """
    if len(reports) < 2:
        raise ReportError("merge needs at least two reports")
    starts = [_timestamp(report["started_at"]) for report in reports]
    ends = [
        start + timedelta(seconds=report["duration_s"])
        for start, report in zip(starts, reports, strict=True)
    ]
    first = min(starts)
    span_s = (max(ends) - first).total_seconds()
    same_target = _all_equal(
        (report["target"]["base_url"], report["target"]["graph"]) for report in reports
    )

    counts = _merge_counts(reports)
    merged = {
        "schema_version": SCHEMA_VERSION,
        "tool": {
            "name": "loadgen",
            "version": __version__,
            "python": reports[0]["tool"]["python"],
            "git_commit": _common(
                report["tool"].get("git_commit") for report in reports
            ),
        },
        "started_at": min(report["started_at"] for report in reports),
        "finished_at": max(report["finished_at"] for report in reports),
        "duration_s": round(span_s, 3),
        "target": _merge_target(reports),
        "config": _merge_config(reports),
        "counts": counts,
        "throughput": _merge_throughput(reports, counts, span_s),
        "fires": _merge_fires(reports, same_target),
        "latency": _merge_latency(reports),
        "outcome": _merge_outcome(reports, names),
        "merged_from": [
            {"report": name, "started_at": report["started_at"]}
            for name, report in zip(names, reports, strict=True)
        ],
    }
    hosts = [report.get("host") for report in reports]
    if all(host is not None for host in hosts):
        merged["host"] = {
            "cpu_count": sum(host["cpu_count"] for host in hosts),
            "platform": _common((host["platform"] for host in hosts), "mixed"),
        }
    timelines = [report.get("timeline") for report in reports]
    if all(timeline is not None for timeline in timelines):
        offsets_s = [(start - first).total_seconds() for start in starts]
        merged["timeline"] = _merge_timelines(timelines, offsets_s, names, same_target)
    validate_report(merged, "merged report")
    return merged


def _merge_counts(reports: Sequence[dict]) -> dict:
    counts: dict = {
        name: sum(r["counts"][name] for r in reports) for name in COUNT_FIELDS
    }
    for name in ("failed_by_kind", "connect_failures_by_kind"):
        by_kind: dict[str, int] = {}
        for report in reports:
            for kind, count in report["counts"][name].items():
                by_kind[kind] = by_kind.get(kind, 0) + count
        counts[name] = by_kind
    if all("late" in report["counts"] for report in reports):
        counts["late"] = sum(report["counts"]["late"] for report in reports)
    counts["probe_events_sent"] = sum(r["counts"]["probe_events_sent"] for r in reports)
    received = [report["counts"]["server_received"] for report in reports]
    counts["server_received"] = None if None in received else sum(received)
    return counts


def _merge_target(reports: Sequence[dict]) -> dict:
    targets = [report["target"] for report in reports]
    merged = {
        "base_url": _common((t["base_url"] for t in targets), "several servers"),
        "embedded_reference_server": all(
            t["embedded_reference_server"] for t in targets
        ),
        "accumulator": _common((t["accumulator"] for t in targets), "mixed"),
        "graph": _common((t["graph"] for t in targets), "mixed"),
    }
    if any("server_profile" in target for target in targets):
        merged["server_profile"] = _common(t.get("server_profile") for t in targets)
    return merged


def _merge_config(reports: Sequence[dict]) -> dict:
    configs = [report["config"] for report in reports]
    users = sum(config["users"] for config in configs)
    rate_per_s = sum(config["rate_per_s"] for config in configs)
    return {
        "users": users,
        "rate_per_s": rate_per_s,
        "rate_per_user": rate_per_s / users,
        "duration_s": max(config["duration_s"] for config in configs),
        "spawn_rate": sum(config["spawn_rate"] for config in configs),
        "feed": _common((config["feed"] for config in configs), "mixed"),
        "auth": _common((config["auth"] for config in configs), "mixed"),
        "frame": _common((config["frame"] for config in configs), "mixed"),
        # The coarsest poll interval bounds the resolution of the merged samples.
        "poll_interval_ms": max(config["poll_interval_ms"] for config in configs),
        "probe_interval_ms": _common(
            (config["probe_interval_ms"] for config in configs),
            min(config["probe_interval_ms"] for config in configs),
        ),
    }


def _merge_throughput(reports: Sequence[dict], counts: dict, span_s: float) -> dict:
    throughputs = [report["throughput"] for report in reports]
    merged = {
        "send_rate_per_s": round(counts["sent"] / span_s, 1) if span_s > 0 else 0.0,
        "target_rate_per_s": sum(t["target_rate_per_s"] for t in throughputs),
    }
    if all("rate_reached" in throughput for throughput in throughputs):
        merged["rate_reached"] = all(t["rate_reached"] for t in throughputs)
    return merged


def _merge_fires(reports: Sequence[dict], same_target: bool) -> dict:
    fires = [report["fires"] for report in reports]
    if same_target:
        # Runs against one graph see the same fire count, so take its range.
        before = [f["fire_count_before"] for f in fires]
        after = [f["fire_count_after"] for f in fires]
        first = None if None in before else min(before)
        last = None if None in after else max(after)
        during = None if first is None or last is None else last - first
        return {
            "fire_count_before": first,
            "fire_count_after": last,
            "fires_during_run": during,
        }
    during_values = [f["fires_during_run"] for f in fires]
    return {
        "fire_count_before": None,
        "fire_count_after": None,
        "fires_during_run": None if None in during_values else sum(during_values),
    }


def _merge_latency(reports: Sequence[dict]) -> dict:
    latency = {"send_to_fire": _merge_latency_entry(reports, "send_to_fire")}
    key = "send_to_fire_from_intended"
    if all(key in report["latency"] for report in reports):
        latency[key] = _merge_latency_entry(reports, key)
    return latency


def _merge_latency_entry(reports: Sequence[dict], key: str) -> dict:
    entries = [report["latency"][key] for report in reports]
    histogram = LatencyHistogram()
    for entry in entries:
        histogram.add(LatencyHistogram.decode(entry["histogram"]))
    merged = {
        "unit": "us",
        "method": _common((entry["method"] for entry in entries), "mixed"),
        "resolution_us": max(entry["resolution_us"] for entry in entries),
        "probes_sent": sum(entry["probes_sent"] for entry in entries),
        "probes_timed_out": sum(entry["probes_timed_out"] for entry in entries),
        "summary": histogram.summary(),
        "histogram": histogram.encode(),
    }
    origin = _common(entry.get("from") for entry in entries)
    if origin is not None:
        merged["from"] = origin
    return merged


def _merge_outcome(reports: Sequence[dict], names: Sequence[str]) -> dict:
    for name, report in zip(names, reports, strict=True):
        outcome = report["outcome"]
        if outcome["status"] != "completed":
            return {"status": outcome["status"], "error": f"{name}: {outcome['error']}"}
    return {"status": "completed", "error": None}


def _merge_timelines(
    timelines: Sequence[dict],
    offsets_s: Sequence[float],
    names: Sequence[str],
    same_target: bool,
) -> dict:
    interval_s = timelines[0]["interval_s"]
    for name, timeline in zip(names, timelines, strict=True):
        if timeline["interval_s"] != interval_s:
            raise ReportError(
                f"{name}: timeline.interval_s {timeline['interval_s']} differs from "
                f"{interval_s} in {names[0]}; merge only runs with equal intervals"
            )
    starts = [round(offset_s / interval_s) for offset_s in offsets_s]
    length = max(
        start
        + max(len(series) for series in timeline.values() if isinstance(series, list))
        for start, timeline in zip(starts, timelines, strict=True)
    )
    merged: dict = {"interval_s": interval_s}
    for name in (*TIMELINE_COUNTS, "fired"):
        if not all(name in timeline for timeline in timelines):
            continue
        series = [0] * length
        for start, timeline in zip(starts, timelines, strict=True):
            for index, value in enumerate(timeline[name]):
                # One graph's fires are seen by every run, so do not count them twice.
                if name == "fired" and same_target:
                    series[start + index] = max(series[start + index], value)
                else:
                    series[start + index] += value
        merged[name] = series
    if all("latency_intervals" in timeline for timeline in timelines):
        merged["latency_intervals"] = _merge_intervals(timelines, starts, length, names)
    return merged


def _merge_intervals(
    timelines: Sequence[dict],
    starts: Sequence[int],
    length: int,
    names: Sequence[str],
) -> list[str | None]:
    slots: list[LatencyHistogram | None] = [None] * length
    for start, timeline, name in zip(starts, timelines, names, strict=True):
        for index, encoded in enumerate(timeline["latency_intervals"]):
            if encoded is None:
                continue
            slot = slots[start + index]
            if slot is None:
                slot = slots[start + index] = LatencyHistogram()
            where = f"timeline.latency_intervals[{index}]"
            slot.add(decode_histogram(encoded, name, where))
    return [None if slot is None else slot.encode() for slot in slots]


def _timestamp(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ReportError(
            f"invalid started_at {text!r}: expected an ISO 8601 time"
        ) from None


def _all_equal(values) -> bool:
    return len(set(values)) == 1


def _common(values, fallback=None):
    """Return the value every input shares, or ``fallback`` when they differ."""
    distinct = set(values)
    return distinct.pop() if len(distinct) == 1 else fallback
