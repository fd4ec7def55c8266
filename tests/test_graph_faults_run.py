"""A graph that fails or hangs is reported as such, not as latency."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

GRAPH_TOML = """
[[accumulators]]
name = "orderbook"
[accumulators.fields]
best_bid = "f64"
best_ask = "f64"

[[graphs]]
name = "price_signal"
accumulators = ["orderbook"]
computation = "{computation}"
execution_time_ms = {execution_time_ms}
"""


def run(tmp_path, computation, execution_time_ms, duration_s):
    config = tmp_path / "graph.toml"
    config.write_text(
        GRAPH_TOML.format(computation=computation, execution_time_ms=execution_time_ms)
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadgen",
            "run",
            "--server-config",
            str(config),
            "--users",
            "2",
            "--rate",
            "50",
            "--duration",
            str(duration_s),
            "-o",
            "r.json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads((tmp_path / "r.json").read_text())
    return result, report


def test_failing_graph_is_not_latency(tmp_path):
    result, report = run(tmp_path, "fail", 0, 3)
    assert result.returncode == 0, result.stderr
    latency = report["latency"]["send_to_fire"]
    assert latency["summary"]["count"] == 0
    assert latency["probe_fires_failed"] >= 10
    notes = " ".join(report["self_check"]["notes"])
    assert "graph failed" in notes


def test_hanging_graph_times_probes_out(tmp_path):
    result, report = run(tmp_path, "price_signal", 600_000, 8)
    assert result.returncode == 0, result.stderr
    latency = report["latency"]["send_to_fire"]
    assert latency["summary"]["count"] == 0
    assert latency["probes_timed_out"] >= 1
    notes = " ".join(report["self_check"]["notes"])
    assert "may hang" in notes
