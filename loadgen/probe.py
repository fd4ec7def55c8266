"""The send-to-fire latency probe.

While load runs, the probe sends one event on its own connection, then polls the
graph's health endpoint until the fire count changes. The latency it records is
the time from the send to the moment the observing poll's response arrived, so
each sample overstates the truth by at most one poll interval plus one poll
round trip: that sum is the probe's resolution.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from loadgen.encoding import encode_quotes
from loadgen.errors import ConnectionProblem
from loadgen.health import HealthClient
from loadgen.histogram import LatencyHistogram
from loadgen.producer import Producer

__all__ = ["LatencyProbe"]

logger = logging.getLogger(__name__)


class LatencyProbe:
    """Measures send-to-fire latency by sending events and polling ``fire_count``.

    Args:
        producer: a connected producer of its own, not shared with the load.
        health: a health client of its own.
        graph: graph whose fire count is polled.
        feed: source of probe event values.
        poll_interval_s: pause between polls; 0.001 to 1 s is sensible.
        probe_interval_s: pause between the end of one probe and the next send.
        timeout_s: a probe whose fire is not seen within this time is counted in
            ``timed_out`` and not recorded.
        on_sample: called with each latency in microseconds, for live statistics.
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
        on_sample: Callable[[float], None] | None = None,
    ) -> None:
        self.histogram = LatencyHistogram()
        self.sent = 0
        self.timed_out = 0
        self.error: ConnectionProblem | None = None
        """The error that ended the probe early, if any."""
        self._producer = producer
        self._health = health
        self._graph = graph
        self._feed = feed
        self._poll_interval_s = poll_interval_s
        self._probe_interval_s = probe_interval_s
        self._timeout_s = timeout_s
        self._on_sample = on_sample
        self._stopping = False

    def stop(self) -> None:
        """Ask the probe loop to end after its current probe."""
        self._stopping = True

    def run(self) -> None:
        """Probe until ``stop`` is called or the connection fails."""
        try:
            while not self._stopping:
                self.probe_once()
                self._sleep(self._probe_interval_s)
        except ConnectionProblem as error:
            if not self._stopping:
                logger.warning("latency probe stopped: %s", error)
                self.error = error

    def probe_once(self) -> float | None:
        """Send one event and wait for the fire count to change.

        Returns:
            The latency in microseconds, or None if the fire was not seen in time.
        """
        payload = encode_quotes(self._feed.next_batch(1))[0]
        # TODO: under load another producer's event can move the fire count
        # first, so a sample may end at a fire that did not consume the probe
        # event; correlating through the fire log would match it exactly.
        baseline = self._health.graph_fire_count(self._graph)
        sent_at = time.perf_counter()
        self._producer.send(payload)
        self.sent += 1
        deadline = sent_at + self._timeout_s
        while True:
            count = self._health.graph_fire_count(self._graph)
            observed_at = time.perf_counter()
            if count != baseline:
                latency_us = (observed_at - sent_at) * 1e6
                self.histogram.record_us(latency_us)
                if self._on_sample is not None:
                    self._on_sample(latency_us)
                return latency_us
            if observed_at >= deadline or self._stopping:
                self.timed_out += observed_at >= deadline
                return None
            self._sleep(self._poll_interval_s)

    @staticmethod
    def _sleep(seconds: float) -> None:
        # time.sleep is gevent's cooperative sleep when Locust has patched it.
        time.sleep(seconds)
