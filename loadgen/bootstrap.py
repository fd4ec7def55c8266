"""Bootstrap confidence intervals for percentiles of HDR histograms.

A run's latency samples arrive in per-second interval histograms. Samples in
the same second share the server's state at that moment (a GC pause, a queue),
so they are not independent. Resampling whole intervals with replacement keeps
that correlation: each bootstrap replicate picks as many intervals as the run
has, merges them and reads the percentile. Runs whose report has too few
intervals fall back to resampling single samples from the whole histogram,
which understates the noise when samples are correlated.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from hdrh.histogram import HdrHistogram

__all__ = [
    "DEFAULT_ITERATIONS",
    "MAX_ITERATIONS",
    "MIN_INTERVALS",
    "ResamplingSource",
    "bootstrap_values",
    "difference_interval",
]

DEFAULT_ITERATIONS = 1000
MAX_ITERATIONS = 20_000
"""Upper bound on replicates, so that a command-line value cannot run for hours."""

MIN_INTERVALS = 5
"""Fewest non-empty intervals for interval resampling; fewer resample samples."""


class ResamplingSource:
    """Bucket counts of one run's latency samples, ready for resampling.

    Attributes:
        values_us: the highest value of each used bucket, ascending, as
            ``HdrHistogram.get_value_at_percentile`` reports it.
        interval_counts: one row of bucket counts per interval, or None when
            the source resamples single samples.
        total_counts: bucket counts of all samples together.
    """

    def __init__(
        self,
        values_us: np.ndarray,
        total_counts: np.ndarray,
        interval_counts: np.ndarray | None,
    ) -> None:
        self.values_us = values_us
        self.total_counts = total_counts
        self.interval_counts = interval_counts

    @property
    def unit(self) -> str:
        """What one draw picks: ``interval`` or ``sample``."""
        return "sample" if self.interval_counts is None else "interval"

    @property
    def count(self) -> int:
        return int(self.total_counts.sum())

    @classmethod
    def from_encoded(
        cls, total: str, intervals: Sequence[str | None] | None = None
    ) -> ResamplingSource:
        """Build a source from the compressed base64 histograms of a report.

        Args:
            total: the histogram of every sample.
            intervals: per-interval histograms of the same samples, None for an
                interval without samples. With fewer than ``MIN_INTERVALS``
                non-empty ones, the source resamples single samples.
        """
        histograms = [HdrHistogram.decode(total)]
        used_intervals = [item for item in intervals or () if item]
        interval_mode = len(used_intervals) >= MIN_INTERVALS
        if interval_mode:
            histograms += [HdrHistogram.decode(item) for item in used_intervals]
        lengths = {histogram.counts_len for histogram in histograms}
        if len(lengths) != 1:
            raise ValueError("histograms of one run use different bucket layouts")

        # Keep only buckets that hold a sample, usually a few hundred of 23,552.
        matrix = np.vstack(
            [np.asarray(histogram.counts, dtype=np.int64) for histogram in histograms]
        )
        used = np.flatnonzero(matrix.sum(axis=0))
        reference = histograms[0]
        values = np.array(
            [
                reference.get_highest_equivalent_value(
                    reference.get_value_from_index(int(index))
                )
                for index in used
            ],
            dtype=np.int64,
        )
        interval_counts = matrix[1:, used] if interval_mode else None
        return cls(values, matrix[0, used], interval_counts)

    def resample(self, iterations: int, rng: np.random.Generator) -> np.ndarray:
        """Return bucket counts of ``iterations`` bootstrap replicates, one per row."""
        if self.interval_counts is None:
            total = self.count
            probabilities = self.total_counts / total
            return rng.multinomial(total, probabilities, size=iterations)
        intervals = len(self.interval_counts)
        picks = rng.multinomial(
            intervals, np.full(intervals, 1 / intervals), iterations
        )
        return picks @ self.interval_counts


def values_at_percentile(
    counts: np.ndarray, values_us: np.ndarray, percentile: float
) -> np.ndarray:
    """Read one percentile from each row of bucket counts.

    The rule matches ``HdrHistogram.get_value_at_percentile``: the target count
    is ``percentile * total / 100`` rounded half up and at least 1, and the
    value is the highest value of the first bucket that reaches it.
    """
    cumulative = np.cumsum(counts, axis=1)
    totals = cumulative[:, -1]
    targets = np.maximum(1, np.floor(min(percentile, 100.0) * totals / 100 + 0.5))
    first = np.argmax(cumulative >= targets[:, None], axis=1)
    return values_us[first]


def bootstrap_values(
    source: ResamplingSource,
    percentile: float,
    iterations: int = DEFAULT_ITERATIONS,
    seed: int = 0,
) -> np.ndarray:
    """Return the percentile of each of ``iterations`` bootstrap replicates.

    Raises:
        ValueError: ``iterations`` is below 1 or above ``MAX_ITERATIONS``, or the
            source has no samples.
    """
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise ValueError(
            f"invalid bootstrap iterations {iterations}: use 1 to {MAX_ITERATIONS}"
        )
    if source.count == 0:
        raise ValueError("no latency samples to resample")
    rng = np.random.default_rng(seed)
    return values_at_percentile(
        source.resample(iterations, rng), source.values_us, percentile
    )


def difference_interval(
    baseline: ResamplingSource,
    candidate: ResamplingSource,
    percentile: float,
    confidence: float = 0.95,
    iterations: int = DEFAULT_ITERATIONS,
    seed: int = 0,
) -> tuple[float, float]:
    """Return a percentile bootstrap interval of candidate minus baseline in us.

    The two runs are resampled independently with different seeds derived from
    ``seed``, so the result is the same on every call with the same arguments.
    """
    base = bootstrap_values(baseline, percentile, iterations, seed)
    other = bootstrap_values(candidate, percentile, iterations, seed + 1)
    differences = other.astype(np.float64) - base
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(differences, [tail, 100 - tail])
    return float(low), float(high)
