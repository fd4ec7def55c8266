"""Registry of accumulators and graphs, and delivery of events to reactors."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .boundary import BoundaryError, decode_event
from .config import AccumulatorConfig, ServerConfig
from .runner import GraphRunner

__all__ = ["AccumulatorState", "Registry"]

logger = logging.getLogger(__name__)

REJECT_LOG_INTERVAL_S = 10.0
"""Minimum time between two logs of rejected events for one accumulator."""


@dataclass
class AccumulatorState:
    config: AccumulatorConfig
    runners: list[GraphRunner] = field(default_factory=list)
    """Runners of every graph that declares this accumulator."""
    events_total: int = 0
    """Accepted events: valid boundaries delivered to the reactors."""
    events_rejected: int = 0
    """Events dropped because they did not decode into the boundary."""
    last_event_at: datetime | None = None
    _rejects_unlogged: int = 0
    _last_reject_log_s: float = float("-inf")

    def log_reject(self, error: BoundaryError) -> None:
        # A misconfigured producer can send thousands of bad events a second,
        # so log the first one and then one summary per interval.
        self._rejects_unlogged += 1
        now_s = time.monotonic()
        if now_s - self._last_reject_log_s < REJECT_LOG_INTERVAL_S:
            return
        logger.warning(
            "accumulator %s rejected %d event(s) (%d in total), latest: %s",
            self.config.name,
            self._rejects_unlogged,
            self.events_rejected,
            error,
        )
        self._rejects_unlogged = 0
        self._last_reject_log_s = now_s


class Registry:
    """Accumulators by name and graph runners by graph and reactor name."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.accumulators = {
            accumulator.name: AccumulatorState(accumulator)
            for accumulator in config.accumulators
        }
        self.graphs: dict[str, GraphRunner] = {}
        self._by_reactor: dict[str, GraphRunner] = {}
        for graph in config.graphs:
            runner = GraphRunner(graph)
            self.graphs[graph.name] = runner
            self._by_reactor[graph.reactor] = runner
            for name in graph.accumulators:
                self.accumulators[name].runners.append(runner)

    def find_reactor(self, name: str) -> GraphRunner | None:
        """Look up a reactor by graph name, then by reactor name."""
        return self.graphs.get(name) or self._by_reactor.get(name)

    def deliver(self, accumulator: AccumulatorState, payload: bytes | str) -> bool:
        """Decode an event and update every reactor that declares the accumulator.

        Returns:
            True if the event was accepted, False if it was rejected and counted.
        """
        try:
            boundary = decode_event(payload, accumulator.config.fields)
        except BoundaryError as error:
            accumulator.events_rejected += 1
            accumulator.log_reject(error)
            return False

        accumulator.events_total += 1
        accumulator.last_event_at = datetime.now(UTC)
        for runner in accumulator.runners:
            runner.on_boundary(accumulator.config.name, boundary)
        return True

    def visible_accumulators(self, tenant: str | None) -> Iterator[AccumulatorState]:
        """Yield accumulators of ``tenant``, or all of them for None (admin)."""
        for state in self.accumulators.values():
            if tenant is None or state.config.tenant == tenant:
                yield state

    def visible_graphs(self, tenant: str | None) -> Iterator[GraphRunner]:
        """Yield graphs of ``tenant``, or all of them for None (admin)."""
        for runner in self.graphs.values():
            if tenant is None or runner.graph.tenant == tenant:
                yield runner

    async def stop(self) -> None:
        """Cancel running fires."""
        for runner in self.graphs.values():
            await runner.stop()
