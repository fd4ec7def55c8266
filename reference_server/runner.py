"""Execution of reactor fires on the asyncio event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .computations import COMPUTATIONS
from .config import GraphConfig
from .reactor import FireSnapshot, Reactor

__all__ = ["GraphRunner"]

logger = logging.getLogger(__name__)


class GraphRunner:
    """Runs the fires of one graph's reactor.

    With ``execution_time_ms == 0`` a fire runs inline, before the call that
    started it returns, so every accepted event under ``when_any`` gives exactly
    one fire. Otherwise a task sleeps for the execution time and then completes
    the fire; events arriving meanwhile coalesce into one next fire.
    """

    def __init__(self, graph: GraphConfig) -> None:
        self.graph = graph
        self.reactor = Reactor(graph.accumulators, graph.reaction_mode)
        self._compute = COMPUTATIONS[graph.computation]
        self._execution_time_s = graph.execution_time_ms / 1000
        self._task: asyncio.Task[None] | None = None

    def on_boundary(self, accumulator: str, boundary: dict[str, Any]) -> None:
        """Update the reactor with an accepted event and fire if due."""
        self._start(self.reactor.update(accumulator, boundary))

    def force_fire(self) -> None:
        """Fire regardless of the firing condition, unless paused."""
        self._start(self.reactor.force_fire())

    def fire_with(self, cache: Mapping[str, dict[str, Any]]) -> None:
        """Replace the whole cache, then fire like ``force_fire``."""
        self._start(self.reactor.fire_with(cache))

    async def stop(self) -> None:
        """Cancel a running fire and wait for its task to end."""
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def _start(self, snapshot: FireSnapshot | None) -> None:
        if snapshot is None:
            return
        if self._execution_time_s <= 0:
            while snapshot is not None:
                snapshot = self.reactor.complete_fire(self._execute(snapshot), _now())
            return
        self._task = asyncio.get_running_loop().create_task(
            self._run_fires(snapshot), name=f"fire {self.graph.name}"
        )

    async def _run_fires(self, snapshot: FireSnapshot | None) -> None:
        while snapshot is not None:
            await asyncio.sleep(self._execution_time_s)
            snapshot = self.reactor.complete_fire(self._execute(snapshot), _now())

    def _execute(self, snapshot: FireSnapshot) -> Any:
        try:
            return self._compute(snapshot.inputs)
        except Exception:
            # The Cloacina server also counts a fire whose graph failed.
            logger.exception("graph %s failed during a fire", self.graph.name)
            return None


def _now() -> datetime:
    return datetime.now(UTC)
