"""The send-to-fire latency probe.

The probe sends its own events on its own connection at a fixed probe rate and,
after each send, polls the server until it detects the fire that consumed the
event (``loadgen.detection`` describes the ways to detect it).
The fire completed after the previous poll's request left and before the
observing poll's response arrived; that window's width is the sample's error
bound, and the sample is the midpoint of the observing poll's round trip,
the best estimate of when the server read its state. The first poll's
"previous request" is the send itself.

The probe is open-model too: probe ``k`` is due at ``start + k * interval``. When
a slow fire holds the probe past the next due time, the next probe goes out
late, and its latency from the intended send time includes that wait, as in
wrk2. The latency from the actual send time does not; the report keeps both.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from loadgen.backoff import Backoff
from loadgen.detection import CountDetector
from loadgen.encoding import encode_events
from loadgen.errors import FATAL_KINDS, ConnectionProblem
from loadgen.health import HealthClient
from loadgen.histogram import IntervalHistograms, LatencyHistogram
from loadgen.producer import Producer
from loadgen.tags import apply_tags

__all__ = ["LatencyProbe", "ProbeSample"]

logger = logging.getLogger(__name__)

MAX_POLL_INTERVAL_S = 0.05
ADAPTIVE_FRACTION = 0.02
"""The poll interval grows to this fraction of the time waited so far, so a slow
fire costs few polls while the error bound stays within 2% of the latency; at a
1 ms interval it starts to grow after 50 ms."""


@dataclass(frozen=True)
class ProbeSample:
    """One measured probe, times in microseconds."""

    latency_us: float
    """From the actual send to the observing poll's read."""
    latency_from_intended_us: float
    """From the intended send time to the observing poll's read."""
    error_bound_us: float
    """Width of the window in which the fire completed."""
    sent_ns: int
    """``time.perf_counter_ns()`` at the send, on CLOCK_MONOTONIC on Linux."""


class LatencyProbe:
    """Measures send-to-fire latency by sending events and polling the fire count.

    Args:
        producer: a connected producer of its own, not shared with the load.
        health: a health client of its own.
        graph: graph whose fire count is polled.
        feed: source of probe event values.
        poll_interval_s: shortest pause between polls, the probe's resolution.
        probe_interval_s: time between intended probe sends.
        timeout_s: a probe whose fire is not seen within this time is counted in
            ``timed_out`` and not recorded.
        on_sample: called with each sample, for live statistics and validation.
        detector: how the probe's fire is recognized; polling the graph's fire
            count when None.
        next_tag: source of sequence tags shared with the producers of this
            process, so that tags follow send order.
        wire: payload format of the probe's events, ``json`` or ``bincode``.
    """

    def __init__(
        self,
        producer: Producer,
        health: HealthClient,
        graph: str,
        feed,
        poll_interval_s: float = 0.002,
        probe_interval_s: float = 0.1,
        timeout_s: float = 5.0,
        on_sample: Callable[[ProbeSample], None] | None = None,
        detector=None,
        next_tag: Callable[[], int] | None = None,
        wire: str = "json",
    ) -> None:
        self.histogram = LatencyHistogram()
        """Latency from the actual send time."""
        self.histogram_from_intended = LatencyHistogram()
        """Latency from the intended send time, corrected for coordinated omission."""
        self.error_bound = LatencyHistogram()
        self.intervals = IntervalHistograms()
        """Per-second histograms of latency from the intended send time."""
        self.interval_origin_s = time.perf_counter()
        self.sent = 0
        self.timed_out = 0
        self.error: ConnectionProblem | None = None
        """The error that ended the probe early, if any."""
        self._producer = producer
        self._health = health
        self._graph = graph
        self._feed = feed
        self._poll_interval_s = poll_interval_s
        self._probe_interval_s = max(probe_interval_s, poll_interval_s)
        self._timeout_s = timeout_s
        self._on_sample = on_sample
        self._detector = detector or CountDetector(health, graph)
        self._next_tag = next_tag or itertools.count().__next__
        self._wire = wire
        self._stopping = False
        self._backoff = Backoff(0.1, 2.0)
        self._connected = True
        self.missed = 0
        """Probes that fell due while the server could not be reached."""
        self.fires_failed = 0
        """Probes whose event was consumed by a fire whose graph failed."""
        self.outages = 0

    @property
    def detection_method(self) -> str:
        return self._detector.method

    def stop(self) -> None:
        """Ask the probe loop to end after its current probe."""
        self._stopping = True

    def run(self) -> None:
        """Probe on schedule until ``stop`` is called or an error cannot pass.

        A lost connection or an unreachable server is retried with backoff;
        a rejected key or an unknown name ends the probe and is kept in
        ``error``. Probes that fall due during an outage are skipped, not sent
        late, and counted in ``missed``.
        """
        start = time.perf_counter()
        index = 0
        while not self._stopping:
            intended = start + index * self._probe_interval_s
            self._sleep(intended - time.perf_counter())
            if self._stopping:
                break
            try:
                self.probe_once(intended)
                self._backoff.reset()
            except ConnectionProblem as error:
                if error.kind in FATAL_KINDS:
                    if not self._stopping:
                        logger.warning("latency probe stopped: %s", error)
                        self.error = error
                    return
                self._recover(error)
                skipped = int((time.perf_counter() - start) / self._probe_interval_s)
                self.missed += max(0, skipped - index)
                index = max(index, skipped)
            index += 1

    def _recover(self, error: ConnectionProblem) -> None:
        """Wait with backoff, then reconnect; stay quiet while the outage lasts."""
        if self.outages == 0 or self._connected:
            logger.warning("latency probe lost its connection: %s", error)
            self.outages += 1
        self._connected = False
        self._health.close()
        self._sleep(self._backoff.next_delay())
        try:
            self._producer.close()
            self._producer.connect()
            self._connected = True
        except ConnectionProblem:
            pass

    def probe_once(self, intended_s: float | None = None) -> ProbeSample | None:
        """Send one event and wait for the fire that follows it.

        Returns:
            The sample, or None if no fire was seen within the timeout.
        """
        cycle_started = time.perf_counter()
        tag = self._next_tag()
        quotes = apply_tags(self._feed.next_batch(1), tag)
        payload = encode_events(quotes, self._wire)[0]
        target = self._detector.before_send(tag)
        sent_ns = time.perf_counter_ns()
        self._producer.send(payload)
        sent_at = sent_ns / 1e9
        self.sent += 1
        # The read before the send is part of every probe, not a stall, so the
        # delay from the intended time counts from when this probe's cycle began.
        started_late_s = (
            0.0 if intended_s is None else max(0.0, cycle_started - intended_s)
        )
        return self._wait_for_fire(target, sent_at, sent_ns, started_late_s)

    def _wait_for_fire(self, target, sent_at, sent_ns, started_late_s):
        deadline = sent_at + self._timeout_s
        previous_request = sent_at
        # Looked up once, because this loop runs about a thousand times a second.
        fired_since = self._detector.fired
        clock = time.perf_counter
        while True:
            requested = clock()
            fired = fired_since(target)
            observed = clock()
            read_at = (requested + observed) / 2
            if fired and self._detector.last_fire_failed:
                # The graph failed on this fire: that is no latency to record.
                self.fires_failed += 1
                return None
            if fired:
                sample = ProbeSample(
                    latency_us=(read_at - sent_at) * 1e6,
                    latency_from_intended_us=(read_at - sent_at + started_late_s) * 1e6,
                    error_bound_us=(observed - previous_request) * 1e6,
                    sent_ns=sent_ns,
                )
                self._record(sample, observed)
                return sample
            if observed >= deadline or self._stopping:
                self.timed_out += observed >= deadline
                return None
            previous_request = requested
            waited = observed - sent_at
            self._sleep(
                min(
                    MAX_POLL_INTERVAL_S,
                    max(self._poll_interval_s, waited * ADAPTIVE_FRACTION),
                )
            )

    def _record(self, sample: ProbeSample, observed_s: float) -> None:
        self.histogram.record_us(sample.latency_us)
        self.histogram_from_intended.record_us(sample.latency_from_intended_us)
        self.error_bound.record_us(sample.error_bound_us)
        second = int(observed_s - self.interval_origin_s)
        self.intervals.record_us(second, sample.latency_from_intended_us)
        if self._on_sample is not None:
            self._on_sample(sample)

    @staticmethod
    def _sleep(seconds: float) -> None:
        # time.sleep is gevent's cooperative sleep when Locust has patched it.
        if seconds > 0:
            time.sleep(seconds)
