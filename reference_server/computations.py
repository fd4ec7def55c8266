"""Built-in graph computations, selected by name in the configuration.

Inputs are the decoded boundaries of a fire: an object per passthrough
accumulator, a list of objects for batch and state accumulators, or None where
the Cloacina server would pass an absent value (a payload that is not JSON).

Besides the fixed names, ``"fail"`` raises on every fire and ``"fail:F"``
raises on a fraction F (0 to 1, such as ``"fail:0.25"``) of the fires, so that
tests can watch how a server reports a failing graph.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from fractions import Fraction
from typing import Any

__all__ = [
    "COMPUTATIONS",
    "FailingComputation",
    "GraphFailure",
    "parse_fail_fraction",
    "passthrough",
    "price_signal",
]

Inputs = Mapping[str, Any]


def price_signal(inputs: Inputs) -> dict[str, float]:
    """Compute mid price ``(bid + ask) / 2`` and spread ``ask - bid``.

    Reads the first input with numeric ``best_bid`` and ``best_ask``; of a list
    it reads the newest element. Without one, both outputs are 0.0, as in the
    tutorial graph's ``compute_signal`` given no order book.
    """
    for boundary in inputs.values():
        # Fast path for the common case, an order book of two floats.
        if type(boundary) is dict:
            bid = boundary.get("best_bid")
            ask = boundary.get("best_ask")
            if type(bid) is float and type(ask) is float:
                return {"mid_price": (bid + ask) / 2, "spread": ask - bid}
        if isinstance(boundary, list) and boundary:
            boundary = boundary[-1]
        if not isinstance(boundary, dict):
            continue
        bid = boundary.get("best_bid")
        ask = boundary.get("best_ask")
        if _is_number(bid) and _is_number(ask):
            return {"mid_price": (bid + ask) / 2, "spread": ask - bid}
    return {"mid_price": 0.0, "spread": 0.0}


def passthrough(inputs: Inputs) -> dict[str, Any]:
    """Return the fire's inputs unchanged."""
    return dict(inputs)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class GraphFailure(RuntimeError):
    """Failure raised on purpose by a ``fail`` computation."""


class FailingComputation:
    """Computation that raises ``GraphFailure`` on a fraction of its fires.

    The failures are spread evenly instead of drawn at random, so a test can
    predict which fires fail: fire n fails when ``floor(n * fraction)`` grows
    at n.
    After n fires exactly ``floor(n * fraction)`` have failed, and a fire
    that does not fail returns what ``price_signal`` returns.

    Args:
        fraction: share of fires that fail, from 0 (none) to 1 (every fire).
        name: computation name shown in the failure message.
    """

    def __init__(self, fraction: Fraction, name: str) -> None:
        if not 0 <= fraction <= 1:
            raise ValueError(f"fail fraction must be from 0 to 1, got {fraction}")
        self.fraction = fraction
        self.name = name
        self.fires = 0

    def __call__(self, inputs: Inputs) -> dict[str, float]:
        self.fires += 1
        fraction = self.fraction
        failed_before = (self.fires - 1) * fraction.numerator // fraction.denominator
        failed_now = self.fires * fraction.numerator // fraction.denominator
        if failed_now > failed_before:
            raise GraphFailure(f"{self.name}: simulated failure on fire {self.fires}")
        return price_signal(inputs)


def parse_fail_fraction(name: str) -> Fraction | None:
    """Return the failing fraction of ``"fail"`` or ``"fail:F"``, else None.

    F is a decimal or a ratio (``0.25``, ``1/4``) from 0 to 1; any other F
    returns None.
    """
    if name == "fail":
        return Fraction(1)
    prefix, colon, text = name.partition(":")
    if prefix != "fail" or not colon:
        return None
    try:
        fraction = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None
    if not 0 <= fraction <= 1:
        return None
    return fraction


_FIXED: dict[str, Callable[[Inputs], Any]] = {
    "price_signal": price_signal,
    "passthrough": passthrough,
}


class _Computations(Mapping[str, Callable[[Inputs], Any]]):
    """Computations by name: the fixed ones and any ``"fail"`` or ``"fail:F"``.

    Each lookup of a failing name builds a new ``FailingComputation``, so every
    graph that looks its computation up once counts its own fires. Iteration
    lists the fixed names and ``"fail"``.
    """

    def __getitem__(self, name: str) -> Callable[[Inputs], Any]:
        if not isinstance(name, str):
            raise KeyError(name)
        if name in _FIXED:
            return _FIXED[name]
        fraction = parse_fail_fraction(name)
        if fraction is None:
            raise KeyError(name)
        return FailingComputation(fraction, name)

    def __iter__(self) -> Iterator[str]:
        yield from _FIXED
        yield "fail"

    def __len__(self) -> int:
        return len(_FIXED) + 1


COMPUTATIONS: Mapping[str, Callable[[Inputs], Any]] = _Computations()
"""Computation by the ``computation`` name of a graph in the configuration."""
