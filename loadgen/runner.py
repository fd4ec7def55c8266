"""``loadgen run``: a headless Locust run with the latency probe and a report.

Locust is imported inside ``run_load`` because importing it patches the standard
library for gevent; the rest of the command line stays unpatched.
"""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from loadgen import __version__
from loadgen.embedded_server import EmbeddedServer
from loadgen.endpoints import normalize_base_url
from loadgen.errors import LoadgenError, UsageProblem
from loadgen.feeds import FeedError, make_feed
from loadgen.health import HealthClient
from loadgen.histogram import LatencyHistogram
from loadgen.producer import Producer
from loadgen.report import SCHEMA_VERSION, default_report_path, write_report
from loadgen.settings import LoadSettings

__all__ = ["RunConfig", "RunResult", "run_load"]

SETTLE_TIMEOUT_S = 3.0
PROGRESS_INTERVAL_S = 1.0


@dataclass
class RunConfig:
    """Options of one ``loadgen run``; ``host`` None starts the reference server."""

    host: str | None
    token: str
    users: int = 10
    rate_per_s: float = 1000.0
    duration_s: float = 10.0
    accumulator: str = "orderbook"
    graph: str = "price_signal"
    feed: str = "sine"
    auth: str = "header"
    frame: str = "binary"
    poll_interval_ms: float = 2.0
    probe_interval_ms: float = 100.0
    spawn_rate: float | None = None
    output: Path | None = None
    server_args: tuple[str, ...] = field(default=())

    def __repr__(self) -> str:
        return (
            f"RunConfig(host={self.host!r}, users={self.users}, rate={self.rate_per_s})"
        )

    def settings(self, token: str) -> LoadSettings:
        return LoadSettings(
            token=token,
            accumulator=self.accumulator,
            graph=self.graph,
            feed=self.feed,
            rate_per_user=self.rate_per_s / self.users,
            auth=self.auth,
            frame=self.frame,
            poll_interval_ms=self.poll_interval_ms,
            probe_interval_ms=self.probe_interval_ms,
        )

    def validate(self) -> None:
        """Raise ``UsageProblem`` naming the first unusable value and its fix."""
        if self.users < 1:
            raise UsageProblem(f"invalid --users {self.users}: use 1 or more")
        if not self.rate_per_s > 0:
            raise UsageProblem(
                f"invalid --rate {self.rate_per_s:g}: use events per second above 0"
            )
        if not self.duration_s > 0:
            raise UsageProblem(
                f"invalid --duration {self.duration_s:g}: use seconds above 0"
            )
        if self.spawn_rate is not None and not self.spawn_rate > 0:
            raise UsageProblem(
                f"invalid --spawn-rate {self.spawn_rate:g}: "
                "use users per second above 0"
            )
        if self.host is not None and self.server_args:
            raise UsageProblem(
                "--server-config configures the embedded reference server: "
                "drop --host to use it, or configure the server at --host itself"
            )
        try:
            make_feed(self.feed)
        except FeedError as error:
            raise UsageProblem(str(error)) from None


@dataclass
class RunResult:
    """The report of a run that started load, and where it was written."""

    report: dict
    path: Path
    exit_code: int


def run_load(config: RunConfig, progress: TextIO = sys.stderr) -> RunResult:
    """Run load against ``config.host`` or an embedded reference server.

    Raises:
        LoadgenError: a problem found before any load was sent; once load has
            started, errors end the run early and are stored in the report.
    """
    config.validate()
    server = None
    if config.host is None:
        server = EmbeddedServer(config.server_args)
        if config.token:
            server.token = config.token
        base_url = server.start()
        token = server.token
        print(f"started the reference server at {base_url}", file=progress)
    else:
        base_url = normalize_base_url(config.host)
        token = config.token
    try:
        settings = config.settings(token)
        settings.validate()
        return _measure(config, settings, base_url, server is not None, progress)
    finally:
        if server is not None:
            server.stop()


def _preflight(settings: LoadSettings, base_url: str) -> tuple[int, int | None]:
    """Check auth, graph and accumulator before load; return the server's counts."""
    health = HealthClient(base_url, settings.token)
    try:
        fire_count = health.graph_fire_count(settings.graph)
        received = health.accumulator_events_total(settings.accumulator)
    finally:
        health.close()
    producer = Producer(
        base_url,
        settings.accumulator,
        settings.token,
        auth=settings.auth,
        frame=settings.frame,
    )
    producer.connect()
    try:
        producer.check_still_open()
    finally:
        producer.close()
    return fire_count, received


def _measure(
    config: RunConfig,
    settings: LoadSettings,
    base_url: str,
    embedded: bool,
    progress: TextIO,
) -> RunResult:
    fire_count_before, received_before = _preflight(settings, base_url)

    import gevent
    from locust import events
    from locust.argument_parser import get_parser
    from locust.env import Environment

    from loadgen.locust_user import OrderbookUser, state_of

    options = get_parser(default_config_files=[]).parse_args(
        ["--headless", "--host", base_url]
    )
    for name, value in asdict(settings).items():
        setattr(options, name, value)
    options.no_probe = False
    environment = Environment(
        user_classes=[OrderbookUser],
        host=base_url,
        events=events,
        parsed_options=options,
    )
    state = state_of(environment)
    runner = environment.create_local_runner()
    started_at = datetime.now(UTC)
    load_started = time.perf_counter()
    outcome = {"status": "completed", "error": None}
    try:
        runner.start(config.users, spawn_rate=config.spawn_rate or config.users)
        _wait(config, state, load_started, progress, gevent)
        if state.fatal_error is not None:
            outcome = {"status": "failed", "error": str(state.fatal_error)}
    except KeyboardInterrupt:
        outcome = {"status": "interrupted", "error": "stopped by Ctrl-C"}
    finally:
        load_s = time.perf_counter() - load_started
        runner.stop()
        runner.quit()

    counts, fire_count_after = _settle(settings, base_url, state, received_before)
    report = _build_report(
        config,
        settings,
        base_url,
        embedded,
        started_at,
        load_s,
        state,
        counts,
        fire_count_before,
        fire_count_after,
        outcome,
    )
    path = write_report(
        report, config.output or default_report_path(report["started_at"])
    )
    exit_code = {"completed": 0, "interrupted": 130}.get(outcome["status"], 1)
    return RunResult(report=report, path=path, exit_code=exit_code)


def _wait(config, state, load_started: float, progress: TextIO, gevent) -> None:
    """Sleep through the run, printing progress each second."""
    next_progress = load_started + PROGRESS_INTERVAL_S
    last_sent = 0
    while True:
        now = time.perf_counter()
        elapsed = now - load_started
        if elapsed >= config.duration_s or state.fatal_error is not None:
            return
        if now >= next_progress:
            sent = state.counters.sent
            print(_progress_line(elapsed, state, sent - last_sent), file=progress)
            last_sent = sent
            next_progress += PROGRESS_INTERVAL_S
        gevent.sleep(min(0.05, config.duration_s - elapsed))


def _progress_line(elapsed_s: float, state, sent_last_s: int) -> str:
    counters = state.counters
    probe = state.probe
    latency = "-"
    if probe is not None and probe.histogram.count:
        latency = f"{probe.histogram.value_at_percentile(99) / 1000:.2f} ms"
    return (
        f"{elapsed_s:6.1f}s  sent {counters.sent:>10,} ({sent_last_s:,}/s)  "
        f"failed {counters.failed:,}  probe p99 {latency}"
    )


def _settle(settings: LoadSettings, base_url: str, state, received_before):
    """Wait until the server has counted every sent event, then read its counts."""
    counts = state.counters.as_dict()
    health = HealthClient(base_url, settings.token, timeout_s=2.0)
    received = None
    fire_count = None
    try:
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while True:
            total = health.accumulator_events_total(settings.accumulator)
            if total is not None and received_before is not None:
                received = total - received_before
            if received is None or received >= counts["sent"]:
                break
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        fire_count = health.graph_fire_count(settings.graph)
    except LoadgenError:
        pass
    finally:
        health.close()
    # The probe's events reach the same accumulator; count them as sent too so
    # that the server's count can be compared with ours.
    probe_sent = state.probe.sent if state.probe is not None else 0
    counts["probe_events_sent"] = probe_sent
    counts["server_received"] = None if received is None else received - probe_sent
    return counts, fire_count


def _build_report(
    config,
    settings,
    base_url,
    embedded,
    started_at,
    load_s,
    state,
    counts,
    fire_count_before,
    fire_count_after,
    outcome,
) -> dict:
    probe = state.probe
    histogram = probe.histogram if probe is not None else LatencyHistogram()
    fires_during = (
        None if fire_count_after is None else fire_count_after - fire_count_before
    )
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {
            "name": "loadgen",
            "version": __version__,
            "python": platform.python_version(),
        },
        "started_at": started_at.isoformat(timespec="milliseconds").replace(
            "+00:00", "Z"
        ),
        "finished_at": datetime.now(UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "duration_s": round(load_s, 3),
        "target": {
            "base_url": base_url,
            "embedded_reference_server": embedded,
            "accumulator": settings.accumulator,
            "graph": settings.graph,
        },
        "config": {
            "users": config.users,
            "rate_per_s": config.rate_per_s,
            "rate_per_user": settings.rate_per_user,
            "duration_s": config.duration_s,
            "spawn_rate": config.spawn_rate or config.users,
            "feed": settings.feed,
            "auth": settings.auth,
            "frame": settings.frame,
            "poll_interval_ms": settings.poll_interval_ms,
            "probe_interval_ms": settings.probe_interval_ms,
        },
        "counts": counts,
        "throughput": {
            "send_rate_per_s": round(counts["sent"] / load_s, 1) if load_s else 0.0,
            "target_rate_per_s": config.rate_per_s,
        },
        "fires": {
            "fire_count_before": fire_count_before,
            "fire_count_after": fire_count_after,
            "fires_during_run": fires_during,
        },
        "latency": {
            "send_to_fire": {
                "unit": "us",
                "method": f"poll fire count of /v1/health/graphs/{settings.graph}",
                "resolution_us": round(settings.poll_interval_ms * 1000),
                "probes_sent": probe.sent if probe is not None else 0,
                "probes_timed_out": probe.timed_out if probe is not None else 0,
                "summary": histogram.summary(),
                "histogram": histogram.encode(),
            }
        },
        "outcome": outcome,
    }
