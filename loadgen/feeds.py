"""Synthetic and replayed orderbook feeds.

A feed yields quotes in batches as a float64 array of shape (n, 2): column 0 is
the best bid and column 1 the best ask. Batches are built with numpy, so the
per-event cost in Python is nil, and every feed is deterministic for a given seed.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

__all__ = [
    "FeedError",
    "SineFeed",
    "RandomWalkFeed",
    "ReplayFeed",
    "make_feed",
    "FEED_NAMES",
]

FEED_NAMES = ("sine", "random-walk", "replay:PATH")


class FeedError(ValueError):
    """A feed specification or replay file that cannot be used."""


class SineFeed:
    """The tutorial's slowly varying mid price with a pulsing spread.

    Event ``seq`` has mid ``100 + 0.5 sin(0.05 seq)`` and spread
    ``0.05 + 0.10 |cos(0.1 seq)|``, and prices are rounded to 4 decimals, exactly
    as the tutorial's persistent producer computes them. ``offset`` shifts the
    starting sequence number so that producers do not all send the same values.
    """

    def __init__(self, offset: int = 0) -> None:
        self._seq = offset

    def next_batch(self, n: int) -> np.ndarray:
        seq = np.arange(self._seq, self._seq + n, dtype=np.float64)
        self._seq += n
        mid = 100.0 + np.sin(seq * 0.05) * 0.5
        spread = 0.05 + np.abs(np.cos(seq * 0.1)) * 0.10
        quotes = np.empty((n, 2), dtype=np.float64)
        quotes[:, 0] = np.round(mid - spread / 2, 4)
        quotes[:, 1] = np.round(mid + spread / 2, 4)
        return quotes


class RandomWalkFeed:
    """A random walk of the mid price with a log-normal spread.

    Each step adds ``drift + volatility * N(0, 1)`` to the mid price, and the
    spread is ``spread * exp(0.25 * N(0, 1))``, so it stays positive. Prices are
    rounded to 4 decimals. The same seed gives the same sequence, whatever the
    batch sizes.
    """

    def __init__(
        self,
        mid: float = 100.0,
        spread: float = 0.05,
        drift: float = 0.0,
        volatility: float = 0.01,
        seed: int = 0,
    ) -> None:
        if spread <= 0:
            raise FeedError(f"invalid spread {spread}: use a positive number")
        if volatility < 0:
            raise FeedError(f"invalid volatility {volatility}: use 0 or more")
        self._mid = float(mid)
        self._spread = float(spread)
        self._drift = float(drift)
        self._volatility = float(volatility)
        self._rng = np.random.default_rng(seed)

    def next_batch(self, n: int) -> np.ndarray:
        # One draw of 2n normals per batch keeps the stream identical for any
        # batching, because the generator hands out numbers in order.
        normals = self._rng.standard_normal((n, 2))
        steps = self._drift + self._volatility * normals[:, 0]
        mids = self._mid + np.cumsum(steps)
        if n:
            self._mid = float(mids[-1])
        spreads = self._spread * np.exp(0.25 * normals[:, 1])
        quotes = np.empty((n, 2), dtype=np.float64)
        quotes[:, 0] = np.round(mids - spreads / 2, 4)
        quotes[:, 1] = np.round(mids + spreads / 2, 4)
        return quotes


class ReplayFeed:
    """Quotes read from a CSV or JSON Lines file and replayed in a loop.

    CSV files have the columns ``best_bid,best_ask`` (a header row with those
    names is optional). JSON Lines files have one object per line with the keys
    ``best_bid`` and ``best_ask``. ``offset`` starts the replay at another row.
    """

    def __init__(self, path: str | Path, offset: int = 0) -> None:
        self._quotes = load_quotes(Path(path))
        self._position = offset % len(self._quotes)

    def next_batch(self, n: int) -> np.ndarray:
        rows = (self._position + np.arange(n)) % len(self._quotes)
        self._position = (self._position + n) % len(self._quotes)
        return self._quotes[rows]


def load_quotes(path: Path) -> np.ndarray:
    """Read a replay file into an (n, 2) array of bid and ask prices."""
    if not str(path) or str(path) == ".":
        raise FeedError(
            "missing path in --feed replay:PATH: name a CSV or JSON Lines file"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise FeedError(
            f"cannot read feed file {path}: {error.strerror}; "
            "check the path given to --feed replay:PATH"
        ) from None
    except UnicodeDecodeError:
        raise FeedError(
            f"feed file {path} is not UTF-8 text: use a CSV or JSON Lines file"
        ) from None
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        rows = _parse_json_lines(path, text)
    else:
        rows = _parse_csv(path, text)
    if not rows:
        raise FeedError(f"feed file {path} has no quotes: add best_bid,best_ask rows")
    return np.array(rows, dtype=np.float64)


def _parse_csv(path: Path, text: str) -> list[tuple[float, float]]:
    rows = []
    for line_number, fields in enumerate(csv.reader(text.splitlines()), start=1):
        if not fields or not "".join(fields).strip():
            continue
        if line_number == 1 and _is_header(fields):
            if [field.strip().lower() for field in fields] != ["best_bid", "best_ask"]:
                raise FeedError(
                    f"{path}:1: header {','.join(fields)!r} must be best_bid,best_ask "
                    "in that order"
                )
            continue
        if len(fields) != 2:
            raise FeedError(
                f"{path}:{line_number}: expected 2 columns best_bid,best_ask, "
                f"found {len(fields)}"
            )
        rows.append(_parse_quote(path, line_number, fields[0], fields[1]))
    return rows


def _is_header(fields: list[str]) -> bool:
    """Return whether a first row is a header: none of its fields is a number."""
    return not any(_looks_numeric(field) for field in fields)


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_json_lines(path: Path, text: str) -> list[tuple[float, float]]:
    rows = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise FeedError(
                f"{path}:{line_number}: invalid JSON: {error.msg}"
            ) from None
        if not isinstance(record, dict) or not {"best_bid", "best_ask"} <= set(record):
            raise FeedError(
                f"{path}:{line_number}: expected an object with best_bid and best_ask"
            )
        rows.append(
            _parse_quote(path, line_number, record["best_bid"], record["best_ask"])
        )
    return rows


def _parse_quote(path: Path, line_number: int, bid, ask) -> tuple[float, float]:
    if isinstance(bid, bool) or isinstance(ask, bool):
        raise FeedError(
            f"{path}:{line_number}: prices must be numbers, not true or false"
        )
    try:
        quote = (float(bid), float(ask))
    except (TypeError, ValueError):
        raise FeedError(
            f"{path}:{line_number}: invalid price {bid!r}, {ask!r}: use numbers"
        ) from None
    if not all(np.isfinite(quote)):
        raise FeedError(f"{path}:{line_number}: prices must be finite numbers")
    return quote


def make_feed(spec: str, seed: int = 0, offset: int = 0):
    """Build a feed from its command-line name.

    Args:
        spec: ``sine``, ``random-walk`` or ``replay:PATH``.
        seed: random-walk seed; each producer passes its own for distinct walks.
        offset: starting event number for the sine and replay feeds.

    Raises:
        FeedError: the name is unknown or the replay file is unusable.
    """
    if spec == "sine":
        return SineFeed(offset=offset)
    if spec == "random-walk":
        return RandomWalkFeed(seed=seed)
    if spec.startswith("replay:"):
        return ReplayFeed(spec.removeprefix("replay:"), offset=offset)
    raise FeedError(f"unknown feed {spec!r}: use one of {', '.join(FEED_NAMES)}")
