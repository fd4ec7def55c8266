"""HDR latency histograms in microseconds.

Locust keeps response times in whole milliseconds rounded to two significant
digits. These histograms keep three significant digits from 1 us to 1 hour, and
they encode losslessly (HdrHistogram's compressed base64 form) so that runs can
be stored in a report and merged later.
"""

from __future__ import annotations

from hdrh.histogram import HdrHistogram

__all__ = ["LatencyHistogram", "SUMMARY_PERCENTILES"]

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3

SUMMARY_PERCENTILES = (50.0, 90.0, 99.0, 99.9)
"""Percentiles printed in summaries and stored in reports."""


class LatencyHistogram:
    """A latency histogram with values in microseconds (1 us to 1 hour, 3 digits)."""

    def __init__(self, hdr: HdrHistogram | None = None) -> None:
        self._hdr = hdr or HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        self._delta: HdrHistogram | None = None
        self.overflow_count = 0
        """Samples above 1 hour, which are clamped to 1 hour when recorded."""

    def record_us(self, latency_us: float) -> None:
        """Record one latency; values below 1 us count as 1 us."""
        value = max(LOWEST_US, round(latency_us))
        if value > HIGHEST_US:
            self.overflow_count += 1
            value = HIGHEST_US
        self._hdr.record_value(value)
        if self._delta is not None:
            self._delta.record_value(value)

    @property
    def hdr(self) -> HdrHistogram:
        """The underlying ``hdrh`` histogram, for HdrHistogram's own tools."""
        return self._hdr

    @property
    def count(self) -> int:
        return self._hdr.get_total_count()

    def value_at_percentile(self, percentile: float) -> int:
        return self._hdr.get_value_at_percentile(percentile)

    def add(self, other: LatencyHistogram) -> None:
        """Add another histogram's samples to this one."""
        self._hdr.add(other._hdr)
        self.overflow_count += other.overflow_count

    def summary(self) -> dict[str, float | int | None]:
        """Return count, min, mean, max and the summary percentiles in microseconds.

        An empty histogram gives ``None`` for every statistic, so that a report
        never shows a zero latency that was not measured.
        """
        keys = [f"p{p:g}".replace(".", "_") for p in SUMMARY_PERCENTILES]
        if self.count == 0:
            empty: dict[str, float | int | None] = {"count": 0}
            empty.update(dict.fromkeys(["min", "mean", *keys, "max"]))
            return empty
        summary: dict[str, float | int | None] = {
            "count": self.count,
            "min": self._hdr.get_min_value(),
            "mean": round(self._hdr.get_mean_value(), 1),
        }
        for key, percentile in zip(keys, SUMMARY_PERCENTILES, strict=True):
            summary[key] = self.value_at_percentile(percentile)
        summary["max"] = self._hdr.get_max_value()
        return summary

    def track_delta(self) -> None:
        """Also record new samples in a delta that ``take_delta`` hands out."""
        if self._delta is None:
            self._delta = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)

    def take_delta(self) -> str | None:
        """Return the samples recorded since the last call, encoded, or None.

        Adding every delta a worker hands out gives exactly its whole
        histogram, which is how a distributed run merges without loss.
        """
        if self._delta is None or self._delta.get_total_count() == 0:
            return None
        encoded = self._delta.encode().decode("ascii")
        self._delta.reset()
        return encoded

    def encode(self) -> str:
        """Return the compressed base64 form that HdrHistogram tools read."""
        return self._hdr.encode().decode("ascii")

    @classmethod
    def decode(cls, encoded: str) -> LatencyHistogram:
        return cls(HdrHistogram.decode(encoded))


class IntervalHistograms:
    """Per-interval latency histograms, compressed once their interval closes.

    An uncompressed histogram over 1 us to 1 hour takes about 180 kB, so a
    long run keeps only the open interval's histogram live and the others in
    HdrHistogram's compressed form, a few hundred bytes each.
    """

    def __init__(self) -> None:
        self._closed: dict[int, str] = {}
        self._open_key: int | None = None
        self._open: LatencyHistogram | None = None

    def record_us(self, key: int, latency_us: float) -> None:
        """Record a latency in interval ``key``; a new key closes the open one."""
        if key != self._open_key:
            self._close()
            self._open_key = key
            self._open = LatencyHistogram()
            if key in self._closed:
                self._open.add(LatencyHistogram.decode(self._closed.pop(key)))
        self._open.record_us(latency_us)

    def add_encoded(self, key: int, encoded: str) -> None:
        """Add an encoded histogram's samples to interval ``key``."""
        if key == self._open_key:
            self._open.add(LatencyHistogram.decode(encoded))
            return
        if key in self._closed:
            merged = LatencyHistogram.decode(self._closed[key])
            merged.add(LatencyHistogram.decode(encoded))
            encoded = merged.encode()
        self._closed[key] = encoded

    def encoded(self) -> dict[int, str]:
        """Return every interval's histogram in compressed form, by key."""
        result = dict(self._closed)
        if self._open is not None:
            result[self._open_key] = self._open.encode()
        return dict(sorted(result.items()))

    def rekeyed(self, key_of) -> IntervalHistograms:
        """Return a copy whose keys are ``key_of(key)``; equal new keys add up."""
        copy = IntervalHistograms()
        for key, encoded in self.encoded().items():
            copy.add_encoded(key_of(key), encoded)
        return copy

    def _close(self) -> None:
        if self._open is not None:
            self._closed[self._open_key] = self._open.encode()
            self._open = None
            self._open_key = None
