"""Bootstrap intervals, threshold parsing and compare verdicts on chosen samples."""

import numpy as np
import pytest

from loadgen.bootstrap import (
    MAX_ITERATIONS,
    ResamplingSource,
    bootstrap_values,
    difference_interval,
    values_at_percentile,
)
from loadgen.compare import compare_reports
from loadgen.errors import UsageProblem
from loadgen.histogram import LatencyHistogram
from loadgen.render_compare import render_comparison
from loadgen.report_schema import ReportError
from loadgen.synthetic_report import synthetic_report
from loadgen.thresholds import (
    DEFAULT_THRESHOLDS,
    Threshold,
    load_thresholds,
    parse_threshold,
    resolve_thresholds,
)


def lognormal_report(seed: int, median_us: float, seconds: int = 20) -> dict:
    rng = np.random.default_rng(seed)
    return synthetic_report(
        [list(rng.lognormal(np.log(median_us), 0.4, 50)) for _ in range(seconds)]
    )


def source_of(report: dict) -> ResamplingSource:
    return ResamplingSource.from_encoded(
        report["latency"]["send_to_fire_from_intended"]["histogram"],
        report["timeline"]["latency_intervals"],
    )


@pytest.mark.parametrize("percentile", [1.0, 50.0, 90.0, 99.0, 99.9, 100.0])
def test_percentile_matches_hdr(percentile):
    report = lognormal_report(1, 1000)
    encoded = report["latency"]["send_to_fire"]["histogram"]
    source = ResamplingSource.from_encoded(encoded)
    value = values_at_percentile(
        source.total_counts[None, :], source.values_us, percentile
    )
    expected = LatencyHistogram.decode(encoded).value_at_percentile(percentile)
    assert value[0] == expected


def test_bootstrap_is_seeded():
    source = source_of(lognormal_report(1, 1000))
    first = bootstrap_values(source, 99.0, iterations=200, seed=7)
    again = bootstrap_values(source, 99.0, iterations=200, seed=7)
    other = bootstrap_values(source, 99.0, iterations=200, seed=8)
    assert source.unit == "interval"
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_bootstrap_iterations_are_bounded():
    source = source_of(lognormal_report(1, 1000))
    with pytest.raises(ValueError, match="invalid bootstrap iterations"):
        bootstrap_values(source, 50.0, iterations=MAX_ITERATIONS + 1)
    with pytest.raises(ValueError, match="invalid bootstrap iterations"):
        bootstrap_values(source, 50.0, iterations=0)


def test_interval_contains_zero_for_same_distribution():
    low, high = difference_interval(
        source_of(lognormal_report(1, 1000)), source_of(lognormal_report(2, 1000)), 50.0
    )
    assert low < 0 < high


def test_interval_excludes_zero_for_shift():
    low, high = difference_interval(
        source_of(lognormal_report(1, 1000)), source_of(lognormal_report(2, 1500)), 50.0
    )
    assert low > 0
    assert high > low


def test_few_intervals_resample_samples():
    report = lognormal_report(1, 1000, seconds=3)
    assert source_of(report).unit == "sample"


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("p99=10%", "max_regression", Threshold("p99", "relative", 0.10)),
        ("p99.9=25%", "max_regression", Threshold("p99_9", "relative", 0.25)),
        ("p50=2ms", "max_regression", Threshold("p50", "absolute", 2000.0)),
        ("max=500us", "max_regression", Threshold("max", "absolute", 500.0)),
        ("p90=0.5s", "max_regression", Threshold("p90", "absolute", 500_000.0)),
        (
            "error_rate=0.1%",
            "max_regression",
            Threshold("error_rate", "absolute", 0.001),
        ),
        ("throughput=5%", "max_regression", Threshold("throughput", "relative", 0.05)),
        ("throughput=50", "max_regression", Threshold("throughput", "absolute", 50.0)),
        ("throughput=0.95", "min_ratio", Threshold("throughput", "ratio", 0.95)),
    ],
)
def test_threshold_parsing(text, kind, expected):
    assert parse_threshold(text, kind) == expected


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("p99", "max_regression", "use METRIC=VALUE"),
        ("p98=10%", "max_regression", "unknown metric 'p98'"),
        ("p99=10", "max_regression", "give latency with a unit"),
        ("p99=fast", "max_regression", "expected a number with %"),
        ("throughput=5ms", "max_regression", "takes a percentage or a number"),
        ("p99=0.9", "min_ratio", "a ratio applies only to throughput"),
        ("throughput=0", "min_ratio", "use a ratio above 0"),
    ],
)
def test_threshold_errors(text, kind, expected):
    with pytest.raises(UsageProblem, match=expected):
        parse_threshold(text, kind)


def test_threshold_allows():
    relative = Threshold("p99", "relative", 0.10)
    assert relative.allows(1000, 1100)
    assert not relative.allows(1000, 1101)
    ratio = Threshold("throughput", "ratio", 0.95)
    assert ratio.allows(1000, 950)
    assert not ratio.allows(1000, 949)
    fall = Threshold("throughput", "relative", 0.05)
    assert fall.allows(1000, 2000)
    assert not fall.allows(1000, 900)


def test_thresholds_file_and_options(tmp_path):
    path = tmp_path / "thresholds.toml"
    path.write_text(
        '[max_regression]\np99 = "20%"\np50 = "1ms"\n[min_ratio]\nthroughput = 0.9\n'
    )
    from_file = load_thresholds(path)
    assert from_file["p99"] == Threshold("p99", "relative", 0.20)
    assert from_file["p50"] == Threshold("p50", "absolute", 1000.0)
    assert from_file["throughput"] == Threshold("throughput", "ratio", 0.9)
    combined = resolve_thresholds(path, ["p99=5%"], [])
    assert combined["p99"] == Threshold("p99", "relative", 0.05)
    assert combined["p90"] == DEFAULT_THRESHOLDS["p90"]


def test_thresholds_file_errors(tmp_path):
    with pytest.raises(UsageProblem, match="thresholds file not found"):
        load_thresholds(tmp_path / "absent.toml")
    path = tmp_path / "bad.toml"
    path.write_text("[limits]\np99 = 1\n")
    with pytest.raises(UsageProblem, match="unknown table 'limits'"):
        load_thresholds(path)


def verdicts(comparison) -> dict[str, str]:
    return {row.metric: row.verdict for row in comparison.metrics}


def test_compare_same_distribution_passes():
    comparison = compare_reports(
        lognormal_report(1, 1000), lognormal_report(2, 1000), DEFAULT_THRESHOLDS
    )
    assert not comparison.regressed
    assert comparison.latency == "send_to_fire_from_intended"
    assert comparison.resampling == {"baseline": "interval", "candidate": "interval"}


def test_compare_slower_candidate_regresses():
    comparison = compare_reports(
        lognormal_report(1, 1000), lognormal_report(2, 2000), DEFAULT_THRESHOLDS
    )
    result = verdicts(comparison)
    assert comparison.regressed
    assert result["p50"] == "regression"
    assert result["p99_9"] == "not checked"
    assert result["throughput"] == "ok"


def test_compare_noise_beats_threshold():
    """A tiny threshold alone would flag reruns; the interval keeps them ok."""
    thresholds = {"p99": Threshold("p99", "relative", 0.0)}
    baseline, candidate = lognormal_report(1, 1000), lognormal_report(3, 1000)
    comparison = compare_reports(baseline, candidate, thresholds)
    row = next(row for row in comparison.metrics if row.metric == "p99")
    assert row.candidate > row.baseline
    assert row.verdict == "within noise"
    assert not comparison.regressed


def test_compare_throughput_and_errors():
    baseline = synthetic_report([[1000] * 20] * 10)
    candidate = synthetic_report([[1000] * 20] * 10, sent_per_s=800, failed_per_s=10)
    result = verdicts(compare_reports(baseline, candidate, DEFAULT_THRESHOLDS))
    assert result["throughput"] == "regression"
    assert result["error_rate"] == "regression"


def test_compare_without_samples():
    empty = synthetic_report([[]] * 5)
    with pytest.raises(ReportError, match="^candidate: no latency samples"):
        compare_reports(lognormal_report(1, 1000), empty, DEFAULT_THRESHOLDS)


@pytest.mark.parametrize("output_format", ["text", "markdown", "json"])
def test_comparison_renders(output_format):
    comparison = compare_reports(
        lognormal_report(1, 1000), lognormal_report(2, 2000), DEFAULT_THRESHOLDS
    )
    text = render_comparison(comparison, output_format)
    assert "regression" in text.lower()
    assert "p99" in text
