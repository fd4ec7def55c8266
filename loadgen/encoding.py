"""Event payload encoding: one JSON document per quote, built once per event."""

from __future__ import annotations

import numpy as np

__all__ = ["encode_quotes", "DEFAULT_FIELDS"]

DEFAULT_FIELDS = ("best_bid", "best_ask")
"""Boundary field names of the tutorial's ``OrderBook`` type, in declaration order."""


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
