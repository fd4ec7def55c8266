"""Event payload encoding: one payload per quote, built once per event.

Two wire formats exist. ``json`` is a JSON object, as the tutorial's debug
builds read it. ``bincode`` is the boundary as bincode 1.x writes it with its
default options, as release builds read it. That is the fields in declaration
order with no names, each ``f64`` as 8 little-endian bytes. The tutorial's
``OrderBook`` is thus 16 bytes, ``best_bid`` then ``best_ask``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DEFAULT_FIELDS",
    "WIRE_FORMATS",
    "encode_bincode",
    "encode_events",
    "encode_quotes",
]

DEFAULT_FIELDS = ("best_bid", "best_ask")
"""Boundary field names of the tutorial's ``OrderBook`` type, in declaration order."""

WIRE_FORMATS = ("json", "bincode")
"""Payload formats: JSON (debug builds) and bincode (release builds)."""


def encode_quotes(
    quotes: np.ndarray, fields: tuple[str, str] = DEFAULT_FIELDS
) -> list[bytes]:
    """Encode each (bid, ask) row as a compact JSON object in UTF-8.

    Floats use Python's shortest round-trip form (``repr``), which is what
    ``json.dumps`` writes, so the server decodes the exact values the feed made.
    """
    bid_field, ask_field = fields
    template = f'{{"{bid_field}":%r,"{ask_field}":%r}}'
    return [(template % (bid, ask)).encode() for bid, ask in quotes.tolist()]


def encode_bincode(quotes: np.ndarray) -> np.ndarray:
    """Encode each row of ``quotes`` as the bincode payload of an all-f64 boundary.

    Column ``j`` is the boundary's ``j``-th declared field. The values are sent
    as they are, without rounding, so the server decodes the exact doubles.

    Args:
        quotes: float array of shape (n, fields); n may be 0.

    Returns:
        A ``uint8`` matrix of shape (n, 8 * fields): row ``i`` is the payload
        of event ``i``.

    Raises:
        ValueError: ``quotes`` is not 2-D, or a value is NaN or infinite.
    """
    quotes = np.asarray(quotes)
    if quotes.ndim != 2:
        raise ValueError(
            f"quotes of shape {quotes.shape} are not a matrix: pass an (n, fields) "
            "array"
        )
    if not np.isfinite(quotes).all():
        raise ValueError(
            "prices must be finite numbers: the reference server rejects NaN and "
            "infinite f64 values"
        )
    # A C-ordered '<f8' matrix is the concatenation of its rows' bincode
    # payloads, so the bytes need no per-event work.
    payloads = np.ascontiguousarray(quotes, dtype="<f8")
    return payloads.view(np.uint8).reshape(len(payloads), 8 * payloads.shape[1])


def encode_events(
    quotes: np.ndarray, wire: str = "json", fields: tuple[str, str] = DEFAULT_FIELDS
) -> list[bytes]:
    """Encode each (bid, ask) row as one payload in the ``wire`` format.

    Raises:
        ValueError: ``wire`` is not one of ``WIRE_FORMATS``, or as
            ``encode_bincode``.
    """
    if wire == "json":
        return encode_quotes(quotes, fields)
    if wire == "bincode":
        return [row.tobytes() for row in encode_bincode(quotes)]
    raise ValueError(f"invalid wire format {wire!r}: use json or bincode")
