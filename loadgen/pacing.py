"""Constant-rate pacing with an intended send time for every event.

The schedule belongs to the open workload model: event ``k`` is due at
``start + k / rate`` whatever happened before, so a stall does not shrink the
offered load. Events that fell due during a stall are all due at once and are
sent back to back.
"""

from __future__ import annotations

import math

__all__ = ["ConstantRateSchedule"]


class ConstantRateSchedule:
    """Intended send times at a fixed rate, starting at ``start_s``.

    Args:
        rate_per_s: events per second, greater than 0.
        start_s: time of event 0 on the caller's clock, in seconds.
    """

    def __init__(self, rate_per_s: float, start_s: float) -> None:
        if not rate_per_s > 0:
            raise ValueError(f"rate must be greater than 0, got {rate_per_s}")
        self.rate_per_s = rate_per_s
        self.start_s = start_s
        self.next_index = 0
        """Index of the first event not yet handed out."""

    def intended_time_s(self, index: int) -> float:
        return self.start_s + index / self.rate_per_s

    def take_due(self, now_s: float) -> int:
        """Hand out every event due at ``now_s`` and return how many there are."""
        # The epsilon keeps float error from delaying an event that is due exactly now.
        due_until = math.floor((now_s - self.start_s) * self.rate_per_s + 1e-9) + 1
        count = max(0, due_until - self.next_index)
        self.next_index += count
        return count

    def lag_s(self, now_s: float) -> float:
        """Return how late the oldest event handed out last is at ``now_s``."""
        if self.next_index == 0:
            return 0.0
        return max(0.0, now_s - self.intended_time_s(self.next_index - 1))

    def seconds_until_next(self, now_s: float) -> float:
        return max(0.0, self.intended_time_s(self.next_index) - now_s)
