"""Checks that the server reads the events it is sent, before and during a run.

A server whose wire format differs from the producers' (``--wire json`` or
``bincode``) rejects every event. It fires nothing, so the run's latencies
would be empty. The reference server counts such events in
``events_rejected`` of ``/v1/health/accumulators``; today's Cloacina server
has no such count, so there these checks find nothing to compare.
"""

from __future__ import annotations

from loadgen.errors import LoadgenError, UsageProblem
from loadgen.health import HealthClient, object_rows

__all__ = [
    "BINCODE_LAYOUT",
    "RejectionWatch",
    "accumulator_counts",
    "check_bincode_layout",
    "rejection_problem",
    "wire_mismatch_hint",
]

BINCODE_LAYOUT = (("best_bid", "number"), ("best_ask", "number"))
"""Field names and JSON Schema types of the boundary that bincode events fill,
in payload order, which is two f64 values with the bid first."""


def wire_mismatch_hint(wire: str) -> str:
    """Return the fix to suggest when the server rejects every ``wire`` event."""
    other = "json" if wire == "bincode" else "bincode"
    return (
        f"if the server reads {other} payloads (the reference server's --wire "
        f"{other}), pass --wire {other}; otherwise check that the fields match "
        "the accumulator's boundary type"
    )


def rejection_problem(wire: str, accepted: int, rejected: int) -> str | None:
    """Return why a run failed when the server rejected every event, else None.

    Args:
        wire: the producers' payload format.
        accepted: events the server accepted since the run began.
        rejected: events the server rejected since the run began.
    """
    if accepted > 0 or rejected <= 0:
        return None
    return (
        f"the server rejected all {rejected:,} {wire} events it received: "
        f"{wire_mismatch_hint(wire)}"
    )


def accumulator_counts(
    health: HealthClient, accumulator: str
) -> tuple[int | None, int | None]:
    """Return the accumulator's accepted and rejected event counts.

    Either count is None when the server does not report it.

    Raises:
        ConnectionProblem: the accumulator list cannot be read.
    """
    listing = health.get_json("/v1/health/accumulators")
    for row in object_rows(listing, "accumulators", "items"):
        if row.get("name") == accumulator:
            return _count(row.get("events_total")), _count(row.get("events_rejected"))
    return None, None


def check_bincode_layout(health: HealthClient, accumulator: str) -> None:
    """Check that bincode events fit the accumulator's declared boundary.

    A bincode payload carries no field names, so the server would read two
    f64 values of any other 16-byte boundary without an error, or swap bid
    and ask. The check is skipped when the server lists no fields for the
    accumulator.

    NOTE: this relies on ``/v1/health/accumulators/{name}/interface`` listing
    the fields in declaration order, as the reference server does.

    Raises:
        UsageProblem: the accumulator declares other fields or another order.
    """
    try:
        surface = health.get_json(f"/v1/health/accumulators/{accumulator}/interface")
    except LoadgenError:
        return
    slots = surface.get("slots")
    if not isinstance(slots, list) or not slots or not isinstance(slots[0], dict):
        return
    schema = slots[0].get("schema")
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return

    declared = tuple(
        (name, spec.get("type") if isinstance(spec, dict) else None)
        for name, spec in properties.items()
    )
    if declared != BINCODE_LAYOUT:
        listed = ", ".join(f"{name} ({kind})" for name, kind in declared)
        raise UsageProblem(
            f"accumulator '{accumulator}' declares the fields {listed}, but bincode "
            "events carry best_bid then best_ask as f64 and no field names: use "
            "an accumulator with that boundary, or --wire json"
        )


class RejectionWatch:
    """Finds, once a second during a run, that the server rejects every event.

    Args:
        health: a health client of its own.
        accumulator: the accumulator the producers send to.
        wire: the producers' payload format.
        accepted_before: the accumulator's accepted count before the run.
        rejected_before: its rejected count before the run, or None when the
            server does not report one; the watch then never finds a problem.
    """

    def __init__(
        self,
        health: HealthClient,
        accumulator: str,
        wire: str,
        accepted_before: int | None,
        rejected_before: int | None,
    ) -> None:
        self._health = health
        self._accumulator = accumulator
        self._wire = wire
        self._accepted_before = accepted_before
        self._rejected_before = rejected_before
        self._done = accepted_before is None or rejected_before is None

    def problem(self) -> str | None:
        """Return why the run should stop, or None while events are accepted.

        After the first accepted event the watch stops reading counts.
        """
        if self._done:
            return None
        try:
            accepted, rejected = accumulator_counts(self._health, self._accumulator)
        except LoadgenError:
            # A failed read is no evidence about the events, so the next
            # tick reads again.
            return None
        if accepted is None or rejected is None:
            self._done = True
            return None
        accepted -= self._accepted_before
        if accepted > 0:
            self._done = True
            return None
        return rejection_problem(self._wire, accepted, rejected - self._rejected_before)

    def close(self) -> None:
        self._health.close()


def _count(value: object) -> int | None:
    # bool is an int subclass, and JSON true is no count.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None
