"""Protocol profiles: the tutorial's description and the Cloacina server's code.

The two sources differ in how events are encoded in the cache, which frames
count as events, how names and keys are checked, and how bodies look. A
``Profile`` gathers these choices so the handlers stay free of ``if`` chains on
the profile name. The JSON bodies themselves are built in ``health``.

The tutorial profile also accepts the tutorial's two payload formats, chosen
with ``--wire``: JSON, as in debug builds, or bincode, as in release builds
(see ``bincode``). Only WebSocket events change; REST bodies stay JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson

from .accumulators import Codec
from .bincode import encode_boundary, make_decoder
from .boundary import BoundaryError, EventDecoder, decode_event

__all__ = [
    "CLOACINA",
    "PROFILES",
    "TUTORIAL",
    "WIRE_FORMATS",
    "Profile",
    "frame_boundary",
    "with_wire",
]

WIRE_FORMATS = ("json", "bincode")
"""Event payload formats of the tutorial profile: debug and release builds."""

BINCODE_LENGTH_BYTES = 8
"""Cloacina wraps each cached boundary as bincode ``Vec<u8>``: a u64 LE length."""


@dataclass(frozen=True)
class Profile:
    name: str
    text_frames_are_events: bool
    """Tutorial: text and binary frames carry events. Cloacina: text is ignored."""
    query_token_is_ticket: bool
    """Cloacina: ``?token=`` is only a single-use ticket, never an API key."""
    unknown_name_after_upgrade: bool
    """Tutorial: an unknown name upgrades, then closes with 4404 (else 403)."""
    close_when_nothing_accepted: bool
    """Cloacina: close 4404 when every recipient's queue was full."""
    graph_alias_for_reactor: bool
    """Tutorial: the reactor WebSocket also accepts the graph name."""
    validate_passthrough: bool
    """Tutorial: check event fields before the reactor; Cloacina forwards bytes."""
    timestamp_suffix: str
    """``Z`` in the tutorial, chrono's ``+00:00`` in Cloacina."""
    wire: str = "json"
    """Payload format of WebSocket events, one of ``WIRE_FORMATS``. Only the
    tutorial profile decodes events, so the cloacina profile stays ``json``."""

    @property
    def codec(self) -> Codec:
        """Event representation inside batch and state accumulators."""
        if self.validate_passthrough:
            return Codec(decode=_identity, encode=list)
        return Codec(decode=orjson.loads, encode=orjson.dumps)

    def event_value(self, payload: bytes | str, fields: Mapping[str, str]) -> Any:
        """Return the value an accumulator receives for a frame's payload.

        Raises:
            BoundaryError: tutorial profile only, the event does not match the
                accumulator's fields.
        """
        if self.validate_passthrough and self.wire == "bincode":
            return make_decoder(fields)(payload)
        if self.validate_passthrough:
            return decode_event(payload, fields)
        if isinstance(payload, str):
            return payload.encode()
        return payload

    def event_decoder(self, fields: Mapping[str, str]) -> Callable[[Any], Any]:
        """Return ``event_value`` for one accumulator's fields, prepared once.

        The returned callable raises ``BoundaryError`` like ``event_value``.
        """
        if self.validate_passthrough and self.wire == "bincode":
            return make_decoder(fields)
        if self.validate_passthrough:
            return EventDecoder(fields)
        return _payload_bytes

    def inject_payload(self, value: Any, fields: Mapping[str, str]) -> bytes:
        """Encode the JSON event of a REST inject as a WebSocket payload.

        REST bodies are JSON in every wire format, so a bincode server encodes
        the event before it takes the WebSocket path. A value that does not
        match the fields has no bincode form, so it stays JSON, which the
        bincode decoder rejects and counts like any invalid event.
        """
        if self.validate_passthrough and self.wire == "bincode":
            try:
                return encode_boundary(value, fields)
            except BoundaryError:
                pass
        return orjson.dumps(value)

    def decode_input(self, value: Any) -> Any:
        """Return a cached boundary as JSON, or None where Cloacina shows null."""
        if self.validate_passthrough:
            return value
        return decode_boundary_bytes(value)

    def encode_input(self, value: Any) -> Any:
        """Return the cache entry for a JSON value given by REST ``fire_with``."""
        if self.validate_passthrough:
            return value
        return frame_boundary(orjson.dumps(value))


def _identity(value: Any) -> Any:
    return value


def _payload_bytes(payload: bytes | str) -> bytes:
    return payload.encode() if isinstance(payload, str) else payload


def frame_boundary(payload: bytes) -> bytes:
    """Wrap JSON bytes as a bincode ``Vec<u8>``: u64 LE length, then the bytes."""
    return len(payload).to_bytes(BINCODE_LENGTH_BYTES, "little") + payload


def decode_boundary_bytes(value: Any) -> Any:
    """Decode a cache entry: a bincode frame of JSON, else raw JSON, else None."""
    if not isinstance(value, bytes | bytearray):
        return value
    size = len(value) - BINCODE_LENGTH_BYTES
    if size >= 0 and int.from_bytes(value[:BINCODE_LENGTH_BYTES], "little") == size:
        value = value[BINCODE_LENGTH_BYTES:]
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return None


def validate_fields(value: Any, fields: Mapping[str, str]) -> str | None:
    """Return why a JSON value does not match the fields, or None if it does."""
    try:
        decode_event(orjson.dumps(value), fields)
    except BoundaryError as exc:
        return str(exc)
    return None


TUTORIAL = Profile(
    name="tutorial",
    text_frames_are_events=True,
    query_token_is_ticket=False,
    unknown_name_after_upgrade=True,
    close_when_nothing_accepted=False,
    graph_alias_for_reactor=True,
    validate_passthrough=True,
    timestamp_suffix="Z",
)

CLOACINA = Profile(
    name="cloacina",
    text_frames_are_events=False,
    query_token_is_ticket=True,
    unknown_name_after_upgrade=False,
    close_when_nothing_accepted=True,
    graph_alias_for_reactor=False,
    validate_passthrough=False,
    timestamp_suffix="+00:00",
)

PROFILES = {profile.name: profile for profile in (TUTORIAL, CLOACINA)}


def with_wire(profile: Profile, wire: str) -> Profile:
    """Return ``profile`` with events in the ``wire`` payload format.

    Raises:
        ValueError: ``wire`` is unknown, or is ``bincode`` for a profile that
            forwards events without decoding them.
    """
    if wire not in WIRE_FORMATS:
        raise ValueError(f"invalid wire format {wire!r}: use json or bincode")
    if wire == "bincode" and not profile.validate_passthrough:
        raise ValueError(
            f"--wire bincode applies only to --profile tutorial: the {profile.name} "
            "profile forwards event bytes without decoding them, as today's "
            "Cloacina server does; drop --wire or use --profile tutorial"
        )
    return replace(profile, wire=wire)
