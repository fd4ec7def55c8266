"""Bounded fuzz of the reference server over real sockets on 127.0.0.1.

Each test sends one batch of hostile input to a server of each profile: bytes
instead of an upgrade request, malformed upgrade requests, malformed frames,
random payloads, slow senders or a burst of idle connections. Then it checks
that a well-formed client is still served. A good event on a connection opened
before the batch and one on a fresh connection must both raise the fire count
of ``price_signal``.

After each batch the server must also keep its resident memory under
``RSS_GROWTH_LIMIT_BYTES`` above the size measured after start, close no
WebSocket with 1011 (internal error), print no traceback, and log at most
``MAX_LINES_PER_CONNECTION`` lines per hostile connection.

Hypothesis runs with ``derandomize=True`` and a fixed ``max_examples`` per
test, so CI gets the same inputs every run. Every socket read has a deadline,
so one example takes at most ``EXAMPLE_DEADLINE_S``.
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import resource
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
import psutil
import pytest
import websocket
from conftest import RunningServer, start_reference_server, stop_reference_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ACCUMULATOR_PATH = "/v1/ws/accumulator/orderbook"
GRAPH_PATH = "/v1/health/graphs/price_signal"
GOOD_EVENT = {"best_bid": 100.1, "best_ask": 100.15}

EXAMPLE_DEADLINE_S = 3.0
"""Maximum time one hostile connection stays open, reads included."""
FIRE_WAIT_S = 5.0
"""Time a good event gets to show up in the fire count."""
HEALTH_LATENCY_LIMIT_S = 2.0
"""Slowest health response accepted while hostile connections are open."""

RSS_GROWTH_LIMIT_BYTES = 64 * 1024 * 1024
"""Resident memory the server may gain over its size after start.

A fresh server is about 41 MB. On the 2-core development container (CPython
3.11, aiohttp 3.14.5, uvloop) a batch other than the burst grew it by under
1 MB, and the burst of 3000 connections by 32 MB that the allocator kept after
the connections closed. 64 MiB is twice that, and far below the one message of
up to 64 MiB that a client may legitimately make the server buffer, which no
batch here sends.
"""
IDLE_RSS_PER_CONNECTION_BYTES = 32 * 1024
"""Resident memory allowed per open idle connection during the burst.

Measured on the same container: 3000 connections, half of them upgraded, grew
the server by about 11 KiB each. 32 KiB leaves room for allocator slack but
not for a buffer of a large frame per connection.
"""
MAX_LINES_PER_CONNECTION = 3
"""Log lines one hostile connection may cause: opened, failed and closed."""

IDLE_CONNECTIONS_TARGET = 3000
BURST_PAUSE_EVERY = 64
BURST_PAUSE_S = 0.005
IDLE_CONNECTIONS_MIN = 500
"""Minimum idle connections for the burst test; with fewer it is skipped."""
FD_RESERVE = 256
"""Descriptors left free in each process for files, pipes and the good client."""

FUZZ_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    # The batch fixture spans all examples of a test on purpose: it checks the
    # server once after the whole batch.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

OPCODE_CONTINUATION, OPCODE_TEXT, OPCODE_BINARY = 0x0, 0x1, 0x2
OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG = 0x8, 0x9, 0xA
CLOSE_INTERNAL_ERROR = 1011
PEER_PORT = re.compile(r"127\.0\.0\.1:(\d+)\b")
"""Client port in the server's log lines, which name peers as host:port."""


def _raise_open_file_limit() -> int:
    # Children inherit the limit, so raising it here before the server starts
    # lets both ends of the idle burst hold their descriptors.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


@dataclass
class FuzzTarget:
    """A server under fuzz, its good client and what it looked like at start."""

    server: RunningServer
    profile: str
    good_client: websocket.WebSocket
    baseline_rss_bytes: int
    open_file_limit: int
    log_offset: int = 0
    """Characters of stderr already checked by ``check_batch``."""
    hostile_ports: list[int] = field(default_factory=list)
    """Client ports of the current batch's hostile connections."""

    @property
    def rss_bytes(self) -> int:
        return psutil.Process(self.server.process.pid).memory_info().rss


@pytest.fixture(scope="module", params=["tutorial", "cloacina"])
def target(request, tmp_path_factory) -> Iterator[FuzzTarget]:
    limit = _raise_open_file_limit()
    tmp_path = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    server = start_reference_server(tmp_path, ["--profile", request.param])
    try:
        good_client = open_good_client(server)
        fuzz_target = FuzzTarget(
            server=server,
            profile=request.param,
            good_client=good_client,
            baseline_rss_bytes=0,
            open_file_limit=limit,
        )
        send_good_event(fuzz_target, good_client)
        fuzz_target.baseline_rss_bytes = fuzz_target.rss_bytes
        yield fuzz_target
        good_client.close()
    finally:
        stop_reference_server(server.process)


@pytest.fixture
def batch(target: FuzzTarget) -> Iterator[FuzzTarget]:
    """Start a batch of hostile input and check the server after it."""
    target.hostile_ports = []
    target.log_offset = len(target.server.stderr_text())
    yield target
    check_batch(target)


# The well-formed client.


def open_good_client(server: RunningServer) -> websocket.WebSocket:
    return websocket.create_connection(
        server.ws_url + ACCUMULATOR_PATH,
        header=[f"Authorization: Bearer {server.token}"],
        timeout=FIRE_WAIT_S,
    )


def fire_count(target: FuzzTarget) -> int:
    status, body = target.server.get_json(GRAPH_PATH)
    assert status == 200, body
    if target.profile == "cloacina":
        return body["fires"]
    return body["health"]["fire_count"]


def send_good_event(target: FuzzTarget, client: websocket.WebSocket) -> None:
    """Send the tutorial's event and wait until the fire count goes up."""
    before = fire_count(target)
    payload = orjson.dumps(GOOD_EVENT)
    # The cloacina profile ignores text frames, as the Cloacina server does.
    if target.profile == "cloacina":
        client.send_binary(payload)
    else:
        client.send(payload.decode())
    deadline = time.monotonic() + FIRE_WAIT_S
    while fire_count(target) <= before:
        assert time.monotonic() < deadline, "good event did not fire in time"
        time.sleep(0.01)


def check_batch(target: FuzzTarget) -> None:
    """Check that a batch of hostile input left the server healthy."""
    assert target.server.process.poll() is None, "server exited"

    # Both the connection opened before the batch and a new one are served.
    send_good_event(target, target.good_client)
    fresh = open_good_client(target.server)
    try:
        send_good_event(target, fresh)
    finally:
        fresh.close()

    growth = target.rss_bytes - target.baseline_rss_bytes
    assert growth < RSS_GROWTH_LIMIT_BYTES, f"RSS grew by {growth} bytes"

    log = target.server.stderr_text()[target.log_offset :]
    assert "Traceback" not in log, log[:4000]
    lines = log.splitlines()
    # NOTE: a rejected upgrade is logged with the peer address but no port, so
    # only the total line count covers it, not the per-connection check.
    allowed = MAX_LINES_PER_CONNECTION * len(target.hostile_ports) + 10
    assert len(lines) <= allowed, f"{len(lines)} log lines, allowed {allowed}"
    mentions: dict[int, list[str]] = {}
    for line in lines:
        for port in PEER_PORT.findall(line):
            mentions.setdefault(int(port), []).append(line)
    for port in target.hostile_ports:
        port_lines = mentions.get(port, [])
        assert len(port_lines) <= MAX_LINES_PER_CONNECTION, port_lines
        warnings = [line for line in port_lines if " INFO " not in line]
        assert len(warnings) <= 1, warnings


# Raw sockets and frames.


def upgrade_request(
    server: RunningServer, headers: dict[str, str] | None = None
) -> bytes:
    """Encode a valid upgrade request, or one with ``headers`` instead."""
    if headers is None:
        headers = good_upgrade_headers(server)
    lines = [f"GET {ACCUMULATOR_PATH} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


def good_upgrade_headers(server: RunningServer) -> dict[str, str]:
    return {
        "Host": f"{server.host}:{server.port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        "Authorization": f"Bearer {server.token}",
    }


def encode_frame(
    opcode: int,
    payload: bytes,
    fin: bool = True,
    rsv: int = 0,
    mask_key: bytes | None = b"\x01\x02\x03\x04",
    declared_length: int | None = None,
) -> bytes:
    """Encode one client frame; None for ``mask_key`` sends it unmasked.

    ``declared_length`` puts another length in the header than the payload's.
    """
    length = len(payload) if declared_length is None else declared_length
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if mask_key is not None else 0
    if length < 126:
        header = struct.pack("!BB", first, mask_bit | length)
    elif length < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    if mask_key is None:
        return header + payload
    masked = bytes(byte ^ mask_key[i % 4] for i, byte in enumerate(payload))
    return header + mask_key + masked


def connect(target: FuzzTarget) -> socket.socket:
    sock = socket.create_connection(
        (target.server.host, target.server.port), timeout=EXAMPLE_DEADLINE_S
    )
    target.hostile_ports.append(sock.getsockname()[1])
    return sock


def read_until_closed(sock: socket.socket, deadline_s: float) -> tuple[bytes, bool]:
    """Read until the server closes or the deadline; return data and closed."""
    data = b""
    deadline = time.monotonic() + deadline_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return data, False
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk


def read_response_head(sock: socket.socket) -> bytes:
    """Read the HTTP response head, or what arrived before EOF or the deadline."""
    head = b""
    deadline = time.monotonic() + EXAMPLE_DEADLINE_S
    while b"\r\n\r\n" not in head and time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        head += chunk
    return head


def open_websocket(target: FuzzTarget) -> tuple[socket.socket, bytes]:
    """Upgrade a raw socket; return it and bytes read past the response head."""
    sock = connect(target)
    sock.sendall(upgrade_request(target.server))
    head = read_response_head(sock)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock, head.partition(b"\r\n\r\n")[2]


def close_codes(data: bytes) -> list[int]:
    """Return the status codes of the close frames in server-to-client bytes."""
    codes = []
    offset = 0
    while offset + 2 <= len(data):
        first, second = data[offset], data[offset + 1]
        length = second & 0x7F
        offset += 2
        if length == 126:
            if offset + 2 > len(data):
                break
            (length,) = struct.unpack_from("!H", data, offset)
            offset += 2
        elif length == 127:
            if offset + 8 > len(data):
                break
            (length,) = struct.unpack_from("!Q", data, offset)
            offset += 8
        payload = data[offset : offset + length]
        offset += length
        if first & 0x0F == OPCODE_CLOSE:
            codes.append(struct.unpack("!H", payload[:2])[0] if payload else 1005)
    return codes


def finish_hostile(sock: socket.socket) -> tuple[bytes, bool]:
    """Half-close our side, read what the server sends, then close the socket."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    try:
        return read_until_closed(sock, EXAMPLE_DEADLINE_S)
    finally:
        sock.close()


def status_of(head: bytes) -> int | None:
    match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return int(match.group(1)) if match else None


# Bytes instead of an upgrade request.

REQUEST_PREFIXES = [
    b"",
    b"GET ",
    b"GET / HTTP/1.1\r\n",
    b"GET " + ACCUMULATOR_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
]


@FUZZ_SETTINGS
@given(prefix=st.sampled_from(REQUEST_PREFIXES), noise=st.binary(max_size=4096))
def test_random_bytes_instead_of_upgrade(batch, prefix, noise):
    sock = connect(batch)
    sock.sendall(prefix + noise)
    data, closed = finish_hostile(sock)

    status = status_of(data)
    assert status is None or status < 500, data[:200]
    assert closed, "server kept the connection open after the client's EOF"


# Malformed upgrade requests.

HEADER_NAMES = [
    "Host",
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Authorization",
]
BAD_KEYS = ["", "short", "!!!!not-base64!!!!", base64.b64encode(b"x" * 15).decode()]
BAD_VERSIONS = ["", "8", "12", "14", "13, 8", "thirteen", "9" * 300]
HUGE_VALUE_CHARS = [8191, 20000, 100_000]
"""Header value sizes around and above aiohttp's 8190-byte line limit."""
header_text = st.text(
    st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
    max_size=64,
)


@st.composite
def upgrade_mutations(draw) -> list[tuple[str, str, str]]:
    """Draw edits of a valid upgrade request: (action, header name, value)."""
    actions = st.one_of(
        st.tuples(st.just("drop"), st.sampled_from(HEADER_NAMES), st.just("")),
        st.tuples(st.just("duplicate"), st.sampled_from(HEADER_NAMES), header_text),
        st.tuples(st.just("set"), st.sampled_from(HEADER_NAMES), header_text),
        st.tuples(
            st.just("set"), st.just("Sec-WebSocket-Key"), st.sampled_from(BAD_KEYS)
        ),
        st.tuples(
            st.just("set"),
            st.just("Sec-WebSocket-Version"),
            st.sampled_from(BAD_VERSIONS),
        ),
        st.tuples(
            st.just("huge"),
            st.sampled_from([*HEADER_NAMES, "X-Padding"]),
            st.sampled_from(HUGE_VALUE_CHARS).map(str),
        ),
        st.tuples(
            st.just("many"), st.just("X-Filler"), st.sampled_from(["120", "1000"])
        ),
    )
    return draw(st.lists(actions, min_size=1, max_size=4))


def mutated_request(server: RunningServer, mutations) -> bytes:
    headers = list(good_upgrade_headers(server).items())
    for action, name, value in mutations:
        if action == "drop":
            headers = [(k, v) for k, v in headers if k != name]
        elif action == "duplicate":
            headers.append((name, value))
        elif action == "set":
            headers = [(k, value if k == name else v) for k, v in headers]
        elif action == "huge":
            headers.append((name, "a" * int(value)))
        elif action == "many":
            headers += [(f"{name}-{i}", "x") for i in range(int(value))]
    lines = [f"GET {ACCUMULATOR_PATH} HTTP/1.1", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


@FUZZ_SETTINGS
@given(mutations=upgrade_mutations())
def test_malformed_upgrade_requests(batch, mutations):
    sock = connect(batch)
    try:
        sock.sendall(mutated_request(batch.server, mutations))
    except (BrokenPipeError, ConnectionResetError):
        # The server may reject an oversized head before reading all of it.
        sock.close()
        return

    # Wait for the response before the EOF, because an EOF that arrives while
    # the server writes its 101 is the known bug in test_upgrade_then_eof_*.
    head = read_response_head(sock)
    if head.startswith(b"HTTP/1.1 101"):
        sock.sendall(encode_frame(OPCODE_CLOSE, struct.pack("!H", 1000)))
    data, closed = finish_hostile(sock)
    data = head + data

    status = status_of(data)
    assert status is None or status < 500, data[:300]
    assert CLOSE_INTERNAL_ERROR not in close_codes(data.partition(b"\r\n\r\n")[2])
    assert closed, "server kept the connection open after the client's EOF"


EOF_RACE_CONNECTIONS = 10


def test_upgrade_then_eof_logs_no_traceback(batch):
    # A client that sends a valid upgrade request and at once closes its side
    # is an ordinary disconnect and must not cost a traceback per connection.
    for _ in range(EOF_RACE_CONNECTIONS):
        sock = connect(batch)
        sock.sendall(upgrade_request(batch.server))
        finish_hostile(sock)
    time.sleep(0.2)

    log = batch.server.stderr_text()[batch.log_offset :]
    # Clear the log window, so the batch check after this test passes.
    batch.log_offset += len(log)
    assert log.count("Traceback") == 0, log[:3000]


# Malformed frames after a valid upgrade.

frame_specs = st.fixed_dictionaries(
    {
        "opcode": st.integers(0, 15),
        "fin": st.booleans(),
        "rsv": st.sampled_from([0, 0, 0, 1, 2, 4, 7]),
        "mask_key": st.one_of(st.none(), st.binary(min_size=4, max_size=4)),
        "payload": st.one_of(
            st.binary(max_size=200),
            st.sampled_from([b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90"]),
            st.binary(min_size=70_000, max_size=70_000),
        ),
        "length_change": st.sampled_from(
            [None, None, None, "short", "long", 2**40, 2**63 - 1, 2**64 - 1]
        ),
    }
)
"""One frame: any opcode, flags, masking, payload and declared length.

Byte pairs such as ``c3 28`` are invalid UTF-8 for text frames. ``short`` and
``long`` declare one byte fewer or more than sent, and the large numbers
declare lengths over the 64 MiB message limit, up to the 64-bit maximum whose
top bit RFC 6455 forbids.
"""


def encode_spec(spec: dict) -> bytes:
    payload = spec["payload"]
    change = spec["length_change"]
    declared = None
    if change == "short":
        declared = max(len(payload) - 1, 0)
    elif change == "long":
        declared = len(payload) + 1
    elif change is not None:
        declared = change
    return encode_frame(
        spec["opcode"],
        payload,
        fin=spec["fin"],
        rsv=spec["rsv"],
        mask_key=spec["mask_key"],
        declared_length=declared,
    )


@FUZZ_SETTINGS
@given(specs=st.lists(frame_specs, min_size=1, max_size=4), cut=st.integers(0, 64))
def test_malformed_frames(batch, specs, cut):
    sock, early = open_websocket(batch)
    stream = b"".join(encode_spec(spec) for spec in specs)
    # A cut > 0 drops that many bytes from the end: a truncated last frame.
    if cut and cut < len(stream):
        stream = stream[:-cut]
    try:
        sock.sendall(stream)
    except (BrokenPipeError, ConnectionResetError):
        sock.close()
        return
    data, closed = finish_hostile(sock)

    assert CLOSE_INTERNAL_ERROR not in close_codes(early + data)
    assert closed, "server kept the connection open after the client's EOF"


# Valid frames with random payloads.

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
order_book_like = st.fixed_dictionaries(
    {},
    optional={
        "best_bid": st.one_of(st.floats(), st.integers(), st.text(max_size=5)),
        "best_ask": st.one_of(st.floats(), st.integers(), st.none()),
        "extra": json_values,
    },
)
payloads = st.one_of(
    json_values.map(lambda value: json.dumps(value).encode()),
    # json.dumps writes NaN and Infinity, which are not JSON.
    order_book_like.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=300),
    st.text(max_size=100).map(lambda text: text.encode("utf-8", "surrogatepass")),
)


@FUZZ_SETTINGS
@given(
    frames=st.lists(
        st.tuples(st.sampled_from([OPCODE_TEXT, OPCODE_BINARY]), payloads),
        min_size=1,
        max_size=8,
    )
)
def test_random_payloads_keep_connection(batch, frames):
    sock, early = open_websocket(batch)
    stream = b""
    for opcode, payload in frames:
        if opcode == OPCODE_TEXT:
            # Invalid UTF-8 is the frame test's case; keep text frames valid.
            payload = payload.decode("utf-8", "replace").encode()
        stream += encode_frame(opcode, payload)
    sock.sendall(stream + encode_frame(OPCODE_PING, b"still there?"))

    # Garbage events are rejected one by one, so the ping still gets its pong.
    reply = early
    deadline = time.monotonic() + EXAMPLE_DEADLINE_S
    while b"still there?" not in reply and time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            break
        if not chunk:
            break
        reply += chunk
    sock.sendall(encode_frame(OPCODE_CLOSE, struct.pack("!H", 1000)))
    data, _ = finish_hostile(sock)

    if batch.profile == "cloacina":
        # A frame can be dropped when no reactor took it, which closes 4404.
        assert b"still there?" in reply or 4404 in close_codes(reply + data)
    else:
        assert b"still there?" in reply, reply[:200]
    assert CLOSE_INTERNAL_ERROR not in close_codes(reply + data)


# Fragmented messages.


@FUZZ_SETTINGS
@given(
    splits=st.lists(st.integers(1, 40), min_size=0, max_size=6),
    tcp_chunk=st.integers(1, 64),
    interleave_ping=st.booleans(),
)
def test_fragmented_event_fires_once(batch, splits, tcp_chunk, interleave_ping):
    payload = orjson.dumps(GOOD_EVENT)
    # Cut the message at the drawn offsets into a first frame and continuations.
    cuts = sorted({min(offset, len(payload) - 1) for offset in splits})
    pieces = [
        payload[start:end] for start, end in zip([0, *cuts], [*cuts, None], strict=True)
    ]
    pieces = [piece for piece in pieces if piece] or [payload]
    opcode = OPCODE_BINARY if batch.profile == "cloacina" else OPCODE_TEXT
    stream = b""
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        stream += encode_frame(
            opcode if index == 0 else OPCODE_CONTINUATION, piece, last
        )
        if interleave_ping and not last:
            # RFC 6455 allows control frames between fragments.
            stream += encode_frame(OPCODE_PING, b"")

    before = fire_count(batch)
    sock, _ = open_websocket(batch)
    for start in range(0, len(stream), tcp_chunk):
        sock.sendall(stream[start : start + tcp_chunk])
    deadline = time.monotonic() + FIRE_WAIT_S
    while fire_count(batch) == before and time.monotonic() < deadline:
        time.sleep(0.01)
    sock.sendall(encode_frame(OPCODE_CLOSE, struct.pack("!H", 1000)))
    finish_hostile(sock)

    assert fire_count(batch) == before + 1


# Slow senders.

SLOW_SENDERS = 4
TRICKLE_BYTE_INTERVAL_S = 0.004
"""Pause between single bytes, so one upgrade and event take about 1.5 s."""


def trickle(sock: socket.socket, data: bytes, stop_at: float) -> None:
    for byte in data:
        if time.monotonic() > stop_at:
            return
        sock.sendall(bytes([byte]))
        time.sleep(TRICKLE_BYTE_INTERVAL_S)


def test_slow_senders_do_not_block_others(batch):
    opcode = OPCODE_BINARY if batch.profile == "cloacina" else OPCODE_TEXT
    event = encode_frame(opcode, orjson.dumps(GOOD_EVENT))
    sockets = [connect(batch) for _ in range(SLOW_SENDERS)]
    before = fire_count(batch)
    stop_at = time.monotonic() + 20.0
    threads = [
        threading.Thread(
            target=trickle,
            args=(sock, upgrade_request(batch.server) + event, stop_at),
            daemon=True,
        )
        for sock in sockets
    ]
    for thread in threads:
        thread.start()

    # While the trickle runs, the good client's events fire without waiting.
    time.sleep(0.2)
    for _ in range(3):
        started = time.monotonic()
        send_good_event(batch, batch.good_client)
        assert time.monotonic() - started < HEALTH_LATENCY_LIMIT_S
    assert any(thread.is_alive() for thread in threads), "trickle ended too early"

    for thread in threads:
        thread.join(timeout=30.0)
    assert not any(thread.is_alive() for thread in threads)
    deadline = time.monotonic() + FIRE_WAIT_S
    while fire_count(batch) < before + 3 + SLOW_SENDERS:
        assert time.monotonic() < deadline, "trickled events did not all fire"
        time.sleep(0.01)
    for sock in sockets:
        head = read_response_head(sock)
        assert head.startswith(b"HTTP/1.1 101"), head
        sock.close()


def test_slow_header_then_silence(batch):
    # Half an upgrade request, then nothing: the server must neither wait for
    # it with the other connections nor log it more than once.
    sock = connect(batch)
    request = upgrade_request(batch.server)
    sock.sendall(request[: len(request) // 2])
    send_good_event(batch, batch.good_client)
    sock.close()


# A burst of idle connections.


def test_idle_connection_burst(batch):
    free = batch.open_file_limit - FD_RESERVE
    count = min(IDLE_CONNECTIONS_TARGET, free)
    if count < IDLE_CONNECTIONS_MIN:
        pytest.skip(
            f"open-file limit {batch.open_file_limit} allows {count} connections, "
            f"fewer than {IDLE_CONNECTIONS_MIN}; raise the hard limit (ulimit -Hn)"
        )
    server = batch.server
    raw: list[socket.socket] = []
    upgraded: list[socket.socket] = []
    try:
        # Half stay silent before the request, half upgrade and then go idle.
        for index in range(count):
            sock = socket.create_connection((server.host, server.port), timeout=10)
            (raw if index % 2 else upgraded).append(sock)
            if index % BURST_PAUSE_EVERY == 0:
                # aiohttp listens with a backlog of 128, and a connect that
                # overflows it waits for the 1 s SYN retransmission.
                time.sleep(BURST_PAUSE_S)
        for sock in upgraded:
            sock.sendall(upgrade_request(server))
        for sock in upgraded:
            head = read_response_head(sock)
            assert head.startswith(b"HTTP/1.1 101"), head
        batch.hostile_ports += [sock.getsockname()[1] for sock in raw + upgraded]

        started = time.monotonic()
        status, body = server.get_json("/_loadgen/stats")
        assert time.monotonic() - started < HEALTH_LATENCY_LIMIT_S
        assert status == 200
        assert body["connections"] >= len(upgraded)
        send_good_event(batch, batch.good_client)
        fresh = open_good_client(server)
        send_good_event(batch, fresh)
        fresh.close()

        growth = batch.rss_bytes - batch.baseline_rss_bytes
        limit = RSS_GROWTH_LIMIT_BYTES + count * IDLE_RSS_PER_CONNECTION_BYTES
        assert growth < limit, f"RSS grew by {growth} bytes with {count} idle"
    finally:
        for sock in raw + upgraded:
            sock.close()

    # The server notices every close; only the good client stays connected.
    deadline = time.monotonic() + 10.0
    while server.get_json("/_loadgen/stats")[1]["connections"] > 1:
        assert time.monotonic() < deadline, "closed connections still counted"
        time.sleep(0.05)


def test_random_seeded_stream_mix(batch):
    # Several short connections in one fixed-seed mix of the cases above, sent
    # in random TCP chunks, to reach parser states the single cases miss.
    rng = random.Random(6455)
    for _ in range(30):
        sock, _ = open_websocket(batch)
        stream = b""
        for _ in range(rng.randint(1, 5)):
            opcode = rng.choice([0, 1, 2, 3, 8, 9, 10, 11])
            payload = rng.randbytes(rng.randint(0, 140))
            stream += encode_frame(
                opcode,
                payload,
                fin=rng.random() < 0.8,
                rsv=rng.choice([0, 0, 0, 4]),
                mask_key=rng.randbytes(4) if rng.random() < 0.9 else None,
            )
        offset = 0
        try:
            while offset < len(stream):
                step = rng.randint(1, 32)
                sock.sendall(stream[offset : offset + step])
                offset += step
        except (BrokenPipeError, ConnectionResetError):
            sock.close()
            continue
        data, closed = finish_hostile(sock)
        assert CLOSE_INTERNAL_ERROR not in close_codes(data)
        assert closed
