"""A master and two workers on loopback: exact merge and exact accounting."""

import json
import os
import subprocess
import sys

import pytest

from loadgen.histogram import LatencyHistogram

pytestmark = pytest.mark.slow

PERCENTILES = (0.0, 1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 99.99, 100.0)


def summed(dumps: list[dict], name: str) -> LatencyHistogram:
    total = LatencyHistogram()
    for dump in dumps:
        if name in dump["histograms"]:
            total.add(LatencyHistogram.decode(dump["histograms"][name]))
    return total


def assert_same_histogram(merged: LatencyHistogram, expected: LatencyHistogram):
    assert merged.count == expected.count
    for percentile in PERCENTILES:
        assert merged.value_at_percentile(percentile) == expected.value_at_percentile(
            percentile
        ), percentile


def test_master_merges_two_workers_exactly(tmp_path, reference_server):
    dump_dir = tmp_path / "dumps"
    dump_dir.mkdir()
    env = dict(
        os.environ, TOKEN=reference_server.token, LOADGEN_WORKER_DUMP_DIR=str(dump_dir)
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadgen",
            "run",
            "--host",
            reference_server.url,
            "--processes",
            "2",
            "--users",
            "6",
            "--rate",
            "600",
            "--duration",
            "8",
            "--probe-interval-ms",
            "20",
            "-o",
            "r.json",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    dumps = [json.loads(p.read_text()) for p in dump_dir.glob("worker-*.json")]
    assert len(dumps) == 2
    assert all(dump["sent"] > 0 for dump in dumps)

    # Every event either worker sent reached the server, and the master knows.
    counts = report["counts"]
    assert counts["sent"] == sum(dump["sent"] for dump in dumps)
    assert counts["failed"] == 0
    _, listing = reference_server.get_json("/v1/health/accumulators")
    server_total = listing["accumulators"][0]["events_total"]
    assert server_total == counts["sent"] + counts["probe_events_sent"]
    assert counts["sent"] == pytest.approx(600 * 8, abs=6)

    merged_lag = LatencyHistogram.decode(report["self_check"]["schedule_lag_histogram"])
    assert_same_histogram(merged_lag, summed(dumps, "schedule_lag"))
    merged_connect = LatencyHistogram.decode(report["connections"]["histogram"])
    assert_same_histogram(merged_connect, summed(dumps, "connect_time"))
    assert merged_connect.count == 6
    probe = LatencyHistogram.decode(report["latency"]["send_to_fire"]["histogram"])
    assert probe.count > 50
    assert_same_histogram(probe, summed(dumps, "send_to_fire"))
