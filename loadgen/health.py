"""A small keep-alive HTTP client for the Cloacina health endpoints.

It reads both generations of the server: the tutorial's graph JSON keeps the fire
count in ``health.fire_count``, today's server in a top-level ``fires``; the
accumulator list is ``{"accumulators": [...]}`` or ``{"items": [...]}``.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from urllib.parse import quote, urlsplit

from loadgen.endpoints import graph_health_path
from loadgen.errors import ConnectionProblem

__all__ = ["HealthClient", "fire_count_of"]


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
    """GET requests with a Bearer key over one reused HTTP/1.1 connection."""

    def __init__(self, base_url: str, token: str, timeout_s: float = 10.0) -> None:
        parts = urlsplit(base_url)
        self._base_url = base_url
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._timeout_s = timeout_s
        self._headers = {"Authorization": f"Bearer {token}"}
        self._connection: http.client.HTTPConnection | None = None

    def graph_fire_count(self, graph: str) -> int:
        status = self.get_json(graph_health_path(graph), not_found=f"graph '{graph}'")
        return fire_count_of(status)

    def accumulator_events_total(self, accumulator: str) -> int | None:
        """Return the server's accepted-event count, or None if it has none."""
        listing = self.get_json("/v1/health/accumulators")
        rows = listing.get("accumulators", listing.get("items", []))
        for row in rows:
            if isinstance(row, dict) and row.get("name") == accumulator:
                total = row.get("events_total")
                return total if isinstance(total, int) else None
        return None

    def get_json(self, path: str, not_found: str | None = None) -> dict:
        """GET ``path`` and return its JSON object, retrying once on a stale socket.

        Raises:
            ConnectionProblem: unreachable, 401, 403, 404 or a non-JSON reply.
        """
        return self._json("GET", path, not_found)

    def post_json(self, path: str, body: dict | None = None) -> dict:
        """POST a JSON body to ``path`` and return the JSON object of the response.

        Raises:
            ConnectionProblem: as for ``get_json``.
        """
        return self._json("POST", path, None, json.dumps(body or {}).encode())

    def _json(self, method, path, not_found, payload: bytes | None = None) -> dict:
        for attempt in (1, 2):
            try:
                status, body = self._request(method, path, payload)
                break
            except (http.client.HTTPException, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 2:
                    raise ConnectionProblem(
                        f"{self._base_url} closed the connection during {method} "
                        f"{path}: "
                        "check that the server is still running",
                        kind="disconnected",
                    ) from None
            except OSError as error:
                self.close()
                raise self._unreachable(error) from None
        return self._decode(f"{method} {path}", status, body, not_found)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _request(self, method: str, path: str, payload: bytes | None):
        if self._connection is None:
            if self._https:
                self._connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout_s
                )
            else:
                self._connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout_s
                )
        headers = self._headers
        if payload is not None:
            headers = {**headers, "Content-Type": "application/json"}
        self._connection.request(
            method, quote(path, safe="/?=&"), body=payload, headers=headers
        )
        response = self._connection.getresponse()
        return response.status, response.read()

    def _decode(self, request: str, status: int, body: bytes, not_found):
        if status == 401:
            raise ConnectionProblem(
                f"the server rejected the API key (HTTP 401 on {request}): "
                "set TOKEN or --token to a valid API key",
                kind="unauthorized",
            )
        if status == 403:
            raise ConnectionProblem(
                f"the API key may not use {request} (HTTP 403): use an admin key",
                kind="forbidden",
            )
        if status == 404 and not_found:
            raise ConnectionProblem(
                f"{not_found} not found on the server (HTTP 404 on {request}): "
                "check the name against /v1/health/graphs and set --graph",
                kind="not_found",
            )
        if status != 200:
            raise ConnectionProblem(
                f"{request} returned HTTP {status}: check --host points at a "
                "Cloacina server",
                kind=f"http_{status}",
            )
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise ConnectionProblem(
                f"{request} did not return a JSON object: check --host points at "
                "a Cloacina server",
                kind="bad_response",
            )
        return document

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
        if isinstance(error, TimeoutError):
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
