"""The tutorial profile's bincode wire format (``--wire bincode``).

The first tests check the decoder and encoder without sockets; the rest start
a reference server with ``--wire bincode`` and send real WebSocket frames.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import websocket
from hypothesis import given
from hypothesis import strategies as st

from reference_server.bincode import (
    ExactDecoder,
    encode_boundary,
    make_decoder,
    make_run_decoder,
)
from reference_server.boundary import BoundaryError, decode_event, validate_boundary
from reference_server.config import default_config
from reference_server.profiles import CLOACINA, TUTORIAL, with_wire
from reference_server.registry import REJECTED, Registry

ORDERBOOK = {"best_bid": "f64", "best_ask": "f64"}
TRADES = {"price": "f64", "quantity": "i64", "venue": "str", "aggressor_buy": "bool"}
"""The ``trades`` accumulator of reference_server/examples/two_tenants.toml."""
TWO_TENANTS = (
    Path(__file__).parent.parent / "reference_server" / "examples" / "two_tenants.toml"
)
CLIENTS = Path(__file__).parent / "tutorial_clients"
TRADE = {"price": 1.5, "quantity": -3, "venue": "Zürich", "aggressor_buy": True}
POLL_TIMEOUT_S = 5.0


def orderbook_bytes(bid: float, ask: float) -> bytes:
    return struct.pack("<dd", bid, ask)


def trade_bytes(venue: bytes, flag: int = 1, length: int | None = None) -> bytes:
    """Build a trades payload by hand, with a chosen str length and bool byte."""
    size = len(venue) if length is None else length
    return struct.pack("<dqQ", 1.5, -3, size) + venue + bytes([flag])


# Decoding without sockets.


def test_orderbook_decodes_like_json():
    decode = make_decoder(ORDERBOOK)

    value = decode(orderbook_bytes(100.1, 100.15))

    assert value == decode_event(b'{"best_bid":100.1,"best_ask":100.15}', ORDERBOOK)
    assert list(value) == ["best_bid", "best_ask"]


def test_every_field_type_decodes():
    payload = trade_bytes("Zürich".encode())

    assert make_decoder(TRADES)(payload) == TRADE
    assert encode_boundary(TRADE, TRADES) == payload


def test_text_payload_decoded_from_utf8():
    # "0000000@" is the little-endian f64 2**4 * (1 + 0x0303030303030 / 2**52).
    text = "0000000@0000000@"
    expected = struct.unpack("<d", b"0000000@")[0]

    assert make_decoder(ORDERBOOK)(text) == {"best_bid": expected, "best_ask": expected}


@pytest.mark.parametrize(
    ("fields", "payload", "message"),
    [
        (ORDERBOOK, orderbook_bytes(1.0, 2.0)[:10], "10 bytes ends inside field"),
        (ORDERBOOK, b"", "0 bytes ends inside field 'best_bid'"),
        (ORDERBOOK, orderbook_bytes(1.0, 2.0) + b"\x00", "1 trailing byte after"),
        (ORDERBOOK, orderbook_bytes(math.nan, 2.0), "'best_bid' is nan"),
        (ORDERBOOK, orderbook_bytes(1.0, -math.inf), "'best_ask' is -inf"),
        (ORDERBOOK, b'{"best_bid":100.1,"best_ask":100.15}', "looks like a JSON"),
        (ORDERBOOK, b'{"best_bid":1,"best_ask":2}', "looks like a JSON"),
        (TRADES, trade_bytes(b"NYSE", flag=2), "must be bool, encoded as byte 0 or 1"),
        (TRADES, trade_bytes(b"\xffNYSE"), "'venue' is not valid UTF-8"),
        (TRADES, trade_bytes(b"NYSE", length=40), "ends inside field 'venue'"),
        (TRADES, trade_bytes(b"NYSE") + b"xy", "2 trailing bytes"),
        (TRADES, trade_bytes(b"NYSE")[:20], "ends inside field 'venue'"),
    ],
    ids=[
        "short",
        "empty",
        "trailing",
        "nan",
        "infinite",
        "json-same-fields",
        "json-16-bytes",
        "bool-byte",
        "utf8",
        "str-past-end",
        "trailing-after-str",
        "short-str-length",
    ],
)
def test_malformed_payload_rejected(fields, payload, message):
    with pytest.raises(BoundaryError) as raised:
        make_decoder(fields)(payload)

    assert message in str(raised.value)


def test_json_payload_names_the_fix():
    with pytest.raises(BoundaryError) as raised:
        make_decoder(ORDERBOOK)(b' {"best_bid": 100.1, "best_ask": 100.15}')

    message = str(raised.value)
    assert "this server reads bincode (--wire bincode)" in message
    assert "loadgen --wire bincode" in message
    assert "restart the server with --wire json" in message


def test_json_server_hints_at_bincode():
    with pytest.raises(BoundaryError) as raised:
        decode_event(orderbook_bytes(100.1, 100.15), ORDERBOOK)

    assert "restart the server with --wire bincode" in str(raised.value)


def test_encoder_rejects_mismatched_values():
    with pytest.raises(BoundaryError, match="missing field 'best_ask'"):
        encode_boundary({"best_bid": 1.0}, ORDERBOOK)
    with pytest.raises(BoundaryError, match="must be finite"):
        encode_boundary({"best_bid": math.inf, "best_ask": 1.0}, ORDERBOOK)


FIELD_TYPES = st.sampled_from(["f64", "i64", "str", "bool"])
VALUES = {
    "f64": st.floats(allow_nan=False, allow_infinity=False),
    "i64": st.integers(min_value=-(2**63), max_value=2**63 - 1),
    "str": st.text(),
    "bool": st.booleans(),
}


@st.composite
def layouts_and_values(draw):
    names = draw(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=6))
    fields = {name: draw(FIELD_TYPES) for name in dict.fromkeys(names)}
    value = {name: draw(VALUES[kind]) for name, kind in fields.items()}
    return fields, value


@given(layouts_and_values())
def test_round_trip_matches_json(layout):
    fields, value = layout

    decoded = make_decoder(fields)(encode_boundary(value, fields))

    assert decoded == validate_boundary(value, fields)
    assert decoded == decode_event(orjson.dumps(value), fields)
    assert list(decoded) == list(fields)


def packed_floats(count: int):
    """Payloads of ``count`` f64 values, NaN and infinities included."""
    floats = st.lists(st.floats(), min_size=count, max_size=count)
    return floats.map(lambda values: struct.pack(f"<{count}d", *values))


@given(st.lists(st.sampled_from(["f64", "i64"]), min_size=1, max_size=4), st.data())
def test_fast_path_agrees_with_exact_path(kinds, data):
    fields = {f"f{i}": kind for i, kind in enumerate(kinds)}
    payload = data.draw(st.one_of(st.binary(max_size=40), packed_floats(len(kinds))))

    def outcome(decode: Callable[[bytes], dict]) -> object:
        try:
            return decode(payload)
        except BoundaryError as error:
            return str(error)

    assert outcome(make_decoder(fields)) == outcome(ExactDecoder(fields).decode)


def test_run_decoder_returns_last_value():
    last_if_all_valid = make_run_decoder(ORDERBOOK)
    run = [orderbook_bytes(100.0 + i, 101.0 + i) for i in range(50)]

    assert last_if_all_valid(run) == {"best_bid": 149.0, "best_ask": 150.0}
    assert last_if_all_valid(run[:-1] + [run[-1][:15]]) is None
    assert last_if_all_valid(run[:-2] + [run[-2] + b"!", run[-1][1:]]) is None
    assert last_if_all_valid([orderbook_bytes(math.nan, 1.0), *run]) is None
    assert last_if_all_valid(["0000000@0000000@", *run]) is None
    assert last_if_all_valid([]) is None


def test_run_decoder_only_for_f64_layouts():
    assert make_run_decoder(TRADES) is None
    assert make_run_decoder({"count": "i64"}) is None
    assert make_run_decoder({"price": "f64"}) is not None


@given(st.lists(st.one_of(st.binary(max_size=20), packed_floats(2)), max_size=8))
def test_run_decoder_agrees_with_decoder(run):
    decode = make_decoder(ORDERBOOK)
    try:
        values = [decode(payload) for payload in run]
    except BoundaryError:
        values = []

    expected = values[-1] if values else None
    assert make_run_decoder(ORDERBOOK)(run) == expected


# Profile and registry.


def test_cloacina_profile_has_no_bincode():
    with pytest.raises(ValueError, match="use --profile tutorial"):
        with_wire(CLOACINA, "bincode")
    with pytest.raises(ValueError, match="invalid wire format 'msgpack'"):
        with_wire(TUTORIAL, "msgpack")


def test_inject_payload_follows_wire():
    profile = with_wire(TUTORIAL, "bincode")
    event = {"best_bid": 100.1, "best_ask": 100.15}

    assert profile.inject_payload(event, ORDERBOOK) == orderbook_bytes(100.1, 100.15)
    assert TUTORIAL.inject_payload(event, ORDERBOOK) == orjson.dumps(event)
    # No bincode form: stays JSON, which the bincode decoder then rejects.
    assert profile.inject_payload({"best_bid": 1}, ORDERBOOK) == b'{"best_bid":1}'


def test_registry_counts_rejected_bincode():
    registry = Registry(default_config(), with_wire(TUTORIAL, "bincode"))
    orderbook = registry.accumulators[("public", "orderbook")]

    rejected = registry.deliver(orderbook, b'{"best_bid":1.0,"best_ask":2.0}')
    accepted = registry.deliver(orderbook, orderbook_bytes(100.1, 100.15))

    assert rejected == REJECTED
    assert accepted > 0
    assert orderbook.events_rejected == 1
    assert orderbook.events_total == 1


# A real server with --wire bincode.


def wait_for(predicate: Callable[[], bool], timeout_s: float = POLL_TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def send_frames(server, accumulator: str, frames: list[bytes | str]) -> None:
    """Send each frame on one connection, str as text and bytes as binary."""
    ws = websocket.create_connection(
        f"{server.ws_url}/v1/ws/accumulator/{accumulator}",
        header=[f"Authorization: Bearer {server.token}"],
        timeout=5,
    )
    for frame in frames:
        if isinstance(frame, str):
            ws.send(frame)
        else:
            ws.send_binary(frame)
    ws.close()


def accumulator_row(server, name: str = "orderbook") -> dict:
    status, body = server.get_json("/v1/health/accumulators")
    assert status == 200, body
    (row,) = [item for item in body["accumulators"] if item["name"] == name]
    return row


def fire_count(server, graph: str = "price_signal") -> int:
    status, body = server.get_json(f"/v1/health/graphs/{graph}")
    assert status == 200, body
    return body["health"]["fire_count"]


@pytest.fixture
def bincode_server(reference_server_factory):
    return reference_server_factory(["--wire", "bincode"])


def test_bincode_event_fires_graph(bincode_server):
    send_frames(bincode_server, "orderbook", [orderbook_bytes(100.1, 100.15)])

    assert wait_for(lambda: fire_count(bincode_server) == 1)
    _, graph = bincode_server.get_json("/v1/health/graphs/price_signal")
    assert graph["last_output"] == {"mid_price": 100.125, "spread": pytest.approx(0.05)}
    _, fires = bincode_server.get_json(
        "/v1/health/reactors/price_signal_rx/fires?limit=1"
    )
    inputs = fires["items"][0]["inputs"]
    assert inputs == {"orderbook": {"best_bid": 100.1, "best_ask": 100.15}}
    assert accumulator_row(bincode_server)["events_rejected"] == 0


def test_text_frame_of_bincode_accepted(bincode_server):
    # Text frames carry events too; their UTF-8 bytes are the bincode payload.
    send_frames(bincode_server, "orderbook", ["0000000@0000000@"])

    assert wait_for(lambda: accumulator_row(bincode_server)["events_total"] == 1)
    assert fire_count(bincode_server) == 1


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (orderbook_bytes(1.0, 2.0)[:15], "15 bytes ends inside field 'best_ask'"),
        (orderbook_bytes(1.0, 2.0) + b"\x00\x00", "2 trailing bytes"),
        (orderbook_bytes(math.nan, 2.0), "'best_bid' is nan"),
    ],
    ids=["short", "trailing", "nan"],
)
def test_malformed_orderbook_counted(bincode_server, payload, message):
    send_frames(bincode_server, "orderbook", [payload, orderbook_bytes(1.0, 2.0)])

    assert wait_for(lambda: accumulator_row(bincode_server)["events_total"] == 1)
    assert accumulator_row(bincode_server)["events_rejected"] == 1
    assert fire_count(bincode_server) == 1
    assert message in bincode_server.stderr_text()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (trade_bytes(b"NYSE", flag=7), "must be bool, encoded as byte 0 or 1"),
        (trade_bytes(b"N\xc3(SE"), "'venue' is not valid UTF-8"),
        (trade_bytes(b"NYSE", length=2**40), "ends inside field 'venue'"),
        (trade_bytes(b"NYSE") + b"!", "1 trailing byte after the last field"),
    ],
    ids=["bool-byte", "utf8", "str-past-end", "trailing"],
)
def test_malformed_trade_counted(reference_server_factory, payload, message):
    server = reference_server_factory(["--wire", "bincode"], config=TWO_TENANTS)

    send_frames(server, "trades", [payload, trade_bytes(b"NYSE")])

    assert wait_for(lambda: accumulator_row(server, "trades")["events_total"] == 1)
    assert accumulator_row(server, "trades")["events_rejected"] == 1
    assert message in server.stderr_text()


def test_tutorial_client_json_rejected_with_fix(bincode_server):
    # The tutorial's own client sends JSON, which a bincode server rejects.
    result = subprocess.run(
        [
            sys.executable,
            str(CLIENTS / "send_event.py"),
            bincode_server.host,
            str(bincode_server.port),
            bincode_server.token,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 0, result.stderr
    assert wait_for(lambda: accumulator_row(bincode_server)["events_rejected"] == 1)
    assert fire_count(bincode_server) == 0
    log = bincode_server.stderr_text()
    assert "looks like a JSON object, but this server reads bincode" in log
    assert "restart the server with --wire json" in log


def test_json_server_still_takes_tutorial_json(reference_server):
    # The default wire format is JSON, as the tutorial assumes.
    send_frames(reference_server, "orderbook", ['{"best_bid":1.5,"best_ask":2.5}'])

    assert wait_for(lambda: fire_count(reference_server) == 1)
    send_frames(reference_server, "orderbook", [orderbook_bytes(1.0, 2.0)])
    assert wait_for(lambda: accumulator_row(reference_server)["events_rejected"] == 1)
    assert "restart the server with --wire bincode" in reference_server.stderr_text()


def test_rest_inject_stays_json(bincode_server):
    body = json.dumps({"event": {"best_bid": 99.0, "best_ask": 99.5}}).encode()
    request = urllib.request.Request(
        f"{bincode_server.url}/v1/health/accumulators/orderbook/inject",
        data=body,
        headers={
            "Authorization": f"Bearer {bincode_server.token}",
            "Content-Type": "application/json",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200

    assert wait_for(lambda: fire_count(bincode_server) == 1)
    _, graph = bincode_server.get_json("/v1/health/graphs/price_signal")
    assert graph["last_output"]["mid_price"] == 99.25


def test_cloacina_profile_rejects_bincode(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "reference_server",
            "--port",
            "0",
            "--profile",
            "cloacina",
            "--wire",
            "bincode",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: --wire bincode applies only to --profile")
    assert result.stdout == ""
