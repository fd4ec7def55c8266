"""Open-model pacing: an intended send time for every event.

Event ``k`` of a schedule is due at its intended time whatever happened
before, so a stall does not shrink the offered load: events that fell due
during a stall are handed out at once and sent back to back, and the report
counts them as late. A process-wide schedule can be shared by several
producers, each taking every ``n``-th event.
"""

from __future__ import annotations

import math

from loadgen.shapes import LoadShape

__all__ = ["Schedule"]

# Keeps float error from delaying an event that is due exactly now.
EPSILON = 1e-9


class Schedule:
    """The events of ``shape`` that belong to producer ``slot`` of ``slots``.

    Args:
        shape: target rate over time for all producers together.
        start_s: time of the shape's start on the caller's clock, in seconds.
        slot: this producer's index, from 0 to ``slots - 1``.
        slots: number of producers that share the shape.
    """

    def __init__(
        self, shape: LoadShape, start_s: float, slot: int = 0, slots: int = 1
    ) -> None:
        if not 0 <= slot < slots:
            raise ValueError(f"slot {slot} is outside 0..{slots - 1}")
        self.shape = shape
        self.start_s = start_s
        self.slot = slot
        self.slots = slots
        self.next_index = 0
        """This producer's index of the first event not yet handed out."""
        total = math.ceil(shape.total_events - EPSILON)
        self.event_count = self._own_count(total)
        """Events of this producer over the whole shape."""

    def intended_time_s(self, index: int) -> float:
        """Return the intended send time of this producer's event ``index``."""
        return self.start_s + self.shape.time_of(self.slot + index * self.slots)

    def due_count(self, now_s: float) -> int:
        """Return how many of this producer's events are due by ``now_s``."""
        if now_s < self.start_s:
            return 0
        due_global = math.floor(self.shape.events_by(now_s - self.start_s) + EPSILON)
        return min(self._own_count(due_global + 1), self.event_count)

    def take_due(self, now_s: float) -> tuple[int, int]:
        """Hand out every event due at ``now_s``.

        Returns:
            The index of the first event handed out and how many there are.
        """
        first = self.next_index
        count = max(0, self.due_count(now_s) - first)
        self.next_index += count
        return first, count

    @property
    def finished(self) -> bool:
        return self.next_index >= self.event_count

    def seconds_until_next(self, now_s: float) -> float:
        if self.finished:
            return math.inf
        return max(0.0, self.intended_time_s(self.next_index) - now_s)

    def _own_count(self, global_count: int) -> int:
        """Return how many of the first ``global_count`` events are this slot's."""
        if global_count <= self.slot:
            return 0
        return (global_count - self.slot + self.slots - 1) // self.slots
