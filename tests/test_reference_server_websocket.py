"""Integration tests of the accumulator and reactor WebSockets.

Each test starts its own reference server subprocess on a free loopback port.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import websocket

from reference_server.app import CLOSE_NOT_REGISTERED

EXAMPLE_TWO_TENANTS = (
    Path(__file__).parent.parent / "reference_server" / "examples" / "two_tenants.toml"
)
ACME_KEY = "clk_example_acme_producer_key"
EVENT = {"best_bid": 100.1, "best_ask": 100.15}
POLL_TIMEOUT_S = 5.0


def wait_for(predicate: Callable[[], bool], timeout_s: float = POLL_TIMEOUT_S) -> bool:
    """Poll ``predicate`` every 10 ms until it is true or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def connect(server, path: str, token: str | None = None, bearer: bool = False):
    """Open a WebSocket to ``path`` with the admin key or ``token``."""
    key = server.token if token is None else token
    url = server.ws_url + path
    headers = []
    if bearer:
        headers.append(f"Authorization: Bearer {key}")
    elif key:
        url += f"?token={key}"
    return websocket.create_connection(url, header=headers, timeout=5)


def graph(server, name: str = "price_signal") -> dict:
    status, body = server.get_json(f"/v1/health/graphs/{name}")
    assert status == 200, body
    return body


def accumulator(server, name: str = "orderbook") -> dict:
    status, body = server.get_json("/v1/health/accumulators")
    assert status == 200, body
    matches = [item for item in body["accumulators"] if item["name"] == name]
    assert len(matches) == 1, body
    return matches[0]


def receive_close(ws) -> tuple[int, str]:
    """Read frames until the server's close frame and return code and reason."""
    for _ in range(10):
        opcode, frame = ws.recv_data_frame(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            (code,) = struct.unpack("!H", frame.data[:2])
            return code, frame.data[2:].decode()
    raise AssertionError("server sent no close frame")


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "server.toml"
    path.write_text(text)
    return path


def slow_graph_config(tmp_path: Path, execution_time_ms: int) -> Path:
    return write_config(
        tmp_path,
        f"""
[[accumulators]]
name = "orderbook"
[accumulators.fields]
best_bid = "f64"
best_ask = "f64"

[[graphs]]
name = "price_signal"
reactor = "price_signal_rx"
accumulators = ["orderbook"]
execution_time_ms = {execution_time_ms}
""",
    )


@pytest.mark.parametrize(
    ("token", "bearer"),
    [("", False), ("clk_wrong_key", False), ("clk_wrong_key", True)],
    ids=["missing", "wrong-query", "wrong-bearer"],
)
def test_accumulator_upgrade_rejects_bad_key(reference_server, token, bearer):
    with pytest.raises(websocket.WebSocketBadStatusException) as caught:
        connect(reference_server, "/v1/ws/accumulator/orderbook", token, bearer)

    assert caught.value.status_code == 401
    body = json.loads(caught.value.resp_body)
    assert body["code"] == "unauthorized"
    assert body["error"]


def test_reactor_upgrade_rejects_wrong_key(reference_server):
    with pytest.raises(websocket.WebSocketBadStatusException) as caught:
        connect(reference_server, "/v1/ws/reactor/price_signal", "clk_wrong_key")

    assert caught.value.status_code == 401


def test_accumulator_accepts_bearer_header(reference_server):
    ws = connect(reference_server, "/v1/ws/accumulator/orderbook", bearer=True)
    ws.send(json.dumps(EVENT))
    ws.close()

    assert wait_for(lambda: graph(reference_server)["health"]["fire_count"] == 1)


def test_tenant_key_denied_on_foreign_accumulator(reference_server_factory):
    server = reference_server_factory(config=EXAMPLE_TWO_TENANTS)

    with pytest.raises(websocket.WebSocketBadStatusException) as caught:
        connect(server, "/v1/ws/accumulator/orderbook", ACME_KEY)

    assert caught.value.status_code == 403
    body = json.loads(caught.value.resp_body)
    assert body["code"] == "endpoint_access_denied"
    assert "orderbook" in body["error"]


def test_tenant_key_denied_on_foreign_reactor(reference_server_factory):
    server = reference_server_factory(config=EXAMPLE_TWO_TENANTS)

    with pytest.raises(websocket.WebSocketBadStatusException) as caught:
        connect(server, "/v1/ws/reactor/price_signal", ACME_KEY)

    assert caught.value.status_code == 403


def test_tenant_key_reaches_own_accumulator(reference_server_factory):
    server = reference_server_factory(config=EXAMPLE_TWO_TENANTS)

    ws = connect(server, "/v1/ws/accumulator/quotes", ACME_KEY, bearer=True)
    ws.send(json.dumps(EVENT))
    ws.close()

    assert wait_for(lambda: graph(server, "quote_log")["health"]["fire_count"] == 1)


def test_admin_key_reaches_every_tenant(reference_server_factory):
    server = reference_server_factory(config=EXAMPLE_TWO_TENANTS)

    for name in ("orderbook", "quotes", "trades"):
        ws = connect(server, f"/v1/ws/accumulator/{name}")
        assert ws.connected
        ws.close()


def test_unknown_accumulator_closes_4404(reference_server):
    ws = connect(reference_server, "/v1/ws/accumulator/no_such_book")
    code, reason = receive_close(ws)
    ws.close()

    assert code == CLOSE_NOT_REGISTERED
    assert reason == "accumulator 'no_such_book' not registered"


def test_unknown_reactor_closes_4404(reference_server):
    ws = connect(reference_server, "/v1/ws/reactor/no_such_graph")
    code, reason = receive_close(ws)
    ws.close()

    assert code == CLOSE_NOT_REGISTERED
    assert reason == "reactor 'no_such_graph' not registered"


def test_one_event_fires_once(reference_server):
    assert graph(reference_server)["health"]["fire_count"] == 0

    ws = connect(reference_server, "/v1/ws/accumulator/orderbook")
    ws.send_binary(json.dumps(EVENT).encode())
    ws.close()

    assert wait_for(lambda: graph(reference_server)["health"]["fire_count"] == 1)
    body = graph(reference_server)
    assert body["health"]["last_fired_at"].endswith("Z")
    assert body["last_output"] == {"mid_price": 100.125, "spread": pytest.approx(0.05)}
    assert accumulator(reference_server)["events_total"] == 1


@pytest.mark.parametrize("opcode", ["text", "binary"])
def test_text_and_binary_frames_fire(reference_server, opcode):
    ws = connect(reference_server, "/v1/ws/accumulator/orderbook")
    payload = json.dumps(EVENT)
    if opcode == "text":
        ws.send(payload)
    else:
        ws.send_binary(payload.encode())
    ws.close()

    assert wait_for(lambda: graph(reference_server)["health"]["fire_count"] == 1)


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b'{"best_bid": 100.1}',
        b'{"best_bid": 100.1, "best_ask": 100.15, "extra": 1}',
        b'{"best_bid": "100.1", "best_ask": 100.15}',
        b"[100.1, 100.15]",
    ],
    ids=["not-json", "missing-field", "extra-field", "wrong-type", "array"],
)
def test_invalid_event_counted_not_fired(reference_server, payload):
    ws = connect(reference_server, "/v1/ws/accumulator/orderbook")
    ws.send_binary(payload)
    ws.send_binary(json.dumps(EVENT).encode())
    ws.close()

    assert wait_for(lambda: accumulator(reference_server)["events_total"] == 1)
    status = accumulator(reference_server)
    assert status["events_rejected"] == 1
    assert graph(reference_server)["health"]["fire_count"] == 1


def test_integer_prices_accepted_for_f64(reference_server):
    ws = connect(reference_server, "/v1/ws/accumulator/orderbook")
    ws.send('{"best_bid": 100, "best_ask": 102}')
    ws.close()

    assert wait_for(lambda: graph(reference_server)["health"]["fire_count"] == 1)
    assert graph(reference_server)["last_output"] == {"mid_price": 101.0, "spread": 2.0}


def test_every_inline_event_fires(reference_server):
    ws = connect(reference_server, "/v1/ws/accumulator/orderbook")
    for i in range(200):
        ws.send(json.dumps({"best_bid": 100.0 + i, "best_ask": 101.0 + i}))
    ws.close()

    assert wait_for(lambda: accumulator(reference_server)["events_total"] == 200)
    assert graph(reference_server)["health"]["fire_count"] == 200


def test_events_during_fire_coalesce(reference_server_factory, tmp_path):
    server = reference_server_factory(config=slow_graph_config(tmp_path, 200))

    ws = connect(server, "/v1/ws/accumulator/orderbook")
    for i in range(10):
        ws.send(json.dumps({"best_bid": 100.0 + i, "best_ask": 102.0 + i}))
    ws.close()

    assert wait_for(lambda: graph(server)["health"]["fire_count"] == 2)

    # Let a wrongly queued third fire show up before the final check.
    time.sleep(0.5)
    body = graph(server)
    assert body["health"]["fire_count"] == 2
    assert body["firing"] is False
    assert body["last_output"] == {"mid_price": 110.0, "spread": 2.0}
    assert accumulator(server)["events_total"] == 10


def test_two_graphs_share_accumulator(reference_server_factory):
    server = reference_server_factory(config=EXAMPLE_TWO_TENANTS)

    ws = connect(server, "/v1/ws/accumulator/quotes")
    ws.send(json.dumps(EVENT))
    ws.close()

    assert wait_for(lambda: graph(server, "quote_log")["health"]["fire_count"] == 1)
    # trade_signal is when_all over trades and quotes, so quotes alone must wait.
    time.sleep(0.1)
    assert graph(server, "trade_signal")["health"]["fire_count"] == 0

    trade = {"price": 100.1, "quantity": 5, "venue": "X", "aggressor_buy": True}
    ws = connect(server, "/v1/ws/accumulator/trades")
    ws.send(json.dumps(trade))
    ws.close()

    assert wait_for(lambda: graph(server, "trade_signal")["health"]["fire_count"] == 1)
    assert accumulator(server, "quotes")["events_total"] == 1


def command(ws, body: dict) -> dict:
    ws.send(json.dumps(body))
    opcode, data = ws.recv_data()
    assert opcode == websocket.ABNF.OPCODE_TEXT
    return json.loads(data)


@pytest.mark.parametrize("name", ["price_signal", "price_signal_rx"])
def test_reactor_accepts_graph_and_reactor_name(reference_server, name):
    ws = connect(reference_server, f"/v1/ws/reactor/{name}")
    response = command(ws, {"type": "ForceFire"})
    ws.close()

    assert response == {"type": "Fired"}
    assert graph(reference_server)["health"]["fire_count"] == 1


def test_reactor_commands(reference_server):
    ws = connect(reference_server, "/v1/ws/reactor/price_signal")

    assert command(ws, {"type": "GetState"}) == {
        "type": "State",
        "cache": {},
        "paused": False,
    }
    assert command(ws, {"type": "ForceFire"}) == {"type": "Fired"}
    assert graph(reference_server)["last_output"] == {"mid_price": 0.0, "spread": 0.0}

    cache = {"orderbook": {"best_bid": 99.0, "best_ask": 101.0}}
    assert command(ws, {"type": "FireWith", "cache": cache}) == {"type": "Fired"}
    assert graph(reference_server)["health"]["fire_count"] == 2
    assert graph(reference_server)["last_output"] == {"mid_price": 100.0, "spread": 2.0}
    assert command(ws, {"type": "GetState"})["cache"] == cache

    assert command(ws, {"type": "Pause"}) == {"type": "Paused"}
    assert graph(reference_server)["paused"] is True
    assert command(ws, {"type": "GetState"})["paused"] is True
    assert command(ws, {"type": "Resume"}) == {"type": "Resumed"}
    assert graph(reference_server)["paused"] is False
    ws.close()


@pytest.mark.parametrize(
    "body",
    [
        {"type": "Explode"},
        {"command": "force_fire"},
        {"type": "FireWith", "cache": {"unknown": {}}},
        {"type": "FireWith", "cache": {"orderbook": {"best_bid": 1.0}}},
        {"type": "FireWith"},
    ],
    ids=["unknown-type", "no-type", "unknown-source", "bad-boundary", "no-cache"],
)
def test_reactor_rejects_bad_command(reference_server, body):
    ws = connect(reference_server, "/v1/ws/reactor/price_signal")
    response = command(ws, body)
    ws.close()

    assert response["type"] == "Error"
    assert response["message"]
    assert graph(reference_server)["health"]["fire_count"] == 0


def test_reactor_rejects_invalid_json(reference_server):
    ws = connect(reference_server, "/v1/ws/reactor/price_signal")
    ws.send("{not json")
    opcode, data = ws.recv_data()
    ws.close()

    assert json.loads(data)["type"] == "Error"


def test_paused_reactor_caches_without_firing(reference_server):
    control = connect(reference_server, "/v1/ws/reactor/price_signal")
    assert command(control, {"type": "Pause"}) == {"type": "Paused"}

    producer = connect(reference_server, "/v1/ws/accumulator/orderbook")
    producer.send(json.dumps(EVENT))
    assert wait_for(lambda: accumulator(reference_server)["events_total"] == 1)
    assert graph(reference_server)["health"]["fire_count"] == 0
    assert command(control, {"type": "GetState"})["cache"] == {"orderbook": EVENT}

    # A paused reactor skips ForceFire, and Resume alone does not fire.
    assert command(control, {"type": "ForceFire"}) == {"type": "Fired"}
    assert command(control, {"type": "Resume"}) == {"type": "Resumed"}
    assert graph(reference_server)["health"]["fire_count"] == 0

    producer.send(json.dumps(EVENT))
    producer.close()
    control.close()
    assert wait_for(lambda: graph(reference_server)["health"]["fire_count"] == 1)


def test_fired_response_is_one_short_frame(reference_server):
    # The tutorial client parses resp[2:], which needs a 2-byte frame header.
    ws = connect(reference_server, "/v1/ws/reactor/price_signal")
    ws.send(json.dumps({"type": "ForceFire"}))
    raw = ws.sock.recv(4096)
    ws.close()

    assert raw[0] == 0x81
    assert raw[1] < 126
    assert json.loads(raw[2:]) == {"type": "Fired"}


def test_abrupt_disconnect_logs_no_traceback(reference_server):
    ws = connect(reference_server, "/v1/ws/accumulator/orderbook")
    ws.send(json.dumps(EVENT))
    ws.sock.close()

    assert wait_for(lambda: "1 events received" in reference_server.stderr_text())
    assert "Traceback" not in reference_server.stderr_text()
    assert reference_server.token not in reference_server.stderr_text()
