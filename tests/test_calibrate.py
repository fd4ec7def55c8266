"""Tests of the paced batch sender, the null sink and calibration."""

from __future__ import annotations

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


@pytest.mark.slow
def test_calibration_smoke(started_processes):
    result = calibrate.run_calibration(duration_s=1.0)

    generator, server = result["generator"], result["server"]
    assert generator["rate_per_s"] > 0
    assert generator["sink_bytes_received"] == generator["bytes_sent"]
    assert server["rate_per_s"] > 0
    assert server["accepted"] == server["sent"]
    assert server["rejected"] == 0
    assert len(started_processes) == 2
    assert all(process.poll() is not None for process in started_processes)
    text = calibrate.format_calibration(result)
    assert "events/s" in text
