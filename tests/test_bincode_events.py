"""The load generator's bincode events (``--wire bincode``) end to end.

After the option checks, each test starts reference servers and runs the
probe, ``loadgen run`` or the locustfile against them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_loadgen_run import run_loadgen

from loadgen.acceptance import check_bincode_layout, rejection_problem
from loadgen.compare import compare_reports
from loadgen.detection import choose_detector
from loadgen.errors import UsageProblem
from loadgen.feeds import SineFeed
from loadgen.health import HealthClient
from loadgen.probe import LatencyProbe
from loadgen.producer import Producer
from loadgen.runner import RunConfig
from loadgen.settings import LoadSettings
from loadgen.synthetic_report import synthetic_report
from loadgen.tags import tag_of
from loadgen.thresholds import DEFAULT_THRESHOLDS

TWO_TENANTS = (
    Path(__file__).parent.parent / "reference_server" / "examples" / "two_tenants.toml"
)
LOCUSTFILE = Path(__file__).resolve().parent.parent / "locustfiles" / "orderbook.py"


# Option checks.


def test_settings_need_binary_frames():
    with pytest.raises(UsageProblem, match="needs --frame binary"):
        LoadSettings(token="k", wire="bincode", frame="text").validate()
    with pytest.raises(UsageProblem, match="invalid wire 'xml'"):
        LoadSettings(token="k", wire="xml").validate()
    LoadSettings(token="k", wire="bincode").validate()


def test_run_config_wire_checks():
    config = RunConfig(host=None, token="k", wire="bincode")

    assert config.embedded_server_args() == ("--wire", "bincode")
    assert RunConfig(host=None, token="k").embedded_server_args() == ()
    cloacina = RunConfig(
        host=None, token="k", wire="bincode", server_args=("--profile", "cloacina")
    )
    with pytest.raises(UsageProblem, match="drop --server-profile cloacina"):
        cloacina.validate()


def test_rejection_problem_only_when_none_accepted():
    message = rejection_problem("json", accepted=0, rejected=12)

    assert message is not None
    assert "rejected all 12 json events" in message
    assert "pass --wire bincode" in message
    assert "pass --wire json" in rejection_problem("bincode", 0, 1)
    assert rejection_problem("json", accepted=1, rejected=12) is None
    assert rejection_problem("json", accepted=0, rejected=0) is None


def test_compare_notes_wire_difference():
    latencies = [[1000.0] * 20] * 10
    older = synthetic_report(latencies)
    json_run = synthetic_report(latencies)
    json_run["config"]["wire"] = "json"
    bincode_run = synthetic_report(latencies)
    bincode_run["config"]["wire"] = "bincode"

    differing = compare_reports(json_run, bincode_run, DEFAULT_THRESHOLDS).notes
    same = compare_reports(older, json_run, DEFAULT_THRESHOLDS).notes

    assert "the runs differ in configuration: wire" in differing
    assert not any("differ in configuration" in note for note in same)


# Against real servers.


def test_layout_check_reads_interface(reference_server_factory, tmp_path):
    two_tenants = reference_server_factory(config=TWO_TENANTS)
    reversed_path = tmp_path / "reversed.toml"
    reversed_path.write_text(
        '[[accumulators]]\nname = "orderbook"\n[accumulators.fields]\n'
        'best_ask = "f64"\nbest_bid = "f64"\n\n'
        '[[graphs]]\nname = "price_signal"\naccumulators = ["orderbook"]\n'
        'computation = "passthrough"\n'
    )
    reversed_server = reference_server_factory(config=reversed_path)

    health = HealthClient(two_tenants.url, two_tenants.token)
    check_bincode_layout(health, "quotes")
    check_bincode_layout(health, "orderbook")
    with pytest.raises(UsageProblem, match=r"fields price \(number\), quantity"):
        check_bincode_layout(health, "trades")
    health.close()
    health = HealthClient(reversed_server.url, reversed_server.token)
    with pytest.raises(UsageProblem, match=r"best_ask \(number\), best_bid"):
        check_bincode_layout(health, "orderbook")
    health.close()


def test_probe_sends_bincode(reference_server_factory):
    server = reference_server_factory(["--wire", "bincode"])
    health = HealthClient(server.url, server.token)
    producer = Producer(server.url, "orderbook", server.token)
    producer.connect()
    tags = iter(range(500_000, 500_010))
    probe = LatencyProbe(
        producer,
        health,
        "price_signal",
        SineFeed(),
        detector=choose_detector(health, "price_signal", "orderbook"),
        next_tag=tags.__next__,
        wire="bincode",
    )
    try:
        samples = [probe.probe_once() for _ in range(3)]
    finally:
        producer.close()
        health.close()

    assert probe.detection_method == "fire_log"
    assert all(sample is not None for sample in samples)
    _, fires = server.get_json("/v1/health/reactors/price_signal_rx/fires?limit=1")
    assert tag_of(fires["items"][0]["inputs"]["orderbook"]["best_bid"]) == 500_002
    _, listing = server.get_json("/v1/health/accumulators")
    assert listing["accumulators"][0]["events_rejected"] == 0


@pytest.mark.slow
def test_run_bincode_end_to_end(tmp_path):
    result = run_loadgen(
        ["--wire", "bincode", "--duration", "3", "--users", "4", "--rate", "400"]
        + ["-o", "r.json"],
        tmp_path,
    )

    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    counts = report["counts"]
    assert report["config"]["wire"] == "bincode"
    assert counts["sent"] > 1000
    assert counts["server_received"] == counts["sent"]
    assert counts["server_rejected"] == 0
    assert report["latency"]["detection"]["method"] == "fire_log"
    assert report["latency"]["send_to_fire"]["summary"]["count"] > 5


@pytest.mark.slow
@pytest.mark.parametrize(
    ("server_args", "run_args", "fix"),
    [
        ([], ["--wire", "bincode"], "pass --wire json"),
        (["--wire", "bincode"], [], "pass --wire bincode"),
    ],
    ids=["bincode-to-json-server", "json-to-bincode-server"],
)
def test_run_wire_mismatch_fails(
    tmp_path, reference_server_factory, server_args, run_args, fix
):
    server = reference_server_factory(server_args)

    result = run_loadgen(
        ["--host", server.url, "--duration", "20", "--users", "2", "--rate", "200"]
        + [*run_args, "-o", "r.json"],
        tmp_path,
        token=server.token,
    )

    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: the server rejected all ")
    assert fix in error
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["counts"]["server_received"] == 0
    assert report["counts"]["server_rejected"] > 0
    # The run stops at the first progress tick instead of running 20 s.
    assert report["duration_s"] < 5


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--wire", "bincode", "--frame", "text"], "needs --frame binary"),
        (["--wire", "bincode", "--server-profile", "cloacina"], "tutorial profile"),
        (["--wire", "msgpack"], "Invalid value for '--wire'"),
    ],
    ids=["text-frames", "cloacina-profile", "unknown"],
)
def test_run_bad_wire_exits_2(tmp_path, args, message):
    result = run_loadgen(["--duration", "1", *args], tmp_path, token="clk_x")

    assert result.returncode == 2
    assert message in result.stderr


@pytest.mark.slow
def test_run_bincode_wrong_boundary_exits_2(tmp_path, reference_server_factory):
    server = reference_server_factory(["--wire", "bincode"], config=TWO_TENANTS)

    result = run_loadgen(
        ["--host", server.url, "--wire", "bincode", "--accumulator", "trades"]
        + ["--graph", "trade_signal", "--duration", "1"],
        tmp_path,
        token=server.token,
    )

    assert result.returncode == 2, result.stderr
    assert "accumulator 'trades' declares the fields" in result.stderr
    _, listing = server.get_json("/v1/health/accumulators")
    assert all(row["events_rejected"] == 0 for row in listing["accumulators"])


@pytest.mark.slow
def test_locust_user_sends_bincode(tmp_path, reference_server_factory):
    server = reference_server_factory(["--wire", "bincode"])

    result = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless"]
        + ["-u", "4", "-r", "4", "-t", "3s", "--host", server.url]
        + ["--rate-per-user", "50", "--wire", "bincode", "--send-mode", "batch"]
        + ["--only-summary"],
        env=dict(os.environ, TOKEN=server.token),
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    _, listing = server.get_json("/v1/health/accumulators")
    row = listing["accumulators"][0]
    assert row["events_total"] > 200
    assert row["events_rejected"] == 0
    assert f"the server accepted {row['events_total']} during" in result.stderr
    assert "send-to-fire latency from" in result.stderr
