"""``loadgen run``: a headless Locust run with the latency probe and a report.

Locust is imported inside ``_measure`` because importing it patches the standard
library for gevent; the rest of the command line stays unpatched.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from loadgen.acceptance import (
    RejectionWatch,
    accumulator_counts,
    check_bincode_layout,
    rejection_problem,
)
from loadgen.calibration_cache import load_generator_max
from loadgen.embedded_server import EmbeddedServer
from loadgen.endpoints import normalize_base_url
from loadgen.errors import LoadgenError, UsageProblem
from loadgen.feeds import FeedError, make_feed
from loadgen.hdr_log import write_interval_log
from loadgen.health import HealthClient
from loadgen.limits import ensure_open_files
from loadgen.producer import Producer
from loadgen.report import check_report_path, default_report_path, write_report
from loadgen.run_report import RunFacts, build_run_report
from loadgen.settings import LoadSettings, check_wire
from loadgen.shapes import MAX_RATE_PER_S, LoadShape
from loadgen.stop_signals import StopSignals, check_termination
from loadgen.usage import ProcessUsage

__all__ = ["RunConfig", "RunResult", "run_load"]

SETTLE_TIMEOUT_S = 3.0
MAX_USERS = 100_000
MAX_PROCESSES = 256
WORKER_START_TIMEOUT_S = 60.0
REMOTE_WORKER_TIMEOUT_S = 600.0
MAX_DURATION_S = 7 * 24 * 3600
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
    wire: str = "json"
    """Event payload format; the embedded reference server reads the same one."""
    poll_interval_ms: float = 2.0
    probe_interval_ms: float = 100.0
    spawn_rate: float | None = None
    reconnect_min_ms: float = 100.0
    reconnect_max_ms: float = 5000.0
    send_mode: str = "batch"
    processes: int = 0
    """Local Locust worker processes; 0 runs the users in this process."""
    master: bool = False
    """Act as a Locust master and wait for ``expect_workers`` remote workers."""
    expect_workers: int = 1
    master_bind_host: str = "*"
    master_port: int = 5557
    output: Path | None = None
    server_args: tuple[str, ...] = field(default=())
    shape: LoadShape | None = None
    """Target rate over time; None means ``rate_per_s`` for ``duration_s``."""

    def __repr__(self) -> str:
        return (
            f"RunConfig(host={self.host!r}, users={self.users}, rate={self.rate_per_s})"
        )

    def load_shape(self) -> LoadShape:
        if self.shape is not None:
            return self.shape
        return LoadShape.constant(self.rate_per_s, self.duration_s)

    def settings(self, token: str) -> LoadSettings:
        shape = self.load_shape()
        return LoadSettings(
            token=token,
            accumulator=self.accumulator,
            graph=self.graph,
            feed=self.feed,
            rate_per_user=max(shape.total_events / shape.duration_s, 1e-9) / self.users,
            auth=self.auth,
            frame=self.frame,
            wire=self.wire,
            poll_interval_ms=self.poll_interval_ms,
            probe_interval_ms=self.probe_interval_ms,
            reconnect_min_ms=self.reconnect_min_ms,
            reconnect_max_ms=self.reconnect_max_ms,
            send_mode=self.send_mode,
        )

    def validate(self) -> None:
        """Raise ``UsageProblem`` naming the first unusable value and its fix."""
        if not 1 <= self.users <= MAX_USERS:
            raise UsageProblem(f"invalid --users {self.users}: use 1 to {MAX_USERS:,}")
        if self.shape is None:
            if not 0 < self.rate_per_s <= MAX_RATE_PER_S:
                raise UsageProblem(
                    f"invalid --rate {self.rate_per_s:g}: use events per second "
                    f"above 0 and at most {MAX_RATE_PER_S:,}"
                )
            if not 0 < self.duration_s <= MAX_DURATION_S:
                raise UsageProblem(
                    f"invalid --duration {self.duration_s:g}: use seconds above 0 "
                    f"and at most {MAX_DURATION_S:,} (7 days)"
                )
        if self.spawn_rate is not None and not 0 < self.spawn_rate <= MAX_USERS:
            raise UsageProblem(
                f"invalid --spawn-rate {self.spawn_rate:g}: use users per second "
                f"above 0 and at most {MAX_USERS:,}"
            )
        if not 0 <= self.processes <= MAX_PROCESSES:
            raise UsageProblem(
                f"invalid --processes {self.processes}: use 0 to {MAX_PROCESSES}"
            )
        if self.master and self.processes:
            raise UsageProblem(
                "--master waits for remote workers and --processes starts local "
                "ones: use one of them"
            )
        if not self.master and self.expect_workers != 1:
            raise UsageProblem(
                "--expect-workers applies only with --master: add --master, or "
                "use --processes N for local workers"
            )
        if self.master and not 1 <= self.expect_workers <= MAX_PROCESSES:
            raise UsageProblem(
                f"invalid --expect-workers {self.expect_workers}: use 1 to "
                f"{MAX_PROCESSES}"
            )
        if self.host is not None:
            normalize_base_url(self.host)
        if self.host is not None and self.server_args:
            raise UsageProblem(
                "--server-config, --server-profile and --ground-truth configure the "
                "embedded reference server: drop --host to use them, or configure "
                "the server at --host itself"
            )
        try:
            make_feed(self.feed)
        except FeedError as error:
            raise UsageProblem(str(error)) from None
        self._validate_wire()

    def _validate_wire(self) -> None:
        check_wire(self.wire, self.frame)
        args = list(self.server_args)
        profile = args[args.index("--profile") + 1] if "--profile" in args else None
        if self.wire == "bincode" and profile == "cloacina":
            raise UsageProblem(
                "--wire bincode needs the tutorial profile: the cloacina profile, "
                "like today's Cloacina server, forwards events without decoding "
                "them; drop --server-profile cloacina or --wire bincode"
            )

    def embedded_server_args(self) -> tuple[str, ...]:
        """Return the embedded reference server's options, its wire format included."""
        if self.wire == "json":
            return self.server_args
        return (*self.server_args, "--wire", self.wire)


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
    check_report_path(config.output or default_report_path("check"))
    server = None
    try:
        if config.host is None:
            server = EmbeddedServer(config.embedded_server_args())
            if config.token:
                server.token = config.token
            base_url = server.start()
            check_termination()
            token = server.token
            print(f"started the reference server at {base_url}", file=progress)
        else:
            base_url = normalize_base_url(config.host)
            token = config.token
        settings = config.settings(token)
        settings.validate()
        return _measure(config, settings, base_url, server, progress)
    finally:
        if server is not None:
            server.stop()


def _preflight(settings: LoadSettings, base_url: str):
    """Check auth, graph and accumulator before load.

    Returns:
        The graph's fire count and the accumulator's accepted and rejected
        event counts. Either event count is None when the server has none.
    """
    health = HealthClient(base_url, settings.token)
    try:
        fire_count = health.graph_fire_count(settings.graph)
        received, rejected = accumulator_counts(health, settings.accumulator)
        if settings.wire == "bincode":
            check_bincode_layout(health, settings.accumulator)
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
    return fire_count, received, rejected


def _measure(config, settings, base_url, server, progress) -> RunResult:
    fire_count_before, received_before, rejected_before = _preflight(settings, base_url)
    check_termination()

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
    shape = config.load_shape()
    ensure_open_files(config.users)
    workers = None
    if config.processes or config.master:
        runner, workers = _start_cluster(config, environment, shape, progress, gevent)
    else:
        state.shape, state.slots = shape, config.users
        runner = environment.create_local_runner()
    facts = RunFacts(
        config=config,
        settings=settings,
        base_url=base_url,
        embedded=server is not None,
        shape=shape,
        started_at=datetime.now(UTC),
        fire_count_before=fire_count_before,
        usage=ProcessUsage(
            server.pid if server is not None else None,
            worker_pids=[p.pid for p in workers.processes] if workers else (),
        ),
        generator_max_rate_per_s=load_generator_max(),
    )
    if facts.generator_max_rate_per_s is not None:
        peak = max(max(s.start_rate, s.end_rate) for s in shape.stages)
        if peak > facts.generator_max_rate_per_s:
            # Calibration sends JSON, which costs more to encode than bincode.
            caveat = " with JSON events" if settings.wire == "bincode" else ""
            print(
                f"warning: the run asks for up to {peak:,.0f} events/s, more than "
                f"the {facts.generator_max_rate_per_s:,.0f} this machine's "
                f"generator reached in loadgen calibrate{caveat}",
                file=progress,
            )
    fire_counts = _FireCounter(settings, base_url, fire_count_before)
    watch = RejectionWatch(
        HealthClient(base_url, settings.token, timeout_s=2.0),
        settings.accumulator,
        settings.wire,
        received_before,
        rejected_before,
    )
    check_termination()
    signals = StopSignals(gevent)
    state.start_s = time.perf_counter()
    state.counters.timeline.start_s = state.start_s
    try:
        runner.start(config.users, spawn_rate=config.spawn_rate or config.users)
        if workers is not None or config.master:
            # Each worker's users pace their share from their own start, so
            # the run's clock starts once every user is running.
            _wait_until_spawned(runner, gevent)
            state.start_s = time.perf_counter()
            state.counters.timeline.start_s = state.start_s
        _wait(shape.duration_s, state, fire_counts, watch, progress, gevent, signals)
        if state.fatal_error is not None:
            facts.outcome = {"status": "failed", "error": str(state.fatal_error)}
        elif signals.received:
            facts.outcome = signals.outcome()
    except KeyboardInterrupt:
        signals.received.append("SIGINT")
        facts.outcome = signals.outcome()
    finally:
        facts.load_s = time.perf_counter() - state.start_s
        facts.usage.stop()
        runner.stop()
        if state.merger is not None:
            _wait_for_last_deltas(runner, state, progress, gevent)
        runner.quit()
        if workers is not None:
            workers.stop()
    if state.merger is not None:
        state.merger.finish(state.start_s)

    watch.close()
    facts.counts, facts.fire_count_after = _settle(
        settings, base_url, state, (received_before, rejected_before), signals.hurry
    )
    signals.close()
    rejected = _rejection_problem(settings, facts.counts)
    if facts.outcome["status"] == "completed" and facts.counts["failed"]:
        facts.outcome = {"status": "failed", "error": _failures(facts.counts)}
    elif facts.outcome["status"] == "completed" and rejected is not None:
        facts.outcome = {"status": "failed", "error": rejected}
    elif facts.outcome["status"] == "completed" and _nothing_accepted(facts.counts):
        facts.outcome = {
            "status": "failed",
            "error": f"the server accepted none of the {facts.counts['sent']:,} "
            "events sent: check that the fields match the accumulator's boundary "
            "type; today's Cloacina server ignores text frames, so use --frame "
            "binary",
        }
    if facts.fire_count_after is not None:
        fire_counts.finish(facts.fire_count_after)
    facts.fired_per_second = fire_counts.per_second
    fire_counts.close()
    report = build_run_report(facts, state)
    path = _save(report, state, facts, config, progress)
    return RunResult(report=report, path=path, exit_code=_exit_code(facts, signals))


def _save(report: dict, state, facts: RunFacts, config, progress) -> Path:
    """Write the report and its interval log; fall back to a temporary folder."""
    path = Path(config.output or default_report_path(report["started_at"]))
    try:
        return _write_files(report, state, facts, path)
    except OSError as error:
        fallback = Path(tempfile.mkdtemp(prefix="loadgen-report-")) / path.name
        print(
            f"error: cannot write the report to {path}: {error.strerror}; "
            f"writing it to {fallback} instead",
            file=progress,
        )
        return _write_files(report, state, facts, fallback)


def _write_files(report: dict, state, facts: RunFacts, path: Path) -> Path:
    if state.probe is not None:
        log_path = path.with_suffix(".hlog")
        report["timeline"]["interval_log"] = log_path.name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_interval_log(log_path, state.probe.intervals, facts.started_at)
    return write_report(report, path)


def _nothing_accepted(counts: dict) -> bool:
    return counts["sent"] > 0 and counts.get("server_received") == 0


def _rejection_problem(settings: LoadSettings, counts: dict) -> str | None:
    """Return why the run failed if the server rejected every event, else None."""
    accepted, rejected = counts.get("server_received"), counts.get("server_rejected")
    if accepted is None or rejected is None:
        return None
    return rejection_problem(settings.wire, accepted, rejected)


def _failures(counts: dict) -> str:
    kinds = ", ".join(f"{kind} {n:,}" for kind, n in counts["failed_by_kind"].items())
    return (
        f"{counts['failed']:,} of {counts['attempted']:,} events failed ({kinds}); "
        "see the outage windows in the report"
    )


def _exit_code(facts: RunFacts, signals: StopSignals) -> int:
    if facts.outcome["status"] == "completed":
        return 0
    if facts.outcome["status"] == "interrupted":
        return signals.exit_code()
    return 1


def _start_cluster(config, environment, shape, progress, gevent):
    """Start a Locust master, and local workers for ``--processes``.

    Returns:
        The master runner and the local workers, or None for remote ones.
    """
    from loadgen.cluster import LocalWorkers, free_port, wait_for_workers
    from loadgen.locust_user import setup_distribution

    options = environment.parsed_options
    options.shape = shape.spec()
    options.shape_users = config.users
    if config.processes:
        port = free_port()
        runner = environment.create_master_runner("127.0.0.1", port)
        setup_distribution(environment)
        workers = LocalWorkers(config.processes, port)
        expected, timeout_s = config.processes, WORKER_START_TIMEOUT_S
    else:
        runner = environment.create_master_runner(
            config.master_bind_host, config.master_port
        )
        setup_distribution(environment)
        workers = None
        expected, timeout_s = config.expect_workers, REMOTE_WORKER_TIMEOUT_S
        print(
            f"master listening on port {config.master_port}: start workers with "
            f"loadgen worker --master-host <this host> --master-port "
            f"{config.master_port}",
            file=progress,
        )
    try:
        wait_for_workers(runner, expected, timeout_s, progress, gevent)
    except BaseException:
        runner.quit()
        if workers is not None:
            workers.stop(timeout_s=5)
        raise
    return runner, workers


def _wait_for_last_deltas(runner, state, progress, gevent) -> None:
    workers = [client.id for client in runner.clients.values()]
    if not state.merger.wait_for_workers(workers, 15.0, gevent.sleep):
        print(
            "warning: not every worker sent its last measurements; the report "
            "misses up to one report interval of theirs",
            file=progress,
        )


def _wait_until_spawned(runner, gevent, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while runner.state != "running" and time.monotonic() < deadline:
        gevent.sleep(0.05)


class _FireCounter:
    """Reads the graph's fire count once a second for the timeline."""

    def __init__(self, settings: LoadSettings, base_url: str, start_count: int):
        self._health = HealthClient(base_url, settings.token, timeout_s=2.0)
        self._graph = settings.graph
        self._last = start_count
        self.per_second: list[int] = []

    def sample(self) -> int | None:
        try:
            count = self._health.graph_fire_count(self._graph)
        except LoadgenError:
            # Fires of this second are counted at the next successful read.
            self.per_second.append(0)
            return None
        self.per_second.append(count - self._last)
        self._last = count
        return count

    def finish(self, final_count: int) -> None:
        """Count the fires after the last sample into a final interval."""
        self.per_second.append(final_count - self._last)
        self._last = final_count

    def close(self) -> None:
        self._health.close()


def _wait(duration_s, state, fire_counts, watch, progress, gevent, signals) -> None:
    """Sleep through the run, sampling fires and printing progress each second.

    The run ends early with ``state.fatal_error`` set when ``watch`` finds
    that the server rejects every event.
    """
    start = state.start_s
    next_tick = start + PROGRESS_INTERVAL_S
    last_sent = 0
    while True:
        now = time.perf_counter()
        elapsed = now - start
        if elapsed >= duration_s or state.fatal_error or signals.received:
            return
        if now >= next_tick:
            fire_counts.sample()
            problem = watch.problem()
            if problem is not None:
                state.fatal_error = LoadgenError(problem, kind="events_rejected")
                return
            sent = state.counters.sent
            print(_progress_line(elapsed, state, sent - last_sent), file=progress)
            last_sent = sent
            next_tick += PROGRESS_INTERVAL_S
        gevent.sleep(min(0.05, duration_s - elapsed, max(0.0, next_tick - now)))


def _progress_line(elapsed_s: float, state, sent_last_s: int) -> str:
    counters = state.counters
    probe = state.probe
    latency = "-"
    if probe is not None and probe.histogram.count:
        latency = f"{probe.histogram.value_at_percentile(99) / 1000:.2f} ms"
    return (
        f"{elapsed_s:6.1f}s  sent {counters.sent:>10,} ({sent_last_s:,}/s)  "
        f"failed {counters.failed:,}  late {counters.late:,}  probe p99 {latency}"
    )


def _settle(settings: LoadSettings, base_url: str, state, before, hurry):
    """Wait until the server has counted every sent event, then read its counts.

    Args:
        before: the accumulator's accepted and rejected event counts before
            the run, each None when the server has none.
        hurry: returns True after a second stop signal, which ends the wait
            at once.
    """
    received_before, rejected_before = before
    counts = state.counters.as_dict()
    probe_sent = state.probe.sent if state.probe is not None else 0
    expected = counts["sent"] + probe_sent
    health = HealthClient(base_url, settings.token, timeout_s=2.0)
    received = rejected = None
    fire_count = None
    try:
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while True:
            total, rejected_total = accumulator_counts(health, settings.accumulator)
            if total is not None and received_before is not None:
                received = total - received_before
            if rejected_total is not None and rejected_before is not None:
                rejected = rejected_total - rejected_before
            if received is None or received + (rejected or 0) >= expected:
                break
            if time.monotonic() >= deadline or hurry():
                break
            time.sleep(0.05)
        fire_count = health.graph_fire_count(settings.graph)
    except LoadgenError:
        pass
    finally:
        health.close()
    # The probe's events reach the same accumulator; they are counted apart so
    # that the server's count can be compared with the producers'.
    counts["probe_events_sent"] = probe_sent
    counts["server_received"] = (
        None if received is None else max(0, received - probe_sent)
    )
    counts["server_rejected"] = rejected
    return counts, fire_count
