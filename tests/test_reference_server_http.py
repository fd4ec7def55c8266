"""Integration tests of the health endpoints, auth and keep-alive."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.request
from pathlib import Path

import pytest
import websocket

EXAMPLE_TWO_TENANTS = (
    Path(__file__).parent.parent / "reference_server" / "examples" / "two_tenants.toml"
)
ACME_KEY = "clk_example_acme_producer_key"
HEALTH_PATHS = [
    "/v1/health/accumulators",
    "/v1/health/graphs",
    "/v1/health/graphs/price_signal",
]


@pytest.mark.parametrize("path", HEALTH_PATHS)
@pytest.mark.parametrize("use_query", [False, True], ids=["bearer", "query"])
def test_health_rejects_wrong_key(reference_server, path, use_query):
    status, body = reference_server.get_json(path, "clk_wrong", use_query)

    assert status == 401
    assert body["code"] == "unauthorized"


@pytest.mark.parametrize("path", HEALTH_PATHS)
def test_health_rejects_missing_key(reference_server, path):
    status, body = reference_server.get_json(path, token="")

    assert status == 401
    assert body == {"error": "missing auth token", "code": "unauthorized"}


@pytest.mark.parametrize("use_query", [False, True], ids=["bearer", "query"])
def test_health_accepts_admin_key(reference_server, use_query):
    status, body = reference_server.get_json(
        "/v1/health/accumulators", use_query=use_query
    )

    assert status == 200
    assert body["accumulators"][0]["name"] == "orderbook"
    assert body["accumulators"][0]["status"] == "healthy"
    assert body["accumulators"][0]["events_total"] == 0
    assert body["accumulators"][0]["events_rejected"] == 0


def test_graph_detail_tutorial_shape(reference_server):
    status, body = reference_server.get_json("/v1/health/graphs/price_signal")

    assert status == 200
    assert body["name"] == "price_signal"
    assert body["health"] == {
        "state": "running",
        "last_fired_at": None,
        "fire_count": 0,
    }
    assert body["accumulators"] == ["orderbook"]
    assert body["paused"] is False
    assert body["reactor"] == "price_signal_rx"
    assert body["reaction_mode"] == "when_any"


def test_graph_list(reference_server):
    status, body = reference_server.get_json("/v1/health/graphs")

    assert status == 200
    assert [graph["name"] for graph in body["graphs"]] == ["price_signal"]


def test_unknown_graph_404(reference_server):
    status, body = reference_server.get_json("/v1/health/graphs/nope")

    assert status == 404
    assert body == {"error": "graph 'nope' not found", "code": "graph_not_found"}


def test_unmatched_route_json_404(reference_server):
    status, body = reference_server.get_json("/v1/nothing/here")

    assert status == 404
    assert body["code"] == "not_found"


def test_server_health_needs_no_key(reference_server):
    status, body = reference_server.get_json("/health", token="")

    assert status == 200
    assert body == {"status": "ok"}


def test_plain_get_on_websocket_path(reference_server):
    status, body = reference_server.get_json("/v1/ws/accumulator/orderbook")

    assert status == 426
    assert body["code"] == "upgrade_required"


def test_tenant_key_sees_only_its_tenant(reference_server_factory):
    server = reference_server_factory(config=EXAMPLE_TWO_TENANTS)

    _, accumulators = server.get_json("/v1/health/accumulators", ACME_KEY)
    _, graphs = server.get_json("/v1/health/graphs", ACME_KEY)
    status, _ = server.get_json("/v1/health/graphs/price_signal", ACME_KEY)

    assert sorted(a["name"] for a in accumulators["accumulators"]) == [
        "quotes",
        "trades",
    ]
    assert sorted(g["name"] for g in graphs["graphs"]) == ["quote_log", "trade_signal"]
    assert status == 404


def test_admin_sees_all_tenants(reference_server_factory):
    server = reference_server_factory(config=EXAMPLE_TWO_TENANTS)

    _, accumulators = server.get_json("/v1/health/accumulators")

    names = sorted(a["name"] for a in accumulators["accumulators"])
    assert names == ["orderbook", "quotes", "trades"]


def test_keep_alive_serves_many_polls(reference_server):
    connection = http.client.HTTPConnection(
        reference_server.host, reference_server.port, timeout=5
    )
    headers = {"Authorization": f"Bearer {reference_server.token}"}
    sockets = set()
    for _ in range(200):
        connection.request("GET", "/v1/health/graphs/price_signal", headers=headers)
        response = connection.getresponse()
        body = json.loads(response.read())
        assert response.status == 200
        assert body["health"]["fire_count"] == 0
        sockets.add(id(connection.sock))
    connection.close()

    assert len(sockets) == 1


def test_events_counted_exactly(reference_server):
    ws = websocket.create_connection(
        f"{reference_server.ws_url}/v1/ws/accumulator/orderbook",
        header=[f"Authorization: Bearer {reference_server.token}"],
        timeout=5,
    )
    for i in range(300):
        ws.send(json.dumps({"best_bid": 1.0 + i, "best_ask": 2.0 + i}))
        if i % 3 == 0:
            ws.send(json.dumps({"best_bid": 1.0}))
    ws.close()

    connection = http.client.HTTPConnection(
        reference_server.host, reference_server.port, timeout=5
    )
    headers = {"Authorization": f"Bearer {reference_server.token}"}
    item = {}
    for _ in range(500):
        connection.request("GET", "/v1/health/accumulators", headers=headers)
        item = json.loads(connection.getresponse().read())["accumulators"][0]
        if item["events_total"] + item["events_rejected"] == 400:
            break
    connection.close()

    assert item["events_total"] == 300
    assert item["events_rejected"] == 100


def raw_request(server, path: str, extra_headers: bytes) -> tuple[int, bytes, bytes]:
    """Send one GET with raw header bytes and return status, head and body."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n".encode()
        + extra_headers
        + b"Connection: close\r\n\r\n"
    )
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, body


WEBSOCKET_UPGRADE_HEADERS = (
    b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


@pytest.mark.parametrize("profile", ["tutorial", "cloacina"])
@pytest.mark.parametrize(
    "path",
    ["/v1/health/accumulators", "/v1/ws/accumulator/orderbook"],
    ids=["rest", "websocket"],
)
def test_non_ascii_bearer_key_401(reference_server_factory, profile, path):
    server = reference_server_factory(["--profile", profile])
    headers = b"Authorization: Bearer \xff\xfe\r\n"
    if "/ws/" in path:
        headers += WEBSOCKET_UPGRADE_HEADERS

    status, head, body = raw_request(server, path, headers)

    assert status == 401
    assert b"application/json" in head
    assert json.loads(body)["code"] == "unauthorized"
    assert "Traceback" not in server.stderr_text()


MALFORMED_REQUESTS = {
    "long-header-line": b"X-Long: " + b"a" * 10_000 + b"\r\n",
    "too-many-headers": b"".join(b"X-%d: 1\r\n" % i for i in range(200)),
    "bad-content-length": b"Content-Length: abc\r\n",
}


def test_malformed_requests_logged_once_per_kind(reference_server):
    for _ in range(3):
        for headers in MALFORMED_REQUESTS.values():
            status, _, _ = raw_request(reference_server, "/health", headers)
            assert status == 400

    with urllib.request.urlopen(reference_server.url + "/metrics") as response:
        metrics = response.read().decode()
    stderr = reference_server.stderr_text()
    counted = [
        line
        for line in metrics.splitlines()
        if line.startswith("reference_server_http_errors_total{")
    ]
    warnings = [line for line in stderr.splitlines() if "malformed HTTP" in line]

    assert "Traceback" not in stderr
    assert " ERROR " not in stderr
    assert len(warnings) == 3
    assert len(counted) == 3
    assert all(line.endswith(" 3") for line in counted)
    assert "aaaa" not in stderr
