"""Interval histograms in the HdrHistogram log format (``.hlog``).

HdrHistogram's own log tools (``HistogramLogProcessor`` in Java, ``hdrh.log``
in Python) read these files. Each line is one second of probe samples of the
latency from the intended send time, in microseconds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hdrh.log import HistogramLogWriter

from loadgen.histogram import IntervalHistograms, LatencyHistogram

__all__ = ["write_interval_log"]

US_PER_MS = 1000.0
"""The log's max column is in milliseconds, as the Java tools print it."""


def write_interval_log(
    path: str | Path,
    intervals: IntervalHistograms,
    started_at: datetime,
    interval_s: float = 1.0,
) -> Path:
    """Write one interval line per second that has samples; return the path."""
    path = Path(path)
    with path.open("w", encoding="ascii") as file:
        writer = HistogramLogWriter(file)
        writer.output_log_format_version()
        start_epoch_s = started_at.timestamp()
        writer.output_comment(
            f"[StartTime: {start_epoch_s:.3f} (seconds since epoch), "
            f"{started_at.astimezone(UTC).isoformat(timespec='milliseconds')}]"
        )
        writer.output_comment("[send-to-fire latency from intended send time, us]")
        writer.output_legend()
        for second, encoded in intervals.encoded().items():
            writer.output_interval_histogram(
                LatencyHistogram.decode(encoded).hdr,
                start_time_stamp_sec=second * interval_s,
                end_time_stamp_sec=(second + 1) * interval_s,
                max_value_unit_ratio=US_PER_MS,
            )
    return path
