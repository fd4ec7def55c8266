"""Boundaries in bincode 1.x, the tutorial's wire format for release builds.

``bincode::serialize`` of bincode 1.3 (its default options: fixed-size
integers, little endian) writes a struct's fields in declaration order, with
no names, tags or padding. The four field types a boundary may declare are:

- ``f64``: 8 bytes, IEEE 754, little endian;
- ``i64``: 8 bytes, two's complement, little endian;
- ``bool``: 1 byte, 0 or 1;
- ``str``: the byte count as a u64, little endian, then that many UTF-8 bytes.

The tutorial's ``OrderBook`` (``best_bid: f64``, ``best_ask: f64``) is thus
16 bytes. Field order is the order of the accumulator's ``fields`` table in
the server configuration.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Callable, Mapping
from typing import Any

from .boundary import BoundaryError, validate_boundary

__all__ = [
    "ExactDecoder",
    "encode_boundary",
    "fixed_size",
    "make_decoder",
    "make_run_decoder",
]

FIXED_FORMATS = {"f64": "d", "i64": "q", "bool": "B"}
"""``struct`` format of each fixed-size field type, without the byte order."""
FIXED_STRUCTS = {kind: struct.Struct("<" + fmt) for kind, fmt in FIXED_FORMATS.items()}
LENGTH = struct.Struct("<Q")
"""Prefix of a ``str``: its UTF-8 byte count."""


def fixed_size(fields: Mapping[str, str]) -> int | None:
    """Return the payload size in bytes of a boundary without ``str`` fields.

    Returns:
        The size, or None when a ``str`` field makes the size vary.
    """
    if "str" in fields.values():
        return None
    return sum(FIXED_STRUCTS[kind].size for kind in fields.values())


def make_decoder(fields: Mapping[str, str]) -> Callable[[bytes | str], dict]:
    """Return the bincode decoder of one accumulator's boundary.

    The decoder returns the dict that a JSON event with the same values
    decodes to, with keys in declaration order, so reactors, fire logs and
    REST bodies do not depend on the wire format. A text frame's payload is
    decoded from its UTF-8 bytes.

    NOTE: ``bincode::deserialize`` of bincode 1.3 ignores bytes after the last
    field. This decoder rejects them instead, so that a payload of another
    layout, such as a JSON event or one with an extra field, is not read as a
    valid boundary. It also rejects NaN and infinite ``f64`` values, which a
    JSON event cannot carry.

    Args:
        fields: field name to type name (``f64``, ``i64``, ``str``, ``bool``),
            in declaration order.

    Returns:
        A callable that raises ``BoundaryError`` for a payload that is too
        short, has trailing bytes, or contains a bool byte other than 0 and 1,
        invalid UTF-8 in a ``str`` field, or a NaN or infinite ``f64``.
    """
    exact = ExactDecoder(fields)
    if exact.size is None or "bool" in exact.fields.values():
        return exact.decode

    # For layouts of numbers only, one precompiled struct reads every field at
    # once. A closure instead of a method saves attribute lookups per event.
    unpack = struct.Struct("<" + "".join(FIXED_FORMATS[k] for k in exact.kinds)).unpack
    names = exact.names
    decode_exact = exact.decode

    def decode_numbers(payload: bytes | str) -> dict[str, Any]:
        try:
            values = unpack(payload)
        except (struct.error, TypeError):
            # A payload of the wrong size or a text frame's str goes to the
            # exact path, which decodes it or names the error.
            return decode_exact(payload)
        # x - x is NaN for NaN and infinity and 0 otherwise. A sum of finite
        # values can overflow too, which the exact path then accepts.
        total = sum(values)
        if total - total != 0:
            return decode_exact(payload)
        # strict=True would double the cost of this line, and unpack returns
        # exactly one value per name.
        return dict(zip(names, values))  # noqa: B905

    return decode_numbers


def make_run_decoder(
    fields: Mapping[str, str],
) -> Callable[[list[bytes]], dict | None] | None:
    """Return a decoder of a run of payloads read at once, or None.

    The decoder fits ``AccumulatorState.last_if_all_valid``: it returns the
    last payload's value when every payload of the run is valid, else None,
    and it checks the whole run in C loops instead of decoding each payload.

    Returns:
        The decoder for a boundary of ``f64`` fields only, else None.
    """
    if not fields or any(kind != "f64" for kind in fields.values()):
        return None
    size = FIXED_STRUCTS["f64"].size * len(fields)
    decode = make_decoder(fields)

    def last_if_all_valid(payloads: list[bytes]) -> dict | None:
        try:
            if set(map(len, payloads)) != {size}:
                return None
            values = array("d", b"".join(payloads))
        except TypeError:
            # A text frame's str in the run.
            return None
        if sys.byteorder == "big":
            values.byteswap()
        # As in make_decoder: a NaN or infinity makes the sum NaN or
        # infinite, and so does an overflow, which the per-value check clears.
        total = sum(values)
        if total - total != 0 and any(value - value != 0 for value in values):
            return None
        return decode(payloads[-1])

    return last_if_all_valid


class ExactDecoder:
    """Field-by-field bincode decoder with a precise message for each error.

    ``make_decoder`` uses it for layouts with ``str`` or ``bool`` fields and
    for every payload that its fast path does not accept.
    """

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.fields = dict(fields)
        self.names = tuple(self.fields)
        self.kinds = tuple(self.fields.values())
        self.size = fixed_size(self.fields)
        """Payload size in bytes, or None when a ``str`` field makes it vary."""
        self._layout = ", ".join(f"{name} {kind}" for name, kind in self.fields.items())

    def decode(self, payload: bytes | str) -> dict[str, Any]:
        """Decode one payload.

        Raises:
            BoundaryError: for the cases listed in ``make_decoder``.
        """
        if isinstance(payload, str):
            payload = payload.encode()
        boundary = {}
        offset = 0
        for name, kind in zip(self.names, self.kinds, strict=True):
            if kind == "str":
                boundary[name], offset = self._read_str(payload, offset, name)
                continue
            reader = FIXED_STRUCTS[kind]
            self._require(payload, offset, reader.size, name, kind)
            (value,) = reader.unpack_from(payload, offset)
            offset += reader.size
            if kind == "f64" and value - value != 0.0:
                raise BoundaryError(
                    f"field {name!r} is {value}: f64 fields must be finite numbers"
                )
            if kind == "bool":
                if value > 1:
                    raise BoundaryError(
                        f"field {name!r} must be bool, encoded as byte 0 or 1, "
                        f"got byte {value}"
                    )
                value = value == 1
            boundary[name] = value
        if offset != len(payload):
            raise BoundaryError(
                self._with_hint(
                    payload,
                    f"bincode payload has {_trailing(len(payload) - offset)} after "
                    f"the last field {self.names[-1]!r}",
                )
            )
        return boundary

    def _read_str(self, payload: bytes, offset: int, name: str) -> tuple[str, int]:
        self._require(payload, offset, LENGTH.size, name, "str length")
        (length,) = LENGTH.unpack_from(payload, offset)
        offset += LENGTH.size
        self._require(payload, offset, length, name, f"str of {length} bytes")
        try:
            text = payload[offset : offset + length].decode()
        except UnicodeDecodeError as error:
            raise BoundaryError(
                f"field {name!r} is not valid UTF-8: {error.reason} at byte "
                f"{offset + error.start} of the payload"
            ) from None
        return text, offset + length

    def _require(
        self, payload: bytes, offset: int, count: int, name: str, what: str
    ) -> None:
        if offset + count > len(payload):
            raise BoundaryError(
                self._with_hint(
                    payload,
                    f"bincode payload of {len(payload)} bytes ends inside field "
                    f"{name!r} ({what}, bytes {offset} to {offset + count - 1})",
                )
            )

    def _with_hint(self, payload: bytes, message: str) -> str:
        # A JSON producer against a bincode server is the usual cause, so the
        # message names the fix.
        if payload[:64].lstrip()[:1] == b"{":
            return (
                f"payload of {len(payload)} bytes looks like a JSON object, but "
                f"this server reads bincode (--wire bincode) for {self._layout}: "
                "send bincode (loadgen --wire bincode) or restart the server "
                "with --wire json"
            )
        return f"{message}; the boundary is {self._layout}"


def encode_boundary(value: Any, fields: Mapping[str, str]) -> bytes:
    """Encode a JSON event value as the bincode payload of its boundary.

    Raises:
        BoundaryError: the value does not match the fields, an ``f64`` is NaN
            or infinite, or a ``str`` cannot be encoded as UTF-8.
    """
    boundary = validate_boundary(value, fields)
    parts = []
    for name, kind in fields.items():
        field_value = boundary[name]
        if kind == "str":
            try:
                data = field_value.encode()
            except UnicodeEncodeError as error:
                raise BoundaryError(
                    f"field {name!r} cannot be encoded as UTF-8: {error.reason}"
                ) from None
            parts.append(LENGTH.pack(len(data)))
            parts.append(data)
        elif kind == "f64" and field_value - field_value != 0.0:
            raise BoundaryError(
                f"field {name!r} is {field_value}: f64 fields must be finite numbers"
            )
        else:
            parts.append(FIXED_STRUCTS[kind].pack(field_value))
    return b"".join(parts)


def _trailing(count: int) -> str:
    return "1 trailing byte" if count == 1 else f"{count} trailing bytes"
