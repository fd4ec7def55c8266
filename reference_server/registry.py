"""Registry of accumulators and graphs, name resolution and event delivery."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .auth import ApiKey
from .bincode import make_run_decoder
from .boundary import BoundaryError, EventDecoder
from .config import AccumulatorConfig, ServerConfig
from .fastdecode import FastEventDecoder
from .groundtruth import GroundTruth
from .profiles import TUTORIAL, Profile
from .runner import GraphRunner

__all__ = ["DROPPED", "REJECTED", "AccumulatorState", "Registry"]

logger = logging.getLogger(__name__)

REJECT_LOG_INTERVAL_S = 10.0
"""Minimum time between two logs of rejected or dropped events of an accumulator."""

REJECTED = 0
"""``deliver`` result: the event did not decode into the boundary."""
DROPPED = -1
"""``deliver`` result: every recipient's inbox was full."""


def _unset_decoder(payload: Any) -> Any:
    raise RuntimeError("AccumulatorState.decode is set by the Registry")


@dataclass
class AccumulatorState:
    config: AccumulatorConfig
    runners: list[GraphRunner] = field(default_factory=list)
    """Runners of every graph that declares this accumulator."""
    events_total: int = 0
    """Accepted events: delivered to at least one reactor's inbox."""
    events_rejected: int = 0
    """Events dropped because they did not decode into the boundary."""
    events_dropped: int = 0
    """Events lost because every recipient's inbox was full."""
    last_event_ns: int = 0
    """Wall time of the latest accepted event in ns since the epoch; 0 for none."""
    operator_injects: int = 0
    last_operator_inject_at: datetime | None = None
    decode: Callable[[Any], Any] = _unset_decoder
    """The profile's ``event_value`` for this accumulator's fields."""
    last_if_all_valid: Callable[[list[bytes]], Any] | None = None
    """Decodes a run of payloads to the last one's value, or None if any is
    invalid; None where only ``decode`` is available."""
    _problems_unlogged: int = 0
    _last_problem_log_s: float = float("-inf")

    @property
    def last_event_at(self) -> datetime | None:
        """Time of the latest accepted event, formatted only when read."""
        if not self.last_event_ns:
            return None
        return datetime.fromtimestamp(self.last_event_ns / 1e9, UTC)

    def log_problem(self, what: str, detail: object) -> None:
        # A misconfigured or too fast producer can cause thousands of these a
        # second, so log the first one and then one summary per interval.
        self._problems_unlogged += 1
        now_s = time.monotonic()
        if now_s - self._last_problem_log_s < REJECT_LOG_INTERVAL_S:
            return
        logger.warning(
            "accumulator %s %s %d event(s) (%d rejected and %d dropped in total), "
            "latest: %s",
            self.config.name,
            what,
            self._problems_unlogged,
            self.events_rejected,
            self.events_dropped,
            detail,
        )
        self._problems_unlogged = 0
        self._last_problem_log_s = now_s


class Registry:
    """Accumulators, graphs and reactors by tenant and name.

    Args:
        config: the graphs, accumulators and keys to serve.
        profile: how events are decoded and bodies are shaped.
        ground_truth: recorder of fires and events, or None when it is off.
    """

    def __init__(
        self,
        config: ServerConfig,
        profile: Profile = TUTORIAL,
        ground_truth: GroundTruth | None = None,
    ) -> None:
        self.config = config
        self.profile = profile
        self.ground_truth = ground_truth
        self.event_count = 0
        """Accepted events server-wide; the latest ``event_index`` given out."""
        self.accumulators: dict[tuple[str, str], AccumulatorState] = {
            (accumulator.tenant, accumulator.name): _accumulator_state(
                accumulator, profile
            )
            for accumulator in config.accumulators
        }
        self.graphs: dict[tuple[str, str], GraphRunner] = {}
        self.reactors: dict[tuple[str, str], GraphRunner] = {}
        for graph in config.graphs:
            declared = {
                name: self.accumulators[(graph.tenant, name)].config
                for name in graph.accumulators
            }
            runner = GraphRunner(
                graph,
                declared,
                codec=profile.codec,
                # The tutorial profile caches decoded values, so skip the call.
                decode_input=(
                    profile.decode_input if not profile.validate_passthrough else None
                ),
                fire_ring=ground_truth.fire_ring(graph.name) if ground_truth else None,
            )
            self.graphs[(graph.tenant, graph.name)] = runner
            self.reactors[(graph.tenant, graph.reactor)] = runner
            for name in graph.accumulators:
                self.accumulators[(graph.tenant, name)].runners.append(runner)

    # Name resolution.

    def resolve_accumulator(self, key: ApiKey, name: str) -> AccumulatorState | None:
        """Find the accumulator a key means by a bare name, or None (403)."""
        return _resolve(self.accumulators, key, name)

    def resolve_reactor(self, key: ApiKey, name: str) -> GraphRunner | None:
        """Find the reactor a key means by a bare name, or None (403).

        The tutorial profile also accepts the graph name.
        """
        runner = _resolve(self.reactors, key, name)
        if runner is None and self.profile.graph_alias_for_reactor:
            runner = _resolve(self.graphs, key, name)
        return runner

    def find_graph(self, key: ApiKey, name: str) -> GraphRunner | None:
        """Find a graph visible to a key, or None (404)."""
        return _resolve(self.graphs, key, name)

    def name_exists(self, name: str, kind: str) -> bool:
        """Return whether any tenant owns an accumulator or reactor of this name."""
        table: dict[tuple[str, str], Any] = (
            self.accumulators if kind == "accumulator" else self.reactors
        )
        if kind != "accumulator" and self.profile.graph_alias_for_reactor:
            table = {**table, **self.graphs}
        return any(owned == name for _, owned in table)

    # Delivery.

    def deliver(self, accumulator: AccumulatorState, payload: bytes | str) -> int:
        """Decode an event and offer it to every reactor that declares the accumulator.

        Returns:
            The event's server-wide ``event_index`` (1, 2, ...) if at least one
            reactor took it, ``REJECTED`` if it did not decode, or ``DROPPED``
            if every reactor's inbox was full.
        """
        try:
            value = accumulator.decode(payload)
        except BoundaryError as error:
            accumulator.events_rejected += 1
            accumulator.log_problem("rejected", error)
            return REJECTED

        event_index = self.event_count + 1
        name = accumulator.config.name
        accepted = False
        for runner in accumulator.runners:
            if runner.offer(name, value, event_index):
                accepted = True
        if not accepted:
            accumulator.events_dropped += 1
            accumulator.log_problem(
                "dropped",
                "the reactor queue is full; the graph is slower than the event rate",
            )
            return DROPPED
        self.event_count = event_index
        accumulator.events_total += 1
        accumulator.last_event_ns = time.time_ns()
        return event_index

    def deliver_run(
        self,
        accumulator: AccumulatorState,
        payloads: list[bytes],
        stop_at_drop: bool = False,
    ) -> bool:
        """Deliver the events of one read in order, like ``deliver`` each.

        The events are applied as one when every reactor of the accumulator
        is idle, fires inline and takes them through a passthrough. The cache
        then keeps the last value, so the reactor fires once for the run.
        Cloacina's executor does the same when its receiver gets ahead of it.
        Otherwise each event is delivered on its own.

        Returns:
            False if an event was dropped and ``stop_at_drop`` ended the run.
        """
        count = len(payloads)
        name = accumulator.config.name
        runners = accumulator.runners
        last_if_all_valid = accumulator.last_if_all_valid
        if (
            count > 1
            and last_if_all_valid is not None
            and runners
            and all(runner.can_take_run(name) for runner in runners)
        ):
            value = last_if_all_valid(payloads)
            if value is not None:
                event_index = self.event_count + count
                for runner in runners:
                    runner.offer_run(name, value, event_index, count)
                self.event_count = event_index
                accumulator.events_total += count
                accumulator.last_event_ns = time.time_ns()
                return True
        deliver = self.deliver
        for payload in payloads:
            if deliver(accumulator, payload) == DROPPED and stop_at_drop:
                return False
        return True

    # Visibility and totals.

    def visible_accumulators(self, key: ApiKey) -> Iterator[AccumulatorState]:
        """Yield accumulators of the key's tenant, or all of them for an admin."""
        for state in self.accumulators.values():
            if key.admin or state.config.tenant == key.tenant:
                yield state

    def visible_graphs(self, key: ApiKey) -> Iterator[GraphRunner]:
        """Yield graphs of the key's tenant, or all of them for an admin."""
        for runner in self.graphs.values():
            if key.admin or runner.graph.tenant == key.tenant:
                yield runner

    def totals(self) -> dict[str, int]:
        """Return server-wide event counters and the largest queue depth seen."""
        states = self.accumulators.values()
        return {
            "events_total": sum(state.events_total for state in states),
            "events_rejected": sum(state.events_rejected for state in states),
            "events_dropped": sum(state.events_dropped for state in states),
            "queue_depth_max": max(
                (runner.queue_depth_max for runner in self.graphs.values()),
                default=0,
            ),
        }

    def start(self) -> None:
        """Start the flush timers of batch accumulators."""
        for runner in self.graphs.values():
            runner.start()

    async def stop(self) -> None:
        """Cancel running fires and flush timers."""
        for runner in self.graphs.values():
            await runner.stop()


def _accumulator_state(config: AccumulatorConfig, profile: Profile) -> AccumulatorState:
    decode = profile.event_decoder(config.fields)
    last_if_all_valid = None
    if isinstance(decode, EventDecoder):
        decode = FastEventDecoder(decode)
        last_if_all_valid = decode.last_if_all_valid
    elif not profile.validate_passthrough:
        # Forwarded without decoding: any run is valid.
        last_if_all_valid = _last_payload
    elif profile.wire == "bincode":
        last_if_all_valid = make_run_decoder(config.fields)
    return AccumulatorState(config, decode=decode, last_if_all_valid=last_if_all_valid)


def _last_payload(payloads: list[bytes]) -> bytes:
    return payloads[-1]


def _resolve(table: dict[tuple[str, str], Any], key: ApiKey, name: str) -> Any:
    # Cloacina's resolve_key: the caller's tenant first; then, for an admin
    # only, the one tenant that owns the name. Two owners make it ambiguous.
    # NOTE: untenanted (embedded) graphs, Cloacina's second step, cannot be
    # configured here, so that step is absent.
    if key.tenant is not None and (key.tenant, name) in table:
        return table[(key.tenant, name)]
    if not key.admin:
        return None
    owners = [value for (_, owned), value in table.items() if owned == name]
    return owners[0] if len(owners) == 1 else None
