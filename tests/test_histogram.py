import pytest

from loadgen.histogram import LatencyHistogram


def test_summary_percentiles_within_three_digits():
    histogram = LatencyHistogram()
    for value in range(1, 10_001):
        histogram.record_us(value)
    summary = histogram.summary()
    assert summary["count"] == 10_000
    assert summary["p50"] == pytest.approx(5000, rel=1e-3)
    assert summary["p99"] == pytest.approx(9900, rel=1e-3)
    assert summary["p99_9"] == pytest.approx(9990, rel=1e-3)
    assert summary["max"] == pytest.approx(10_000, rel=1e-3)


def test_empty_summary_has_no_numbers():
    summary = LatencyHistogram().summary()
    assert summary["count"] == 0
    assert summary["p99"] is None
    assert summary["max"] is None


def test_encode_decode_is_lossless():
    histogram = LatencyHistogram()
    for value in (3, 70, 1_500, 2_000_000, 2_000_000):
        histogram.record_us(value)
    decoded = LatencyHistogram.decode(histogram.encode())
    assert decoded.summary() == histogram.summary()


def test_add_merges_counts():
    first, second = LatencyHistogram(), LatencyHistogram()
    first.record_us(100)
    second.record_us(900)
    first.add(second)
    assert first.count == 2
    assert first.summary()["max"] == pytest.approx(900, rel=1e-3)


def test_out_of_range_values_are_clamped():
    histogram = LatencyHistogram()
    histogram.record_us(0.2)
    histogram.record_us(5e9)
    assert histogram.summary()["min"] == 1
    assert histogram.overflow_count == 1
