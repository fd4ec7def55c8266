"""Integration tests of the cloacina profile, ground truth and load stats.

One server per module runs with ``--profile cloacina --ground-truth`` and a
configuration with two tenants; tests compare counters before and after, so
they do not depend on each other's order.
"""

from __future__ import annotations

import json
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
import websocket
from conftest import start_reference_server, stop_reference_server

CONFIG = """
[[accumulators]]
name = "orderbook"
[accumulators.fields]
best_bid = "f64"
best_ask = "f64"

[[accumulators]]
name = "shared"
tenant = "public"
[accumulators.fields]
value = "f64"

[[accumulators]]
name = "shared"
tenant = "acme"
[accumulators.fields]
value = "f64"

[[accumulators]]
name = "window"
kind = "state"
capacity = 3
[accumulators.fields]
value = "f64"

[[accumulators]]
name = "batched"
kind = "batch"
flush_interval = "0s"
max_buffer_size = 3
[accumulators.fields]
value = "f64"

[[graphs]]
name = "price_signal"
reactor = "price_signal_rx"
accumulators = ["orderbook"]

[[graphs]]
name = "shared_public"
accumulators = ["shared"]
computation = "passthrough"

[[graphs]]
name = "shared_acme"
tenant = "acme"
accumulators = ["shared"]
computation = "passthrough"

[[graphs]]
name = "window_graph"
accumulators = ["window"]
computation = "passthrough"

[[graphs]]
name = "batch_graph"
accumulators = ["batched"]
computation = "passthrough"

[[keys]]
key = "clk_test_public_key"
tenant = "public"

[[keys]]
key = "clk_test_acme_key"
tenant = "acme"
"""
PUBLIC_KEY = "clk_test_public_key"
ACME_KEY = "clk_test_acme_key"
EVENT = {"best_bid": 100.1, "best_ask": 100.15}
POLL_TIMEOUT_S = 5.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("cloacina")
    config = tmp_path / "server.toml"
    config.write_text(CONFIG)
    running = start_reference_server(
        tmp_path,
        ["--profile", "cloacina", "--ground-truth", "--config", str(config)],
    )
    yield running
    stop_reference_server(running.process)


def wait_for(predicate: Callable[[], bool], timeout_s: float = POLL_TIMEOUT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def request(server, method: str, path: str, body=None, token=None, headers=None):
    """Send a request with the admin key or ``token``; return status, headers, body."""
    key = server.token if token is None else token
    all_headers = dict(headers or {})
    if key:
        all_headers["Authorization"] = f"Bearer {key}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    req = urllib.request.Request(
        server.url + path, data=data, headers=all_headers, method=method
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def get(server, path: str, token=None) -> tuple[int, dict]:
    status, _, body = request(server, "GET", path, token=token)
    return status, json.loads(body)


def ticket(server, token=None) -> str:
    status, _, body = request(server, "POST", "/v1/auth/ws-ticket", token=token)
    assert status == 200, body
    return json.loads(body)["ticket"]


def connect(server, name: str, token=None, ground_truth=False, kind="accumulator"):
    headers = [f"Authorization: Bearer {token or server.token}"]
    if ground_truth:
        headers.append("X-Loadgen-Ground-Truth: 1")
    return websocket.create_connection(
        f"{server.ws_url}/v1/ws/{kind}/{name}", header=headers, timeout=5
    )


def upgrade_error(server, path: str, headers=()) -> tuple[int, dict]:
    with pytest.raises(websocket.WebSocketBadStatusException) as caught:
        websocket.create_connection(server.ws_url + path, header=list(headers))
    return caught.value.status_code, json.loads(caught.value.resp_body)


def graph(server, name: str = "price_signal") -> dict:
    status, body = get(server, f"/v1/health/graphs/{name}")
    assert status == 200, body
    return body


def stats(server) -> dict:
    status, body = get(server, "/_loadgen/stats")
    assert status == 200, body
    return body


# Auth and tickets.


def test_ticket_shape_and_single_use(server):
    status, _, raw = request(server, "POST", "/v1/auth/ws-ticket")
    body = json.loads(raw)

    assert status == 200
    assert set(body) == {"ticket", "expires_in_seconds"}
    assert body["expires_in_seconds"] == 60
    assert len(body["ticket"]) == 36
    ws = websocket.create_connection(
        f"{server.ws_url}/v1/ws/accumulator/orderbook?token={body['ticket']}"
    )
    ws.close()
    status, error = upgrade_error(
        server, f"/v1/ws/accumulator/orderbook?token={body['ticket']}"
    )
    assert status == 401
    assert error == {
        "error": "invalid or expired WebSocket ticket",
        "code": "unauthorized",
    }


def test_raw_key_in_query_rejected(server):
    status, body = upgrade_error(
        server, f"/v1/ws/accumulator/orderbook?token={server.token}"
    )

    assert status == 401
    assert body["error"] == "invalid or expired WebSocket ticket"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ((), "missing auth token"),
        (("Authorization: Bearer clk_nope",), "invalid bearer token"),
    ],
    ids=["missing", "bad-bearer"],
)
def test_upgrade_401_bodies(server, headers, message):
    status, body = upgrade_error(server, "/v1/ws/accumulator/orderbook", headers)

    assert status == 401
    assert body == {"error": message, "code": "unauthorized"}


def test_rest_401_bodies(server):
    assert get(server, "/v1/health/graphs", token="") == (
        401,
        {"error": "missing or malformed Authorization header", "code": "unauthorized"},
    )
    assert get(server, "/v1/health/graphs", token="clk_nope") == (
        401,
        {"error": "invalid or revoked API key", "code": "unauthorized"},
    )


@pytest.mark.parametrize(
    ("name", "token"),
    [
        ("no_such_book", None),
        ("orderbook", ACME_KEY),
        ("shared", None),
    ],
    ids=["unknown", "foreign", "ambiguous-for-admin"],
)
def test_upgrade_403_for_unresolved_name(server, name, token):
    headers = [f"Authorization: Bearer {token or server.token}"]
    status, body = upgrade_error(server, f"/v1/ws/accumulator/{name}", headers)

    assert status == 403
    assert body == {
        "error": f"not authorized for accumulator '{name}'",
        "code": "endpoint_access_denied",
    }


def test_tenant_key_resolves_own_shared_name(server):
    before = graph(server, "shared_acme")["fires"]
    ws = connect(server, "shared", token=ACME_KEY)
    ws.send_binary(b'{"value": 1.0}')
    ws.close()

    assert wait_for(lambda: graph(server, "shared_acme")["fires"] == before + 1)
    status, body = get(server, "/v1/health/graphs/shared_acme", token=ACME_KEY)
    assert status == 200
    status, _ = get(server, "/v1/health/graphs/shared_acme", token=PUBLIC_KEY)
    assert status == 404


def test_reactor_graph_name_alias_rejected(server):
    headers = [f"Authorization: Bearer {server.token}"]
    status, body = upgrade_error(server, "/v1/ws/reactor/price_signal", headers)

    assert status == 403
    assert body["error"] == "not authorized for reactor 'price_signal'"


# Frames and bodies.


def test_text_frames_ignored_binary_fires(server):
    before = graph(server)["fires"]
    ignored_before = stats(server)["events_rejected"]
    ws = connect(server, "orderbook")
    ws.send(json.dumps(EVENT))
    ws.send_binary(json.dumps(EVENT).encode())
    ws.close()

    assert wait_for(lambda: graph(server)["fires"] == before + 1)
    assert stats(server)["events_rejected"] == ignored_before + 1


def test_invalid_payload_still_fires(server):
    before = graph(server)["fires"]
    ws = connect(server, "orderbook")
    ws.send_binary(b"not json")
    ws.close()

    assert wait_for(lambda: graph(server)["fires"] == before + 1)
    _, fires = get(server, "/v1/health/reactors/price_signal_rx/fires?limit=1")
    assert fires["items"][0]["inputs"] == {"orderbook": None}
    assert fires["items"][0]["ok"] is True


def test_graph_status_shape(server):
    body = graph(server)

    assert list(body) == [
        "name",
        "health",
        "accumulators",
        "paused",
        "topology",
        "reactor",
        "reaction_mode",
        "input_strategy",
        "fires",
        "last_fired_at",
        "source_package",
    ]
    assert body["health"] == {"state": "live"}
    assert body["reactor"] == "price_signal_rx"
    assert body["input_strategy"] == "latest"


def test_last_fired_at_is_chrono_rfc3339(server):
    ws = connect(server, "orderbook")
    ws.send_binary(json.dumps(EVENT).encode())
    ws.close()

    assert wait_for(lambda: graph(server)["last_fired_at"] is not None)
    assert graph(server)["last_fired_at"].endswith("+00:00")


def test_accumulator_list_shape(server):
    status, body = get(server, "/v1/health/accumulators")

    assert status == 200
    assert body["total"] == len(body["items"])
    orderbook = [item for item in body["items"] if item["name"] == "orderbook"][0]
    assert list(orderbook) == [
        "name",
        "status",
        "reactor",
        "tenant_id",
        "state",
        "last_event_at",
        "events_total",
        "buffer_depth",
        "buffer_capacity",
        "error",
        "operator_injects",
        "last_operator_inject_at",
    ]
    assert orderbook["status"] == "socket_only"
    assert orderbook["reactor"] == "price_signal_rx"
    assert orderbook["tenant_id"] == "public"


def test_fire_log_newest_first_and_capped(server):
    def newest_bid() -> float | None:
        _, body = get(server, "/v1/health/reactors/price_signal_rx/fires?limit=2")
        return body["items"][0]["inputs"]["orderbook"].get("best_bid")

    # One fire per event: wait for each, since a burst may fire once for all.
    ws = connect(server, "orderbook")
    for bid in range(3):
        ws.send_binary(json.dumps({"best_bid": bid, "best_ask": bid + 1}).encode())
        assert wait_for(lambda bid=bid: newest_bid() == bid)
    ws.close()
    _, body = get(server, "/v1/health/reactors/price_signal_rx/fires?limit=2")
    assert body["total"] == 2
    assert body["items"][1]["inputs"]["orderbook"]["best_bid"] == 1
    assert body["items"][0]["fired_at"].endswith("+00:00")
    _, body = get(server, "/v1/health/reactors/price_signal_rx/fires?limit=999")
    assert body["total"] <= 200


def test_fires_unknown_reactor_404(server):
    status, body = get(server, "/v1/health/reactors/nope/fires")

    assert status == 404
    assert body == {"error": "reactor 'nope' not found", "code": "reactor_not_found"}


def test_timeseries_has_60_buckets(server):
    status, body = get(server, "/v1/health/reactors/price_signal_rx/fires/timeseries")

    assert status == 200
    assert len(body["buckets"]) == 60
    assert body["buckets"][-1] >= 0


def test_rest_fire_with_replaces_cache(server):
    before = graph(server)["fires"]
    status, _, raw = request(
        server,
        "POST",
        "/v1/health/reactors/price_signal_rx/fire",
        {"mode": "fire_with", "inputs": {"orderbook": {"best_bid": 7, "best_ask": 9}}},
    )

    assert status == 200
    assert json.loads(raw) == {
        "reactor": "price_signal_rx",
        "mode": "fire_with",
        "sources_injected": ["orderbook"],
    }
    assert wait_for(lambda: graph(server)["fires"] == before + 1)
    _, fires = get(server, "/v1/health/reactors/price_signal_rx/fires?limit=1")
    assert fires["items"][0]["manual"] is True
    assert fires["items"][0]["inputs"] == {"orderbook": {"best_bid": 7, "best_ask": 9}}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"mode": "fire_with", "inputs": {}}, 400, "empty_inputs"),
        (
            {"mode": "fire_with", "inputs": {"orderbook": {}}},
            400,
            "reactor_input_invalid",
        ),
    ],
    ids=["empty", "invalid"],
)
def test_rest_fire_errors(server, body, status, code):
    got, _, raw = request(
        server, "POST", "/v1/health/reactors/price_signal_rx/fire", body
    )

    assert got == status
    assert json.loads(raw)["code"] == code


def test_rest_fire_unknown_reactor_403(server):
    status, _, raw = request(server, "POST", "/v1/health/reactors/nope/fire", {})

    assert status == 403
    assert json.loads(raw) == {
        "error": "operation ForceFire not permitted on reactor 'nope'",
        "code": "reactor_op_denied",
    }


def test_rest_inject_counts_operator_injects(server):
    before = graph(server)["fires"]
    status, _, raw = request(
        server, "POST", "/v1/health/accumulators/orderbook/inject", {"event": EVENT}
    )

    assert status == 200
    assert json.loads(raw) == {"accumulator": "orderbook", "delivered": 1}
    assert wait_for(lambda: graph(server)["fires"] == before + 1)
    _, body = get(server, "/v1/health/accumulators")
    row = [item for item in body["items"] if item["name"] == "orderbook"][0]
    assert row["operator_injects"] >= 1
    assert row["last_operator_inject_at"].endswith("+00:00")


def test_rest_inject_missing_event_422(server):
    status, _, _ = request(
        server, "POST", "/v1/health/accumulators/orderbook/inject", {"value": 1}
    )

    assert status == 422


def test_interface_endpoints(server):
    status, body = get(server, "/v1/health/accumulators/orderbook/interface")

    assert status == 200
    assert body["kind"] == "accumulator"
    assert body["slots"][0]["name"] == "orderbook"
    assert body["slots"][0]["schema"]["required"] == ["best_bid", "best_ask"]
    status, body = get(server, "/v1/health/reactors/nope/interface")
    assert status == 200
    assert body["slots"] == []


def test_reactor_websocket_commands(server):
    ws = connect(server, "price_signal_rx", kind="reactor")

    def command(body: dict) -> dict:
        ws.send(json.dumps(body))
        return json.loads(ws.recv())

    assert command({"command": "pause"}) == {"type": "paused"}
    assert graph(server)["paused"] is True
    assert command({"command": "resume"}) == {"type": "resumed"}
    payload = list(b'{"best_bid":1.0,"best_ask":3.0}')
    before = graph(server)["fires"]
    assert command({"command": "fire_with", "cache": {"orderbook": payload}}) == {
        "type": "fired"
    }
    assert wait_for(lambda: graph(server)["fires"] == before + 1)
    state = command({"command": "get_state"})
    assert state["type"] == "state"
    assert state["cache"]["orderbook"].startswith("1f00000000000000")
    assert command({"command": "force_fire"}) == {"type": "fired"}
    error = command({"type": "ForceFire"})
    assert error["type"] == "error"
    assert error["message"].startswith("invalid command:")
    ws.close()


def test_health_ready_metrics_public(server):
    status, _, raw = request(server, "GET", "/ready", token="")
    assert (status, json.loads(raw)) == (200, {"status": "ready"})
    status, headers, raw = request(server, "GET", "/metrics", token="")

    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = raw.decode()
    for name in (
        "cloacina_ws_messages_total",
        "cloacina_ws_connections_active",
        "cloacina_accumulator_events_total",
        "cloacina_reactor_fires_total",
        "process_cpu_seconds_total",
        "reference_server_queue_depth",
    ):
        assert f"# TYPE {name} " in text


def test_request_id_header_and_json_404(server):
    status, headers, raw = request(server, "GET", "/v1/nothing")

    assert status == 404
    assert json.loads(raw) == {
        "error": "no route matches this request",
        "code": "not_found",
    }
    assert headers["x-request-id"]


# Accumulator kinds.


def test_state_window_emits_last_capacity(server):
    ws = connect(server, "window")
    for value in range(5):
        ws.send_binary(json.dumps({"value": value}).encode())
    ws.close()

    def newest_inputs():
        _, body = get(server, "/v1/health/reactors/window_graph_rx/fires?limit=1")
        return body["items"][0]["inputs"]["window"] if body["items"] else None

    assert wait_for(
        lambda: newest_inputs() == [{"value": 2}, {"value": 3}, {"value": 4}]
    )


def test_batch_flushes_at_max_buffer_size(server):
    before = graph(server, "batch_graph")["fires"]
    ws = connect(server, "batched")
    for value in range(7):
        ws.send_binary(json.dumps({"value": value}).encode())
    ws.close()

    assert wait_for(lambda: graph(server, "batch_graph")["fires"] == before + 2)
    _, body = get(server, "/v1/health/reactors/batch_graph_rx/fires?limit=1")
    assert body["items"][0]["inputs"]["batched"] == [
        {"value": 3},
        {"value": 4},
        {"value": 5},
    ]
    _, accumulators = get(server, "/v1/health/accumulators")
    row = [item for item in accumulators["items"] if item["name"] == "batched"][0]
    assert row["buffer_depth"] == 1
    assert row["buffer_capacity"] == 3


# Ground truth and stats.


def test_ground_truth_events_and_fires(server):
    ws = connect(server, "orderbook", ground_truth=True)
    peer_port = ws.sock.getsockname()[1]
    since = graph(server)["fires"]
    for i in range(3):
        ws.send_binary(json.dumps({"best_bid": i, "best_ask": i + 1}).encode())
    assert wait_for(lambda: graph(server)["fires"] >= since + 3)

    status, body = get(server, f"/_ground_truth/events?peer_port={peer_port}")
    ws.close()
    assert status == 200
    events = body["events"]
    assert [event["connection_seq"] for event in events] == [1, 2, 3]
    assert list(events[0]) == [
        "event_index",
        "connection_seq",
        "accumulator",
        "arrived_mono_ns",
        "arrived_at",
    ]
    indices = [event["event_index"] for event in events]
    assert indices == sorted(indices)
    assert events[0]["accumulator"] == "orderbook"
    assert events[0]["arrived_mono_ns"] <= time.monotonic_ns()

    status, body = get(
        server, f"/_ground_truth/fires?graph=price_signal&since_fire={since}"
    )
    assert status == 200
    fires = body["fires"]
    assert [fire["fire_index"] for fire in fires][:3] == [
        since + 1,
        since + 2,
        since + 3,
    ]
    for event in events:
        consumer = next(
            f for f in fires if f["last_event_index"] >= event["event_index"]
        )
        assert consumer["finished_mono_ns"] >= event["arrived_mono_ns"]
        assert consumer["started_mono_ns"] <= consumer["finished_mono_ns"]
    assert fires[0]["graph"] == "price_signal"
    assert fires[0]["reactor"] == "price_signal_rx"
    assert fires[0]["manual"] is False
    assert fires[0]["ok"] is True


def test_ground_truth_needs_header(server):
    ws = connect(server, "orderbook")
    peer_port = ws.sock.getsockname()[1]
    ws.send_binary(json.dumps(EVENT).encode())
    time.sleep(0.1)
    status, body = get(server, f"/_ground_truth/events?peer_port={peer_port}")
    ws.close()

    assert status == 200
    assert body == {"events": []}


def test_ground_truth_needs_admin_key(server):
    status, _ = get(server, "/_ground_truth/fires?graph=price_signal", token=PUBLIC_KEY)

    assert status == 403


def test_stats_shape(server):
    body = stats(server)

    assert list(body) == [
        "cpu_seconds",
        "events_total",
        "events_rejected",
        "events_dropped",
        "queue_depth_max",
        "connections",
        "upgrades_abandoned",
        "frame_step",
    ]
    assert body["frame_step"] in ("compiled", "python")
    assert body["cpu_seconds"] > 0
    assert body["events_total"] >= 1
    ws = connect(server, "orderbook")
    assert wait_for(lambda: stats(server)["connections"] >= 1)
    ws.close()


def test_ground_truth_off_gives_404(reference_server):
    status, body = reference_server.get_json("/_ground_truth/fires?graph=price_signal")

    assert status == 404
    status, body = reference_server.get_json("/_loadgen/stats")
    assert status == 200
    assert body["events_total"] == 0


# Overload.

SLOW_CONFIG = """
[[accumulators]]
name = "orderbook"
[accumulators.fields]
best_bid = "f64"
best_ask = "f64"

[[graphs]]
name = "price_signal"
reactor = "price_signal_rx"
accumulators = ["orderbook"]
execution_time = {distribution = "uniform", min_ms = 300, max_ms = 300, seed = 1}
"""
FLOOD_EVENTS = 2000
"""More than the 64 + 1024 inbox, 256 boundary and 64 signal slots together."""


def flood(server) -> websocket.WebSocket:
    ws = connect(server, "orderbook")
    payload = json.dumps(EVENT).encode()
    try:
        for _ in range(FLOOD_EVENTS):
            ws.send_binary(payload)
    except (BrokenPipeError, ConnectionResetError, websocket.WebSocketException):
        pass
    return ws


@pytest.mark.parametrize("profile", ["cloacina", "tutorial"])
def test_full_queue_drops_events(reference_server_factory, tmp_path, profile):
    config = tmp_path / "slow.toml"
    config.write_text(SLOW_CONFIG)
    server = reference_server_factory(args=["--profile", profile], config=config)

    ws = flood(server)
    assert wait_for(lambda: stats(server)["events_dropped"] > 0)
    body = stats(server)
    assert body["events_total"] + body["events_dropped"] <= FLOOD_EVENTS
    assert body["queue_depth_max"] >= 1024

    if profile == "cloacina":
        code = None
        for _ in range(FLOOD_EVENTS):
            opcode, frame = ws.recv_data_frame(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = struct.unpack("!H", frame.data[:2])[0]
                reason = frame.data[2:].decode()
                break
        assert code == 4404
        assert reason == "accumulator 'orderbook' not registered"
        assert body["events_dropped"] == 1
    else:
        assert ws.connected
        ws.ping()
    ws.close()


def test_slow_graph_coalesces_with_ground_truth(reference_server_factory, tmp_path):
    config = tmp_path / "slow.toml"
    config.write_text(SLOW_CONFIG)
    server = reference_server_factory(
        args=["--profile", "cloacina", "--ground-truth"], config=config
    )
    ws = connect(server, "orderbook", ground_truth=True)
    peer_port = ws.sock.getsockname()[1]
    for bid in range(5):
        ws.send_binary(json.dumps({"best_bid": bid, "best_ask": bid + 1}).encode())

    assert wait_for(lambda: graph(server)["fires"] == 2)
    time.sleep(0.4)
    assert graph(server)["fires"] == 2
    _, events = get(server, f"/_ground_truth/events?peer_port={peer_port}")
    _, fires = get(server, "/_ground_truth/fires?graph=price_signal&since_fire=0")
    ws.close()
    assert [fire["last_event_index"] for fire in fires["fires"]] == [1, 5]
    assert len(events["events"]) == 5
    first, second = fires["fires"]
    assert second["started_mono_ns"] >= first["finished_mono_ns"]
    assert first["finished_mono_ns"] - first["started_mono_ns"] >= 300_000_000
