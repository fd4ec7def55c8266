"""``loadgen run`` end to end: a real run, its report, and its one-line errors."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from loadgen.histogram import LatencyHistogram

pytestmark = pytest.mark.slow

LOADGEN = [sys.executable, "-m", "loadgen"]


@pytest.fixture
def unused_port():
    """Return a loopback port that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_loadgen(args, tmp_path: Path, token: str | None = None, timeout=90):
    env = dict(os.environ)
    env.pop("TOKEN", None)
    if token is not None:
        env["TOKEN"] = token
    return subprocess.run(
        [*LOADGEN, "run", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_embedded_run_writes_report(tmp_path):
    report_path = tmp_path / "out" / "report.json"
    result = run_loadgen(
        ["--duration", "3", "--users", "4", "--rate", "400", "-o", str(report_path)],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "latency p99" in result.stdout
    assert f"report written to {report_path}" in result.stdout
    report = json.loads(report_path.read_text())
    counts = report["counts"]
    assert report["schema_version"] == 1
    assert report["target"]["embedded_reference_server"] is True
    assert counts["sent"] > 1000
    assert counts["failed"] == 0
    assert counts["attempted"] == counts["sent"] + counts["failed"]
    assert counts["server_received"] == counts["sent"]
    fires = report["fires"]
    assert fires["fire_count_after"] > fires["fire_count_before"]
    latency = report["latency"]["send_to_fire"]
    assert latency["summary"]["count"] > 5
    assert latency["summary"]["p50"] > 0
    assert latency["resolution_us"] == 2000
    decoded = LatencyHistogram.decode(latency["histogram"])
    assert decoded.count == latency["summary"]["count"]


def test_progress_lines_while_running(tmp_path):
    result = run_loadgen(
        ["--duration", "2.5", "--users", "2", "--rate", "100", "-o", "r.json"],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    progress = [line for line in result.stderr.splitlines() if "sent" in line]
    assert len(progress) >= 2


def test_default_report_goes_under_reports(tmp_path):
    result = run_loadgen(["--duration", "1", "--users", "1", "--rate", "50"], tmp_path)
    assert result.returncode == 0, result.stderr
    written = list((tmp_path / "reports").glob("run-*.json"))
    assert len(written) == 1


def test_against_running_server(tmp_path, reference_server):
    result = run_loadgen(
        [
            "--host",
            reference_server.url,
            "--duration",
            "2",
            "--users",
            "3",
            "--rate",
            "300",
            "-o",
            "r.json",
        ],
        tmp_path,
        token=reference_server.token,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    status, listing = reference_server.get_json("/v1/health/accumulators")
    server_total = listing["accumulators"][0]["events_total"]
    probe_events = report["counts"]["probe_events_sent"]
    assert server_total == report["counts"]["sent"] + probe_events
    assert reference_server.token not in (tmp_path / "r.json").read_text()
    assert reference_server.token not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--accumulator", "nope"], "accumulator 'nope' is not registered"),
        (["--graph", "nope"], "graph 'nope' not found"),
    ],
)
def test_wrong_names_fail_with_one_line(tmp_path, reference_server, args, message):
    result = run_loadgen(
        ["--host", reference_server.url, "--duration", "2", *args],
        tmp_path,
        token=reference_server.token,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert message in lines[0]
    assert lines[0].startswith("error: ")


def test_wrong_key_fails_without_printing_it(tmp_path, reference_server):
    wrong_key = "clk_wrong_key_that_must_never_be_printed_0000"
    result = run_loadgen(
        ["--host", reference_server.url, "--duration", "2"], tmp_path, token=wrong_key
    )
    assert result.returncode == 1
    assert "HTTP 401" in result.stderr
    assert "TOKEN" in result.stderr
    assert wrong_key not in result.stdout + result.stderr


def test_wrong_key_in_query_fails(tmp_path, reference_server):
    result = run_loadgen(
        ["--host", reference_server.url, "--duration", "2", "--auth", "query"],
        tmp_path,
        token="clk_wrong",
    )
    assert result.returncode == 1
    assert "401" in result.stderr


def test_unreachable_host_fails(tmp_path, unused_port):
    result = run_loadgen(
        ["--host", f"http://127.0.0.1:{unused_port}", "--duration", "2"],
        tmp_path,
        token="clk_any",
    )
    assert result.returncode == 1
    assert "connection refused" in result.stderr
    assert "--host" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "0"], "invalid --rate 0"),
        (["--users", "0"], "invalid --users 0"),
        (["--duration", "-1"], "invalid --duration -1"),
        (["--feed", "zigzag"], "unknown feed 'zigzag'"),
        (["--feed", "replay:/nonexistent/q.csv"], "cannot read feed file"),
        (["--host", "ftp://x"], "invalid host 'ftp://x'"),
        (["--host", "http://[::1"], "invalid host 'http://[::1'"),
        (["--host", "http://127.0.0.1:9/some/path"], "without a path"),
        (["--rate", "inf"], "invalid --rate inf"),
        (["--rate", "1e15"], "at most 100,000,000"),
        (["--duration", "inf"], "invalid --duration inf"),
        (["--spawn-rate", "inf"], "invalid --spawn-rate inf"),
        (["--probe-interval-ms", "1e12"], "invalid probe interval"),
        (["--shape", "10s@nan"], "invalid stage"),
        (["--output", "/dev/null"], "not a regular file"),
        (["--expect-workers", "3"], "only with --master"),
        (["--output", "/proc/loadgen.json"], "cannot write the report"),
    ],
)
def test_bad_options_exit_2(tmp_path, args, message):
    result = run_loadgen(["--duration", "1", *args], tmp_path, token="clk_x")
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "reports").exists()


def test_missing_key_for_remote_host(tmp_path):
    result = run_loadgen(["--host", "http://127.0.0.1:9"], tmp_path)
    assert result.returncode == 2
    assert "missing API key" in result.stderr


def test_text_frames_ignored_by_cloacina_profile(tmp_path):
    result = run_loadgen(
        [
            "--server-profile",
            "cloacina",
            "--frame",
            "text",
            "--duration",
            "2",
            "--users",
            "1",
            "--rate",
            "50",
            "-o",
            "r.json",
        ],
        tmp_path,
    )
    assert result.returncode == 1
    assert "use --frame binary" in result.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["counts"]["server_received"] == 0
    assert report["outcome"]["status"] == "failed"


def test_bad_server_config_exits_2(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("x = [")
    result = run_loadgen(["--server-config", str(config), "--duration", "1"], tmp_path)
    assert result.returncode == 2
    assert "invalid TOML" in result.stderr
