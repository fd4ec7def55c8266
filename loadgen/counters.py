"""Event accounting for one generator process."""

from __future__ import annotations

from collections import Counter

__all__ = ["RunCounters", "Timeline"]


class Timeline:
    """Per-second counts since a start time, grown as seconds pass."""

    FIELDS = ("sent", "failed", "late")

    def __init__(self, start_s: float = 0.0, interval_s: float = 1.0) -> None:
        self.start_s = start_s
        self.interval_s = interval_s
        self.series: dict[str, list[int]] = {name: [] for name in self.FIELDS}

    def add(self, name: str, now_s: float, count: int) -> None:
        if not count:
            return
        index = max(0, int((now_s - self.start_s) / self.interval_s))
        values = self.series[name]
        if index >= len(values):
            values.extend([0] * (index + 1 - len(values)))
        values[index] += count

    def as_dict(self, length: int | None = None) -> dict[str, list[int]]:
        """Return each series padded to at least ``length`` intervals."""
        size = max([length or 0, *(len(v) for v in self.series.values())])
        return {
            name: (values + [0] * size)[:size] for name, values in self.series.items()
        }


class RunCounters:
    """Counts of events and connections; every attempted event is sent or failed.

    Gevent runs one greenlet at a time, so plain integers need no lock here.
    """

    def __init__(self) -> None:
        self.sent = 0
        self.late = 0
        """Sent events that left more than the late threshold after their intended
        send time."""
        self.bytes_sent = 0
        self.failed_by_kind: Counter[str] = Counter()
        self.connects = 0
        self.connect_failures_by_kind: Counter[str] = Counter()
        self.timeline = Timeline()

    @property
    def failed(self) -> int:
        return sum(self.failed_by_kind.values())

    @property
    def attempted(self) -> int:
        return self.sent + self.failed

    def record_sent(
        self, now_s: float, count: int, byte_count: int, late: int = 0
    ) -> None:
        self.sent += count
        self.late += late
        self.bytes_sent += byte_count
        self.timeline.add("sent", now_s, count)
        self.timeline.add("late", now_s, late)

    def unrecord_sent(
        self, now_s: float, count: int, byte_count: int, late: int = 0
    ) -> None:
        """Take back a ``record_sent`` whose write then failed."""
        self.record_sent(now_s, -count, -byte_count, -late)

    def record_failed(self, now_s: float, kind: str, count: int = 1) -> None:
        if count:
            self.failed_by_kind[kind] += count
            self.timeline.add("failed", now_s, count)

    def as_dict(self) -> dict:
        return {
            "attempted": self.attempted,
            "sent": self.sent,
            "failed": self.failed,
            "failed_by_kind": dict(sorted(self.failed_by_kind.items())),
            "late": self.late,
            "bytes_sent": self.bytes_sent,
            "connects": self.connects,
            "connect_failures_by_kind": dict(
                sorted(self.connect_failures_by_kind.items())
            ),
        }
