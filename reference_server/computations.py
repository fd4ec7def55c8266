"""Built-in graph computations, selected by name in the configuration."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["COMPUTATIONS", "passthrough", "price_signal"]

Inputs = Mapping[str, Mapping[str, Any]]


def price_signal(inputs: Inputs) -> dict[str, float]:
    """Compute mid price ``(bid + ask) / 2`` and spread ``ask - bid``.

    Reads the first input that has ``best_bid`` and ``best_ask``. Without one,
    both outputs are 0.0, as in the tutorial graph's ``compute_signal``.
    """
    for boundary in inputs.values():
        if "best_bid" in boundary and "best_ask" in boundary:
            bid = boundary["best_bid"]
            ask = boundary["best_ask"]
            return {"mid_price": (bid + ask) / 2, "spread": ask - bid}
    return {"mid_price": 0.0, "spread": 0.0}


def passthrough(inputs: Inputs) -> dict[str, Any]:
    """Return the fire's inputs unchanged."""
    return {name: dict(boundary) for name, boundary in inputs.items()}


COMPUTATIONS: dict[str, Callable[[Inputs], Any]] = {
    "price_signal": price_signal,
    "passthrough": passthrough,
}
