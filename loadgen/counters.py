"""Event accounting for one generator process."""

from __future__ import annotations

from collections import Counter

__all__ = ["RunCounters"]


class RunCounters:
    """Counts of events and connections; every attempted event is sent or failed.

    Gevent runs one greenlet at a time, so plain integers need no lock here.
    """

    def __init__(self) -> None:
        self.sent = 0
        self.bytes_sent = 0
        self.failed_by_kind: Counter[str] = Counter()
        self.connects = 0
        self.connect_failures_by_kind: Counter[str] = Counter()

    @property
    def failed(self) -> int:
        return sum(self.failed_by_kind.values())

    @property
    def attempted(self) -> int:
        return self.sent + self.failed

    def record_sent(self, count: int, byte_count: int) -> None:
        self.sent += count
        self.bytes_sent += byte_count

    def record_failed(self, kind: str, count: int = 1) -> None:
        if count:
            self.failed_by_kind[kind] += count

    def as_dict(self) -> dict:
        return {
            "attempted": self.attempted,
            "sent": self.sent,
            "failed": self.failed,
            "failed_by_kind": dict(sorted(self.failed_by_kind.items())),
            "bytes_sent": self.bytes_sent,
            "connects": self.connects,
            "connect_failures_by_kind": dict(
                sorted(self.connect_failures_by_kind.items())
            ),
        }
