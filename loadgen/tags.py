"""Sequence tags carried in the digits of each event's best bid.

Every event a process sends gets the next number of one per-process sequence,
written into the 5th to 10th decimal places of its best bid (the feeds round
prices to 4 decimals, so the price itself is unchanged at that precision). A
fire log row shows the latest value of each source at the fire's snapshot, so
its tag says which events the fire had consumed: the fire that consumed event
``k`` is the first whose tag is at least ``k``. Tags wrap at one million, and
comparisons assume that fewer than half a million events separate two tags.

An f64 near 100 keeps 13 decimal digits exactly, and JSON writers print the
shortest form that reads back to the same double, so a tag survives the trip
through the server's JSON decoding and encoding. A bincode event carries the
double's own 8 bytes, so its tag reaches the server unchanged.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TAG_MODULUS", "apply_tags", "tag_of", "tag_reached"]

TAG_MODULUS = 1_000_000
TAG_SCALE = 1e-10
PRICE_DECIMALS = 4


def apply_tags(quotes: np.ndarray, first_sequence: int) -> np.ndarray:
    """Return a copy of ``quotes`` whose bids carry consecutive sequence tags."""
    tagged = quotes.copy()
    tags = (first_sequence + np.arange(len(quotes))) % TAG_MODULUS
    tagged[:, 0] = np.round(quotes[:, 0], PRICE_DECIMALS) + tags * TAG_SCALE
    return tagged


def tag_of(value: float) -> int | None:
    """Return the tag in a tagged price, or None for a value that is no number."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return round(abs(value) / TAG_SCALE) % TAG_MODULUS


def tag_reached(tag: int, target: int) -> bool:
    """Return whether ``tag`` is ``target`` or a later tag, allowing for wrap-around."""
    return (tag - target) % TAG_MODULUS < TAG_MODULUS // 2
