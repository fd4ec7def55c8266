"""Ways to tell that the fire which consumed a probe event has completed.

``CountDetector`` polls the graph's fire count, which every server offers. It
takes the first change after the send, or the second when a fire was already
running, so under queueing it can end at a fire that did not consume the
event. ``FireLogDetector`` reads today's Cloacina fire log
(``/v1/health/reactors/{name}/fires``) and finds the first fire whose snapshot
carries the probe event's sequence tag or a later one; it is exact when every
event on the accumulator comes from this process, which tags them all.
"""

from __future__ import annotations

from urllib.parse import quote

from loadgen.endpoints import graph_health_path
from loadgen.errors import ConnectionProblem
from loadgen.health import HealthClient, fire_count_of, json_object, object_rows
from loadgen.tags import tag_of, tag_reached

__all__ = ["CountDetector", "FireLogDetector", "choose_detector"]

FIRE_LOG_LIMIT = 5
"""Rows per fire-log read. Fires complete in order and carry ever later tags,
so the newest rows tell whether the probe's fire has completed; a short read
keeps the poll's round trip, and so its error, small."""


class CountDetector:
    """Waits for the graph's fire count to pass the count read before the send."""

    method = "poll"

    def __init__(self, health: HealthClient, graph: str) -> None:
        self._health = health
        self._path = graph_health_path(graph)
        self._not_found = f"graph '{graph}'"
        self._last_body = b""
        self._last_count = 0

    def before_send(self, tag: int) -> int:
        """Return the fire count that marks the probe event's fire."""
        status = self._health.get_json(self._path)
        # A fire already running may have taken its snapshot before the probe
        # event arrives; then the event's own fire is the one after it.
        # TODO: a fire that starts between this read and the event's arrival, or
        # an event that waits in the server's queues, still ends the wait early.
        # Fire-log detection and the ground truth rule it out.
        return fire_count_of(status) + (2 if status.get("firing") is True else 1)

    last_fire_failed = False
    """The fire count does not say whether a fire failed."""

    def fired(self, target: int) -> bool:
        body = self._health.get_body(self._path, not_found=self._not_found)
        # Most polls return the same bytes as the one before, whose count is known.
        if body != self._last_body:
            self._last_count = fire_count_of(json_object(body, f"GET {self._path}"))
            self._last_body = body
        return self._last_count >= target


class FireLogDetector:
    """Finds the first fire whose snapshot contains the probe's tag or a later one.

    Args:
        newest_before: the newest fire-log row when the run started, or None.
            It and older rows are ignored, because their tags come from an
            earlier process whose sequence may be ahead of this one's.
    """

    method = "fire_log"

    def __init__(
        self,
        health: HealthClient,
        reactor: str,
        accumulator: str,
        newest_before: dict | None = None,
    ) -> None:
        self._health = health
        self._path = (
            f"/v1/health/reactors/{quote(reactor, safe='')}/fires"
            f"?limit={FIRE_LOG_LIMIT}"
        )
        self._accumulator = accumulator
        self._newest_before = newest_before
        self._missed_body = b""
        self._missed_tag = -1
        self.last_fire_failed = False
        """Whether the fire found by the last successful ``fired`` failed."""

    def before_send(self, tag: int) -> int:
        return tag

    def fired(self, tag: int) -> bool:
        body = self._health.get_body(self._path)
        # A body equal to the last one that lacked this tag lacks it too, and
        # most polls during a wait return just that body.
        if tag == self._missed_tag and body == self._missed_body:
            return False
        rows = object_rows(json_object(body, f"GET {self._path}"), "items")
        rows = self._rows_of_this_run(rows)
        reached = [row for row in rows if self._reached(row, tag)]
        if not reached:
            self._missed_body = body
            self._missed_tag = tag
            return False
        # Rows come newest first, so the last one reached is the earliest fire
        # that consumed the probe event.
        self.last_fire_failed = reached[-1].get("ok") is False
        return True

    def _rows_of_this_run(self, rows: list) -> list:
        # Rows come newest first. The row that was newest at the start, and
        # every row after it, are from before this run.
        if self._newest_before is None:
            return rows
        try:
            return rows[: rows.index(self._newest_before)]
        except ValueError:
            # It left the window, or the server restarted, so all rows are new.
            self._newest_before = None
            return rows

    def _reached(self, row: dict, tag: int) -> bool:
        inputs = row.get("inputs")
        if not isinstance(inputs, dict):
            return False
        event = inputs.get(self._accumulator)
        if not isinstance(event, dict):
            return False
        seen = tag_of(event.get("best_bid"))
        return seen is not None and tag_reached(seen, tag)


def choose_detector(health: HealthClient, graph: str, accumulator: str):
    """Return the fire-log detector when the server offers one, else the count."""
    status = health.get_json(graph_health_path(graph))
    reactor = status.get("reactor")
    if isinstance(reactor, str) and reactor:
        try:
            newest = object_rows(
                health.get_json(
                    f"/v1/health/reactors/{quote(reactor, safe='')}/fires?limit=1"
                ),
                "items",
            )
        except ConnectionProblem as error:
            if not error.kind.startswith("http_"):
                raise
        else:
            newest_before = newest[0] if newest else None
            return FireLogDetector(health, reactor, accumulator, newest_before)
    return CountDetector(health, graph)
