"""The producer ingest path: the front door, picows, runs of frames, fast decoding.

Frames are written with raw sockets so that a test decides which frames share
one TCP segment, and so one server read.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_server.boundary import BoundaryError, EventDecoder
from reference_server.fastdecode import FastEventDecoder

ORDERBOOK = {"best_bid": "f64", "best_ask": "f64"}


def masked(payload: bytes, opcode: int = 0x2, fin: bool = True) -> bytes:
    mask = os.urandom(4)
    first = (0x80 if fin else 0) | opcode
    if len(payload) < 126:
        header = struct.pack("!BB", first, 0x80 | len(payload))
    else:
        header = struct.pack("!BBH", first, 0x80 | 126, len(payload))
    body = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return header + mask + body


def event(bid: float) -> bytes:
    return json.dumps({"best_bid": bid, "best_ask": bid + 0.05}).encode()


def open_producer(server, connection: str = "Upgrade") -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            "GET /v1/ws/accumulator/orderbook HTTP/1.1\r\nHost: x\r\n"
            f"Upgrade: websocket\r\nConnection: {connection}\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {server.token}\r\n\r\n"
        ).encode()
    )
    head = read_head(sock)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def read_head(sock: socket.socket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return head


def stats(server) -> dict:
    status, body = server.get_json("/_loadgen/stats")
    assert status == 200, body
    return body


def wait_for_events(server, total: int) -> dict:
    deadline = time.monotonic() + 5.0
    body = stats(server)
    while body["events_total"] < total and time.monotonic() < deadline:
        time.sleep(0.01)
        body = stats(server)
    return body


def fires(server) -> int:
    status, body = server.get_json("/v1/health/graphs/price_signal")
    assert status == 200, body
    return body["health"]["fire_count"]


@pytest.fixture
def cloacina_server(reference_server_factory):
    return reference_server_factory(args=["--profile", "cloacina"])


def newest_fire_inputs(server) -> dict:
    _, body = server.get_json("/v1/health/reactors/price_signal_rx/fires?limit=1")
    return body["items"][0]["inputs"]["orderbook"]


def test_run_in_one_read_fires_once(cloacina_server):
    sock = open_producer(cloacina_server)
    sock.sendall(b"".join(masked(event(100.0 + i)) for i in range(5)))

    body = wait_for_events(cloacina_server, 5)
    sock.close()

    assert body["events_total"] == 5
    _, graph = cloacina_server.get_json("/v1/health/graphs/price_signal")
    assert graph["fires"] == 1
    assert newest_fire_inputs(cloacina_server)["best_bid"] == 104.0


def test_invalid_event_inside_a_run_rejected_alone(reference_server):
    sock = open_producer(reference_server)
    run = [event(1.0), b'{"best_bid": "high", "best_ask": 2.0}', event(3.0)]
    sock.sendall(b"".join(masked(payload) for payload in run))

    body = wait_for_events(reference_server, 2)
    sock.close()

    assert body["events_total"] == 2
    assert body["events_rejected"] == 1
    assert fires(reference_server) == 2


def test_ping_after_run_gets_pong(reference_server):
    sock = open_producer(reference_server)
    frames = [masked(event(float(i))) for i in range(20)]
    sock.sendall(b"".join(frames) + masked(b"still there?", opcode=0x9))

    pong = sock.recv(64)
    body = wait_for_events(reference_server, 20)
    sock.close()

    assert pong == b"\x8a\x0cstill there?"
    assert body["events_total"] == 20


def test_fragmented_message_inside_a_run_kept_in_order(cloacina_server):
    sock = open_producer(cloacina_server)
    whole = event(7.0)
    sock.sendall(
        masked(event(6.0))
        + masked(whole[:10], fin=False)
        + masked(whole[10:], opcode=0x0)
    )

    body = wait_for_events(cloacina_server, 2)
    sock.close()

    assert body["events_total"] == 2
    assert newest_fire_inputs(cloacina_server)["best_bid"] == 7.0


def test_connection_token_list_accepted(reference_server):
    sock = open_producer(reference_server, connection="keep-alive, Upgrade")
    sock.sendall(masked(event(1.0)))

    assert wait_for_events(reference_server, 1)["events_total"] == 1
    sock.close()


def test_upgrade_on_reused_connection_refused_with_426(reference_server):
    sock = socket.create_connection((reference_server.host, reference_server.port))
    auth = f"Authorization: Bearer {reference_server.token}\r\n"
    sock.sendall(f"GET /v1/health/graphs HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode())
    first = read_head(sock)
    assert first.startswith(b"HTTP/1.1 200"), first
    length = int(first.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    body = first.split(b"\r\n\r\n", 1)[1]
    while len(body) < length:
        body += sock.recv(4096)

    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            "GET /v1/ws/accumulator/orderbook HTTP/1.1\r\nHost: x\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{auth}\r\n"
        ).encode()
    )
    second = read_head(sock)
    sock.close()

    assert second.startswith(b"HTTP/1.1 426"), second
    assert b"new connection" in second


def test_silent_connection_does_not_block_others(reference_server):
    silent = socket.create_connection((reference_server.host, reference_server.port))
    try:
        status, _ = reference_server.get_json("/v1/health/graphs")
        sock = open_producer(reference_server)
        sock.sendall(masked(event(2.0)))
        assert wait_for_events(reference_server, 1)["events_total"] == 1
        sock.close()
    finally:
        silent.close()
    assert status == 200


# FastEventDecoder against EventDecoder.

scalars = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.text(max_size=5),
    st.none(),
)
objects = st.dictionaries(
    st.sampled_from(["best_bid", "best_ask", "size", "x"]), scalars, max_size=4
)
FIELDS = {"best_bid": "f64", "best_ask": "f64", "size": "i64"}


def outcome(decode, payload: bytes):
    try:
        return ("ok", decode(payload))
    except BoundaryError as exc:
        return ("error", str(exc))


@settings(max_examples=400, deadline=None)
@given(objects)
def test_fast_decoder_matches_event_decoder(value):
    slow = EventDecoder(FIELDS)
    payload = json.dumps(value).encode()

    assert outcome(FastEventDecoder(slow), payload) == outcome(slow, payload)


@settings(max_examples=200, deadline=None)
@given(st.lists(objects, min_size=1, max_size=6))
def test_run_decoding_matches_one_by_one(values):
    slow = EventDecoder(FIELDS)
    payloads = [json.dumps(value).encode() for value in values]
    results = [outcome(slow, payload) for payload in payloads]

    last = FastEventDecoder(slow).last_if_all_valid(payloads)

    if all(kind == "ok" for kind, _ in results):
        assert last == results[-1][1]
    else:
        assert last is None


@pytest.mark.parametrize(
    "payloads",
    [
        # A string that would swallow the separator between two payloads.
        [b'{"best_bid": 1.0, "best_ask": "}', b'{", "best_ask": 2.0}'],
        # Two objects in one payload, a half object in another.
        [b'{"best_bid": 1.0, "best_ask": 2.0},{"best_bid": 1.0', b'"best_ask": 2.0}'],
        [b'{"best_bid": 1.0,\n"best_ask": 2.0}', b""],
        [b"   ", b'{"best_bid": 1.0, "best_ask": 2.0}'],
    ],
)
def test_run_of_invalid_payloads_never_passes(payloads):
    fast = FastEventDecoder(EventDecoder(ORDERBOOK))

    assert fast.last_if_all_valid(payloads) is None


def test_bincode_run_fires_once(reference_server_factory):
    server = reference_server_factory(args=["--wire", "bincode"])
    sock = open_producer(server)
    run = [struct.pack("<dd", 100.0 + i, 100.05 + i) for i in range(5)]
    sock.sendall(b"".join(masked(payload) for payload in run))

    body = wait_for_events(server, 5)
    sock.close()

    assert body["events_total"] == 5
    assert fires(server) == 1
