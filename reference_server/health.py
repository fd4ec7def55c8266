"""JSON bodies of the health endpoints, built from the registry state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .registry import AccumulatorState
from .runner import GraphRunner

__all__ = ["accumulator_status", "format_timestamp", "graph_status"]


def format_timestamp(moment: datetime | None) -> str | None:
    """Format a UTC time as RFC 3339 with milliseconds, ``2026-04-06T12:34:56.789Z``."""
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def accumulator_status(state: AccumulatorState) -> dict[str, Any]:
    """Build one item of ``GET /v1/health/accumulators``."""
    return {
        "name": state.config.name,
        "status": "healthy",
        "tenant": state.config.tenant,
        "events_total": state.events_total,
        "events_rejected": state.events_rejected,
        "last_event_at": format_timestamp(state.last_event_at),
    }


def graph_status(runner: GraphRunner) -> dict[str, Any]:
    """Build the body of ``GET /v1/health/graphs/{name}``."""
    graph = runner.graph
    reactor = runner.reactor
    return {
        "name": graph.name,
        "health": {
            "state": "running",
            "last_fired_at": format_timestamp(reactor.last_fired_at),
            "fire_count": reactor.fire_count,
        },
        "accumulators": list(graph.accumulators),
        "paused": reactor.paused,
        "reactor": graph.reactor,
        "tenant": graph.tenant,
        "reaction_mode": graph.reaction_mode,
        "execution_time_ms": graph.execution_time_ms,
        "firing": reactor.firing,
        "last_output": reactor.last_output,
    }
