"""The compiled and the Python per-frame steps behave the same.

The other server suites run the default step, which is the compiled one when
the install built it. Here one server of each step takes the same frame
streams, and what the servers send back and count must match. Then the
fallback to the Python step is checked with the compiled module hidden from
import.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time

import pytest
from conftest import (
    ADMIN_TOKEN,
    LISTENING_PREFIX,
    RunningServer,
    stop_reference_server,
)
from test_reference_server_ingest import masked, open_producer, stats, wait_for_events

STREAMS = 40
"""Random frame streams sent to both servers."""

HIDE_COMPILED_STEP = (
    "import sys; sys.modules['reference_server.fastframes'] = None; "
    "from reference_server.cli import main; sys.exit(main())"
)


@pytest.fixture(params=["tutorial", "cloacina"])
def step_servers(request, reference_server_factory):
    profile = ["--profile", request.param]
    return {
        step: reference_server_factory(args=[*profile, "--frame-step", step])
        for step in ("compiled", "python")
    }


def random_stream(rng: random.Random) -> bytes:
    """A read's worth of frames: events, text, pings, fragments, maybe an error."""
    frames = []
    for _ in range(rng.randint(1, 30)):
        bid = round(rng.uniform(1, 200), 2)
        valid = json.dumps({"best_bid": bid, "best_ask": bid + 1}).encode()
        kind = rng.choices(
            ["event", "invalid", "text", "ping", "fragments", "reserved", "unmasked"],
            weights=[60, 8, 10, 8, 10, 2, 2],
        )[0]
        if kind == "event":
            frames.append(masked(valid))
        elif kind == "invalid":
            frames.append(masked(b'{"best_bid": "high"}'))
        elif kind == "text":
            frames.append(masked(valid, opcode=0x1))
        elif kind == "ping":
            frames.append(masked(f"ping {len(frames)}".encode(), opcode=0x9))
        elif kind == "fragments":
            cut = rng.randint(1, len(valid) - 1)
            frames.append(masked(valid[:cut], fin=False))
            frames.append(masked(valid[cut:], opcode=0x0))
        elif kind == "reserved":
            frame = bytearray(masked(valid))
            frame[0] |= 0x40
            frames.append(bytes(frame))
        else:
            frames.append(bytes([0x82, len(valid)]) + valid)
    frames.append(masked(b"\x03\xe8", opcode=0x8))
    return b"".join(frames)


def replies(server, stream: bytes) -> bytes:
    """Send one stream on a new connection and return all the server sent back."""
    sock = open_producer(server)
    sock.sendall(stream)
    received = b""
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    sock.close()
    return received


def counts(server) -> tuple[int, int]:
    body = stats(server)
    return body["events_total"], body["events_rejected"]


def test_both_steps_reply_and_count_alike(step_servers):
    compiled, python = step_servers["compiled"], step_servers["python"]
    assert stats(compiled)["frame_step"] == "compiled", (
        "the compiled frame step was not built: reinstall with `pip install -e .` "
        "where gcc and the Python headers are present"
    )
    assert stats(python)["frame_step"] == "python"
    rng = random.Random(6455)
    for number in range(STREAMS):
        stream = random_stream(rng)
        sent_back = {step: replies(step_servers[step], stream) for step in step_servers}
        assert sent_back["compiled"] == sent_back["python"], f"stream {number}"
        assert counts(compiled) == counts(python), f"stream {number}"
    assert counts(compiled)[0] > STREAMS


def test_close_frame_ends_every_stream(step_servers):
    # The streams above end with a close frame: each server must echo it.
    stream = masked(b'{"best_bid": 1.0, "best_ask": 2.0}') + masked(
        b"\x03\xe8", opcode=0x8
    )
    for server in step_servers.values():
        assert replies(server, stream) == b"\x88\x02\x03\xe8"


def start_with_compiled_step_hidden(tmp_path, *args: str) -> subprocess.Popen:
    command = [sys.executable, "-c", HIDE_COMPILED_STEP, "--port", "0", *args]
    return subprocess.Popen(
        command,
        cwd=tmp_path,
        env={"TOKEN": ADMIN_TOKEN, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_missing_compiled_step_falls_back_to_python(tmp_path):
    process = start_with_compiled_step_hidden(tmp_path)
    try:
        line = process.stdout.readline()
        assert line.startswith(LISTENING_PREFIX), process.stderr.read()
        url = line[len(LISTENING_PREFIX) :].strip().removeprefix("http://")
        host, port = url.rsplit(":", 1)
        server = RunningServer(process, host, int(port))
        sock = open_producer(server)
        sock.sendall(masked(b'{"best_bid": 1.0, "best_ask": 2.0}'))
        body = wait_for_events(server, 1)
        sock.close()
    finally:
        stop_reference_server(process)
    assert body["events_total"] == 1
    assert body["frame_step"] == "python"
    assert "the compiled frame step cannot be loaded" in process.stderr.read()


def test_missing_compiled_step_requested_exits_2(tmp_path):
    process = start_with_compiled_step_hidden(tmp_path, "--frame-step", "compiled")
    try:
        status = process.wait(timeout=15)
    finally:
        stop_reference_server(process)
    error = process.stderr.read().strip().splitlines()[-1]
    assert status == 2
    assert error.startswith("error: --frame-step compiled: the compiled frame step")
    assert "pip install -e ." in error
