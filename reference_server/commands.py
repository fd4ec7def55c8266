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

The cloacina profile uses the Cloacina server's own format, tagged by
``command`` in requests and by a snake_case ``type`` in responses::

    {"command": "force_fire"}                     -> {"type": "fired"}
    {"command": "fire_with", "cache": {"orderbook": [123, 34, ...]}}
                                                  -> {"type": "fired"}
    {"command": "get_state"}  -> {"type": "state", "cache": {"orderbook": "<hex>"}}
    {"command": "pause"}      -> {"type": "paused"}
    {"command": "resume"}     -> {"type": "resumed"}
    anything else             -> {"type": "error", "message": "invalid command: ..."}

``fire_with`` cache values are byte arrays stored in the cache verbatim, and
``get_state`` returns each entry as lowercase hex of its bincode frame.
"""

from __future__ import annotations

from typing import Any

import orjson

from .boundary import BoundaryError, validate_boundary
from .profiles import BINCODE_LENGTH_BYTES, frame_boundary
from .registry import Registry
from .runner import GraphRunner

__all__ = ["COMMAND_TYPES", "handle_cloacina_command", "handle_command"]

COMMAND_TYPES = ("ForceFire", "FireWith", "GetState", "Pause", "Resume")
CLOACINA_COMMANDS = ("force_fire", "fire_with", "get_state", "pause", "resume")


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
        fields = registry.accumulators[(runner.graph.tenant, name)].config.fields
        try:
            boundaries[name] = validate_boundary(value, fields)
        except BoundaryError as exc:
            return _error(f"FireWith cache entry {name!r} is invalid: {exc}")

    runner.fire_with(boundaries)
    return {"type": "Fired"}


def _error(message: str) -> dict[str, Any]:
    return {"type": "Error", "message": message}


def handle_cloacina_command(runner: GraphRunner, payload: bytes | str) -> dict:
    """Apply one Cloacina-format command to a runner and return the response."""
    try:
        command = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return _cloacina_error(f"invalid command: {exc}")
    if not isinstance(command, dict):
        return _cloacina_error("invalid command: expected a JSON object")
    if "command" not in command:
        return _cloacina_error("invalid command: missing field `command`")

    name = command["command"]
    if name == "force_fire":
        runner.force_fire()
        return {"type": "fired"}
    if name == "fire_with":
        cache = command.get("cache")
        entries = _byte_arrays(cache)
        if entries is None:
            return _cloacina_error(
                "invalid command: cache must map source names to arrays of "
                "integers 0-255"
            )
        try:
            runner.fire_with(entries)
        except KeyError as exc:
            return _cloacina_error(
                f"failed to send to reactor '{runner.graph.reactor}': "
                f"unknown source {exc}"
            )
        return {"type": "fired"}
    if name == "get_state":
        cache = {
            source: _bincode_hex(value)
            for source, value in runner.reactor.cache.items()
        }
        return {"type": "state", "cache": cache}
    if name == "pause":
        runner.reactor.pause()
        return {"type": "paused"}
    if name == "resume":
        runner.reactor.resume()
        return {"type": "resumed"}
    variants = ", ".join(f"`{variant}`" for variant in CLOACINA_COMMANDS)
    return _cloacina_error(
        f"invalid command: unknown variant `{name}`, expected one of {variants}"
    )


def _byte_arrays(cache: Any) -> dict[str, bytes] | None:
    if not isinstance(cache, dict):
        return None
    entries = {}
    for source, value in cache.items():
        if not isinstance(value, list) or not all(
            isinstance(byte, int) and not isinstance(byte, bool) and 0 <= byte <= 255
            for byte in value
        ):
            return None
        entries[source] = bytes(value)
    return entries


def _bincode_hex(value: Any) -> str:
    # Event payloads sit in the cache unframed, but Cloacina's cache holds the
    # bincode frame, so an entry without a frame is shown framed.
    if isinstance(value, bytes):
        size = len(value) - BINCODE_LENGTH_BYTES
        framed = size >= 0 and int.from_bytes(value[:8], "little") == size
        return (value if framed else frame_boundary(value)).hex()
    return frame_boundary(orjson.dumps(value)).hex()


def _cloacina_error(message: str) -> dict[str, Any]:
    return {"type": "error", "message": message}
