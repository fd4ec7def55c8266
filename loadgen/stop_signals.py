"""Graceful stop on SIGINT and SIGTERM for ``loadgen run``.

The first signal ends the load; the run still finishes its measurement and
writes its report. A second signal skips the wait for the server's final
counts, so the report is written at once.
"""

from __future__ import annotations

import logging
import signal

__all__ = ["StopSignals", "Terminated", "note_termination", "check_termination"]

logger = logging.getLogger(__name__)

SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}

_termination_noted = False


class Terminated(Exception):
    """SIGTERM arrived before the load started."""


def note_termination(_signum, _frame) -> None:
    """Note a SIGTERM during start-up; ``check_termination`` acts on it.

    Raising from a signal handler could interrupt an import half-way, so the
    handler only notes the signal.
    """
    global _termination_noted
    _termination_noted = True


def check_termination() -> None:
    """Raise ``Terminated`` if SIGTERM arrived during start-up."""
    if _termination_noted:
        raise Terminated()


class StopSignals:
    """Records stop signals through gevent's signal handling."""

    def __init__(self, gevent) -> None:
        self.received: list[str] = []
        self._handlers = [
            gevent.signal_handler(number, self._on_signal, name)
            for name, number in SIGNALS.items()
        ]

    def _on_signal(self, name: str) -> None:
        self.received.append(name)
        if len(self.received) == 1:
            logger.warning(
                "%s received: stopping the load and writing the report", name
            )
        else:
            logger.warning("%s received again: writing the report now", name)

    def hurry(self) -> bool:
        return len(self.received) > 1

    def outcome(self) -> dict:
        return {"status": "interrupted", "error": f"stopped by {self.received[0]}"}

    def exit_code(self) -> int:
        """Return 128 plus the first signal's number, as shells report it."""
        first = self.received[0] if self.received else "SIGINT"
        return 128 + SIGNALS[first]

    def close(self) -> None:
        for handler in self._handlers:
            handler.cancel()
