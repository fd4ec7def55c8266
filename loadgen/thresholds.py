"""Regression thresholds for ``loadgen compare``, from options or a TOML file.

A threshold sets how much worse a candidate may be than its baseline:

- ``--max-regression p99=10%``: the candidate's p99 may be up to 10% above the
  baseline's. ``p99=2ms`` (or ``500us``, ``0.5s``) allows an absolute rise.
  For throughput, a regression is a fall, and a bare number is events per
  second. For error_rate, a percentage is in percentage points of the failed
  share (``error_rate=0.1%`` allows one more failure per 1,000 events).
- ``--min-ratio throughput=0.95``: candidate divided by baseline must be at
  least 0.95. Only metrics where higher is better take a ratio.

The TOML file has the same two tables::

    [max_regression]
    p99 = "10%"
    p50 = "2ms"

    [min_ratio]
    throughput = 0.95
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from loadgen.errors import UsageProblem

__all__ = [
    "DEFAULT_THRESHOLDS",
    "LATENCY_METRICS",
    "METRICS",
    "Threshold",
    "load_thresholds",
    "parse_threshold",
    "resolve_thresholds",
]

LATENCY_METRICS = ("p50", "p90", "p99", "p99_9", "max")
METRICS = ("throughput", *LATENCY_METRICS, "error_rate")
"""Metrics that compare reports, in the order tables show them."""

HIGHER_IS_BETTER = {"throughput"}

METRIC_ALIASES = {"p99.9": "p99_9", "p999": "p99_9", "error-rate": "error_rate"}

LATENCY_UNITS_US = {"us": 1, "ms": 1000, "s": 1_000_000}

NUMBER = r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+"


@dataclass(frozen=True)
class Threshold:
    """How much worse one metric may get before the change counts.

    ``kind`` is ``relative`` (a fraction of the baseline, 0.1 for 10%),
    ``absolute`` (in the metric's unit: us, events/s, or a failed share) or
    ``ratio`` (the lowest candidate/baseline ratio).
    """

    metric: str
    kind: str
    value: float

    def allows(self, baseline: float, candidate: float) -> bool:
        """Return whether the candidate stays within this threshold."""
        if self.kind == "ratio":
            if baseline == 0:
                return True
            return candidate / baseline >= self.value
        worse = (
            baseline - candidate
            if self.metric in HIGHER_IS_BETTER
            else (candidate - baseline)
        )
        if self.kind == "relative":
            return worse <= self.value * abs(baseline)
        return worse <= self.value

    def allowed_change(self, baseline: float) -> float | None:
        """Return how far the metric may move in its worse direction, or None.

        The amount is positive for a rise of a lower-is-better metric and for
        a fall of throughput. Ratios return None because they bound a quotient.
        """
        if self.kind == "ratio":
            return None
        if self.kind == "relative":
            return self.value * abs(baseline)
        return self.value

    def describe(self) -> str:
        """Return the threshold as the option value that sets it."""
        if self.kind == "ratio":
            return f"ratio >= {self.value:g}"
        if self.kind == "relative":
            return (
                f"+{self.value * 100:g}%"
                if self.metric not in HIGHER_IS_BETTER
                else (f"-{self.value * 100:g}%")
            )
        if self.metric == "error_rate":
            return f"+{self.value * 100:g} pp"
        if self.metric == "throughput":
            return f"-{self.value:g}/s"
        return f"+{self.value / 1000:g} ms"


DEFAULT_THRESHOLDS = {
    "throughput": Threshold("throughput", "ratio", 0.95),
    "p50": Threshold("p50", "relative", 0.10),
    "p90": Threshold("p90", "relative", 0.10),
    "p99": Threshold("p99", "relative", 0.10),
    "error_rate": Threshold("error_rate", "absolute", 0.001),
}
"""Thresholds used unless an option or the file sets that metric.

p99.9 and max are left out because a run of a few minutes has few probe
samples above p99, so they move a lot between reruns of the same load.
"""


def parse_threshold(text: str, kind: str) -> Threshold:
    """Parse one ``METRIC=VALUE`` option value.

    Args:
        text: for example ``p99=10%``, ``p50=2ms`` or ``throughput=0.95``.
        kind: ``max_regression`` or ``min_ratio``.

    Raises:
        UsageProblem: an unknown metric, a value without a usable unit, or a
            ratio on a metric where lower is better.
    """
    option = "--" + kind.replace("_", "-")
    name, separator, value = text.partition("=")
    if not separator or not value.strip():
        raise UsageProblem(f"invalid {option} {text!r}: use METRIC=VALUE, e.g. p99=10%")
    return _threshold(name.strip(), value.strip(), kind, f"{option} {text!r}")


def load_thresholds(path: str | Path) -> dict[str, Threshold]:
    """Read thresholds from a TOML file with max_regression and min_ratio tables.

    Raises:
        UsageProblem: the file is missing or invalid, naming the file and key.
    """
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageProblem(f"{path}: thresholds file not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UsageProblem(f"{path}: invalid thresholds file: {error}") from None
    unknown = set(document) - {"max_regression", "min_ratio"}
    if unknown:
        raise UsageProblem(
            f"{path}: unknown table {sorted(unknown)[0]!r}; "
            "use [max_regression] and [min_ratio]"
        )
    thresholds: dict[str, Threshold] = {}
    for kind in ("max_regression", "min_ratio"):
        table = document.get(kind, {})
        if not isinstance(table, Mapping):
            raise UsageProblem(f"{path}: {kind} must be a table of METRIC = VALUE")
        for name, value in table.items():
            where = f"{path}: {kind}.{name}"
            threshold = _threshold(name, str(value), kind, where)
            thresholds[threshold.metric] = threshold
    return thresholds


def resolve_thresholds(
    file: str | Path | None,
    max_regressions: Iterable[str] = (),
    min_ratios: Iterable[str] = (),
) -> dict[str, Threshold]:
    """Combine the defaults, the file and the options, later ones winning per metric."""
    thresholds = dict(DEFAULT_THRESHOLDS)
    if file is not None:
        thresholds.update(load_thresholds(file))
    for text in max_regressions:
        threshold = parse_threshold(text, "max_regression")
        thresholds[threshold.metric] = threshold
    for text in min_ratios:
        threshold = parse_threshold(text, "min_ratio")
        thresholds[threshold.metric] = threshold
    return thresholds


def _threshold(name: str, value: str, kind: str, where: str) -> Threshold:
    metric = METRIC_ALIASES.get(name.lower(), name.lower())
    if metric not in METRICS:
        known = ", ".join(METRICS)
        raise UsageProblem(
            f"invalid {where}: unknown metric {name!r}; use one of {known}"
        )
    if kind == "min_ratio":
        if metric not in HIGHER_IS_BETTER:
            raise UsageProblem(
                f"invalid {where}: a ratio applies only to throughput; "
                f"use --max-regression {metric}=10% for metrics where lower is better"
            )
        return Threshold(metric, "ratio", _number(value, where))
    match = re.fullmatch(rf"({NUMBER})\s*(%|us|ms|s)?", value)
    if match is None:
        raise UsageProblem(f"invalid {where}: expected a number with %, us, ms or s")
    amount, unit = float(match.group(1)), match.group(2)
    if unit == "%":
        # A share of failed events has no useful relative change from 0.
        if metric == "error_rate":
            return Threshold(metric, "absolute", amount / 100)
        return Threshold(metric, "relative", amount / 100)
    if metric in LATENCY_METRICS:
        if unit is None:
            raise UsageProblem(
                f"invalid {where}: give latency with a unit, e.g. 10%, 2ms or 500us"
            )
        return Threshold(metric, "absolute", amount * LATENCY_UNITS_US[unit])
    if unit is not None:
        raise UsageProblem(f"invalid {where}: {metric} takes a percentage or a number")
    return Threshold(metric, "absolute", amount)


def _number(value: str, where: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise UsageProblem(f"invalid {where}: expected a number such as 0.95") from None
    if not number > 0:
        raise UsageProblem(f"invalid {where}: use a ratio above 0")
    return number
