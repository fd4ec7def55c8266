"""Built-in graph computations, selected by name in the configuration.

Inputs are the decoded boundaries of a fire: an object per passthrough
accumulator, a list of objects for batch and state accumulators, or None where
the Cloacina server would pass an absent value (a payload that is not JSON).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["COMPUTATIONS", "passthrough", "price_signal"]

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


COMPUTATIONS: dict[str, Callable[[Inputs], Any]] = {
    "price_signal": price_signal,
    "passthrough": passthrough,
}
