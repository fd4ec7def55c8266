"""Reconnection delays: exponential backoff with full jitter."""

from __future__ import annotations

import random

__all__ = ["Backoff", "merge_windows"]


class Backoff:
    """Delays that double from ``min_s`` up to ``max_s``, each drawn uniformly
    between ``min_s`` and the current ceiling, so reconnecting producers spread
    out instead of hitting a restarted server together.
    """

    def __init__(self, min_s: float = 0.1, max_s: float = 5.0, rng=None) -> None:
        if not 0 < min_s <= max_s:
            raise ValueError(
                f"backoff bounds must satisfy 0 < min <= max, got {min_s}, {max_s}"
            )
        self.min_s = min_s
        self.max_s = max_s
        self._ceiling_s = min_s
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        delay = self._rng.uniform(self.min_s, self._ceiling_s)
        self._ceiling_s = min(self.max_s, self._ceiling_s * 2)
        return delay

    def reset(self) -> None:
        self._ceiling_s = self.min_s


def merge_windows(windows: list[tuple[float, float]]) -> list[dict]:
    """Merge overlapping (start, end) windows and count how many each merged."""
    merged: list[dict] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1]["end_s"]:
            merged[-1]["end_s"] = max(merged[-1]["end_s"], end)
            merged[-1]["connections"] += 1
        else:
            merged.append({"start_s": start, "end_s": end, "connections": 1})
    for window in merged:
        window["start_s"] = round(window["start_s"], 3)
        window["end_s"] = round(window["end_s"], 3)
        window["duration_s"] = round(window["end_s"] - window["start_s"], 3)
    return merged
