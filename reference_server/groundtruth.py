"""Ground truth for latency measurement: event arrivals and fire times.

A WebSocket producer that opens its connection with the request header
``X-Loadgen-Ground-Truth: 1`` has each of its events recorded here, with the
server-wide event index that the reactor remembers when a fire takes its
snapshot. A client can then match each of its sends to the first fire of a
graph whose ``last_event_index`` is at least the event's index. All ``*_mono_ns``
values are ``time.monotonic_ns()``, the clock of ``time.perf_counter_ns()`` in a
client process on the same Linux machine.
"""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from typing import Any

from .runner import FireRecord

__all__ = ["GROUND_TRUTH_HEADER", "RING_CAPACITY", "GroundTruth", "rfc3339_ns"]

GROUND_TRUTH_HEADER = "X-Loadgen-Ground-Truth"
RING_CAPACITY = 100_000
"""Events kept server-wide, and fires kept per graph."""


class GroundTruth:
    """Rings of recorded events and, per graph, of fires."""

    def __init__(self, capacity: int = RING_CAPACITY) -> None:
        self.capacity = capacity
        self.events: deque[tuple[int, int, int, str, int, int]] = deque(maxlen=capacity)
        """(connection id, event index, connection seq, accumulator, mono, wall)."""
        self.fires: dict[str, deque[tuple]] = {}
        """Per graph, fires as ``FireRecord`` field tuples, oldest first."""
        self._connection_by_port: dict[int, int] = {}
        self._next_connection_id = 0

    def fire_ring(self, graph: str) -> deque[tuple]:
        """Return the ring that a graph runner appends its fires to."""
        return self.fires.setdefault(graph, deque(maxlen=self.capacity))

    def open_connection(self, peer_port: int) -> int:
        """Register a producer connection and return its id.

        A later connection from the same peer port replaces the earlier one in
        ``events_for_port``, so a reused port never mixes two connections.
        """
        self._next_connection_id += 1
        self._connection_by_port[peer_port] = self._next_connection_id
        return self._next_connection_id

    def record_event(
        self,
        connection_id: int,
        event_index: int,
        connection_seq: int,
        accumulator: str,
        arrived_mono_ns: int,
        arrived_wall_ns: int,
    ) -> None:
        self.events.append(
            (
                connection_id,
                event_index,
                connection_seq,
                accumulator,
                arrived_mono_ns,
                arrived_wall_ns,
            )
        )

    def events_for_port(self, peer_port: int) -> list[dict[str, Any]]:
        """Return the recorded events of the latest connection from a peer port."""
        connection_id = self._connection_by_port.get(peer_port)
        if connection_id is None:
            return []
        return [
            {
                "event_index": event_index,
                "connection_seq": seq,
                "accumulator": accumulator,
                "arrived_mono_ns": mono_ns,
                "arrived_at": rfc3339_ns(wall_ns),
            }
            for conn, event_index, seq, accumulator, mono_ns, wall_ns in self.events
            if conn == connection_id
        ]

    def fires_since(
        self, graph: str, reactor: str, since_fire: int
    ) -> list[dict[str, Any]]:
        """Return the recorded fires of a graph with ``fire_index > since_fire``."""
        ring = self.fires.get(graph)
        if not ring:
            return []
        skip = max(0, since_fire - ring[0][0] + 1)
        return [
            _fire_row(graph, reactor, FireRecord(*row)) for row in list(ring)[skip:]
        ]


def _fire_row(graph: str, reactor: str, record: FireRecord) -> dict[str, Any]:
    return {
        "fire_index": record.fire_index,
        "graph": graph,
        "reactor": reactor,
        "started_mono_ns": record.started_mono_ns,
        "finished_mono_ns": record.finished_mono_ns,
        "started_at": rfc3339_ns(record.started_wall_ns),
        "finished_at": rfc3339_ns(record.finished_wall_ns),
        "last_event_index": record.last_event_index,
        "manual": record.manual,
        "ok": record.ok,
    }


def rfc3339_ns(wall_ns: int) -> str:
    """Format nanoseconds since the epoch as UTC RFC 3339 with microseconds."""
    moment = datetime.fromtimestamp(wall_ns // 1000 / 1e6, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
