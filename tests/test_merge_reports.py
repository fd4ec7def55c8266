"""``merge_reports``: exact histogram merge, summed counts, aligned timelines."""

import numpy as np
import pytest

from loadgen.histogram import LatencyHistogram
from loadgen.merge import merge_reports
from loadgen.report_schema import ReportError, validate_report
from loadgen.synthetic_report import synthetic_report

PERCENTILES = [0.1, 1, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100]


def samples(seed: int, median_us: float, seconds: int) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    return [list(rng.lognormal(np.log(median_us), 0.6, 40)) for _ in range(seconds)]


def shifted(report: dict, seconds: int) -> dict:
    report["started_at"] = f"2026-12-04T15:00:{seconds:02d}.000Z"
    return report


@pytest.fixture
def runs():
    first_samples = samples(1, 800, 6)
    second_samples = samples(2, 3000, 4)
    first = synthetic_report(first_samples, sent_per_s=500, failed_per_s=2)
    second = shifted(synthetic_report(second_samples, sent_per_s=300), 3)
    return first, second, first_samples + second_samples


def test_merged_histogram_is_exact(runs):
    first, second, all_samples = runs
    merged = merge_reports([first, second], ["a.json", "b.json"])
    expected = LatencyHistogram()
    for second_samples in all_samples:
        for latency_us in second_samples:
            expected.record_us(latency_us)
    for key in ("send_to_fire", "send_to_fire_from_intended"):
        decoded = LatencyHistogram.decode(merged["latency"][key]["histogram"])
        assert decoded.count == expected.count
        for percentile in PERCENTILES:
            assert decoded.value_at_percentile(percentile) == (
                expected.value_at_percentile(percentile)
            ), (key, percentile)
        assert merged["latency"][key]["summary"] == expected.summary()


def test_counts_are_summed(runs):
    first, second, _ = runs
    merged = merge_reports([first, second], ["a.json", "b.json"])
    counts = merged["counts"]
    assert counts["sent"] == 6 * 500 + 4 * 300
    assert counts["failed"] == 6 * 2
    assert counts["attempted"] == counts["sent"] + counts["failed"]
    assert counts["failed_by_kind"] == {"connection": 12}
    assert merged["config"]["users"] == 20
    assert merged["latency"]["send_to_fire"]["probes_sent"] == 10 * 40


def test_timelines_align_by_start(runs):
    first, second, _ = runs
    merged = merge_reports([first, second], ["a.json", "b.json"])
    timeline = merged["timeline"]
    assert timeline["sent"] == [500, 500, 500, 800, 800, 800, 300]
    assert timeline["failed"] == [2, 2, 2, 2, 2, 2, 0]
    assert len(timeline["latency_intervals"]) == 7
    fourth = LatencyHistogram.decode(timeline["latency_intervals"][3])
    assert fourth.count == 80


def test_rates_are_recomputed(runs):
    first, second, _ = runs
    merged = merge_reports([first, second], ["a.json", "b.json"])
    assert merged["duration_s"] == 7.0
    assert merged["throughput"]["send_rate_per_s"] == round(4200 / 7.0, 1)
    assert merged["throughput"]["target_rate_per_s"] == 2000.0


def test_merged_report_is_valid(runs):
    first, second, _ = runs
    merged = merge_reports([first, second], ["a.json", "b.json"])
    validate_report(merged, "merged")
    assert "self_check" not in merged
    assert [item["report"] for item in merged["merged_from"]] == ["a.json", "b.json"]


def test_merge_rejects_one_report(runs):
    with pytest.raises(ReportError, match="at least two reports"):
        merge_reports([runs[0]], ["a.json"])


def test_merge_rejects_unequal_intervals(runs):
    first, second, _ = runs
    second["timeline"]["interval_s"] = 0.5
    with pytest.raises(ReportError, match="^b.json: timeline.interval_s 0.5 differs"):
        merge_reports([first, second], ["a.json", "b.json"])


def test_merge_without_timeline(runs):
    first, second, _ = runs
    del second["timeline"]
    merged = merge_reports([first, second], ["a.json", "b.json"])
    assert "timeline" not in merged
