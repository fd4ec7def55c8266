"""Faults during a run: a server killed and restarted, and stop signals."""

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import ADMIN_TOKEN, start_reference_server, stop_reference_server

pytestmark = pytest.mark.slow


def start_run(tmp_path, args, token=None):
    env = dict(os.environ)
    env.pop("TOKEN", None)
    if token:
        env["TOKEN"] = token
    return subprocess.Popen(
        [sys.executable, "-m", "loadgen", "run", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_run_survives_server_restart(tmp_path):
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    server = start_reference_server(first_dir)
    port = server.port
    run = start_run(
        tmp_path,
        [
            "--host",
            server.url,
            "--duration",
            "7",
            "--users",
            "3",
            "--rate",
            "300",
            "--reconnect-max-ms",
            "400",
            "-o",
            "r.json",
        ],
        token=ADMIN_TOKEN,
    )
    restarted = None
    try:
        time.sleep(2.5)
        server.process.kill()
        server.process.wait(timeout=10)
        time.sleep(1.5)
        restarted = start_reference_server(second_dir, ["--port", str(port)])
        stdout, stderr = run.communicate(timeout=60)
        _, listing = restarted.get_json("/v1/health/accumulators")
    finally:
        if run.poll() is None:
            run.kill()
        if restarted is not None:
            stop_reference_server(restarted.process)
    # Events failed during the outage, so the run ends with status 1, as
    # Locust does when requests fail, but it measured to the end.
    assert run.returncode == 1, stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["outcome"]["status"] == "failed"
    assert "events failed" in report["outcome"]["error"]
    assert report["duration_s"] >= 6.9
    counts = report["counts"]
    assert counts["attempted"] == counts["sent"] + counts["failed"]
    assert counts["attempted"] == pytest.approx(2100, abs=3)
    assert counts["failed_by_kind"].get("not_connected", 0) > 100
    windows = report["outages"]["windows"]
    assert len(windows) >= 1
    assert windows[0]["duration_s"] >= 1.0
    assert windows[0]["connections"] == 3
    assert report["outages"]["probe_outages"] >= 1
    # Producers send again after the restart: the last second of load is all
    # sent. The timeline may run one second further, for late probe samples.
    last = round(report["duration_s"]) - 1
    assert report["timeline"]["sent"][last] >= 250
    assert report["timeline"]["failed"][last] == 0
    assert listing["accumulators"][0]["events_total"] > 500


def wait_for_progress(run, lines: int = 2, timeout_s: float = 30) -> None:
    """Read the run's stderr until it has printed ``lines`` progress lines."""
    deadline = time.monotonic() + timeout_s
    seen = 0
    while seen < lines:
        assert time.monotonic() < deadline, "loadgen run printed no progress"
        ready, _, _ = select.select([run.stderr], [], [], 1.0)
        if ready and " sent " in run.stderr.readline():
            seen += 1


def port_is_closed(base_url: str) -> bool:
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    with socket.socket() as probe:
        return probe.connect_ex((host, int(port))) != 0


@pytest.mark.parametrize(
    ("signals", "exit_code"),
    [([signal.SIGTERM], 128 + signal.SIGTERM), ([signal.SIGINT], 130)],
)
def test_stop_signal_writes_report(tmp_path, signals, exit_code):
    run = start_run(
        tmp_path, ["--duration", "60", "--users", "2", "--rate", "100", "-o", "r.json"]
    )
    try:
        wait_for_progress(run)
        started = time.monotonic()
        for number in signals:
            run.send_signal(number)
        stdout, stderr = run.communicate(timeout=30)
        stopped_in_s = time.monotonic() - started
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == exit_code, stderr
    assert stopped_in_s < 15
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["outcome"]["status"] == "interrupted"
    assert report["counts"]["sent"] > 100
    assert report["duration_s"] < 20
    assert port_is_closed(report["target"]["base_url"])


def test_second_sigint_writes_report_at_once(tmp_path):
    run = start_run(
        tmp_path, ["--duration", "60", "--users", "2", "--rate", "100", "-o", "r.json"]
    )
    try:
        wait_for_progress(run)
        started = time.monotonic()
        run.send_signal(signal.SIGINT)
        time.sleep(0.05)
        run.send_signal(signal.SIGINT)
        run.communicate(timeout=30)
        stopped_in_s = time.monotonic() - started
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130
    assert stopped_in_s < 5
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["outcome"]["status"] == "interrupted"


def test_sigterm_during_start_up_leaves_no_server(tmp_path):
    import psutil

    run = start_run(tmp_path, ["--duration", "30", "--users", "1", "--rate", "10"])
    try:
        # Wait for the embedded server, then stop loadgen before its load.
        deadline = time.monotonic() + 30
        children = []
        while not children and time.monotonic() < deadline:
            children = psutil.Process(run.pid).children()
            time.sleep(0.05)
        assert children, "loadgen started no reference server"
        server = children[0]
        run.send_signal(signal.SIGTERM)
        run.communicate(timeout=30)
        server.wait(timeout=15)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 128 + signal.SIGTERM
    assert not server.is_running()
