"""Assembly of the run report from what ``loadgen run`` measured."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from loadgen import __version__
from loadgen.backoff import merge_windows
from loadgen.histogram import LatencyHistogram
from loadgen.report import SCHEMA_VERSION

__all__ = ["RunFacts", "build_run_report"]

RATE_TOLERANCE = 0.01
"""The achieved rate counts as reached when within 1% of the target."""

KEPT_UP_LAG_P99_US = 10_000
KEPT_UP_CPU_PERCENT = 90.0


@dataclass
class RunFacts:
    """Facts gathered before, during and after a run's load."""

    config: object
    settings: object
    base_url: str
    embedded: bool
    shape: object
    started_at: datetime
    fire_count_before: int
    usage: object
    load_s: float = 0.0
    counts: dict = field(default_factory=dict)
    fire_count_after: int | None = None
    fired_per_second: list = field(default_factory=list)
    generator_max_rate_per_s: float | None = None
    outcome: dict = field(
        default_factory=lambda: {"status": "completed", "error": None}
    )


def build_run_report(facts: RunFacts, state) -> dict:
    """Return the report dictionary; see docs/report-schema.md for each field."""
    config, settings = facts.config, facts.settings
    probe = state.probe
    target_events = facts.shape.events_by(min(facts.load_s, facts.shape.duration_s))
    send_rate = facts.counts["sent"] / facts.load_s if facts.load_s else 0.0
    target_rate = target_events / facts.load_s if facts.load_s else 0.0
    fires_during = (
        None
        if facts.fire_count_after is None
        else facts.fire_count_after - facts.fire_count_before
    )
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {
            "name": "loadgen",
            "version": __version__,
            "python": platform.python_version(),
            "git_commit": _git_commit(),
        },
        "host": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "started_at": _timestamp(facts.started_at),
        "finished_at": _timestamp(datetime.now(UTC)),
        "duration_s": round(facts.load_s, 3),
        "target": {
            "base_url": facts.base_url,
            "embedded_reference_server": facts.embedded,
            "server_profile": _server_profile(config) if facts.embedded else None,
            "accumulator": settings.accumulator,
            "graph": settings.graph,
        },
        "config": {
            "users": config.users,
            "rate_per_s": round(facts.shape.total_events / facts.shape.duration_s, 3),
            "rate_per_user": settings.rate_per_user,
            "duration_s": facts.shape.duration_s,
            "spawn_rate": config.spawn_rate or config.users,
            "feed": settings.feed,
            "auth": settings.auth,
            "frame": settings.frame,
            "wire": settings.wire,
            "poll_interval_ms": settings.poll_interval_ms,
            "probe_interval_ms": settings.probe_interval_ms,
            "shape": facts.shape.describe(),
        },
        "counts": facts.counts,
        "throughput": {
            "send_rate_per_s": round(send_rate, 1),
            "target_rate_per_s": round(target_rate, 1),
            "rate_reached": send_rate >= target_rate * (1 - RATE_TOLERANCE),
            "generator_max_rate_per_s": facts.generator_max_rate_per_s,
        },
        "fires": {
            "fire_count_before": facts.fire_count_before,
            "fire_count_after": facts.fire_count_after,
            "fires_during_run": fires_during,
        },
        "latency": _latency_section(settings, probe, state),
        "timeline": _timeline(facts, state, probe),
        "self_check": _self_check(facts, state, send_rate, target_rate),
        "outages": _outages(state),
        "connections": {
            "connect_time_us": state.connect_time.summary(),
            "histogram": state.connect_time.encode(),
        },
        "outcome": facts.outcome,
    }


def _latency_section(settings, probe, state) -> dict:
    empty = LatencyHistogram()
    actual = probe.histogram if probe is not None else empty
    intended = probe.histogram_from_intended if probe is not None else empty
    bound = probe.error_bound if probe is not None else empty
    detection = probe.detection_method if probe is not None else "poll"
    method = {
        "poll": f"poll fire count of /v1/health/graphs/{settings.graph}",
        "fire_log": "find the tagged event in /v1/health/reactors/{name}/fires",
    }[detection]
    common = {
        "unit": "us",
        "method": method,
        "resolution_us": round(settings.poll_interval_ms * 1000),
        "probes_sent": probe.sent if probe is not None else 0,
        "probes_timed_out": probe.timed_out if probe is not None else 0,
        "probe_fires_failed": getattr(probe, "fires_failed", 0) if probe else 0,
    }
    return {
        "send_to_fire": {
            **common,
            "from": "actual send time",
            "summary": actual.summary(),
            "histogram": actual.encode(),
        },
        "send_to_fire_from_intended": {
            **common,
            "from": "intended send time",
            "summary": intended.summary(),
            "histogram": intended.encode(),
        },
        "detection": {
            "method": detection,
            "resolution_us": round(settings.poll_interval_ms * 1000),
            "error_bound_us": bound.summary(),
            "validation": _validation(state),
        },
    }


def _validation(state) -> dict | None:
    """Return the ground-truth check, made here or on the worker that probed."""
    if state.ground_truth is not None:
        return state.ground_truth.validation.as_dict()
    return getattr(state.probe, "validation", None)


def _timeline(facts: RunFacts, state, probe) -> dict:
    encoded = {} if probe is None else probe.intervals.encoded()
    # The probe's last samples can land in the second after the load ended.
    # The timeline covers them, so no sample is left out of comparisons.
    length = max([1, round(facts.load_s), *(second + 1 for second in encoded)])
    series = state.counters.timeline.as_dict(length)
    seconds = len(series["sent"])
    # Fires are counted in the second in which a poll first saw them, so
    # seconds without a successful poll hold 0 and the total stays exact.
    fired = (facts.fired_per_second + [0] * seconds)[:seconds]
    if len(facts.fired_per_second) > seconds:
        fired[-1] += sum(facts.fired_per_second[seconds:])
    intervals = [encoded.get(second) for second in range(seconds)]
    return {"interval_s": 1.0, **series, "fired": fired, "latency_intervals": intervals}


def _self_check(facts: RunFacts, state, send_rate: float, target_rate: float) -> dict:
    lag = state.schedule_lag.summary()
    cpu = facts.usage.percent
    notes = []
    kept_up = True
    if lag["p99"] is not None and lag["p99"] > KEPT_UP_LAG_P99_US:
        kept_up = False
        notes.append(
            f"schedule lag p99 was {lag['p99'] / 1000:.1f} ms: the generator fell "
            "behind its schedule, so latency from the actual send time understates"
        )
    generator_cpu = cpu.get("generator")
    if generator_cpu is not None and generator_cpu > KEPT_UP_CPU_PERCENT:
        kept_up = False
        notes.append(
            f"the generator used {generator_cpu:.0f}% of a core: it may have been "
            "the bottleneck; use fewer events per process or more processes"
        )
    if send_rate < target_rate * (1 - RATE_TOLERANCE):
        notes.append(
            f"achieved {send_rate:,.0f} events/s of the {target_rate:,.0f} targeted"
        )
    probe = state.probe
    if probe is not None and probe.timed_out:
        notes.append(
            f"{probe.timed_out:,} probe events saw no fire within 5 s: the graph "
            "may hang, or the server may drop events; they are not in the latency"
        )
    if probe is not None and getattr(probe, "fires_failed", 0):
        notes.append(
            f"{probe.fires_failed:,} probe events were consumed by fires whose "
            "graph failed; they are not in the latency"
        )
    generator_max = facts.generator_max_rate_per_s
    peak_rate = max(
        max(stage.start_rate, stage.end_rate) for stage in facts.shape.stages
    )
    if generator_max is None:
        notes.append(
            "the generator's maximum rate on this machine is unknown: run "
            "loadgen calibrate once to record it"
        )
    elif peak_rate > generator_max:
        kept_up = False
        notes.append(
            f"the run asked for up to {peak_rate:,.0f} events/s, more than the "
            f"{generator_max:,.0f} this machine's generator reached in calibration"
        )
    server_cpu = cpu.get("server")
    if server_cpu is not None and server_cpu > KEPT_UP_CPU_PERCENT:
        notes.append(
            f"the reference server used {server_cpu:.0f}% of a core: it may have "
            "been the limit"
        )
    return {
        "schedule_lag_us": lag,
        "schedule_lag_histogram": state.schedule_lag.encode(),
        "generator_cpu_percent": generator_cpu,
        "server_cpu_percent": server_cpu,
        "kept_up": kept_up,
        "notes": notes,
    }


def _outages(state) -> dict:
    """Return the windows in which producers had no connection, from run start."""
    relative = [
        (start - state.start_s, end - state.start_s)
        for start, end in state.outage_windows
    ]
    probe = state.probe
    return {
        "windows": merge_windows(relative),
        "probe_outages": probe.outages if probe is not None else 0,
        "probes_missed": probe.missed if probe is not None else 0,
    }


def _server_profile(config) -> str:
    args = list(config.server_args)
    if "--profile" in args and args.index("--profile") + 1 < len(args):
        return args[args.index("--profile") + 1]
    return "tutorial"


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def _timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
