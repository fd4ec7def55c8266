"""Reactor firing state machine, free of I/O and clocks.

A reactor caches the latest boundary per accumulator with one dirty flag each,
and fires its graph when the firing condition holds: ``when_any`` needs one
flag set, ``when_all`` needs every flag set since the last fire. Taking the fire
snapshot clears the flags. At most one fire runs at a time, so boundaries that
arrive during a fire only update the cache and flags. When the fire completes,
the reactor starts at most one next fire, with the newest values (coalescing).

The caller drives the machine: each method that may start a fire returns a
``FireSnapshot`` to execute, and ``complete_fire`` reports the result and may
return the next snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["FireSnapshot", "Reactor"]


@dataclass(frozen=True)
class FireSnapshot:
    inputs: dict[str, dict[str, Any]]
    """Accumulator name to boundary value, copied when the fire starts."""
    manual: bool
    """True for ForceFire and FireWith, which ignore the firing condition."""


class Reactor:
    """Firing state of one graph's reactor."""

    def __init__(self, accumulators: Iterable[str], reaction_mode: str) -> None:
        if reaction_mode not in ("when_any", "when_all"):
            raise ValueError(f"invalid reaction mode {reaction_mode!r}")
        self.accumulators = tuple(accumulators)
        self.reaction_mode = reaction_mode
        self.cache: dict[str, dict[str, Any]] = {}
        """Latest boundary per accumulator; absent until the first event."""
        self.dirty = dict.fromkeys(self.accumulators, False)
        """Accumulators updated since the last fire took its snapshot."""
        self.paused = False
        self.firing = False
        """True from the snapshot of a fire until its ``complete_fire``."""
        self.fire_count = 0
        """Completed fires, manual ones included."""
        self.last_fired_at: datetime | None = None
        """Completion time of the last fire."""
        self.last_output: Any = None
        self._manual_pending = False

    def update(self, accumulator: str, boundary: dict[str, Any]) -> FireSnapshot | None:
        """Store a boundary and return a snapshot if a fire starts now.

        Raises:
            KeyError: the reactor does not declare this accumulator.
        """
        if accumulator not in self.dirty:
            raise KeyError(accumulator)
        self.cache[accumulator] = boundary
        self.dirty[accumulator] = True
        return self._next_fire()

    def force_fire(self) -> FireSnapshot | None:
        """Request a fire that ignores the firing condition.

        A paused reactor drops the request, as the Cloacina server does. During a
        running fire the request waits for it and then fires once.
        """
        if self.paused:
            return None
        self._manual_pending = True
        return self._next_fire()

    def fire_with(self, cache: Mapping[str, dict[str, Any]]) -> FireSnapshot | None:
        """Replace the whole cache, then request a fire like ``force_fire``.

        Raises:
            KeyError: the cache names an accumulator the reactor does not declare.
        """
        for accumulator in cache:
            if accumulator not in self.dirty:
                raise KeyError(accumulator)
        self.cache = dict(cache)
        return self.force_fire()

    def pause(self) -> None:
        """Stop starting fires; boundaries keep updating the cache and flags."""
        self.paused = True

    def resume(self) -> None:
        """Allow fires again; the next boundary or ForceFire starts one."""
        self.paused = False

    def complete_fire(self, output: Any, fired_at: datetime) -> FireSnapshot | None:
        """Record the running fire's result and return the next snapshot, if any.

        Raises:
            RuntimeError: no fire is running.
        """
        if not self.firing:
            raise RuntimeError("complete_fire called with no fire running")
        self.firing = False
        self.fire_count += 1
        self.last_fired_at = fired_at
        self.last_output = output
        return self._next_fire()

    def condition_met(self) -> bool:
        """Evaluate the firing condition on the dirty flags."""
        if self.reaction_mode == "when_all":
            return all(self.dirty.values())
        return any(self.dirty.values())

    def _next_fire(self) -> FireSnapshot | None:
        if self.firing or self.paused:
            return None
        manual = self._manual_pending
        if not manual and not self.condition_met():
            return None

        # Take the snapshot and clear the flags in one step, so a boundary
        # arriving during the fire sets a flag for the next one.
        snapshot = FireSnapshot(inputs=dict(self.cache), manual=manual)
        self.dirty = dict.fromkeys(self.accumulators, False)
        self._manual_pending = False
        self.firing = True
        return snapshot
