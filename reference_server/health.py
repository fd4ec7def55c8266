"""JSON bodies of the health endpoints, built from the registry state.

Tutorial bodies follow the WebSocket event injection tutorial; the others
follow the Cloacina server's ``AccumulatorStatus``, ``GraphStatus``,
``ReactorStatus`` and ``ReactorFire`` types, fields in declaration order.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .profiles import Profile
from .registry import AccumulatorState
from .runner import FireRecord, GraphRunner

__all__ = [
    "accumulator_items",
    "accumulator_status",
    "chrono_rfc3339",
    "fire_item",
    "format_timestamp",
    "graph_status",
    "graph_status_cloacina",
    "interface",
    "reactor_status",
]


def format_timestamp(moment: datetime | None) -> str | None:
    """Format a UTC time as RFC 3339 with milliseconds, ``2026-04-06T12:34:56.789Z``."""
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def chrono_rfc3339(moment: datetime | None) -> str | None:
    """Format like chrono's ``to_rfc3339`` of epoch milliseconds.

    The result ends in ``+00:00`` and carries ``.mmm`` only when the
    milliseconds are not 0, e.g. ``2026-06-21T20:21:41.283+00:00``.
    """
    if moment is None:
        return None
    millis = moment.microsecond // 1000
    fraction = f".{millis:03d}" if millis else ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "+00:00"


def _timestamp(profile: Profile, moment: datetime | None) -> str | None:
    if profile.timestamp_suffix == "Z":
        return format_timestamp(moment)
    return chrono_rfc3339(moment)


def _from_ns(wall_ns: int) -> datetime:
    return datetime.fromtimestamp(wall_ns / 1e9, UTC)


def accumulator_status(state: AccumulatorState) -> dict[str, Any]:
    """Build one item of the tutorial's ``GET /v1/health/accumulators``."""
    return {
        "name": state.config.name,
        "status": "healthy",
        "tenant": state.config.tenant,
        "events_total": state.events_total,
        "events_rejected": state.events_rejected,
        "last_event_at": format_timestamp(state.last_event_at),
    }


def accumulator_items(state: AccumulatorState) -> list[dict[str, Any]]:
    """Build the Cloacina ``AccumulatorStatus`` rows of an accumulator.

    Each reactor runs its own copy of a shared accumulator in Cloacina, so the
    accumulator has one row per reactor that declares it.
    """
    config = state.config
    health = "socket_only" if config.kind in ("passthrough", "state") else "live"
    items = []
    for runner in state.runners:
        processor = runner.processors[config.name]
        items.append(
            {
                "name": config.name,
                "status": health,
                "reactor": runner.graph.reactor,
                "tenant_id": config.tenant,
                "state": health,
                "last_event_at": chrono_rfc3339(state.last_event_at),
                "events_total": processor.boundaries_emitted,
                "buffer_depth": processor.buffer_depth,
                "buffer_capacity": processor.buffer_capacity,
                "error": None,
                "operator_injects": state.operator_injects,
                "last_operator_inject_at": chrono_rfc3339(
                    state.last_operator_inject_at
                ),
            }
        )
    return items


def graph_status(runner: GraphRunner) -> dict[str, Any]:
    """Build the tutorial's body of ``GET /v1/health/graphs/{name}``."""
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


def _topology(runner: GraphRunner) -> dict[str, Any]:
    # The built-in computations are one node reading every accumulator and a
    # terminal node, like the tutorial's compute_signal -> emit.
    node = runner.graph.computation
    return {
        "nodes": [
            {"id": node, "inputs": list(runner.graph.accumulators)},
            {"id": "emit", "inputs": []},
        ],
        "edges": [{"from": node, "to": "emit", "label": None}],
    }


def graph_status_cloacina(runner: GraphRunner, detail: bool) -> dict[str, Any]:
    """Build Cloacina's ``GraphStatus``; ``source_package`` is set in detail only."""
    graph = runner.graph
    reactor = runner.reactor
    return {
        "name": graph.name,
        "health": {"state": "live"},
        "accumulators": list(graph.accumulators),
        "paused": reactor.paused,
        "topology": _topology(runner),
        "reactor": graph.reactor,
        "reaction_mode": graph.reaction_mode,
        "input_strategy": "latest",
        "fires": reactor.fire_count,
        "last_fired_at": chrono_rfc3339(reactor.last_fired_at),
        "source_package": graph.name if detail else None,
    }


def reactor_status(runner: GraphRunner, profile: Profile) -> dict[str, Any]:
    """Build Cloacina's ``ReactorStatus``."""
    graph = runner.graph
    reactor = runner.reactor
    return {
        "name": graph.reactor,
        "health": {"state": "live"},
        "accumulators": list(graph.accumulators),
        "reaction_mode": graph.reaction_mode,
        "input_strategy": "latest",
        "bound_graphs": [graph.name],
        "paused": reactor.paused,
        "fires": reactor.fire_count,
        "last_fired_at": _timestamp(profile, reactor.last_fired_at),
    }


def fire_item(runner: GraphRunner, record: FireRecord, profile: Profile) -> dict:
    """Build Cloacina's ``ReactorFire`` row of the fire log."""
    # Cloacina's subscriber dispatcher reports every fire as completed, so a
    # failed graph still shows ok: true there; the tutorial profile shows it.
    ok = record.ok or profile.name == "cloacina"
    duration_ms = (record.finished_mono_ns - record.started_mono_ns) // 1_000_000
    return {
        "fired_at": _timestamp(profile, _from_ns(record.finished_wall_ns)),
        "ok": ok,
        "error": None if ok else record.error,
        "duration_ms": duration_ms,
        "inputs": {
            name: runner.decode_input(value) for name, value in record.inputs.items()
        },
        "outputs": [],
        "manual": record.manual,
    }


def interface(kind: str, name: str, slots: list[tuple[str, dict]]) -> dict:
    """Build Cloacina's ``DeclaredSurface`` from (slot name, fields) pairs."""
    json_types = {"f64": "number", "i64": "integer", "str": "string", "bool": "boolean"}
    rendered = []
    for slot, fields in slots:
        schema = {
            "type": "object",
            "properties": {
                field: {"type": json_types[type_name]}
                for field, type_name in fields.items()
            },
            "required": list(fields),
            "additionalProperties": False,
        }
        rendered.append(
            {"name": slot, "schema": schema, "required": True, "encrypted": False}
        )
    return {"kind": kind, "name": name, "slots": rendered}
