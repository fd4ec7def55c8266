"""Reactor WebSocket commands: parse a command and apply it to a graph runner.

Commands and responses are JSON objects tagged by ``type``, as in the
WebSocket event injection tutorial::

    {"type": "ForceFire"}                  -> {"type": "Fired"}
    {"type": "FireWith", "cache": {...}}   -> {"type": "Fired"}
    {"type": "GetState"}                   -> {"type": "State", "cache": {...},
                                               "paused": false}
    {"type": "Pause"}                      -> {"type": "Paused"}
    {"type": "Resume"}                     -> {"type": "Resumed"}
    anything else                          -> {"type": "Error", "message": "..."}

``Fired`` means the fire started or was queued behind a running one. As on the
Cloacina server, a paused reactor still returns ``Fired`` but skips the fire.
"""

from __future__ import annotations

from typing import Any

import orjson

from .boundary import BoundaryError, validate_boundary
from .registry import Registry
from .runner import GraphRunner

__all__ = ["COMMAND_TYPES", "handle_command"]

COMMAND_TYPES = ("ForceFire", "FireWith", "GetState", "Pause", "Resume")


def handle_command(
    registry: Registry, runner: GraphRunner, payload: bytes | str
) -> dict[str, Any]:
    """Apply one command to a runner and return the response object."""
    try:
        command = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return _error(f"invalid command: {exc}")
    if not isinstance(command, dict):
        return _error('invalid command: expected a JSON object such as {"type": ...}')

    command_type = command.get("type")
    if command_type == "ForceFire":
        runner.force_fire()
        return {"type": "Fired"}
    if command_type == "FireWith":
        return _fire_with(registry, runner, command.get("cache"))
    if command_type == "GetState":
        return {
            "type": "State",
            "cache": dict(runner.reactor.cache),
            "paused": runner.reactor.paused,
        }
    if command_type == "Pause":
        runner.reactor.pause()
        return {"type": "Paused"}
    if command_type == "Resume":
        runner.reactor.resume()
        return {"type": "Resumed"}
    return _error(
        f"unknown command type {command_type!r}; use one of {', '.join(COMMAND_TYPES)}"
    )


def _fire_with(registry: Registry, runner: GraphRunner, cache: Any) -> dict[str, Any]:
    if not isinstance(cache, dict):
        return _error(
            "FireWith needs a cache object mapping accumulator names to boundaries"
        )

    # Validate every entry before touching the reactor, so a bad command
    # leaves the cache as it was.
    boundaries = {}
    for name, value in cache.items():
        if name not in runner.graph.accumulators:
            declared = ", ".join(runner.graph.accumulators)
            return _error(
                f"FireWith cache names accumulator {name!r}, which graph "
                f"{runner.graph.name!r} does not declare; use one of {declared}"
            )
        fields = registry.accumulators[name].config.fields
        try:
            boundaries[name] = validate_boundary(value, fields)
        except BoundaryError as exc:
            return _error(f"FireWith cache entry {name!r} is invalid: {exc}")

    runner.fire_with(boundaries)
    return {"type": "Fired"}


def _error(message: str) -> dict[str, Any]:
    return {"type": "Error", "message": message}
