"""Decode event payloads into boundary values and validate their fields.

A boundary is the typed value an accumulator hands to its reactors. Here it is a
flat JSON object whose field set and field types must match the accumulator's
declaration exactly, like serde deserializing into the graph's Rust struct.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["BoundaryError", "EventDecoder", "decode_event", "validate_boundary"]

I64_MIN = -(2**63)
I64_MAX = 2**63 - 1
EXACT_TYPES = {"f64": float, "i64": int, "str": str, "bool": bool}
"""Python type that a decoded field must have, exactly, to skip conversion."""


class BoundaryError(ValueError):
    """Event payload that does not decode into the declared boundary."""


def decode_event(payload: bytes | str, fields: Mapping[str, str]) -> dict[str, Any]:
    """Parse a JSON payload and validate it against the boundary fields.

    Args:
        payload: UTF-8 JSON text, from a text or a binary WebSocket frame.
        fields: field name to type name (``f64``, ``i64``, ``str``, ``bool``).

    Returns:
        The boundary value, with integers given for ``f64`` fields converted to float.

    Raises:
        BoundaryError: the payload is not JSON or does not match the fields.
    """
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise BoundaryError(_invalid_json(payload, exc)) from None
    return validate_boundary(value, fields)


class EventDecoder:
    """``decode_event`` for one accumulator's fields, with a fast path.

    An event whose keys come in the declared order and whose values already
    have the exact Python type (``float`` for ``f64``, an ``int`` in range for
    ``i64``) is returned as orjson decoded it. Any other event takes
    ``validate_boundary``, which converts or raises, so the results are equal.
    """

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.fields = dict(fields)
        self._names = tuple(fields)
        self._checks = tuple((name, EXACT_TYPES[kind]) for name, kind in fields.items())
        self._has_i64 = "i64" in self.fields.values()

    def __call__(self, payload: bytes | str) -> dict[str, Any]:
        """Decode and validate one payload, like ``decode_event``.

        Raises:
            BoundaryError: the payload is not JSON or does not match the fields.
        """
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise BoundaryError(_invalid_json(payload, exc)) from None

        # Compare types with "is", since bool is a subclass of int.
        if type(value) is dict and tuple(value) == self._names:
            for name, expected in self._checks:
                if type(value[name]) is not expected:
                    break
            else:
                if not self._has_i64:
                    return value
        return validate_boundary(value, self.fields)


def _invalid_json(payload: bytes | str, error: orjson.JSONDecodeError) -> str:
    # A bincode producer against a JSON server is a likely cause, because its
    # payload is raw field bytes while a JSON event starts with "{".
    start = payload[:64].lstrip()[:1]
    if start in ("{", b"{"):
        return f"invalid JSON: {error}"
    return (
        f"invalid JSON: {error}; this server decodes JSON (--wire json): if the "
        "producer sends bincode, restart the server with --wire bincode"
    )


def validate_boundary(value: Any, fields: Mapping[str, str]) -> dict[str, Any]:
    """Check that a decoded value has exactly the declared fields and types.

    Raises:
        BoundaryError: names the first missing, unexpected or mistyped field.
    """
    if not isinstance(value, dict):
        raise BoundaryError(f"expected a JSON object, got {_json_type(value)}")

    missing = [name for name in fields if name not in value]
    if missing:
        raise BoundaryError(f"missing field {missing[0]!r}")
    unexpected = [name for name in value if name not in fields]
    if unexpected:
        raise BoundaryError(f"unexpected field {unexpected[0]!r}")

    boundary = {}
    for name, type_name in fields.items():
        boundary[name] = _convert_field(name, value[name], type_name)
    return boundary


def _convert_field(name: str, value: Any, type_name: str) -> Any:
    # bool is a subclass of int in Python, but JSON true is not a number.
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if type_name == "f64" and (is_int or isinstance(value, float)):
        return float(value)
    if type_name == "i64" and is_int and I64_MIN <= value <= I64_MAX:
        return value
    if type_name == "str" and isinstance(value, str):
        return value
    if type_name == "bool" and isinstance(value, bool):
        return value
    raise BoundaryError(
        f"field {name!r} must be {type_name}, got {_json_type(value)} {value!r:.40}"
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
