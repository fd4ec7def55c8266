"""msgspec decoding of JSON events, with ``EventDecoder`` as the judge.

``EventDecoder`` parses with orjson and checks each field in Python, which
costs about 0.9 us an event. msgspec decodes and checks a struct in one C pass
in about 0.2 us, and a whole read of events as JSON lines in about 0.25 us
each. msgspec only speeds up events that are valid: whenever it rejects a
payload, ``EventDecoder`` decodes it again and decides, so the accepted values
and the error messages are ``EventDecoder``'s.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from .boundary import I64_MAX, I64_MIN, EventDecoder

__all__ = ["FastEventDecoder"]

_FIELD_TYPES: dict[str, Any] = {
    "f64": float,
    "i64": Annotated[int, msgspec.Meta(ge=I64_MIN, le=I64_MAX)],
    "str": str,
    "bool": bool,
}
_REJECTED = (msgspec.DecodeError, msgspec.ValidationError)


class FastEventDecoder:
    """Decode events like ``EventDecoder``, faster when they are valid.

    Args:
        slow: the decoder whose results this one reproduces.
    """

    def __init__(self, slow: EventDecoder) -> None:
        self.slow = slow
        self._names = tuple(slow.fields)
        # Positional names keep any JSON key usable, keywords included.
        struct = msgspec.defstruct(
            "Boundary",
            [
                (f"f{i}", _FIELD_TYPES[kind])
                for i, kind in enumerate(slow.fields.values())
            ],
            rename={f"f{i}": name for i, name in enumerate(self._names)},
            forbid_unknown_fields=True,
            # Flat structs of scalars hold no cycles; untracked, they do not
            # trigger the garbage collector at a million events a second.
            gc=False,
        )
        self._decoder = msgspec.json.Decoder(struct)
        self._as_tuple = msgspec.structs.astuple

    def __call__(self, payload: bytes | str) -> dict[str, Any]:
        """Decode and validate one payload.

        Raises:
            BoundaryError: the payload is not JSON or does not match the fields.
        """
        try:
            value = self._decoder.decode(payload)
        except _REJECTED:
            return self.slow(payload)
        return dict(zip(self._names, self._as_tuple(value), strict=True))

    def last_if_all_valid(self, payloads: list[bytes]) -> dict[str, Any] | None:
        """Return the last payload's value if every payload is valid, else None.

        The payloads are decoded as JSON lines. A JSON string cannot contain a
        raw newline, so when no payload contains one, each line is exactly one
        payload and the result is exact.
        """
        joined = b"\n".join(payloads)
        if joined.count(b"\n") != len(payloads) - 1:
            return None
        try:
            values = self._decoder.decode_lines(joined)
        except _REJECTED:
            return None
        # An empty or blank payload gives no line at all.
        if len(values) != len(payloads):
            return None
        return dict(zip(self._names, self._as_tuple(values[-1]), strict=True))
