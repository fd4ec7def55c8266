"""Execution of reactor fires and the queues in front of a reactor.

Events reach a reactor through the stages of a Cloacina accumulator and
reactor, each with Cloacina's capacity:

1. the accumulator's inbox, Cloacina's socket channel (64 for passthrough,
   1024 for the other kinds) plus its merge channel (1024), from which the
   accumulator processor takes events;
2. the reactor's boundary queue (256), shared by all its accumulators;
3. the reactor's executor signals (64), see ``reactor.SIGNAL_CAPACITY``.

A stage takes from the previous one only while it has room, so a slow graph
fills the signals, then the boundary queue, then the inbox, and only then is an
event dropped. With an execution time of 0 the fire runs inline, before the
call that delivered the event returns, and the queues stay empty.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .accumulators import Codec, Processor, make_processor
from .computations import COMPUTATIONS
from .config import AccumulatorConfig, GraphConfig
from .exectime import execution_time_for
from .reactor import FireSnapshot, Reactor

__all__ = [
    "BOUNDARY_CAPACITY",
    "FIRE_LOG_CAPACITY",
    "MERGE_CAPACITY",
    "FireRecord",
    "GraphRunner",
    "socket_capacity",
]

logger = logging.getLogger(__name__)

BOUNDARY_CAPACITY = 256
MERGE_CAPACITY = 1024
FIRE_LOG_CAPACITY = 200
"""Fires kept for ``/v1/health/reactors/{name}/fires``, as in Cloacina."""
TIMESERIES_MINUTES = 60
NS_PER_MINUTE = 60_000_000_000


def socket_capacity(kind: str) -> int:
    """Return Cloacina's socket channel capacity for an accumulator kind."""
    return 64 if kind == "passthrough" else 1024


@dataclass(slots=True)
class FireRecord:
    """One completed fire, for the fire log and the ground-truth endpoint.

    The runner keeps each fire as a plain tuple of these fields, in this
    order, and builds records only when an endpoint reads them.
    """

    fire_index: int
    """1-based count of fires of this graph."""
    started_mono_ns: int
    finished_mono_ns: int
    started_wall_ns: int
    finished_wall_ns: int
    last_event_index: int
    manual: bool
    ok: bool
    error: str | None
    inputs: dict[str, Any]
    """The snapshot as cached; decode with the profile for display."""
    output: Any


@dataclass
class _Inbox:
    processor: Processor
    capacity: int
    events: deque[tuple[Any, int]]
    last_event_index: int = 0


def _identity(value: Any) -> Any:
    return value


class GraphRunner:
    """Runs the fires of one graph's reactor and the queues in front of it.

    Args:
        graph: the graph and its reactor.
        accumulators: configuration of each declared accumulator; a missing one
            is a passthrough.
        codec: event representation for batch and state accumulators.
        decode_input: turns a cache entry into the computation's input; None
            if cache entries are the inputs already.
        fire_ring: deque that also receives every fire's row, or None; see
            ``fire_rows``.
    """

    def __init__(
        self,
        graph: GraphConfig,
        accumulators: Mapping[str, AccumulatorConfig] | None = None,
        codec: Codec | None = None,
        decode_input: Callable[[Any], Any] | None = None,
        fire_ring: deque[FireRecord] | None = None,
    ) -> None:
        self.graph = graph
        self.reactor = Reactor(graph.accumulators, graph.reaction_mode)
        self.decode_input = decode_input or _identity
        self.fire_rows: deque[tuple] = deque(maxlen=FIRE_LOG_CAPACITY)
        """The last fires as ``FireRecord`` field tuples, oldest first."""
        self.fire_ring = fire_ring
        self.failed_fires = 0
        self.queue_depth_max = 0
        """Largest number of events waiting in this reactor's queues at once."""
        self._compute = COMPUTATIONS[graph.computation]
        self._execution_time = execution_time_for(graph)
        self._inline = self._execution_time.always_zero
        self._task: asyncio.Task[None] | None = None
        self._timers: list[asyncio.Task[None]] = []
        self._boundaries: deque[tuple[str, Any, int]] = deque()
        self._minutes: deque[list[int]] = deque(maxlen=TIMESERIES_MINUTES)
        codec = codec or Codec(decode=_identity, encode=list)
        accumulators = accumulators or {}
        self._inboxes: dict[str, _Inbox] = {}
        for name in graph.accumulators:
            config = accumulators.get(name) or AccumulatorConfig(name, graph.tenant, {})
            self._inboxes[name] = _Inbox(
                make_processor(config, codec),
                socket_capacity(config.kind) + MERGE_CAPACITY,
                deque(),
            )

    @property
    def fire_log(self) -> list[FireRecord]:
        """The last ``FIRE_LOG_CAPACITY`` fires, oldest first."""
        return [FireRecord(*row) for row in self.fire_rows]

    @property
    def processors(self) -> dict[str, Processor]:
        return {name: inbox.processor for name, inbox in self._inboxes.items()}

    @property
    def queue_depth(self) -> int:
        """Events and signals waiting in front of the executor now."""
        waiting = sum(len(inbox.events) for inbox in self._inboxes.values())
        return waiting + len(self._boundaries) + len(self.reactor.signals)

    def offer(self, accumulator: str, value: Any, event_index: int = 0) -> bool:
        """Hand an event to the accumulator's inbox.

        Returns:
            False if the inbox was full and the event was dropped.

        Raises:
            KeyError: the graph does not declare the accumulator.
        """
        inbox = self._inboxes[accumulator]

        # Fast paths: nothing is waiting, so the event goes straight through,
        # and with an execution time of 0 and an idle reactor it fires here.
        reactor = self.reactor
        if not inbox.events and not self._boundaries:
            if self._inline and reactor.idle:
                inbox.last_event_index = event_index
                boundary = inbox.processor.process(value)
                if boundary is not None:
                    inputs = reactor.update_idle(accumulator, boundary, event_index)
                    if inputs is not None:
                        self._fire_idle(inputs)
                return True
            if reactor.has_signal_room:
                inbox.last_event_index = event_index
                boundary = inbox.processor.process(value)
                if boundary is not None:
                    self._start(reactor.update(accumulator, boundary, event_index))
                return True

        if len(inbox.events) >= inbox.capacity:
            return False
        inbox.events.append((value, event_index))
        self._pump()
        depth = self.queue_depth
        if depth > self.queue_depth_max:
            self.queue_depth_max = depth
        return True

    def can_take_run(self, accumulator: str) -> bool:
        """True if ``offer_run`` applies: events would pass through and fire here."""
        inbox = self._inboxes[accumulator]
        return (
            self._inline
            and self.reactor.idle
            and not inbox.events
            and not self._boundaries
            and inbox.processor.kind == "passthrough"
        )

    def offer_run(
        self, accumulator: str, value: Any, event_index: int, count: int
    ) -> None:
        """Apply ``count`` events of which ``value`` is the last, and fire once.

        The caller checks ``can_take_run`` first. A passthrough emits every
        event as a boundary, so the cache ends with the last value whether the
        events are applied one by one or at once.
        """
        inbox = self._inboxes[accumulator]
        inbox.last_event_index = event_index
        processor = inbox.processor
        processor.boundaries_emitted += count - 1
        boundary = processor.process(value)
        inputs = self.reactor.update_idle(accumulator, boundary, event_index)
        if inputs is not None:
            self._fire_idle(inputs)

    def on_boundary(
        self, accumulator: str, boundary: Any, event_index: int = 0
    ) -> bool:
        """Deliver an event, like ``offer``."""
        return self.offer(accumulator, boundary, event_index)

    def force_fire(self) -> None:
        """Queue a fire regardless of the firing condition; skipped if paused."""
        self._start(self.reactor.force_fire())

    def fire_with(self, cache: Mapping[str, Any]) -> None:
        """Replace the whole cache, then fire like ``force_fire``."""
        self._start(self.reactor.fire_with(cache))

    def flush(self, accumulator: str) -> None:
        """Emit a batch accumulator's buffer, as its flush timer does."""
        inbox = self._inboxes[accumulator]
        boundary = inbox.processor.flush()
        if boundary is None:
            return
        # NOTE: a timer flush may exceed the boundary queue by one entry, where
        # Cloacina's processor would wait for room instead.
        self._boundaries.append((accumulator, boundary, inbox.last_event_index))
        self._pump()

    def start(self) -> None:
        """Start the flush timers of batch accumulators on the running loop."""
        loop = asyncio.get_running_loop()
        for name, inbox in self._inboxes.items():
            interval_s = inbox.processor.config.flush_interval_s
            if inbox.processor.kind == "batch" and interval_s > 0:
                self._timers.append(
                    loop.create_task(self._flush_every(name, interval_s))
                )

    async def stop(self) -> None:
        """Cancel flush timers and a running fire, and wait for them to end."""
        tasks = [*self._timers, self._task]
        for task in tasks:
            if task is not None and not task.done():
                task.cancel()
        for task in tasks:
            if task is None:
                continue
            try:
                await task
            except asyncio.CancelledError:
                pass

    def fires_per_minute(self, now_wall_ns: int) -> list[int]:
        """Return fire counts of the last 60 UTC minutes, oldest first."""
        current = now_wall_ns // NS_PER_MINUTE
        counts = {minute: count for minute, count in self._minutes}
        first = current - TIMESERIES_MINUTES + 1
        return [counts.get(minute, 0) for minute in range(first, current + 1)]

    async def _flush_every(self, accumulator: str, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.flush(accumulator)

    def _pump(self) -> None:
        # Move waiting events forward while each next stage has room.
        reactor = self.reactor
        moved = True
        while moved:
            moved = False
            while self._boundaries and reactor.has_signal_room:
                name, boundary, index = self._boundaries.popleft()
                self._start(reactor.update(name, boundary, index))
                moved = True
            for name, inbox in self._inboxes.items():
                while inbox.events and len(self._boundaries) < BOUNDARY_CAPACITY:
                    value, index = inbox.events.popleft()
                    inbox.last_event_index = index
                    boundary = inbox.processor.process(value)
                    if boundary is not None:
                        self._boundaries.append((name, boundary, index))
                    moved = True

    def _start(self, snapshot: FireSnapshot | None) -> None:
        if snapshot is None:
            return
        if self._inline:
            while snapshot is not None:
                started_mono_ns = time.monotonic_ns()
                started_wall_ns = time.time_ns()
                output, error = self._execute(snapshot)
                snapshot = self._complete(
                    snapshot, started_mono_ns, started_wall_ns, output, error
                )
            return
        self._task = asyncio.get_running_loop().create_task(
            self._run_fires(snapshot), name=f"fire {self.graph.name}"
        )

    def _fire_idle(self, inputs: dict[str, Any]) -> None:
        # The common case of an execution time of 0: one fire per event, so it
        # avoids the snapshot object, the datetime and the FireRecord, which
        # together cost more than the computation.
        reactor = self.reactor
        started_mono_ns = time.monotonic_ns()

        # Run the computation.
        decode = self.decode_input
        if decode is _identity:
            computed = inputs
        else:
            computed = {name: decode(value) for name, value in inputs.items()}
        error = None
        try:
            output = self._compute(computed)
        except Exception as exc:
            output, error = None, self._fire_failed(exc)

        # Record the fire. One wall clock read is enough, because the start
        # follows from the monotonic duration.
        finished_mono_ns = time.monotonic_ns()
        finished_wall_ns = time.time_ns()
        row = (
            reactor.fire_count + 1,
            started_mono_ns,
            finished_mono_ns,
            finished_wall_ns - (finished_mono_ns - started_mono_ns),
            finished_wall_ns,
            reactor.applied_event_index,
            False,
            error is None,
            error,
            inputs,
            output,
        )
        self.fire_rows.append(row)
        if self.fire_ring is not None:
            self.fire_ring.append(row)
        self._count_minute(finished_wall_ns)
        reactor.complete_idle_fire(output, finished_wall_ns)

    def _count_minute(self, finished_wall_ns: int) -> None:
        minute = finished_wall_ns // NS_PER_MINUTE
        minutes = self._minutes
        if minutes and minutes[-1][0] == minute:
            minutes[-1][1] += 1
        else:
            minutes.append([minute, 1])

    async def _run_fires(self, snapshot: FireSnapshot | None) -> None:
        while snapshot is not None:
            started_mono_ns = time.monotonic_ns()
            started_wall_ns = time.time_ns()
            output, error = self._execute(snapshot)
            duration_s = self._execution_time.sample_s()
            await asyncio.sleep(duration_s)
            # uvloop's timers count whole milliseconds on a cached clock, so a
            # sleep can end up to a millisecond early by time.monotonic_ns().
            deadline_ns = started_mono_ns + int(duration_s * 1e9)
            while (remaining_ns := deadline_ns - time.monotonic_ns()) > 0:
                await asyncio.sleep(remaining_ns / 1e9)
            snapshot = self._complete(
                snapshot, started_mono_ns, started_wall_ns, output, error
            )
            # The finished fire freed signal slots, so waiting events move on.
            # A fire that this starts runs in a new task, after this one ends.
            if self.queue_depth:
                self._pump()

    def _complete(
        self,
        snapshot: FireSnapshot,
        started_mono_ns: int,
        started_wall_ns: int,
        output: Any,
        error: str | None,
    ) -> FireSnapshot | None:
        # Take the finish time and bump the fire count in one synchronous step,
        # so no reader sees one without the other.
        finished_mono_ns = time.monotonic_ns()
        finished_wall_ns = time.time_ns()
        fired_at = datetime.fromtimestamp(finished_wall_ns / 1e9, UTC)
        row = (
            self.reactor.fire_count + 1,
            started_mono_ns,
            finished_mono_ns,
            started_wall_ns,
            finished_wall_ns,
            snapshot.last_event_index,
            snapshot.manual,
            error is None,
            error,
            snapshot.inputs,
            output,
        )
        self.fire_rows.append(row)
        if self.fire_ring is not None:
            self.fire_ring.append(row)
        self._count_minute(finished_wall_ns)
        return self.reactor.complete_fire(output, fired_at)

    def _execute(self, snapshot: FireSnapshot) -> tuple[Any, str | None]:
        decode = self.decode_input
        inputs = {name: decode(value) for name, value in snapshot.inputs.items()}
        try:
            return self._compute(inputs), None
        except Exception as exc:
            return None, self._fire_failed(exc)

    def _fire_failed(self, exc: Exception) -> str:
        # The Cloacina server also counts a fire whose graph failed.
        self.failed_fires += 1
        if self.failed_fires == 1 or self.failed_fires % 1000 == 0:
            logger.exception(
                "graph %s failed during a fire (%d failures so far)",
                self.graph.name,
                self.failed_fires,
            )
        return f"{type(exc).__name__}: {exc}"
