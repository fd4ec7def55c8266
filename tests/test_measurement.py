"""The probe against a real reference server: stalls, intervals and the log."""

import json
import time

import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from loadgen.feeds import SineFeed
from loadgen.health import HealthClient
from loadgen.probe import LatencyProbe
from loadgen.producer import Producer

STALL_S = 0.3


class StallingProbe(LatencyProbe):
    """A probe whose loop freezes once, as a generator under a GC pause would."""

    def __init__(self, *args, stall_after: int, **kwargs):
        super().__init__(*args, **kwargs)
        self._stall_after = stall_after

    def probe_once(self, intended_s=None):
        if self.sent == self._stall_after:
            time.sleep(STALL_S)
        sample = super().probe_once(intended_s)
        if self.sent >= 20:
            self.stop()
        return sample


@pytest.fixture
def probe_parts(reference_server):
    producer = Producer(reference_server.url, "orderbook", reference_server.token)
    producer.connect()
    health = HealthClient(reference_server.url, reference_server.token)
    yield producer, health
    producer.close()
    health.close()


def test_stall_shows_only_from_intended(probe_parts):
    producer, health = probe_parts
    probe = StallingProbe(
        producer,
        health,
        "price_signal",
        SineFeed(),
        poll_interval_s=0.001,
        probe_interval_s=0.02,
        stall_after=5,
    )
    probe.run()
    assert probe.histogram.count == 20
    stall_us = STALL_S * 1e6
    # The stalled probe and those queued behind it went out late: the
    # corrected histogram carries the stall, the uncorrected one does not.
    assert probe.histogram_from_intended.summary()["max"] >= 0.8 * stall_us
    assert probe.histogram.summary()["max"] < 0.3 * stall_us
    assert probe.histogram_from_intended.value_at_percentile(
        90
    ) > probe.histogram.value_at_percentile(90)


def test_samples_carry_error_bounds(probe_parts):
    producer, health = probe_parts
    probe = LatencyProbe(
        producer, health, "price_signal", SineFeed(), poll_interval_s=0.005
    )
    samples = [probe.probe_once() for _ in range(10)]
    assert all(sample is not None for sample in samples)
    for sample in samples:
        # With inline fires the first poll detects the fire: the window runs from
        # the send to that poll's response and holds the midpoint estimate.
        assert 0 < sample.latency_us <= sample.error_bound_us
        assert sample.error_bound_us < 100_000


def test_probe_times_out_on_paused_graph(reference_server, probe_parts):
    import websocket

    producer, health = probe_parts
    control = websocket.create_connection(
        f"{reference_server.ws_url}/v1/ws/reactor/price_signal",
        header=[f"Authorization: Bearer {reference_server.token}"],
    )
    control.send(json.dumps({"type": "Pause"}))
    assert json.loads(control.recv())["type"] == "Paused"
    control.close()
    probe = LatencyProbe(producer, health, "price_signal", SineFeed(), timeout_s=0.3)
    assert probe.probe_once() is None
    assert probe.timed_out == 1
    assert probe.histogram.count == 0


@pytest.mark.slow
def test_run_writes_readable_interval_log(tmp_path):
    import subprocess
    import sys

    report_path = tmp_path / "r.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadgen",
            "run",
            "--duration",
            "3",
            "--users",
            "2",
            "--rate",
            "200",
            "--probe-interval-ms",
            "50",
            "-o",
            str(report_path),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(report_path.read_text())
    log_path = tmp_path / report["timeline"]["interval_log"]
    reader = HistogramLogReader(str(log_path), HdrHistogram(1, 3_600_000_000, 3))
    total = 0
    while (interval := reader.get_next_interval_histogram()) is not None:
        total += interval.get_total_count()
    intended = report["latency"]["send_to_fire_from_intended"]["summary"]
    assert total == intended["count"]
    timeline = report["timeline"]
    # One more interval may hold the probe's last samples after the load.
    assert len(timeline["sent"]) in (3, 4)
    assert len(timeline["fired"]) == len(timeline["sent"])
    assert sum(timeline["sent"]) == report["counts"]["sent"]
    assert report["throughput"]["rate_reached"] is True
    assert report["self_check"]["kept_up"] is True
    assert report["self_check"]["generator_cpu_percent"] > 0
