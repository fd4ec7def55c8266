"""The health client over real loopback HTTP.

Most cases run against a scripted HTTP/1.1 server in this file, which responds
to each request path with fixed bytes: chunked bodies, ``Connection: close``,
redirects, broken responses and silent closes that the reference server never
sends. The rest run against the reference server.
"""

from __future__ import annotations

import json
import shutil
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from loadgen.errors import ConnectionProblem, UsageProblem
from loadgen.health import HealthClient

TOKEN = "clk_health_client_test_key"
BODY = {"items": [{"name": "orderbook", "events_total": 7}], "total": 1}
BODY_BYTES = json.dumps(BODY).encode()
HANG_LIMIT_S = 5.0


@dataclass
class ReceivedRequest:
    connection: int
    """1 for the server's first accepted connection, 2 for the next, and so on."""
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


def response(status: int, body: bytes, *fields: str) -> bytes:
    head = [f"HTTP/1.1 {status} X", *fields]
    return "\r\n".join(head).encode() + b"\r\n\r\n" + body


def plain(status: int = 200, body: bytes = BODY_BYTES, *fields: str) -> bytes:
    return response(status, body, f"Content-Length: {len(body)}", *fields)


def chunked(body: bytes, size: int, status: int = 200) -> bytes:
    pieces = [body[index : index + size] for index in range(0, len(body), size)]
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    return response(status, encoded + b"0\r\n\r\n", "Transfer-Encoding: chunked")


class ScriptedHttpServer(socketserver.ThreadingTCPServer):
    """An HTTP/1.1 server on 127.0.0.1 whose responses are fixed per request path.

    A route is a function of the connected socket that writes the response and
    returns whether the connection stays open for another request.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        routes: dict[str, Callable[[socket.socket], bool]],
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)
        self.routes = routes
        self.tls = tls
        """Server-side TLS context; plain HTTP when None."""
        self.requests: list[ReceivedRequest] = []
        self.connections = 0
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}"


class _ScriptedHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: ScriptedHttpServer = self.server
        with server.lock:
            server.connections += 1
            connection = server.connections
        if server.tls is None:
            self._serve(server, connection)
            return
        with server.tls.wrap_socket(self.request, server_side=True) as wrapped:
            self.request = wrapped
            self._serve(server, connection)

    def _serve(self, server: ScriptedHttpServer, connection: int) -> None:
        pending = b""
        while True:
            while b"\r\n\r\n" not in pending:
                data = self.request.recv(65536)
                if not data:
                    return
                pending += data
            head, _, pending = pending.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            while len(pending) < length:
                pending += self.request.recv(65536)
            body, pending = pending[:length], pending[length:]
            with server.lock:
                server.requests.append(
                    ReceivedRequest(connection, method, target, headers, body)
                )
            if not server.routes[target](self.request):
                return


def send(data: bytes) -> Callable[[socket.socket], bool]:
    def route(connection: socket.socket) -> bool:
        connection.sendall(data)
        return True

    return route


def send_and_close(data: bytes) -> Callable[[socket.socket], bool]:
    def route(connection: socket.socket) -> bool:
        connection.sendall(data)
        return False

    return route


def send_in_pieces(data: bytes, size: int) -> Callable[[socket.socket], bool]:
    def route(connection: socket.socket) -> bool:
        for index in range(0, len(data), size):
            connection.sendall(data[index : index + size])
            time.sleep(0.002)
        return True

    return route


@pytest.fixture
def scripted_server() -> Iterator[Callable[..., ScriptedHttpServer]]:
    """Return ``start(routes, tls=None)``, which starts a scripted server."""
    started: list[ScriptedHttpServer] = []

    def start(routes, tls: ssl.SSLContext | None = None) -> ScriptedHttpServer:
        server = ScriptedHttpServer(routes, tls)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stopping.set()
        server.shutdown()
        server.server_close()


def test_keep_alive_reuses_one_connection(scripted_server):
    server = scripted_server({"/plain": send(plain())})
    client = HealthClient(server.url, TOKEN)
    for _ in range(3):
        assert client.get_json("/plain") == BODY
    client.close()
    assert len(server.requests) == 3
    assert server.connections == 1


def test_request_carries_key_and_host(scripted_server):
    server = scripted_server({"/v1/health/graphs/a%20b": send(plain())})
    client = HealthClient(server.url, TOKEN)
    client.get_json("/v1/health/graphs/a b")
    client.close()
    request = server.requests[0]
    assert request.method == "GET"
    assert request.target == "/v1/health/graphs/a%20b"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["host"] == f"127.0.0.1:{server.server_address[1]}"
    assert request.headers["accept-encoding"] == "identity"


def test_post_json_sends_body(scripted_server):
    canned = plain(200, b'{"ticket":"t-1","expires_in_seconds":60}')
    server = scripted_server({"/v1/auth/ws-ticket": send(canned)})
    client = HealthClient(server.url, TOKEN)
    reply = client.post_json("/v1/auth/ws-ticket", {"purpose": "test"})
    client.close()
    assert reply == {"ticket": "t-1", "expires_in_seconds": 60}
    request = server.requests[0]
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.body) == {"purpose": "test"}


def test_chunked_response_in_pieces(scripted_server):
    server = scripted_server({"/chunked": send_in_pieces(chunked(BODY_BYTES, 7), 5)})
    client = HealthClient(server.url, TOKEN)
    assert client.get_json("/chunked") == BODY
    assert client.get_json("/chunked") == BODY
    client.close()
    assert server.connections == 1


def test_head_and_body_in_separate_writes(scripted_server):
    server = scripted_server({"/split": send_in_pieces(plain(), 40)})
    client = HealthClient(server.url, TOKEN)
    assert client.get_json("/split") == BODY
    client.close()


def test_connection_close_response(scripted_server):
    closing = plain(200, BODY_BYTES, "Connection: close")
    server = scripted_server({"/close": send_and_close(closing)})
    client = HealthClient(server.url, TOKEN)
    assert client.get_json("/close") == BODY
    assert client.get_json("/close") == BODY
    client.close()
    assert server.connections == 2


def test_bytes_after_response_close_connection(scripted_server):
    server = scripted_server({"/extra": send(plain() + b"HTTP/1.1 200")})
    client = HealthClient(server.url, TOKEN)
    assert client.get_json("/extra") == BODY
    assert client.get_json("/extra") == BODY
    client.close()
    # The second request goes out on a new connection, not after the bytes.
    assert [request.connection for request in server.requests] == [1, 2]


def test_body_ending_at_close(scripted_server):
    canned = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + BODY_BYTES
    server = scripted_server({"/old": send_and_close(canned)})
    client = HealthClient(server.url, TOKEN)
    assert client.get_json("/old") == BODY
    client.close()


def test_interim_continue_is_skipped(scripted_server):
    canned = b"HTTP/1.1 100 Continue\r\n\r\n" + plain()
    server = scripted_server({"/continue": send(canned)})
    client = HealthClient(server.url, TOKEN)
    assert client.get_json("/continue") == BODY
    client.close()


def test_recovers_after_silent_close(scripted_server):
    # The server closes an idle keep-alive connection without saying so, as
    # servers with an idle timeout do; the next request finds it closed.
    server = scripted_server(
        {"/once": send_and_close(plain()), "/plain": send(plain())}
    )
    client = HealthClient(server.url, TOKEN)
    assert client.get_json("/once") == BODY
    time.sleep(0.05)
    assert client.get_json("/plain") == BODY
    client.close()
    assert server.connections == 2
    assert [request.target for request in server.requests] == ["/once", "/plain"]


def test_close_without_response(scripted_server):
    server = scripted_server({"/drop": lambda connection: False})
    client = HealthClient(server.url, TOKEN)
    with pytest.raises(ConnectionProblem) as raised:
        client.get_json("/drop")
    assert raised.value.kind == "disconnected"
    assert "closed the connection during GET /drop" in str(raised.value)
    # The request is sent once more on a new connection before giving up.
    assert server.connections == 2


def test_redirect_is_an_error(scripted_server):
    redirect = plain(302, b"", "Location: /elsewhere")
    server = scripted_server({"/moved": send(redirect)})
    client = HealthClient(server.url, TOKEN)
    with pytest.raises(ConnectionProblem) as raised:
        client.get_json("/moved")
    client.close()
    assert raised.value.kind == "http_302"
    assert "GET /moved returned HTTP 302" in str(raised.value)
    assert [request.target for request in server.requests] == ["/moved"]


def test_chunked_401_is_unauthorized(scripted_server):
    unauthorized = chunked(b'{"error":"invalid bearer token"}', 6, status=401)
    server = scripted_server({"/secret": send(unauthorized), "/plain": send(plain())})
    client = HealthClient(server.url, TOKEN)
    with pytest.raises(ConnectionProblem) as raised:
        client.get_json("/secret")
    assert raised.value.kind == "unauthorized"
    assert "HTTP 401 on GET /secret" in str(raised.value)
    # The connection survives an error response with a complete body.
    assert client.get_json("/plain") == BODY
    client.close()
    assert server.connections == 1


def test_invalid_response(scripted_server):
    server = scripted_server({"/ssh": send_and_close(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")})
    client = HealthClient(server.url, TOKEN)
    with pytest.raises(ConnectionProblem) as raised:
        client.get_json("/ssh")
    assert raised.value.kind == "bad_response"
    assert "invalid HTTP response" in str(raised.value)
    assert "invalid status line" in str(raised.value)


def test_body_that_is_no_json(scripted_server):
    server = scripted_server({"/html": send(plain(200, b"<html></html>"))})
    client = HealthClient(server.url, TOKEN)
    with pytest.raises(ConnectionProblem) as raised:
        client.get_json("/html")
    client.close()
    assert raised.value.kind == "bad_response"
    assert "did not return a JSON object" in str(raised.value)


def test_large_integer_body(scripted_server):
    # orjson rejects integers beyond 64 bits; the standard library reads them.
    server = scripted_server(
        {"/big": send(plain(200, b'{"fires": 18446744073709551616}'))}
    )
    client = HealthClient(server.url, TOKEN)
    assert client.get_json("/big") == {"fires": 2**64}
    client.close()


def test_hanging_server_times_out(scripted_server):
    def hang(connection: socket.socket) -> bool:
        server.stopping.wait(HANG_LIMIT_S)
        return False

    server = scripted_server({"/hang": hang})
    client = HealthClient(server.url, TOKEN, timeout_s=0.2)
    started = time.monotonic()
    with pytest.raises(ConnectionProblem) as raised:
        client.get_json("/hang")
    assert raised.value.kind == "timeout"
    assert "timed out after 0.2 s" in str(raised.value)
    assert time.monotonic() - started < HANG_LIMIT_S


GEVENT_CLIENT = """
import json
import sys

from gevent import monkey

monkey.patch_all()

from loadgen.errors import ConnectionProblem
from loadgen.health import HealthClient

client = HealthClient(sys.argv[1], sys.argv[2], timeout_s=0.3)
result = {"plain": client.get_json("/plain")}
try:
    client.get_json("/hang")
except ConnectionProblem as error:
    result["hang"] = error.kind
print(json.dumps(result))
"""


def test_timeout_under_gevent(scripted_server):
    # Locust patches sockets with gevent, whose sockets must keep their Python
    # timeout: without it, a hanging server would block the probe for good.
    pytest.importorskip("gevent")

    def hang(connection: socket.socket) -> bool:
        server.stopping.wait(HANG_LIMIT_S)
        return False

    server = scripted_server({"/plain": send(plain()), "/hang": hang})
    completed = subprocess.run(
        [sys.executable, "-c", GEVENT_CLIENT, server.url, TOKEN],
        capture_output=True,
        text=True,
        timeout=HANG_LIMIT_S * 4,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["plain"] == BODY
    assert result["hang"] == "timeout"


def test_refused_connection():
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    client = HealthClient(f"http://127.0.0.1:{port}", TOKEN)
    with pytest.raises(ConnectionProblem) as raised:
        client.get_json("/v1/health/accumulators")
    assert raised.value.kind == "refused"


@pytest.mark.parametrize("token", ["clk_a\r\nX-Injected: 1", "clk_\0", "clk_\u20ac"])
def test_unsendable_key_is_rejected(token):
    with pytest.raises(UsageProblem, match="invalid API key") as raised:
        HealthClient("http://127.0.0.1:1", token)
    assert token not in str(raised.value)


@pytest.fixture
def tls_context(tmp_path, monkeypatch) -> ssl.SSLContext:
    """Return a server context whose self-signed certificate clients trust."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    certificate, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(certificate),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    # OpenSSL reads SSL_CERT_FILE each time a client context loads its defaults.
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    return context


def test_https_keeps_connection_alive(scripted_server, tls_context):
    server = scripted_server(
        {
            "/plain": send(plain()),
            "/chunked": send_in_pieces(chunked(BODY_BYTES, 9), 7),
        },
        tls=tls_context,
    )
    client = HealthClient(server.url, TOKEN)
    assert client.get_json("/plain") == BODY
    assert client.get_json("/chunked") == BODY
    assert client.get_json("/plain") == BODY
    client.close()
    assert server.connections == 1
    assert server.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_https_against_plain_http_server(reference_server):
    client = HealthClient(f"https://127.0.0.1:{reference_server.port}", TOKEN)
    with pytest.raises(ConnectionProblem) as raised:
        client.get_json("/v1/health/accumulators")
    assert raised.value.kind == "tls"
    assert "use http://" in str(raised.value)


def test_reference_server_graph_not_found(reference_server):
    client = HealthClient(reference_server.url, reference_server.token)
    with pytest.raises(ConnectionProblem) as raised:
        client.graph_fire_count("no_such_graph")
    client.close()
    assert raised.value.kind == "not_found"
    assert "graph 'no_such_graph' not found on the server (HTTP 404" in str(
        raised.value
    )


def test_reference_server_rejected_key(reference_server):
    client = HealthClient(reference_server.url, "clk_wrong_key")
    with pytest.raises(ConnectionProblem) as raised:
        client.graph_fire_count("price_signal")
    client.close()
    assert raised.value.kind == "unauthorized"
    assert "HTTP 401" in str(raised.value)


@pytest.mark.parametrize("profile", ["tutorial", "cloacina"])
def test_reference_server_fire_count(reference_server_factory, profile):
    server = reference_server_factory(args=["--profile", profile])
    client = HealthClient(server.url, server.token)
    assert client.graph_fire_count("price_signal") == 0
    assert client.accumulator_events_total("orderbook") == 0
    client.close()


def test_reconnects_after_server_restart(reference_server_factory, tmp_path):
    first = reference_server_factory()
    client = HealthClient(first.url, first.token)
    assert client.graph_fire_count("price_signal") == 0
    first.process.terminate()
    first.process.wait(timeout=10)
    # The client's kept-alive socket now leads to a closed connection.
    second = reference_server_factory(args=["--port", str(first.port)])
    assert second.port == first.port
    assert client.graph_fire_count("price_signal") == 0
    client.close()


def test_dripping_response_times_out(scripted_server):
    def drip(connection: socket.socket) -> bool:
        for byte in plain():
            if server.stopping.wait(0.05):
                break
            connection.sendall(bytes([byte]))
        return False

    server = scripted_server({"/drip": drip})
    client = HealthClient(server.url, TOKEN, timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(ConnectionProblem) as raised:
        client.get_json("/drip")
    client.close()
    assert raised.value.kind == "timeout"
    assert time.monotonic() - started < 2.0


def test_deeply_nested_body_is_no_json(scripted_server):
    nested = b"[" * 100_000 + b"]" * 100_000
    server = scripted_server({"/deep": send(plain(200, nested))})
    client = HealthClient(server.url, TOKEN)
    with pytest.raises(ConnectionProblem) as raised:
        client.get_json("/deep")
    client.close()
    assert raised.value.kind == "bad_response"


@pytest.mark.parametrize(
    "listing",
    [{"items": "orderbook"}, {"accumulators": 5}, {"items": ["orderbook", 7]}],
)
def test_accumulator_list_of_other_shape(scripted_server, listing):
    body = json.dumps(listing).encode()
    server = scripted_server({"/v1/health/accumulators": send(plain(200, body))})
    client = HealthClient(server.url, TOKEN)
    assert client.accumulator_events_total("orderbook") is None
    client.close()
