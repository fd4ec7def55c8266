"""Comparison of two run reports with thresholds and a noise-aware verdict.

A metric regresses only when the candidate is worse than the threshold allows
AND the whole bootstrap interval of the change lies beyond the threshold. A
change beyond the threshold whose interval reaches back inside it is reported
as within noise: reruns of the same load could differ that much.

Throughput and error rate have no interval, so their threshold alone decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from loadgen.bootstrap import DEFAULT_ITERATIONS, ResamplingSource, difference_interval
from loadgen.histogram import LatencyHistogram
from loadgen.report_schema import (
    HISTOGRAM_ERRORS,
    ReportError,
    interval_histograms,
    latency_key,
)
from loadgen.thresholds import HIGHER_IS_BETTER, LATENCY_METRICS, METRICS, Threshold

__all__ = [
    "Comparison",
    "MetricComparison",
    "VERDICTS",
    "compare_reports",
]

PERCENTILE_OF_METRIC = {
    "p50": 50.0,
    "p90": 90.0,
    "p99": 99.0,
    "p99_9": 99.9,
    "max": 100.0,
}

VERDICTS = ("ok", "within noise", "regression", "not checked", "n/a")
"""``ok``: within the threshold. ``within noise``: beyond the threshold, but the
interval reaches back inside it. ``not checked``: no threshold. ``n/a``: a value
is missing.
"""


@dataclass
class MetricComparison:
    """One row of a comparison: a metric in both runs and the verdict on it."""

    metric: str
    baseline: float | None
    candidate: float | None
    threshold: Threshold | None
    interval: tuple[float, float] | None
    """Bootstrap interval of candidate minus baseline, in the metric's unit."""
    verdict: str = "n/a"

    @property
    def change(self) -> float | None:
        if self.baseline is None or self.candidate is None:
            return None
        return self.candidate - self.baseline

    @property
    def relative_change(self) -> float | None:
        """Change as a fraction of the baseline; None when the baseline is 0."""
        change = self.change
        if change is None or not self.baseline:
            return None
        return change / self.baseline


@dataclass
class Comparison:
    """The result of ``compare_reports``."""

    baseline_name: str
    candidate_name: str
    latency: str
    """The latency entry compared: send_to_fire_from_intended or send_to_fire."""
    resampling: dict[str, str]
    """Resampling unit of each run's bootstrap: ``interval`` or ``sample``."""
    confidence: float
    iterations: int
    metrics: list[MetricComparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def regressed(self) -> bool:
        return any(metric.verdict == "regression" for metric in self.metrics)


def compare_reports(
    baseline: dict,
    candidate: dict,
    thresholds: Mapping[str, Threshold],
    names: tuple[str, str] = ("baseline", "candidate"),
    confidence: float = 0.95,
    iterations: int = DEFAULT_ITERATIONS,
    seed: int = 0,
) -> Comparison:
    """Compare a candidate run with a baseline run.

    Args:
        baseline, candidate: validated reports (see ``load_report``).
        thresholds: per metric, how much worse the candidate may be.
        names: how messages name the two reports, usually their paths.
        confidence: coverage of the bootstrap interval, between 0 and 1.
        iterations: bootstrap replicates per percentile.
        seed: seed of the bootstrap, so a comparison is repeatable.

    Raises:
        ReportError: a report has no latency samples to compare.
    """
    key = latency_key(baseline, candidate)
    sources = {}
    for name, report in zip(names, (baseline, candidate), strict=True):
        entry = report["latency"][key]
        if LatencyHistogram.decode(entry["histogram"]).count == 0:
            raise ReportError(
                f"{name}: no latency samples in latency.{key}; "
                "run longer or check that the probe's events fire the graph"
            )
        # Interval histograms hold samples from the intended send time only.
        intervals = interval_histograms(report) if key.endswith("_intended") else None
        try:
            sources[name] = ResamplingSource.from_encoded(entry["histogram"], intervals)
        except HISTOGRAM_ERRORS as error:
            raise ReportError(
                f"{name}: invalid timeline.latency_intervals: {error}"
            ) from None

    comparison = Comparison(
        baseline_name=names[0],
        candidate_name=names[1],
        latency=key,
        resampling={name: source.unit for name, source in sources.items()},
        confidence=confidence,
        iterations=iterations,
    )
    values = {
        metric: (_metric(baseline, metric, key), _metric(candidate, metric, key))
        for metric in METRICS
    }
    for metric in METRICS:
        base_value, candidate_value = values[metric]
        interval = None
        if metric in LATENCY_METRICS:
            interval = difference_interval(
                sources[names[0]],
                sources[names[1]],
                PERCENTILE_OF_METRIC[metric],
                confidence=confidence,
                iterations=iterations,
                seed=seed,
            )
        row = MetricComparison(
            metric, base_value, candidate_value, thresholds.get(metric), interval
        )
        row.verdict = _verdict(row)
        comparison.metrics.append(row)
    comparison.notes = _notes(baseline, candidate, comparison)
    return comparison


def _metric(report: dict, metric: str, key: str) -> float | None:
    if metric == "throughput":
        return report["throughput"]["send_rate_per_s"]
    if metric == "error_rate":
        counts = report["counts"]
        attempted = counts["attempted"]
        return counts["failed"] / attempted if attempted else None
    histogram = LatencyHistogram.decode(report["latency"][key]["histogram"])
    return histogram.summary()[metric]


def _verdict(row: MetricComparison) -> str:
    if row.baseline is None or row.candidate is None:
        return "n/a"
    if row.threshold is None:
        return "not checked"
    if row.threshold.allows(row.baseline, row.candidate):
        return "ok"
    if row.interval is None:
        return "regression"
    # Percentile bootstraps cover the tails too narrowly (an estimate from
    # reruns of synthetic lognormal samples), so the whole interval has to lie
    # beyond the threshold, not merely beyond zero.
    low, high = row.interval
    allowed = row.threshold.allowed_change(row.baseline)
    if row.metric in HIGHER_IS_BETTER:
        least_worse = -high
    else:
        least_worse = low
    if allowed is None or least_worse > allowed:
        return "regression"
    return "within noise"


def _notes(baseline: dict, candidate: dict, comparison: Comparison) -> list[str]:
    notes = []
    for name, unit in comparison.resampling.items():
        if unit == "sample":
            notes.append(
                f"{name}: too few per-second latency intervals, so the bootstrap "
                "resampled single samples and may understate the noise"
            )
    for name, report in zip(
        (comparison.baseline_name, comparison.candidate_name),
        (baseline, candidate),
        strict=True,
    ):
        status = report["outcome"]["status"]
        if status != "completed":
            notes.append(f"{name}: the run {status}: {report['outcome']['error']}")
        self_check = report.get("self_check")
        if self_check is not None and not self_check["kept_up"]:
            notes.append(
                f"{name}: the load generator did not keep up with its schedule, "
                "so its latencies may reflect the generator rather than the server"
            )
    differing = [
        key
        for key in ("users", "rate_per_s", "feed", "frame", "poll_interval_ms")
        if baseline["config"].get(key) != candidate["config"].get(key)
    ]
    # Reports written before the wire option existed sent JSON.
    if baseline["config"].get("wire", "json") != candidate["config"].get(
        "wire", "json"
    ):
        differing.append("wire")
    differing += [
        f"target.{key}"
        for key in ("graph", "server_profile")
        if baseline["target"].get(key) != candidate["target"].get(key)
    ]
    if differing:
        notes.append(f"the runs differ in configuration: {', '.join(differing)}")
    return notes
