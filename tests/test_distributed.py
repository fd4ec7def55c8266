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

    # Every event either worker sent reached the server, and the master counted it.
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


def test_master_with_remote_style_workers(tmp_path, reference_server):
    """loadgen run --master waits for two loadgen worker processes."""
    import socket
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, TOKEN=reference_server.token)
    master = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loadgen",
            "run",
            "--host",
            reference_server.url,
            "--master",
            "--expect-workers",
            "2",
            "--master-bind-host",
            "127.0.0.1",
            "--master-port",
            str(port),
            "--users",
            "4",
            "--rate",
            "400",
            "--duration",
            "5",
            "-o",
            "r.json",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The workers get no key: they take every option from the master.
    worker_env = {k: v for k, v in os.environ.items() if k != "TOKEN"}
    workers = []
    try:
        time.sleep(3)
        for _ in range(2):
            workers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "loadgen",
                        "worker",
                        "--master-host",
                        "127.0.0.1",
                        "--master-port",
                        str(port),
                    ],
                    cwd=tmp_path,
                    env=worker_env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        _, stderr = master.communicate(timeout=120)
        for worker in workers:
            worker.wait(timeout=30)
    finally:
        for process in [master, *workers]:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert master.returncode == 0, stderr
    assert "waiting for workers" in stderr
    report = json.loads((tmp_path / "r.json").read_text())
    counts = report["counts"]
    assert counts["sent"] == pytest.approx(2000, abs=4)
    assert counts["failed"] == 0
    _, listing = reference_server.get_json("/v1/health/accumulators")
    server_total = listing["accumulators"][0]["events_total"]
    assert server_total == counts["sent"] + counts["probe_events_sent"]
    assert report["latency"]["send_to_fire"]["summary"]["count"] > 10
