"""A small keep-alive HTTP client for the Cloacina health endpoints.

It reads both generations of the server: the tutorial's graph JSON keeps the fire
count in ``health.fire_count``, today's server in a top-level ``fires``; the
accumulator list is ``{"accumulators": [...]}`` or ``{"items": [...]}``.

The latency probe polls through this client up to a thousand times a second, so
a request is one pre-built write on a kept-alive socket, and one
``loadgen.http_response.ResponseParser`` per client reads each response from
the bytes the socket returns. Redirects are not followed, so a 3xx is reported
as an error, like any status other than 200.
"""

from __future__ import annotations

import _socket
import json
import socket
import ssl
import struct
import sys
import time
from urllib.parse import quote, urlsplit

import orjson

from loadgen.endpoints import graph_health_path
from loadgen.errors import ConnectionProblem, UsageProblem
from loadgen.http_response import IncompleteResponse, InvalidResponse, ResponseParser

__all__ = ["HealthClient", "fire_count_of", "json_object", "object_rows"]

READ_BUFFER_BYTES = 65536
MAX_CACHED_REQUESTS = 32
"""Pre-built GET requests kept per client; the probe polls one or two paths."""


def fire_count_of(graph_status: dict) -> int:
    """Return the fire count from either generation's graph status JSON.

    Raises:
        ConnectionProblem: the JSON has neither field.
    """
    health = graph_status.get("health")
    if isinstance(health, dict) and isinstance(health.get("fire_count"), int):
        return health["fire_count"]
    if isinstance(graph_status.get("fires"), int):
        return graph_status["fires"]
    raise ConnectionProblem(
        "graph status has no fire count (expected health.fire_count or fires): "
        "check that --host is a Cloacina server",
        kind="bad_response",
    )


class HealthClient:
    """GET and POST requests with a Bearer key over one reused HTTP/1.1 connection.

    A request that fails because the server closed the connection, as an idle
    keep-alive connection may be, is sent again once on a new connection.
    Not thread-safe: give each thread or greenlet its own client.

    Raises:
        UsageProblem: the key cannot be sent in an HTTP header.
    """

    def __init__(self, base_url: str, token: str, timeout_s: float = 10.0) -> None:
        parts = urlsplit(base_url)
        self._base_url = base_url
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._timeout_s = timeout_s
        host_header = f"[{self._host}]" if ":" in self._host else self._host
        if parts.port is not None and parts.port != (443 if self._https else 80):
            host_header += f":{parts.port}"
        _check_header_value(token)
        self._common_headers = (
            f"Host: {host_header}\r\n"
            f"Authorization: Bearer {token}\r\n"
            "Accept: application/json\r\n"
            # Without Accept-Encoding a server may compress the body.
            "Accept-Encoding: identity\r\n"
        )
        self._get_requests: dict[str, bytes] = {}
        self._socket: socket.socket | None = None
        self._read_buffer = bytearray(READ_BUFFER_BYTES)
        self._read_view = memoryview(self._read_buffer)
        self._parser = ResponseParser()

    def graph_fire_count(self, graph: str) -> int:
        status = self.get_json(graph_health_path(graph), not_found=f"graph '{graph}'")
        return fire_count_of(status)

    def accumulator_events_total(self, accumulator: str) -> int | None:
        """Return the server's accepted-event count, or None if it has none."""
        listing = self.get_json("/v1/health/accumulators")
        for row in object_rows(listing, "accumulators", "items"):
            if row.get("name") == accumulator:
                total = row.get("events_total")
                return total if isinstance(total, int) else None
        return None

    def get_json(self, path: str, not_found: str | None = None) -> dict:
        """GET ``path`` and return its JSON object, retrying once on a closed socket.

        Args:
            path: the request target, such as ``/v1/health/graphs/price_signal``.
            not_found: what a 404 means, such as ``graph 'x'``; without it a
                404 is reported as any other status.

        Raises:
            ConnectionProblem: unreachable, 401, 403, 404, a status other than
                200, an invalid HTTP response or a body that is no JSON object.
        """
        return json_object(self.get_body(path, not_found), f"GET {path}")

    def get_body(self, path: str, not_found: str | None = None) -> bytes:
        """GET ``path`` and return the body of its 200 response, undecoded.

        Pollers use it to skip decoding a body that has not changed since the
        last poll. The request bytes are built once per path and reused.

        Raises:
            ConnectionProblem: as for ``get_json``, except for the JSON checks.
        """
        request = self._get_requests.get(path)
        if request is None:
            request = self._build_request("GET", path, None)
            if len(self._get_requests) >= MAX_CACHED_REQUESTS:
                self._get_requests.clear()
            self._get_requests[path] = request
        # The latency probe calls this about a thousand times a second, so the
        # usual case stays in this frame and failures are handled out of line.
        try:
            status, body = self._exchange(request)
        except (InvalidResponse, OSError) as error:
            status, body = self._send_again("GET", path, request, error)
        if status != 200:
            raise _status_problem(f"GET {path}", status, not_found)
        return body

    def post_json(self, path: str, body: dict | None = None) -> dict:
        """POST a JSON body to ``path`` and return the JSON object of the response.

        Raises:
            ConnectionProblem: as for ``get_json``.
        """
        payload = json.dumps(body or {}).encode()
        request = self._build_request("POST", path, payload)
        return json_object(self._send("POST", path, request, None), f"POST {path}")

    def close(self) -> None:
        """Close the connection; the next request opens a new one."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _build_request(self, method: str, path: str, payload: bytes | None) -> bytes:
        target = quote(path, safe="/?=&")
        head = f"{method} {target} HTTP/1.1\r\n{self._common_headers}"
        if payload is not None:
            head += (
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
            )
        # quote() leaves only ASCII in the target, and the key was checked.
        return (head + "\r\n").encode("latin-1") + (payload or b"")

    def _send(self, method: str, path: str, request: bytes, not_found) -> bytes:
        """Send ``request`` and return the body of a 200 response."""
        try:
            status, body = self._exchange(request)
        except (InvalidResponse, OSError) as error:
            status, body = self._send_again(method, path, request, error)
        if status != 200:
            raise _status_problem(f"{method} {path}", status, not_found)
        return body

    def _send_again(
        self, method: str, path: str, request: bytes, error: Exception
    ) -> tuple[int, bytes]:
        """Send a failed request once more if the failure allows it.

        A kept-alive connection that the server has closed fails only when it
        is used, so a closed connection or an invalid response earns a retry on
        a new connection. Other errors, such as a refused connection, do not.

        Raises:
            ConnectionProblem: the retry failed too, or ``error`` allows none.
        """
        self.close()
        closed = (IncompleteResponse, ConnectionResetError, BrokenPipeError)
        if isinstance(error, (InvalidResponse, *closed)):
            try:
                return self._exchange(request)
            except (InvalidResponse, OSError) as retry_error:
                self.close()
                error = retry_error
        if isinstance(error, closed):
            raise ConnectionProblem(
                f"{self._base_url} closed the connection during {method} {path}: "
                "check that the server is still running",
                kind="disconnected",
            ) from None
        if isinstance(error, InvalidResponse):
            raise ConnectionProblem(
                f"{method} {path} got an invalid HTTP response ({error}): "
                "check --host points at a Cloacina server",
                kind="bad_response",
            ) from None
        raise self._unreachable(error) from None

    def _exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send one request and read its response, keeping the connection if allowed."""
        sock = self._socket
        if sock is None:
            sock = self._socket = self._connect()
        # After a complete keep-alive response, reset keeps httptools' parser,
        # which about halves the parse cost per poll (bench_http_parse.py).
        # After any other response it makes a new one.
        parser = self._parser
        parser.reset()
        sock.sendall(request)
        # The socket's timeout bounds each read, and this deadline bounds the whole
        # response, against a server that sends it a byte at a time.
        deadline = time.monotonic() + self._timeout_s
        while not parser.complete:
            count = sock.recv_into(self._read_buffer)
            if count:
                parser.feed(self._read_view[:count])
            else:
                parser.feed_eof()
            if not parser.complete and time.monotonic() > deadline:
                raise TimeoutError("the response did not complete in time")
        if not parser.keep_alive or parser.extra_data:
            self.close()
        return parser.status, parser.body

    def _connect(self) -> socket.socket:
        # Looked up at call time, so that gevent's patched socket and ssl
        # modules are used when Locust has patched them.
        sock = socket.create_connection((self._host, self._port), self._timeout_s)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._https:
                context = ssl.create_default_context()
                sock = context.wrap_socket(sock, server_hostname=self._host)
            elif sys.platform == "linux" and isinstance(sock, _socket.socket):
                # Not under gevent, whose sockets are no _socket.socket and
                # need their Python timeout to yield to other greenlets.
                _use_kernel_timeouts(sock, self._timeout_s)
        except BaseException:
            sock.close()
            raise
        return sock

    def _unreachable(self, error: OSError) -> ConnectionProblem:
        if isinstance(error, ConnectionRefusedError):
            return ConnectionProblem(
                f"cannot connect to {self._base_url}: connection refused; start the "
                "server or fix --host",
                kind="refused",
            )
        if isinstance(error, socket.gaierror):
            return ConnectionProblem(
                f"cannot resolve the host in {self._base_url}: fix --host",
                kind="unresolved",
            )
        # A kernel receive or send timeout shows as EAGAIN on a blocking socket.
        if isinstance(error, TimeoutError | BlockingIOError):
            return ConnectionProblem(
                f"request to {self._base_url} timed out after {self._timeout_s:g} s: "
                "check --host and that the server is up",
                kind="timeout",
            )
        if isinstance(error, ssl.SSLError):
            return ConnectionProblem(
                f"TLS handshake with {self._base_url} failed: use http:// if the "
                "server does not serve TLS",
                kind="tls",
            )
        return ConnectionProblem(
            f"cannot reach {self._base_url}: {error.strerror or error}; fix --host",
            kind="unreachable",
        )


def _use_kernel_timeouts(sock: socket.socket, timeout_s: float) -> None:
    """Make ``sock`` blocking, with the kernel's receive and send timeouts.

    Python waits for a socket with a timeout in poll() before every send and
    receive. SO_RCVTIMEO and SO_SNDTIMEO make the kernel limit each call
    instead, which saves those two system calls on every poll of the probe.
    On a timeout the call fails with EAGAIN.
    """
    seconds = int(timeout_s)
    microseconds = int((timeout_s - seconds) * 1_000_000)
    if seconds == 0 and microseconds == 0:
        # A zero timeval means no limit at all, so keep Python's timeout.
        return
    # struct timeval is two C longs on Linux.
    timeval = struct.pack("@ll", seconds, microseconds)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
    sock.settimeout(None)


def json_object(body: bytes, request: str) -> dict:
    """Decode a response body that must be a JSON object.

    Args:
        body: the body of a 200 response.
        request: method and path, such as ``GET /v1/health/graphs``, for the
            error message.

    Raises:
        ConnectionProblem: the body is not JSON or not an object.
    """
    document = _parse_json(body)
    if not isinstance(document, dict):
        raise ConnectionProblem(
            f"{request} did not return a JSON object: check --host points at "
            "a Cloacina server",
            kind="bad_response",
        )
    return document


def _status_problem(request: str, status: int, not_found) -> ConnectionProblem:
    """Return the error for a response status other than 200."""
    if status == 401:
        return ConnectionProblem(
            f"the server rejected the API key (HTTP 401 on {request}): "
            "set TOKEN or --token to a valid API key",
            kind="unauthorized",
        )
    if status == 403:
        return ConnectionProblem(
            f"the API key may not use {request} (HTTP 403): use an admin key",
            kind="forbidden",
        )
    if status == 404 and not_found:
        return ConnectionProblem(
            f"{not_found} not found on the server (HTTP 404 on {request}): "
            "check the name against /v1/health/graphs and set --graph",
            kind="not_found",
        )
    return ConnectionProblem(
        f"{request} returned HTTP {status}: check --host points at a Cloacina server",
        kind=f"http_{status}",
    )


def _check_header_value(token: str) -> None:
    """Reject an API key that cannot be sent as one header value.

    Raises:
        UsageProblem: the key has a line break, a NUL or a character beyond
            Latin-1, the encoding of HTTP/1.1 header values.
    """
    if any(character in token for character in "\r\n\0"):
        raise UsageProblem(
            "invalid API key: it contains a line break or a NUL; check TOKEN or --token"
        )
    try:
        token.encode("latin-1")
    except UnicodeEncodeError:
        raise UsageProblem(
            "invalid API key: it contains a character that is not Latin-1; "
            "check TOKEN or --token"
        ) from None


def object_rows(listing: dict, *keys: str) -> list[dict]:
    """Return the objects in the list under the first of ``keys`` present.

    A value that is not a list gives no rows, and elements that are not
    objects are skipped, so a server with another shape cannot crash a caller.
    """
    for key in keys:
        if key in listing:
            rows = listing[key]
            if not isinstance(rows, list):
                return []
            return [row for row in rows if isinstance(row, dict)]
    return []


def _parse_json(body: bytes):
    """Return the decoded body, or None when it is not JSON.

    orjson decodes a fire-log body about three times as fast as the standard
    library, which still takes what orjson rejects but JSON allows, such as
    integers beyond 64 bits.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        # RecursionError: nested deeper than the interpreter's stack allows.
        return None
