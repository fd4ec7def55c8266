"""The Locust adapter: an orderbook producer user and the latency probe.

Importing this module registers its command-line options and event listeners on
Locust's global event hooks, so a locustfile only needs to import ``OrderbookUser``.
Each user keeps one persistent connection and paces its own events at
``--rate-per-user``; the probe runs once per process beside the users.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import gevent
from locust import User, constant, events, task
from locust.runners import LocalRunner, MasterRunner, WorkerRunner

from loadgen.acceptance import wire_mismatch_hint
from loadgen.backoff import Backoff
from loadgen.counters import RunCounters
from loadgen.detection import choose_detector
from loadgen.distributed import (
    FINAL_MESSAGE,
    PAYLOAD_KEY,
    ClusterMerger,
    WorkerShipper,
)
from loadgen.encoding import encode_events
from loadgen.endpoints import normalize_base_url
from loadgen.errors import FATAL_KINDS, ConnectionProblem, LoadgenError
from loadgen.feeds import make_feed
from loadgen.frames import OPCODE_BINARY, OPCODE_TEXT, encode_frames
from loadgen.ground_truth import GROUND_TRUTH_HEADER, GroundTruth
from loadgen.health import HealthClient
from loadgen.histogram import LatencyHistogram
from loadgen.limits import ensure_open_files
from loadgen.pacing import Schedule
from loadgen.probe import LatencyProbe, ProbeSample
from loadgen.producer import Producer
from loadgen.settings import LoadSettings, add_locust_options, settings_from_options
from loadgen.shapes import LoadShape, parse_shape
from loadgen.tags import apply_tags

__all__ = ["OrderbookUser", "LoadgenState", "state_of"]

logger = logging.getLogger(__name__)


MIN_SLEEP_S = 0.001
BATCH_EVENTS = 4096
"""Most events written with one send in batch mode."""
TAGGED_DECIMALS = 10
"""Decimals that keep a price's sequence tag intact (see loadgen.tags)."""
FIRST_CLOSE_WAIT_S = 0.05
MAX_SLEEP_S = 0.5
LATE_THRESHOLD_S = 0.010
"""An event sent more than this after its intended send time counts as late."""
UNBOUNDED_S = 1e9


class LoadgenState:
    """Per-process run state kept on the Locust environment."""

    def __init__(self) -> None:
        self.counters = RunCounters()
        self.probe: LatencyProbe | None = None
        self.probe_greenlet: gevent.Greenlet | None = None
        self.fatal_error: LoadgenError | None = None
        """The first error that retrying cannot fix, if any."""
        self.logged_kinds: set[str] = set()
        self.next_user_index = 0
        self.server_received_before: int | None = None
        self.log_accounting = False
        """Log sent and accepted counts at test stop; set for local runs only."""
        self.shape: LoadShape | None = None
        """Process-wide target rate set by ``loadgen run``; None paces each user
        at ``--rate-per-user`` from its own start."""
        self.slots = 1
        """Number of users that share ``shape``; each takes every n-th event."""
        self.start_s = 0.0
        """Start of ``shape`` on the ``time.perf_counter`` clock."""
        self.ground_truth: GroundTruth | None = None
        """Set when the server offers ground truth to validate probe samples."""
        self.schedule_lag = LatencyHistogram()
        """Lag of the oldest event of each batch behind its intended send time."""
        self.connect_time = LatencyHistogram()
        """WebSocket connection establishment times, handshake included."""
        self.stopped = False
        self.merger = None
        """On a master: the ``ClusterMerger`` that adds the workers' deltas."""
        self.next_sequence = 0
        """Sequence tag of the next event this process sends, load or probe."""
        self.outage_windows: list[tuple[float, float]] = []
        """(start, end) on ``time.perf_counter`` of each lost connection."""

    def take_sequence(self, count: int) -> int:
        """Reserve ``count`` consecutive sequence tags and return the first."""
        first = self.next_sequence
        self.next_sequence += count
        return first

    def close_outage(self, started_s: float, ended_s: float) -> None:
        self.outage_windows.append((started_s, ended_s))

    def report_error(self, error: LoadgenError) -> None:
        """Log each kind of error once and keep the first fatal one."""
        if error.kind in FATAL_KINDS and self.fatal_error is None:
            self.fatal_error = error
        if error.kind not in self.logged_kinds:
            self.logged_kinds.add(error.kind)
            logger.error("%s", error)


def state_of(environment) -> LoadgenState:
    """Return the environment's run state, creating it on first use."""
    state = getattr(environment, "loadgen_state", None)
    if state is None:
        state = LoadgenState()
        environment.loadgen_state = state
    return state


class OrderbookUser(User):
    """A producer with one persistent connection that paces its own events."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.state = state_of(self.environment)
        # Users spawned after an unusable option only wait for the test to end.
        fatal = self.state.fatal_error
        self.disabled = fatal is not None and fatal.kind == "usage"
        if self.disabled:
            return
        self.settings = settings_from_options(self.environment.parsed_options)
        self.base_url = normalize_base_url(self.host or "http://127.0.0.1:8080")
        index = self.state.next_user_index
        self.state.next_user_index += 1
        self.feed = make_feed(self.settings.feed, seed=index, offset=index * 1000)
        self.producer = self._make_producer()
        self.schedule = self._make_schedule(index)
        self.backoff = Backoff(
            self.settings.reconnect_min_ms / 1000, self.settings.reconnect_max_ms / 1000
        )
        self.next_connect_s = 0.0
        self.outage_started_s: float | None = None
        self.request_name = f"send {self.settings.accumulator}"
        self.batch_request_name = f"send {self.settings.accumulator} (batch)"

    def on_stop(self) -> None:
        if self.disabled:
            return
        if self.outage_started_s is not None:
            self.state.close_outage(self.outage_started_s, time.perf_counter())
            self.outage_started_s = None
        self.producer.close()

    @task
    def send_due_events(self) -> None:
        """Send every event that is due, then sleep until the next one.

        Events that fall due while the connection is down fail with the reason
        ``not_connected``, so the offered load is accounted for in full.
        """
        if self.disabled:
            gevent.sleep(MAX_SLEEP_S)
            return
        now = time.perf_counter()
        first, due = self.schedule.take_due(now)
        if self.producer.connected:
            try:
                self.producer.poll_incoming()
            except ConnectionProblem as error:
                self._connection_failed(now, error)
        if not self.producer.connected and not self._connect(now):
            self.state.counters.record_failed(now, "not_connected", due)
        elif due:
            self._send_batch(first, due)
        pause = self.schedule.seconds_until_next(time.perf_counter())
        if not self.producer.connected:
            pause = min(pause, max(0.0, self.next_connect_s - time.perf_counter()))
        gevent.sleep(min(max(MIN_SLEEP_S, pause), MAX_SLEEP_S))

    def _make_schedule(self, index: int) -> Schedule:
        if self.state.shape is not None:
            slots = self.state.slots
            return Schedule(self.state.shape, self.state.start_s, index % slots, slots)
        if self.settings.shape:
            # Each user takes an equal share of the total, from its own start;
            # Locust moves users between workers as workers come and go, so
            # the total stays the same.
            users = max(1, self.settings.shape_users)
            shape = parse_shape(self.settings.shape).scaled(1 / users)
            return Schedule(shape, time.perf_counter())
        shape = LoadShape.constant(self.settings.rate_per_user, UNBOUNDED_S)
        return Schedule(shape, time.perf_counter())

    def _make_producer(self) -> Producer:
        return Producer(
            self.base_url,
            self.settings.accumulator,
            self.settings.token,
            auth=self.settings.auth,
            frame=self.settings.frame,
        )

    def _connect(self, now: float) -> bool:
        if now < self.next_connect_s:
            return False
        try:
            connect_s = self.producer.connect()
            # An unknown accumulator is accepted, then closed with 4404 at once.
            self.producer.check_still_open(FIRST_CLOSE_WAIT_S)
        except ConnectionProblem as error:
            self._connection_failed(now, error)
            self.state.counters.connect_failures_by_kind[error.kind] += 1
            self._fire_connect(0.0, error)
            return False
        self.state.counters.connects += 1
        self.state.connect_time.record_us(connect_s * 1e6)
        self.backoff.reset()
        if self.outage_started_s is not None:
            self.state.close_outage(self.outage_started_s, time.perf_counter())
            self.outage_started_s = None
        self._fire_connect(connect_s, None)
        return True

    def _connection_failed(self, now: float, error: ConnectionProblem) -> None:
        """Schedule the next attempt and mark the start of an outage."""
        self.state.report_error(error)
        self.next_connect_s = now + self.backoff.next_delay()
        if self.outage_started_s is None and self.state.counters.connects:
            self.outage_started_s = now

    def _fire_connect(self, seconds: float, error) -> None:
        self.environment.events.request.fire(
            request_type="WS",
            name="connect",
            response_time=seconds * 1000,
            response_length=0,
            exception=error,
            context={},
        )

    def _send_batch(self, first: int, count: int) -> None:
        started = time.perf_counter()
        lag_s = started - self.schedule.intended_time_s(first)
        self.state.schedule_lag.record_us(lag_s * 1e6)
        late_until = self.schedule.due_count(started - LATE_THRESHOLD_S)
        if self.settings.send_mode == "batch":
            self._send_frames(first, count, late_until)
        else:
            self._send_events(first, count, late_until)

    def _send_frames(self, first: int, count: int, late_until: int) -> None:
        """Send due events as pre-built frames, one write per chunk of them.

        Locust's statistics get one request per chunk, named ``... (batch)``;
        the event counts are in the run's own counters.
        """
        counters = self.state.counters
        opcode = OPCODE_BINARY if self.settings.frame == "binary" else OPCODE_TEXT
        done = 0
        while done < count:
            chunk = min(BATCH_EVENTS, count - done)
            quotes = apply_tags(
                self.feed.next_batch(chunk), self.state.take_sequence(chunk)
            )
            data = encode_frames(
                quotes,
                opcode=opcode,
                decimals=TAGGED_DECIMALS,
                wire=self.settings.wire,
            )
            sent_at = time.perf_counter()
            late = max(0, min(late_until - (first + done), chunk))
            # Counted before the write: gevent may switch inside sendall, and a
            # user stopped there has already handed most of the chunk over.
            counters.record_sent(sent_at, chunk, len(data), late)
            try:
                self.producer.send_raw(data)
            except ConnectionProblem as error:
                counters.unrecord_sent(sent_at, chunk, len(data), late)
                counters.record_failed(sent_at, error.kind, count - done)
                self._connection_failed(sent_at, error)
                self._fire_request(0.0, 0, error, self.batch_request_name)
                return
            self._fire_request(
                time.perf_counter() - sent_at, len(data), None, self.batch_request_name
            )
            done += chunk
            # Let Locust's timers, the probe and other users run between
            # chunks. Otherwise a producer far behind schedule would hold the
            # process until its whole backlog is written.
            gevent.sleep(0)

    def _send_events(self, first: int, count: int, late_until: int) -> None:
        """Send due events one frame and one Locust request at a time."""
        counters = self.state.counters
        quotes = apply_tags(
            self.feed.next_batch(count), self.state.take_sequence(count)
        )
        payloads = encode_events(quotes, self.settings.wire)
        for position, payload in enumerate(payloads):
            sent_at = time.perf_counter()
            try:
                self.producer.send(payload)
            except ConnectionProblem as error:
                counters.record_failed(sent_at, error.kind, count - position)
                self._connection_failed(sent_at, error)
                self._fire_request(0.0, 0, error)
                return
            late = 1 if first + position < late_until else 0
            counters.record_sent(sent_at, 1, len(payload), late)
            self._fire_request(time.perf_counter() - sent_at, len(payload), None)

    def _fire_request(self, seconds: float, length: int, error, name=None) -> None:
        self.environment.events.request.fire(
            request_type="WS",
            name=name or self.request_name,
            response_time=seconds * 1000,
            response_length=length,
            exception=error,
            context={},
        )


@events.init_command_line_parser.add_listener
def _add_options(parser, **_kwargs) -> None:
    add_locust_options(parser)


@events.init.add_listener
def _set_up_distribution(environment, **_kwargs) -> None:
    """Ship deltas from each worker and add them up on the master."""
    setup_distribution(environment)


def setup_distribution(environment) -> None:
    state = state_of(environment)
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        shipper = WorkerShipper(state)

        def ship(data, **_kwargs) -> None:
            data[PAYLOAD_KEY] = shipper.payload(final=state.stopped)

        def ship_final(**_kwargs) -> None:
            # Sent before Locust's client_stopped message, so the master adds
            # it before it counts this worker as stopped.
            runner.send_message(FINAL_MESSAGE, shipper.payload(final=True))
            dump_worker_histograms(state)

        environment.events.report_to_master.add_listener(ship)
        environment.events.test_stop.add_listener(ship_final)
    elif isinstance(runner, MasterRunner) and state.merger is None:
        state.merger = ClusterMerger(state)

        def merge(client_id, data, **_kwargs) -> None:
            if PAYLOAD_KEY in data:
                state.merger.merge(client_id, data[PAYLOAD_KEY])

        def merge_final(environment, msg, **_kwargs) -> None:
            state.merger.merge_final(msg.node_id, msg.data)

        environment.events.worker_report.add_listener(merge)
        runner.register_message(FINAL_MESSAGE, merge_final)


@events.test_start.add_listener
def _start_probe(environment, **_kwargs) -> None:
    """Start the latency probe once per process, on no master and one worker."""
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        return
    if isinstance(runner, WorkerRunner) and runner.worker_index != 0:
        return
    settings = settings_from_options(environment.parsed_options)
    state = state_of(environment)
    state.stopped = False
    if state.fatal_error is not None and state.fatal_error.kind == "usage":
        # A new test from the web UI may carry corrected options.
        state.fatal_error = None
    try:
        settings.validate()
        normalize_base_url(environment.host or "http://127.0.0.1:8080")
    except LoadgenError as error:
        _stop_for_usage(environment, error)
        return
    ensure_open_files(getattr(environment.parsed_options, "num_users", 0) or 0)
    if isinstance(runner, LocalRunner):
        state.log_accounting = True
        state.server_received_before = _server_received(environment, settings)
    if not settings.probe or state.probe_greenlet is not None:
        return
    state.probe_greenlet = gevent.spawn(_run_probe, environment, settings, state)


@events.test_stop.add_listener
def _stop_probe(environment, **_kwargs) -> None:
    state = state_of(environment)
    state.stopped = True
    if state.probe is not None and hasattr(state.probe, "stop"):
        state.probe.stop()
    if state.probe_greenlet is not None:
        state.probe_greenlet.join(timeout=10)
        state.probe_greenlet = None
    if state.log_accounting:
        _log_accounting(environment, state)
    runner = environment.runner
    if isinstance(runner, LocalRunner):
        _log_exact_latency(state)
    elif isinstance(runner, MasterRunner) and state.merger is not None:
        # On Locust's own quit path the master stops before its workers do, so
        # their last deltas come later; the log waits for them without blocking.
        workers = [client.id for client in runner.clients.values()]
        state.merger.when_finished(workers, lambda: _log_exact_latency(state))


def dump_worker_histograms(state: LoadgenState) -> None:
    """Write this worker's whole histograms to ``$LOADGEN_WORKER_DUMP_DIR``.

    Tests add these up to check the master's merge; nothing is written when the
    variable is unset.
    """
    folder = os.environ.get("LOADGEN_WORKER_DUMP_DIR")
    if not folder:
        return
    histograms = {
        "schedule_lag": state.schedule_lag.encode(),
        "connect_time": state.connect_time.encode(),
    }
    if state.probe is not None:
        histograms["send_to_fire"] = state.probe.histogram.encode()
    record = {"sent": state.counters.sent, "histograms": histograms}
    path = Path(folder) / f"worker-{os.getpid()}.json"
    path.write_text(json.dumps(record), encoding="utf-8")


def _log_exact_latency(state: LoadgenState) -> None:
    """Log the HDR percentiles, which Locust's table rounds to milliseconds."""
    probe = state.probe
    if probe is None or not probe.histogram.count:
        return
    summary = probe.histogram.summary()
    intended = probe.histogram_from_intended.summary()
    logger.info(
        "send-to-fire latency from %d probe samples, in microseconds: p50 %s, "
        "p90 %s, p99 %s, p99.9 %s, max %s (from the intended send time: p99 %s, "
        "max %s); the cluster sent %d events",
        summary["count"],
        summary["p50"],
        summary["p90"],
        summary["p99"],
        summary["p99_9"],
        summary["max"],
        intended["p99"],
        intended["max"],
        state.counters.sent,
    )


def _stop_for_usage(environment, error: LoadgenError) -> None:
    """Log an unusable option once and end the test with exit status 2."""
    logger.error("error: %s", error)
    environment.process_exit_code = 2
    state_of(environment).fatal_error = error
    runner = environment.runner
    headless = getattr(environment.parsed_options, "headless", False)
    # The runner cannot stop from inside its own test_start event.
    gevent.spawn_later(0, runner.quit if headless else runner.stop)


def _server_received(environment, settings: LoadSettings) -> int | None:
    """Return the server's accepted-event count, or None if it cannot be read."""
    if not settings.token:
        return None
    base_url = normalize_base_url(environment.host or "http://127.0.0.1:8080")
    health = HealthClient(base_url, settings.token, timeout_s=2.0)
    try:
        return health.accumulator_events_total(settings.accumulator)
    except LoadgenError:
        return None
    finally:
        health.close()


def _log_accounting(environment, state: LoadgenState) -> None:
    """Log events sent by this process beside the count the server accepted."""
    settings = settings_from_options(environment.parsed_options)
    probe_sent = state.probe.sent if state.probe is not None else 0
    expected = state.counters.sent + probe_sent
    received = None
    deadline = time.monotonic() + 3.0
    while state.server_received_before is not None and time.monotonic() < deadline:
        total = _server_received(environment, settings)
        received = None if total is None else total - state.server_received_before
        if received is None or received >= expected:
            break
        gevent.sleep(0.05)
    logger.info(
        "accumulator '%s': sent %d events (%d failed) and %d probe events; "
        "the server accepted %s during the test",
        settings.accumulator,
        state.counters.sent,
        state.counters.failed,
        probe_sent,
        "an unknown number" if received is None else f"{received}",
    )
    if received == 0 and expected > 0:
        logger.error(
            "the server accepted none of the %d %s events: %s",
            expected,
            settings.wire,
            wire_mismatch_hint(settings.wire),
        )


def _run_probe(environment, settings: LoadSettings, state: LoadgenState) -> None:
    base_url = normalize_base_url(environment.host or "http://127.0.0.1:8080")
    health = HealthClient(base_url, settings.token)
    truth_health = HealthClient(base_url, settings.token)
    producer = None
    try:
        truth = GroundTruth(truth_health, settings.graph)
        state.ground_truth = truth if truth.available() else None
        producer = Producer(
            base_url,
            settings.accumulator,
            settings.token,
            auth=settings.auth,
            frame=settings.frame,
            extra_headers=(GROUND_TRUTH_HEADER,) if state.ground_truth else (),
        )
        producer.connect()
        state.probe = LatencyProbe(
            producer,
            health,
            settings.graph,
            make_feed(settings.feed, seed=1_000_003),
            poll_interval_s=settings.poll_interval_ms / 1000,
            probe_interval_s=settings.probe_interval_ms / 1000,
            on_sample=_sample_handler(environment, state, producer),
            detector=choose_detector(health, settings.graph, settings.accumulator),
            next_tag=lambda: state.take_sequence(1),
            wire=settings.wire,
        )
        if state.shape is not None:
            # Line the probe's per-second intervals up with the run's timeline.
            state.probe.interval_origin_s = state.start_s
        state.probe.run()
        if state.probe.error is not None:
            state.report_error(state.probe.error)
    except LoadgenError as error:
        state.report_error(error)
    finally:
        if producer is not None:
            producer.close()
        health.close()
        truth_health.close()


def _sample_handler(environment, state: LoadgenState, producer: Producer):
    """Return the callback that publishes each sample and checks it if it can."""

    def handle(sample: ProbeSample) -> None:
        environment.events.request.fire(
            request_type="FIRE",
            name="send-to-fire (probe)",
            response_time=sample.latency_us / 1000,
            response_length=0,
            exception=None,
            context={},
        )
        truth = state.ground_truth
        if truth is not None:
            true_us = truth.true_latency_us(producer.local_port, sample.sent_ns)
            truth.check(sample.latency_us, sample.error_bound_us, true_us)

    return handle
