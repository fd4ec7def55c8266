"""Lossless merging of worker measurements in Locust's distributed mode.

Locust ships response times from workers to the master rounded to two
significant digits in whole milliseconds. Here each worker adds, to every
stats report it sends (Locust's ``report_to_master`` event), the HDR histogram
samples and the counts recorded since its previous report, encoded as
compressed HdrHistogram deltas. The master adds them up in ``worker_report``,
so its histograms are exactly those of all samples. The probe runs on one
worker only (index 0), so fire detection happens once for the whole cluster.

Per-second series travel keyed by Unix second, so the master can line up
workers whose clocks started at different moments.
"""

from __future__ import annotations

import time
from collections import Counter

from loadgen.histogram import IntervalHistograms, LatencyHistogram

__all__ = [
    "FINAL_MESSAGE",
    "PAYLOAD_KEY",
    "WorkerShipper",
    "ClusterMerger",
    "MergedProbe",
]

PAYLOAD_KEY = "loadgen"
"""Key of this project's data inside Locust's worker stats message."""

FINAL_MESSAGE = "loadgen_final"
"""Custom message that carries a worker's last delta when its test stops."""

STATE_HISTOGRAMS = ("schedule_lag", "connect_time")
PROBE_HISTOGRAMS = ("histogram", "histogram_from_intended", "error_bound")


def _perf_to_unix(perf_s: float) -> float:
    return time.time() - (time.perf_counter() - perf_s)


class WorkerShipper:
    """Builds the delta a worker adds to each stats report."""

    def __init__(self, state) -> None:
        self._state = state
        self._shipped_counts: dict = {}
        self._shipped_series: dict[str, list[int]] = {}
        self._shipped_outages = 0
        self._shipped_intervals: set[int] = set()
        self._probe_tracked = False
        for name in STATE_HISTOGRAMS:
            getattr(state, name).track_delta()

    def payload(self, final: bool = False) -> dict:
        """Return everything recorded since the previous payload."""
        state = self._state
        payload = {
            "counts": self._count_deltas(),
            "series": self._series_deltas(),
            "histograms": self._histogram_deltas(state, STATE_HISTOGRAMS),
            "outages": self._outage_deltas(),
            "probe": self._probe_payload(final),
        }
        return payload

    def _count_deltas(self) -> dict:
        counters = self._state.counters
        current = {
            "sent": counters.sent,
            "late": counters.late,
            "bytes_sent": counters.bytes_sent,
            "connects": counters.connects,
        }
        deltas = {
            key: value - self._shipped_counts.get(key, 0)
            for key, value in current.items()
        }
        for name in ("failed_by_kind", "connect_failures_by_kind"):
            now = Counter(getattr(counters, name))
            before = self._shipped_counts.get(name, Counter())
            deltas[name] = dict(now - before)
            current[name] = now
        self._shipped_counts = current
        return deltas

    def _series_deltas(self) -> dict:
        """Return per-second count changes keyed by Unix second."""
        timeline = self._state.counters.timeline
        origin = _perf_to_unix(timeline.start_s)
        deltas: dict[str, dict[int, int]] = {}
        for name, values in timeline.series.items():
            before = self._shipped_series.get(name, [])
            changed = {}
            for index, value in enumerate(values):
                previous = before[index] if index < len(before) else 0
                if value != previous:
                    second = int(origin + index * timeline.interval_s)
                    changed[second] = changed.get(second, 0) + value - previous
            deltas[name] = changed
            self._shipped_series[name] = list(values)
        return deltas

    def _outage_deltas(self) -> list[tuple[float, float]]:
        windows = self._state.outage_windows[self._shipped_outages :]
        self._shipped_outages = len(self._state.outage_windows)
        return [(_perf_to_unix(start), _perf_to_unix(end)) for start, end in windows]

    def _probe_payload(self, final: bool) -> dict | None:
        probe = self._state.probe
        if probe is None:
            return None
        if self._probe_tracked:
            histograms = self._histogram_deltas(probe, PROBE_HISTOGRAMS)
        else:
            # The first payload carries everything so far; from then on the
            # histograms keep deltas. No greenlet switch can fall in between.
            histograms = {
                name: getattr(probe, name).encode()
                for name in PROBE_HISTOGRAMS
                if getattr(probe, name).count
            }
            for name in PROBE_HISTOGRAMS:
                getattr(probe, name).track_delta()
            self._probe_tracked = True
        origin = _perf_to_unix(probe.interval_origin_s)
        current_second = int(time.perf_counter() - probe.interval_origin_s)
        intervals = {}
        for second, encoded in probe.intervals.encoded().items():
            done = second < current_second or final
            if done and second not in self._shipped_intervals:
                intervals[int(origin + second)] = encoded
                self._shipped_intervals.add(second)
        truth = self._state.ground_truth
        return {
            "histograms": histograms,
            "intervals": intervals,
            "sent": probe.sent,
            "timed_out": probe.timed_out,
            "missed": probe.missed,
            "fires_failed": probe.fires_failed,
            "outages": probe.outages,
            "detection_method": probe.detection_method,
            "validation": None if truth is None else truth.validation.as_dict(),
        }

    @staticmethod
    def _histogram_deltas(owner, names) -> dict[str, str]:
        deltas = {}
        for name in names:
            delta = getattr(owner, name).take_delta()
            if delta is not None:
                deltas[name] = delta
        return deltas


class MergedProbe:
    """The probe's measurements as the master assembles them from a worker."""

    def __init__(self) -> None:
        self.histogram = LatencyHistogram()
        self.histogram_from_intended = LatencyHistogram()
        self.error_bound = LatencyHistogram()
        self.unix_intervals = IntervalHistograms()
        self.intervals = IntervalHistograms()
        """Per-second histograms keyed by second since the run's start."""
        self.sent = self.timed_out = self.missed = self.outages = 0
        self.fires_failed = 0
        self.detection_method = "poll"
        self.validation: dict | None = None

    def align(self, start_unix_s: float) -> None:
        """Key the per-second histograms by second since ``start_unix_s``."""
        self.intervals = self.unix_intervals.rekeyed(
            lambda second: max(0, int(second - start_unix_s))
        )


class ClusterMerger:
    """Adds worker deltas into the master's run state."""

    def __init__(self, state) -> None:
        self._state = state
        self.reports = 0
        self.bytes_received = 0
        self.series: dict[str, Counter[int]] = {
            name: Counter() for name in state.counters.timeline.series
        }
        self.unix_outages: list[tuple[float, float]] = []
        self.probe_totals: dict[str, dict] = {}
        self.finished_workers: set[str] = set()
        """Workers whose last delta has arrived."""
        self._waiting: set[str] = set()
        self._on_finished = None

    def merge(self, client_id: str, payload: dict) -> None:
        """Add one worker's delta; called from Locust's ``worker_report`` event."""
        self.reports += 1
        state = self._state
        counters = state.counters
        counts = payload["counts"]
        counters.sent += counts["sent"]
        counters.late += counts["late"]
        counters.bytes_sent += counts["bytes_sent"]
        counters.connects += counts["connects"]
        counters.failed_by_kind.update(counts["failed_by_kind"])
        counters.connect_failures_by_kind.update(counts["connect_failures_by_kind"])
        for name, changes in payload["series"].items():
            for second, count in changes.items():
                self.series[name][int(second)] += count
        for name, encoded in payload["histograms"].items():
            getattr(state, name).add(LatencyHistogram.decode(encoded))
        self.unix_outages.extend(tuple(window) for window in payload["outages"])
        if payload.get("probe") is not None:
            self._merge_probe(client_id, payload["probe"])

    def merge_final(self, client_id: str, payload: dict) -> None:
        """Add a worker's last delta, sent when its test stopped."""
        self.merge(client_id, payload)
        self.finished_workers.add(client_id)
        self._call_if_finished()

    def when_finished(self, client_ids, callback) -> None:
        """Call ``callback`` once each of ``client_ids`` has sent its last delta."""
        self._waiting = set(client_ids)
        self._on_finished = callback
        self._call_if_finished()

    def _call_if_finished(self) -> None:
        if self._on_finished is not None and self._waiting <= self.finished_workers:
            callback, self._on_finished = self._on_finished, None
            callback()

    def wait_for_workers(self, client_ids, timeout_s: float, sleep) -> bool:
        """Wait until each of ``client_ids`` has sent its last delta.

        Locust's master can see a worker's user count drop to zero before that
        worker's test_stop listeners, which send the last delta, have run.

        Returns:
            Whether every last delta arrived within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        waiting = set(client_ids) - self.finished_workers
        while waiting and time.monotonic() < deadline:
            sleep(0.05)
            waiting = set(client_ids) - self.finished_workers
        return not waiting

    def _merge_probe(self, client_id: str, probe: dict) -> None:
        merged = self._state.probe
        if merged is None:
            merged = self._state.probe = MergedProbe()
        for name, encoded in probe["histograms"].items():
            getattr(merged, name).add(LatencyHistogram.decode(encoded))
        for second, encoded in probe["intervals"].items():
            merged.unix_intervals.add_encoded(int(second), encoded)
        self.probe_totals[client_id] = probe
        merged.sent = sum(p["sent"] for p in self.probe_totals.values())
        merged.timed_out = sum(p["timed_out"] for p in self.probe_totals.values())
        merged.missed = sum(p["missed"] for p in self.probe_totals.values())
        merged.outages = sum(p["outages"] for p in self.probe_totals.values())
        merged.fires_failed = sum(
            p.get("fires_failed", 0) for p in self.probe_totals.values()
        )
        merged.detection_method = probe["detection_method"]
        merged.validation = probe["validation"]

    def finish(self, start_perf_s: float) -> None:
        """Turn Unix-second series into the run's timeline and outage windows."""
        state = self._state
        start_unix = _perf_to_unix(start_perf_s)
        timeline = state.counters.timeline
        for name, counts in self.series.items():
            values: list[int] = []
            for second, count in counts.items():
                index = max(0, int(second - int(start_unix)))
                if index >= len(values):
                    values.extend([0] * (index + 1 - len(values)))
                values[index] += count
            timeline.series[name] = values
        offset = start_perf_s - start_unix
        state.outage_windows = [(s + offset, e + offset) for s, e in self.unix_outages]
        if isinstance(state.probe, MergedProbe):
            state.probe.align(start_unix)
