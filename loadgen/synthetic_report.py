"""Complete schema_version 1 reports built from chosen latency samples.

Tests and examples use these where a real run cannot produce a chosen latency
distribution. Every field of the schema is present, including the ones older
runners leave out, and the counts agree with each other.
"""

from __future__ import annotations

from collections.abc import Sequence

from loadgen import __version__
from loadgen.histogram import LatencyHistogram
from loadgen.report import SCHEMA_VERSION

__all__ = ["synthetic_report", "without_optional_fields"]


def synthetic_report(
    latencies_by_second_us: Sequence[Sequence[float]],
    sent_per_s: int = 1000,
    failed_per_s: int = 0,
    rate_per_s: float = 1000.0,
) -> dict:
    """Build a completed run report with one timeline interval per inner sequence.

    Args:
        latencies_by_second_us: send-to-fire latencies in microseconds, one
            sequence per second of the run. The same samples fill both latency
            histograms, so the actual and the intended send time agree.
        sent_per_s: events sent in each second.
        failed_per_s: events that failed in each second.
        rate_per_s: target rate in events per second.
    """
    seconds = len(latencies_by_second_us)
    total = LatencyHistogram()
    intervals: list[str | None] = []
    for samples in latencies_by_second_us:
        interval = LatencyHistogram()
        for latency_us in samples:
            interval.record_us(latency_us)
        total.add(interval)
        intervals.append(interval.encode() if interval.count else None)
    sent = sent_per_s * seconds
    failed = failed_per_s * seconds
    probes = total.count
    latency = {
        "unit": "us",
        "from": "actual send time",
        "method": "poll fire count of /v1/health/graphs/price_signal",
        "resolution_us": 2000,
        "probes_sent": probes,
        "probes_timed_out": 0,
        "summary": total.summary(),
        "histogram": total.encode(),
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {
            "name": "loadgen",
            "version": __version__,
            "python": "3.11.7",
            "git_commit": None,
        },
        "host": {"cpu_count": 2, "platform": "Linux-x86_64"},
        "started_at": "2026-12-04T15:00:00.000Z",
        "finished_at": f"2026-12-04T15:00:{seconds:02d}.000Z",
        "duration_s": float(seconds),
        "target": {
            "base_url": "http://127.0.0.1:8080",
            "embedded_reference_server": True,
            "server_profile": None,
            "accumulator": "orderbook",
            "graph": "price_signal",
        },
        "config": {
            "users": 10,
            "rate_per_s": rate_per_s,
            "rate_per_user": rate_per_s / 10,
            "duration_s": float(seconds),
            "spawn_rate": 10,
            "feed": "sine",
            "auth": "header",
            "frame": "binary",
            "poll_interval_ms": 2.0,
            "probe_interval_ms": 100.0,
            "shape": [
                {
                    "duration_s": seconds,
                    "start_rate": rate_per_s,
                    "end_rate": rate_per_s,
                }
            ],
        },
        "counts": {
            "attempted": sent + failed,
            "sent": sent,
            "failed": failed,
            "failed_by_kind": {"connection": failed} if failed else {},
            "late": 0,
            "bytes_sent": sent * 40,
            "connects": 10,
            "connect_failures_by_kind": {},
            "probe_events_sent": probes,
            "server_received": sent,
        },
        "throughput": {
            "send_rate_per_s": float(sent_per_s),
            "target_rate_per_s": rate_per_s,
            "rate_reached": sent_per_s >= 0.95 * rate_per_s,
        },
        "fires": {
            "fire_count_before": 0,
            "fire_count_after": sent + probes,
            "fires_during_run": sent + probes,
        },
        "latency": {
            "send_to_fire": latency,
            "send_to_fire_from_intended": {**latency, "from": "intended send time"},
            "detection": {
                "method": "poll",
                "resolution_us": 2000,
                "error_bound_us": LatencyHistogram().summary(),
                "validation": None,
            },
        },
        "timeline": {
            "interval_s": 1.0,
            "sent": [sent_per_s] * seconds,
            "failed": [failed_per_s] * seconds,
            "late": [0] * seconds,
            "fired": [sent_per_s] * seconds,
            "latency_intervals": intervals,
        },
        "self_check": {
            "schedule_lag_us": LatencyHistogram().summary(),
            "generator_cpu_percent": 12.5,
            "kept_up": True,
            "notes": [],
        },
        "outcome": {"status": "completed", "error": None},
    }


def without_optional_fields(report: dict) -> dict:
    """Remove every field the schema does not require, as the first runner wrote.

    Returns the same dict, changed in place.
    """
    for name in ("host", "timeline", "self_check"):
        report.pop(name, None)
    report["tool"].pop("git_commit", None)
    report["target"].pop("server_profile", None)
    report["config"].pop("shape", None)
    report["counts"].pop("late", None)
    report["throughput"].pop("rate_reached", None)
    latency = report["latency"]
    latency.pop("send_to_fire_from_intended", None)
    latency.pop("detection", None)
    latency["send_to_fire"].pop("from", None)
    return report
