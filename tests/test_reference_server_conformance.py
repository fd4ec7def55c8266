"""RFC 6455 conformance of the accumulator WebSocket, with raw sockets.

Every case runs against a server in each profile. Frames are built by hand so
that protocol violations (unmasked frames, reserved bits, bad UTF-8) can be
sent at all; ``frames`` tests the scanner that catches unmasked frames.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import time

import pytest
from conftest import start_reference_server, stop_reference_server

from reference_server.frames import ClientFrameScanner

MAX_MESSAGE_BYTES = 4096
"""Limit passed with --max-message-bytes, small so the 1009 case is cheap."""
READ_TIMEOUT_S = 5.0
OPCODE_CONTINUATION, OPCODE_TEXT, OPCODE_BINARY = 0x0, 0x1, 0x2
OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG = 0x8, 0x9, 0xA
INVALID_CLOSE_CODES = (0, 999, 1004, 1005, 1006, 1015, 2999, 5000, 65535)
"""Codes a peer must not send in a close frame (RFC 6455 section 7.4)."""


@pytest.fixture(scope="module", params=["tutorial", "cloacina"])
def server(request, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp(request.param)
    running = start_reference_server(
        tmp_path,
        [
            "--profile",
            request.param,
            "--max-message-bytes",
            str(MAX_MESSAGE_BYTES),
        ],
    )
    yield running
    stop_reference_server(running.process)


def frame(
    opcode: int,
    payload: bytes,
    fin: bool = True,
    mask: bool = True,
    rsv: int = 0,
) -> bytes:
    """Encode one client frame."""
    first = (0x80 if fin else 0) | rsv | opcode
    mask_bit = 0x80 if mask else 0
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", first, mask_bit | size)
    elif size < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, size)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, size)
    if not mask:
        return header + payload
    key = os.urandom(4)
    masked = bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))
    return header + key + masked


def upgrade_request(server, path: str = "/v1/ws/accumulator/orderbook", **over):
    headers = {
        "Host": f"{server.host}:{server.port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        "Authorization": f"Bearer {server.token}",
    }
    for name, value in over.items():
        name = name.replace("_", "-")
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def open_socket(server, **over) -> tuple[socket.socket, bytes]:
    """Send an upgrade request and return the socket and the response head."""
    sock = socket.create_connection((server.host, server.port), timeout=READ_TIMEOUT_S)
    sock.sendall(upgrade_request(server, **over))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return sock, head


def connect(server) -> socket.socket:
    sock, head = open_socket(server)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """Read one server frame and return its opcode and payload."""

    def read_exact(size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("server closed the TCP connection")
            data += chunk
        return data

    first, second = read_exact(2)
    assert second & 0x80 == 0, "server frames must not be masked"
    size = second & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", read_exact(2))
    elif size == 127:
        (size,) = struct.unpack("!Q", read_exact(8))
    return first & 0x0F, read_exact(size)


def close_code(sock: socket.socket) -> int:
    """Read frames until a close frame and return its status code."""
    for _ in range(10):
        opcode, payload = read_frame(sock)
        if opcode == OPCODE_CLOSE:
            return struct.unpack("!H", payload[:2])[0]
    raise AssertionError("server sent no close frame")


# Frame violations.


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([frame(OPCODE_BINARY, b"{}", mask=False)], 1002),
        ([frame(OPCODE_BINARY, b"{}", rsv=0x40)], 1002),
        ([frame(0x3, b"x")], 1002),
        ([frame(OPCODE_PING, b"x" * 126)], 1002),
        ([frame(OPCODE_PING, b"x", fin=False)], 1002),
        ([frame(OPCODE_CONTINUATION, b"x")], 1002),
        ([frame(OPCODE_TEXT, b"\xff\xfe")], 1007),
        ([frame(OPCODE_BINARY, b"x" * (MAX_MESSAGE_BYTES + 1))], 1009),
        (
            [
                frame(OPCODE_BINARY, b"x" * MAX_MESSAGE_BYTES, fin=False),
                frame(OPCODE_CONTINUATION, b"x"),
            ],
            1009,
        ),
        ([frame(OPCODE_PING, b"x", rsv=0x40)], 1002),
        ([frame(OPCODE_PONG, b"x", rsv=0x10)], 1002),
        ([frame(OPCODE_CLOSE, struct.pack("!H", 1000), rsv=0x20)], 1002),
        *(
            ([frame(OPCODE_CLOSE, struct.pack("!H", code))], 1002)
            for code in INVALID_CLOSE_CODES
        ),
    ],
    ids=[
        "unmasked",
        "reserved-bit",
        "unknown-opcode",
        "long-control-frame",
        "fragmented-control-frame",
        "continuation-first",
        "invalid-utf8",
        "too-big",
        "too-big-fragmented",
        "reserved-bit-ping",
        "reserved-bit-pong",
        "reserved-bit-close",
        *(f"close-code-{code}" for code in INVALID_CLOSE_CODES),
    ],
)
def test_violation_closes_with_code(server, frames, code):
    sock = connect(server)
    sock.sendall(b"".join(frames))

    assert close_code(sock) == code
    sock.close()


def test_unmasked_after_masked_frames(server):
    before = events_total(server)
    sock = connect(server)
    event = b'{"best_bid": 1, "best_ask": 2}'
    sock.sendall(
        frame(OPCODE_BINARY, event) * 3 + frame(OPCODE_BINARY, event, mask=False)
    )

    assert close_code(sock) == 1002
    sock.close()
    # The events before the violation still count, as in a reader of one frame
    # at a time.
    deadline = time.monotonic() + 5.0
    while events_total(server) < before + 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert events_total(server) == before + 3


def events_total(server) -> int:
    status, body = server.get_json("/_loadgen/stats")
    assert status == 200, body
    return body["events_total"]


# Normal operation.


def test_ping_gets_pong_with_payload(server):
    sock = connect(server)
    sock.sendall(frame(OPCODE_PING, b"hello"))

    assert read_frame(sock) == (OPCODE_PONG, b"hello")
    sock.close()


def test_close_handshake_echoes_code(server):
    sock = connect(server)
    sock.sendall(frame(OPCODE_CLOSE, struct.pack("!H", 1000) + b"bye"))

    assert close_code(sock) == 1000
    assert sock.recv(1) == b""
    sock.close()


def test_close_without_code_gets_1000(server):
    sock = connect(server)
    sock.sendall(frame(OPCODE_CLOSE, b""))

    assert read_frame(sock) == (OPCODE_CLOSE, struct.pack("!H", 1000))
    sock.close()


@pytest.mark.parametrize(
    ("rejected", "code"),
    [
        (frame(OPCODE_CLOSE, struct.pack("!H", 1004)), 1002),
        (frame(OPCODE_BINARY, b" " * (MAX_MESSAGE_BYTES + 1)), 1009),
        (frame(OPCODE_BINARY, b"{}", mask=False), 1002),
    ],
    ids=["close-code-1004", "too-big", "unmasked"],
)
def test_frames_after_rejected_frame_ignored(server, rejected, code):
    before = events_total(server)
    sock = connect(server)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    event = b'{"best_bid": 1, "best_ask": 2}'
    sock.sendall(frame(OPCODE_BINARY, event) * 2 + rejected)
    # picows disconnects 10 ms after it rejects a frame, so a read that comes
    # sooner still reaches the connection, after the frame that broke the
    # protocol.
    time.sleep(0.001)
    try:
        sock.sendall(frame(OPCODE_BINARY, event) * 3)
    except OSError:
        pass
    assert close_code(sock) == code

    sock.close()
    time.sleep(0.3)
    assert events_total(server) == before + 2


def test_fragmented_message_is_one_event(server):
    before = server.get_json("/_loadgen/stats")[1]["events_total"]
    sock = connect(server)
    sock.sendall(
        frame(OPCODE_BINARY, b'{"best_bid": 1,', fin=False)
        + frame(OPCODE_PING, b"between")
        + frame(OPCODE_CONTINUATION, b' "best_ask": 2}')
    )

    assert read_frame(sock) == (OPCODE_PONG, b"between")
    sock.sendall(frame(OPCODE_CLOSE, struct.pack("!H", 1000)))
    assert close_code(sock) == 1000
    sock.close()
    assert server.get_json("/_loadgen/stats")[1]["events_total"] == before + 1


def test_scanner_finds_unmasked_across_chunks():
    data = frame(OPCODE_BINARY, b"a" * 300) + frame(OPCODE_BINARY, b"b", mask=False)
    first_size = len(frame(OPCODE_BINARY, b"a" * 300))

    assert ClientFrameScanner().find_unmasked(data) == first_size
    scanner = ClientFrameScanner()
    hits = [scanner.find_unmasked(data[i : i + 7]) for i in range(0, len(data), 7)]
    found = [i * 7 + hit for i, hit in enumerate(hits) if hit >= 0]
    assert found[0] // 7 == first_size // 7


# Malformed upgrade requests.


@pytest.mark.parametrize(
    "over",
    [
        {"Sec_WebSocket_Key": None},
        {"Sec_WebSocket_Key": "short"},
        {"Sec_WebSocket_Version": "8"},
        {"Upgrade": None},
    ],
    ids=["no-key", "bad-key", "bad-version", "no-upgrade"],
)
def test_malformed_upgrade_gets_4xx(server, over):
    sock, head = open_socket(server, **over)
    sock.close()

    status = int(head.split(b" ", 2)[1])
    assert 400 <= status < 500, head


def test_scanner_single_frame_chunks():
    masked = frame(OPCODE_BINARY, b"x" * 120)
    unmasked = frame(OPCODE_BINARY, b"y", mask=False)
    extended = frame(OPCODE_BINARY, b"z" * 126)
    scanner = ClientFrameScanner()

    assert scanner.find_unmasked(masked) == -1
    assert scanner.find_unmasked(masked) == -1
    assert scanner.find_unmasked(extended) == -1
    assert scanner.find_unmasked(unmasked) == 0
    split = ClientFrameScanner()
    assert split.find_unmasked(masked[:10]) == -1
    assert split.find_unmasked(masked[10:] + unmasked) == len(masked) - 10
