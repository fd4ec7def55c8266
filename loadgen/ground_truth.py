"""Validation of probe samples against the reference server's ground truth.

The reference server started with ``--ground-truth`` records when each event
from a flagged connection arrived and when each fire started and finished,
on CLOCK_MONOTONIC, which is also the clock of ``time.perf_counter_ns`` here.
An event is consumed by the first fire whose ``last_event_index`` reaches the
event's ``event_index``, so the true send-to-fire time of a probe event is that
fire's ``finished_mono_ns`` minus the probe's send time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

from loadgen.errors import ConnectionProblem
from loadgen.health import HealthClient
from loadgen.histogram import LatencyHistogram

__all__ = ["GroundTruth", "Validation", "GROUND_TRUTH_HEADER"]

GROUND_TRUTH_HEADER = "X-Loadgen-Ground-Truth: 1"
"""Request header with which a connection has the server record its events."""

SLACK_US = 200
"""Allowed disagreement beyond a sample's own error bound, for clock reads and
scheduling between the fire's end and the count update."""


@dataclass
class Validation:
    """Measured-minus-true latency of the probe samples that were checked."""

    samples: int = 0
    within_bound: int = 0
    unmatched: int = 0
    """Samples whose event or fire the ground truth did not hold."""
    max_error_us: float = 0.0
    truth: LatencyHistogram = field(default_factory=LatencyHistogram)
    """True send-to-fire latencies of the checked samples."""

    def as_dict(self) -> dict:
        return {
            "samples": self.samples,
            "within_bound": self.within_bound,
            "unmatched": self.unmatched,
            "max_error_us": round(self.max_error_us),
            "truth_summary": self.truth.summary(),
        }


class GroundTruth:
    """Looks up the true fire of each probe event on the reference server."""

    def __init__(self, health: HealthClient, graph: str) -> None:
        self._health = health
        self._graph = graph
        self._fires_seen = 0
        self._fires: list[dict] = []
        self.validation = Validation()

    def available(self) -> bool:
        """Return whether the server exposes the ground truth for this graph."""
        try:
            self._health.get_json(self._fires_path(0))
        except ConnectionProblem as error:
            if error.kind in ("http_404", "not_found"):
                return False
            raise
        return True

    def true_latency_us(self, peer_port: int, sent_ns: int) -> float | None:
        """Return the true send-to-fire time of the newest event from ``peer_port``."""
        events = self._health.get_json(
            f"/_ground_truth/events?peer_port={peer_port}"
        ).get("events", [])
        if not events:
            return None
        event = max(events, key=lambda row: row["connection_seq"])
        fire = self._consuming_fire(event["event_index"])
        if fire is None:
            return None
        return (fire["finished_mono_ns"] - sent_ns) / 1000

    def check(self, measured_us: float, bound_us: float, truth_us: float | None):
        """Record how a measured sample compares with the truth."""
        if truth_us is None:
            self.validation.unmatched += 1
            return
        error_us = measured_us - truth_us
        self.validation.samples += 1
        self.validation.truth.record_us(truth_us)
        self.validation.max_error_us = max(self.validation.max_error_us, abs(error_us))
        if abs(error_us) <= bound_us + SLACK_US:
            self.validation.within_bound += 1

    def _consuming_fire(self, event_index: int) -> dict | None:
        for fire in self._fires:
            if fire["last_event_index"] >= event_index:
                return fire
        new = self._health.get_json(self._fires_path(self._fires_seen)).get("fires", [])
        if new:
            self._fires_seen = max(fire["fire_index"] for fire in new)
            self._fires = sorted(self._fires + new, key=lambda f: f["fire_index"])
        # Keep the lookup window short: probes only move forward.
        self._fires = [f for f in self._fires if f["last_event_index"] >= event_index]
        return self._fires[0] if self._fires else None

    def _fires_path(self, since: int) -> str:
        return f"/_ground_truth/fires?graph={quote(self._graph)}&since_fire={since}"
