"""Simulated graph execution time: fixed or drawn from a seeded distribution."""

from __future__ import annotations

import math
import random

from .config import ExecutionTimeConfig, GraphConfig

__all__ = ["ExecutionTime", "execution_time_for"]

Z_99 = 2.3263478740408408
"""Standard normal quantile at 0.99, which places ``p99_ms`` on the lognormal."""


class ExecutionTime:
    """Sampler of one fire's simulated run time in seconds.

    ``lognormal`` has its median at ``median_ms`` and its 99th percentile at
    ``p99_ms``; ``uniform`` draws from ``[min_ms, max_ms]``. Each graph has its
    own ``random.Random(seed)``, so a run is repeatable.
    """

    def __init__(self, config: ExecutionTimeConfig) -> None:
        self.config = config
        self._random = random.Random(config.seed)
        self._mu = 0.0
        self._sigma = 0.0
        if config.distribution == "lognormal":
            self._mu = math.log(config.median_ms)
            self._sigma = (math.log(config.p99_ms) - self._mu) / Z_99

    @property
    def always_zero(self) -> bool:
        """True if every sample is 0, so fires can run inline."""
        config = self.config
        if config.distribution == "fixed":
            return config.fixed_ms == 0
        if config.distribution == "uniform":
            return config.max_ms == 0
        return False

    def sample_s(self) -> float:
        """Draw one run time in seconds."""
        config = self.config
        if config.distribution == "lognormal":
            return self._random.lognormvariate(self._mu, self._sigma) / 1000
        if config.distribution == "uniform":
            return self._random.uniform(config.min_ms, config.max_ms) / 1000
        return config.fixed_ms / 1000


def execution_time_for(graph: GraphConfig) -> ExecutionTime:
    """Build the sampler of a graph, from ``execution_time`` or the fixed ms."""
    if graph.execution_time is not None:
        return ExecutionTime(graph.execution_time)
    return ExecutionTime(ExecutionTimeConfig(fixed_ms=graph.execution_time_ms))
