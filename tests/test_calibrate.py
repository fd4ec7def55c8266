"""Tests of the paced batch sender, the null sink and calibration."""

from __future__ import annotations

import ast
import contextlib
import json
import socket
import threading
import time
import urllib.request

import numpy as np
import pytest

from loadgen import calibrate
from loadgen.counters import RunCounters
from loadgen.feeds import SineFeed
from loadgen.frames import decode_frames
from loadgen.pacing import Schedule
from loadgen.shapes import LoadShape
from loadgen.tags import tag_of

LOCUST_USER_SOURCE = calibrate.LOCUSTFILE.parent.parent / "loadgen" / "locust_user.py"

ACCOUNTING_OUTPUT = (
    "[2026-12-04 16:20:48,439] vm/INFO/loadgen.locust_user: accumulator "
    "'orderbook': sent 21518561 events (3 failed) and 0 probe events; the "
    "server accepted an unknown number during the test\n"
)

STATS_HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,"
    "Average Response Time,Min Response Time,Max Response Time,"
    "Average Content Size,Requests/s,Failures/s\n"
)


def drain(sock: socket.socket, received: bytearray) -> None:
    while chunk := sock.recv(1 << 16):
        received += chunk


def test_paced_sender_sends_schedule():
    sender, receiver = socket.socketpair()
    received = bytearray()
    reader = threading.Thread(target=drain, args=(receiver, received))
    reader.start()
    counters = RunCounters()
    schedule = Schedule(LoadShape.constant(20_000, 0.25), time.perf_counter())
    try:
        result = calibrate.send_paced_batches(
            sender, SineFeed(), schedule, 1.0, counters, batch_events=512
        )
    finally:
        sender.close()
        reader.join(timeout=10)
        receiver.close()

    assert result.sent == 5000
    assert result.failed == 0
    assert result.behind == 0
    assert counters.sent == 5000
    assert result.bytes_sent == len(received)
    frames = decode_frames(bytes(received))
    assert len(frames) == 5000
    quotes = np.array([list(json.loads(p).values()) for _, p in frames])
    assert np.array_equal(quotes, SineFeed().next_batch(5000))


def test_paced_sender_tags_like_locust_user():
    sender, receiver = socket.socketpair()
    received = bytearray()
    reader = threading.Thread(target=drain, args=(receiver, received))
    reader.start()
    schedule = Schedule(LoadShape.constant(20_000, 0.05), time.perf_counter())
    try:
        result = calibrate.send_paced_batches(
            sender, SineFeed(), schedule, 1.0, batch_events=256, tagged=True
        )
    finally:
        sender.close()
        reader.join(timeout=10)
        receiver.close()

    assert result.sent == 1000
    frames = decode_frames(bytes(received))
    bids = [json.loads(payload)["best_bid"] for _, payload in frames]
    assert [tag_of(bid) for bid in bids] == list(range(1000))
    expected = SineFeed().next_batch(1000)[:, 0]
    assert np.allclose(bids, expected, atol=1e-4)


def test_paced_sender_counts_failed_batch():
    sender, receiver = socket.socketpair()
    receiver.close()
    counters = RunCounters()
    schedule = Schedule(LoadShape.constant(1e6, 1.0), time.perf_counter())

    result = calibrate.send_paced_batches(
        sender, SineFeed(), schedule, 1.0, counters, batch_events=100
    )
    sender.close()

    # The first batch fails whole; events due after it stay in the schedule.
    assert result.sent == 0
    assert 0 < result.failed <= 100
    assert counters.failed_by_kind["disconnected"] == result.failed


def test_null_sink_counts_bytes():
    with calibrate.started_null_sink() as sink:
        ws = calibrate.connect_accumulator(sink.url)
        ws.sock.sendall(b"x" * 100_000)
        ws.shutdown()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with urllib.request.urlopen(sink.url + "/stats", timeout=5) as response:
                counters = json.loads(response.read())
            if counters["bytes_received"] >= 100_000:
                break
            time.sleep(0.02)

    assert counters["bytes_received"] == 100_000
    assert counters["connections"] == 1
    assert sink.process.returncode == 0


@pytest.fixture
def started_processes(monkeypatch):
    """Record every server subprocess that calibration starts."""
    started = []
    original = calibrate._started_server

    @contextlib.contextmanager
    def recording(*args, **kwargs):
        with original(*args, **kwargs) as server:
            started.append(server.process)
            yield server

    monkeypatch.setattr(calibrate, "_started_server", recording)
    return started


def module_constant(path, name: str):
    """Return the literal value assigned to ``name`` at the top of ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == name
            for target in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{name} is not assigned in {path}")


def test_user_decimals_match_locust_user():
    # Read from the source: importing Locust would monkey-patch this process.
    decimals = module_constant(LOCUST_USER_SOURCE, "TAGGED_DECIMALS")

    assert calibrate.USER_DECIMALS == decimals


def test_locustfile_text_matches_repository():
    assert calibrate.LOCUSTFILE.is_file()
    lines = calibrate.LOCUSTFILE.read_text(encoding="utf-8").splitlines()
    assert calibrate.LOCUSTFILE_TEXT.strip() in lines


def test_accounting_line_parsed():
    sent, failed = calibrate._parse_accounting("other output\n" + ACCOUNTING_OUTPUT)

    assert sent == 21518561
    assert failed == 3


def test_missing_accounting_line_rejected():
    with pytest.raises(calibrate.CalibrationError, match="logged no line"):
        calibrate._parse_accounting("Shutting down (exit code 0)\n")


def test_batch_stats_read(tmp_path):
    prefix = tmp_path / "locust"
    (tmp_path / "locust_stats.csv").write_text(
        STATS_HEADER
        + "WS,connect,1,0,1,1,1,1,0.0,0.1,0.0\n"
        + "WS,send orderbook (batch),500,0,0,0.1,0,8,278528.0,50.0,0.0\n"
        + ",Aggregated,501,0,0,0.1,0,8,277972.1,50.1,0.0\n"
    )

    batches, bytes_sent, elapsed_s = calibrate._read_batch_stats(prefix, "")

    assert batches == 500
    assert bytes_sent == 500 * 278528
    assert elapsed_s == pytest.approx(10.0)


def test_batch_stats_without_batches_rejected(tmp_path):
    prefix = tmp_path / "locust"
    (tmp_path / "locust_stats.csv").write_text(
        STATS_HEADER + "WS,connect,1,0,1,1,1,1,0.0,0.1,0.0\n"
    )

    with pytest.raises(calibrate.CalibrationError, match="no batch sent"):
        calibrate._read_batch_stats(prefix, "")


def test_missing_batch_stats_rejected(tmp_path):
    with pytest.raises(calibrate.CalibrationError, match="wrote no statistics"):
        calibrate._read_batch_stats(tmp_path / "locust", "")


@pytest.mark.slow
def test_locust_user_paced_below_maximum():
    with calibrate.started_null_sink() as sink:
        run = calibrate.run_locust_user(sink.url, 1.0, rate_per_s=2000)

    # At 2,000 events/s the user keeps up, so the run counts as paced.
    assert run.run_time_s == 1 + calibrate.LOCUST_START_ALLOWANCE_S
    assert run.failed == 0
    assert run.sent >= 500
    assert run.rate_per_s == pytest.approx(2000, rel=0.2)
    assert not run.flat_out
    assert run.sink_events == run.sent


@pytest.mark.slow
def test_calibration_smoke(started_processes):
    result = calibrate.run_calibration(duration_s=1.0)

    generator, server = result["generator"], result["server"]
    assert generator["rate_per_s"] > 0
    assert generator["failed"] == 0
    assert generator["run_time_s"] == 1 + calibrate.LOCUST_START_ALLOWANCE_S
    assert generator["elapsed_s"] > 0
    # The sink also reads the close frame, which is shorter than one event.
    assert generator["sink_bytes_received"] >= generator["bytes_sent"]
    assert generator["sink_events"] >= generator["sent"]
    assert generator["sink_events"] - generator["sent"] < 4096
    assert server["rate_per_s"] > 0
    assert server["accepted"] == server["sent"]
    assert server["rejected"] == 0
    assert len(started_processes) == 2
    assert all(process.poll() is not None for process in started_processes)
    text = calibrate.format_calibration(result)
    assert "events/s" in text
    assert "one Locust user, batch mode" in text
