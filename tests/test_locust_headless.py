"""The locustfile under the real ``locust`` command, headless and with its web UI."""

import csv
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

LOCUSTFILE = Path(__file__).resolve().parent.parent / "locustfiles" / "orderbook.py"
LOCUST = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]


def locust_env(token: str) -> dict[str, str]:
    return dict(os.environ, TOKEN=token)


def request_counts(stats_csv: Path) -> dict[str, tuple[int, int]]:
    """Map each row name of Locust's stats CSV to (requests, failures)."""
    with stats_csv.open() as file:
        return {
            f"{row['Type']} {row['Name']}": (
                int(row["Request Count"]),
                int(row["Failure Count"]),
            )
            for row in csv.DictReader(file)
        }


def summary_rows(output: str) -> dict[str, tuple[int, int]]:
    """Map each row of Locust's printed summary to (requests, failures)."""
    rows = {}
    for line in output.splitlines():
        match = re.match(r"^(WS|FIRE)\s+(.+?)\s{2,}(\d+)\s+(\d+)\(", line)
        if match and match.group(0):
            key = f"{match.group(1)} {match.group(2)}"
            rows.setdefault(key, (int(match.group(3)), int(match.group(4))))
    return rows


def server_events_total(server) -> int:
    _, listing = server.get_json("/v1/health/accumulators")
    return listing["accumulators"][0]["events_total"]


def test_headless_sends_match_server_count(tmp_path, reference_server):
    result = subprocess.run(
        [
            *LOCUST,
            "--headless",
            "-u",
            "10",
            "-r",
            "10",
            "-t",
            "4s",
            "--host",
            reference_server.url,
            "--rate-per-user",
            "50",
            "--no-probe",
            "--csv",
            str(tmp_path / "run"),
            "--only-summary",
        ],
        env=locust_env(reference_server.token),
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    # Locust writes its CSV on a timer, so the final counts come from the
    # summary table it prints at exit.
    summary = summary_rows(result.stderr)
    sent, failed = summary["WS send orderbook"]
    assert sent > 1000
    assert failed == 0
    assert summary["WS connect"] == (10, 0)
    assert server_events_total(reference_server) == sent
    assert f"sent {sent} events (0 failed)" in result.stderr
    assert reference_server.token not in result.stdout + result.stderr


def test_headless_probe_reports_send_to_fire(tmp_path, reference_server):
    result = subprocess.run(
        [
            *LOCUST,
            "--headless",
            "-u",
            "2",
            "-r",
            "2",
            "-t",
            "3s",
            "--host",
            reference_server.url,
            "--probe-interval-ms",
            "50",
            "--csv",
            str(tmp_path / "run"),
            "--only-summary",
        ],
        env=locust_env(reference_server.token),
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    counts = request_counts(tmp_path / "run_stats.csv")
    probes, failures = counts["FIRE send-to-fire (probe)"]
    assert probes >= 10
    assert failures == 0


def test_headless_wrong_key_counts_connect_failures(tmp_path, reference_server):
    wrong_key = "clk_wrong_key_locust_must_not_print_0000"
    result = subprocess.run(
        [
            *LOCUST,
            "--headless",
            "-u",
            "2",
            "-r",
            "2",
            "-t",
            "2s",
            "--host",
            reference_server.url,
            "--no-probe",
            "--csv",
            str(tmp_path / "run"),
            "--only-summary",
        ],
        env=locust_env(wrong_key),
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
    )
    counts = request_counts(tmp_path / "run_stats.csv")
    attempts, failures = counts["WS connect"]
    assert failures == attempts >= 2
    assert "HTTP 401" in result.stderr
    assert wrong_key not in result.stdout + result.stderr
    for written in tmp_path.iterdir():
        assert wrong_key not in written.read_text()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def test_web_ui_starts_load_and_hides_key(tmp_path, reference_server):
    port = free_port()
    process = subprocess.Popen(
        [
            *LOCUST,
            "--web-host",
            "127.0.0.1",
            "--web-port",
            str(port),
            "--host",
            reference_server.url,
            "--rate-per-user",
            "20",
        ],
        env=locust_env(reference_server.token),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                page = get(base + "/")
                break
            except OSError:
                assert time.monotonic() < deadline, "web UI did not start"
                time.sleep(0.2)
        assert reference_server.token.encode() not in page
        form = urllib.parse.urlencode(
            {"user_count": 3, "spawn_rate": 3, "host": reference_server.url}
        ).encode()
        with urllib.request.urlopen(base + "/swarm", data=form, timeout=10) as reply:
            assert json.loads(reply.read())["success"] is True
        deadline = time.monotonic() + 15
        sends = 0
        while sends < 20 and time.monotonic() < deadline:
            time.sleep(0.5)
            stats = json.loads(get(base + "/stats/requests"))
            sends = sum(
                row["num_requests"]
                for row in stats["stats"]
                if row["name"] == "send orderbook"
            )
        assert sends >= 20
        urllib.request.urlopen(base + "/stop", data=b"", timeout=10).close()
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--rate-per-user", "-5"], "invalid rate -5"),
        (["--feed", "bogus"], "unknown feed 'bogus'"),
        (["--poll-interval-ms", "0"], "invalid poll interval 0"),
        (["--host", "http://[::1"], "invalid host 'http://[::1'"),
        (["--host", "ftp://x"], "invalid host 'ftp://x'"),
    ],
)
def test_headless_bad_option_exits_2(tmp_path, reference_server, option, message):
    result = subprocess.run(
        [
            *LOCUST,
            "--headless",
            "-u",
            "2",
            "-r",
            "2",
            "-t",
            "3s",
            "--host",
            reference_server.url,
            *option,
            "--only-summary",
        ],
        env=locust_env(reference_server.token),
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_headless_unknown_accumulator_fails(tmp_path, reference_server):
    result = subprocess.run(
        [
            *LOCUST,
            "--headless",
            "-u",
            "2",
            "-r",
            "2",
            "-t",
            "2s",
            "--host",
            reference_server.url,
            "--accumulator",
            "nosuch",
            "--no-probe",
            "--only-summary",
        ],
        env=locust_env(reference_server.token),
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "close code 4404" in result.stderr
    summary = summary_rows(result.stderr)
    assert "WS send nosuch" not in summary
    attempts, failures = summary["WS connect"]
    assert failures == attempts >= 2
