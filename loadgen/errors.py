"""Errors a run can end with, each carrying a one-line message with the fix."""

from __future__ import annotations

__all__ = ["LoadgenError", "ConnectionProblem", "UsageProblem", "FATAL_KINDS"]

FATAL_KINDS = frozenset(
    {
        "unauthorized",
        "forbidden",
        "unknown_accumulator",
        "not_found",
        "no_tickets",
        "usage",
    }
)
"""Error kinds that retrying cannot fix: a rejected key, an unknown name, no
ticket endpoint, or an unusable option."""


class LoadgenError(Exception):
    """An error to show the user as one line, with a kind for counting."""

    kind = "error"

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind


class ConnectionProblem(LoadgenError):
    """The server cannot be reached or rejected the producer or the probe."""

    kind = "connection"


class UsageProblem(LoadgenError):
    """An option value or input file that cannot be used."""

    kind = "usage"
