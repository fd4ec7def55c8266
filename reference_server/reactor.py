"""Reactor firing state machine, free of I/O and clocks.

A reactor caches the latest boundary per accumulator with one dirty flag each.
As in Cloacina's reactor, every boundary applied to the cache queues one signal
for the executor, and a ForceFire queues a manual signal. The executor runs one
fire at a time. For each signal it takes, it fires when the signal is manual or
the firing condition holds: ``when_any`` needs one flag set, ``when_all`` needs
every flag set since the last fire. Taking the fire snapshot clears the flags,
so boundaries that arrive during a fire queue signals of which only the first
fires again, with the newest values (coalescing). A paused reactor discards the
signals it takes and keeps its flags.

The caller drives the machine: each method that may start a fire returns a
``FireSnapshot`` to execute, and ``complete_fire`` reports the result and may
return the next snapshot.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["SIGNAL_CAPACITY", "FireSnapshot", "Reactor"]

SIGNAL_CAPACITY = 64
"""Boundary signals the executor may have queued; Cloacina's strategy channel."""


@dataclass(frozen=True)
class FireSnapshot:
    inputs: dict[str, Any]
    """Accumulator name to boundary value, copied when the fire starts."""
    manual: bool
    """True for ForceFire and FireWith, which ignore the firing condition."""
    last_event_index: int = 0
    """Highest server-wide event index applied to the cache at the snapshot."""


class Reactor:
    """Firing state of one graph's reactor."""

    def __init__(self, accumulators: Iterable[str], reaction_mode: str) -> None:
        if reaction_mode not in ("when_any", "when_all"):
            raise ValueError(f"invalid reaction mode {reaction_mode!r}")
        self.accumulators = tuple(accumulators)
        self.reaction_mode = reaction_mode
        self.cache: dict[str, Any] = {}
        """Latest boundary per accumulator; absent until the first event."""
        self.dirty = dict.fromkeys(self.accumulators, False)
        """Accumulators updated since the last fire took its snapshot."""
        self.paused = False
        self.firing = False
        """True from the snapshot of a fire until its ``complete_fire``."""
        self.fire_count = 0
        """Completed fires, manual ones included."""
        self.last_fired_ns = 0
        """Completion time of the last inline fire, ns since the epoch; 0 for none."""
        self._last_fired_at: datetime | None = None
        self.last_output: Any = None
        self.applied_event_index = 0
        """Highest event index applied to the cache."""
        self.signals: deque[bool] = deque()
        """Queued executor signals; True marks a manual fire."""
        self._boundary_signals = 0

    @property
    def last_fired_at(self) -> datetime | None:
        """Completion time of the last fire, built from ``last_fired_ns`` when read."""
        if self._last_fired_at is None and self.last_fired_ns:
            self._last_fired_at = datetime.fromtimestamp(self.last_fired_ns / 1e9, UTC)
        return self._last_fired_at

    @property
    def idle(self) -> bool:
        """True if no fire runs and no signal waits, so ``update_idle`` applies."""
        return not self.firing and not self.signals

    @property
    def has_signal_room(self) -> bool:
        """True if one more boundary can be applied without exceeding the queue."""
        return self._boundary_signals < SIGNAL_CAPACITY

    def update(
        self, accumulator: str, boundary: Any, event_index: int = 0
    ) -> FireSnapshot | None:
        """Store a boundary, queue its signal and return a snapshot if a fire starts.

        Raises:
            KeyError: the reactor does not declare this accumulator.
        """
        if accumulator not in self.dirty:
            raise KeyError(accumulator)
        self.cache[accumulator] = boundary
        self.dirty[accumulator] = True
        if event_index > self.applied_event_index:
            self.applied_event_index = event_index
        self.signals.append(False)
        self._boundary_signals += 1
        return self._next_fire()

    def update_idle(
        self, accumulator: str, boundary: Any, event_index: int
    ) -> dict[str, Any] | None:
        """Apply a boundary to an idle reactor and return the fire inputs, if any.

        This is ``update`` for an ``idle`` reactor whose fires complete before
        the caller returns, without a signal or a ``FireSnapshot``. The caller
        runs the fire on the returned copy of the cache and reports it with
        ``complete_idle_fire``. The caller checks ``idle`` first.

        Raises:
            KeyError: the reactor does not declare this accumulator.
        """
        dirty = self.dirty
        if accumulator not in dirty:
            raise KeyError(accumulator)
        self.cache[accumulator] = boundary
        dirty[accumulator] = True
        if event_index > self.applied_event_index:
            self.applied_event_index = event_index
        if self.paused:
            return None
        if self.reaction_mode == "when_all" and not all(dirty.values()):
            return None
        for name in dirty:
            dirty[name] = False
        return dict(self.cache)

    def complete_idle_fire(self, output: Any, fired_wall_ns: int) -> None:
        """Record a fire started by ``update_idle``; the reactor stays idle."""
        self.fire_count += 1
        self.last_fired_ns = fired_wall_ns
        self._last_fired_at = None
        self.last_output = output

    def force_fire(self) -> FireSnapshot | None:
        """Queue a fire that ignores the firing condition.

        A paused reactor drops the request when it takes it, as the Cloacina
        server does. During a running fire the request waits for it.
        """
        self.signals.append(True)
        return self._next_fire()

    def fire_with(self, cache: Mapping[str, Any]) -> FireSnapshot | None:
        """Replace the whole cache, then queue a fire like ``force_fire``.

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
        self.last_fired_ns = 0
        self._last_fired_at = fired_at
        self.last_output = output
        return self._next_fire()

    def condition_met(self) -> bool:
        """Evaluate the firing condition on the dirty flags."""
        if self.reaction_mode == "when_all":
            return all(self.dirty.values())
        return any(self.dirty.values())

    def _next_fire(self) -> FireSnapshot | None:
        signals = self.signals
        while signals and not self.firing:
            manual = signals.popleft()
            if not manual:
                self._boundary_signals -= 1
            if self.paused or not (manual or self.condition_met()):
                continue

            # Take the snapshot and clear the flags in one step, so a boundary
            # arriving during the fire sets a flag for the next one.
            self.dirty = dict.fromkeys(self.accumulators, False)
            self.firing = True
            return FireSnapshot(dict(self.cache), manual, self.applied_event_index)
        return None
