"""A persistent WebSocket producer for one accumulator, on websocket-client.

The producer sends each event as one masked frame and never waits for a reply:
accumulators send nothing back. Failures become ``ConnectionProblem`` errors
whose message names the cause and the fix, and never contains the key.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from urllib.parse import quote

import websocket

from loadgen.endpoints import accumulator_ws_url
from loadgen.errors import ConnectionProblem
from loadgen.health import HealthClient
from loadgen.secrets import redact_text

__all__ = ["Producer", "AUTH_MODES", "FRAME_TYPES"]

logger = logging.getLogger(__name__)

AUTH_MODES = ("header", "query", "ticket")
"""``header`` sends ``Authorization: Bearer KEY``; ``query`` appends ``?token=KEY``;
``ticket`` fetches a single-use ticket from ``POST /v1/auth/ws-ticket`` with the
key for every connection and sends it as ``?token=TICKET``, as today's Cloacina
server requires of clients that cannot set headers."""

FRAME_TYPES = ("binary", "text")

CLOSE_UNKNOWN_ACCUMULATOR = 4404


class Producer:
    """One persistent connection to ``/v1/ws/accumulator/{name}``."""

    def __init__(
        self,
        base_url: str,
        accumulator: str,
        token: str,
        auth: str = "header",
        frame: str = "binary",
        timeout_s: float = 10.0,
        extra_headers: tuple[str, ...] = (),
    ) -> None:
        self.accumulator = accumulator
        self._extra_headers = list(extra_headers)
        self._base_url = base_url
        self._url = accumulator_ws_url(base_url, accumulator)
        self._token = token
        self._auth = auth
        self._opcode = (
            websocket.ABNF.OPCODE_BINARY
            if frame == "binary"
            else websocket.ABNF.OPCODE_TEXT
        )
        self._timeout_s = timeout_s
        self._ws: websocket.WebSocket | None = None

    @property
    def connected(self) -> bool:
        return self._ws is not None and self._ws.connected

    @property
    def local_port(self) -> int | None:
        """Return this end's TCP port, which is the peer port on the server."""
        if self._ws is None or self._ws.sock is None:
            return None
        return self._ws.sock.getsockname()[1]

    def connect(self) -> float:
        """Open the connection and return how long the handshake took, in seconds.

        Raises:
            ConnectionProblem: refused, unreachable, timed out, 401, 403 or other
                rejection. The message names what to change.
        """
        url, header = self._url, list(self._extra_headers)
        secret = self._token
        if self._auth == "query":
            url = f"{url}?token={self._token}"
        elif self._auth == "ticket":
            secret = self._fetch_ticket()
            url = f"{url}?token={quote(secret, safe='')}"
        else:
            header.append(f"Authorization: Bearer {self._token}")
        ws = websocket.WebSocket(enable_multithread=False)
        started = time.perf_counter()
        try:
            ws.connect(url, header=header, timeout=self._timeout_s)
        except Exception as error:  # noqa: BLE001 - every cause is classified
            ws.shutdown()
            raise self._classify_connect_error(error, secret) from None
        ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._ws = ws
        return time.perf_counter() - started

    def send(self, payload: bytes) -> None:
        """Send one event as one frame.

        Raises:
            ConnectionProblem: the connection is closed or broken; a 4404 close
                from the server is reported as an unknown accumulator.
        """
        if self._ws is None:
            raise ConnectionProblem("producer is not connected", kind="closed")
        try:
            self._ws.send(payload, self._opcode)
        except (OSError, websocket.WebSocketException):
            raise self._connection_lost() from None

    def send_raw(self, data: bytes) -> None:
        """Write complete, masked frames (see ``loadgen.frames``) in one send.

        Raises:
            ConnectionProblem: as for ``send``.
        """
        if self._ws is None or self._ws.sock is None:
            raise ConnectionProblem("producer is not connected", kind="closed")
        try:
            self._ws.sock.sendall(data)
        except OSError:
            raise self._connection_lost() from None

    def check_still_open(self, wait_s: float = 0.3) -> None:
        """Wait briefly for a close frame, as sent right after an unknown name.

        Raises:
            ConnectionProblem: the server closed the connection meanwhile.
        """
        if self._ws is None:
            raise ConnectionProblem("producer is not connected", kind="closed")
        self._ws.settimeout(wait_s)
        try:
            frame = self._ws.recv_frame()
        except (TimeoutError, websocket.WebSocketTimeoutException):
            return
        except (OSError, websocket.WebSocketException):
            raise self._connection_lost() from None
        finally:
            if self._ws is not None:
                self._ws.settimeout(self._timeout_s)
        if frame is not None and frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            raise self._closed_by_server(frame.data)

    def poll_incoming(self) -> None:
        """Handle frames the server sent, without waiting: reply to pings, and
        raise on a close frame such as 4404.

        Raises:
            ConnectionProblem: the server closed the connection.
        """
        ws = self._ws
        if ws is None or ws.sock is None:
            return
        while self._readable(ws.sock):
            ws.settimeout(0.5)
            try:
                frame = ws.recv_frame()
            except (OSError, websocket.WebSocketException):
                raise self._connection_lost() from None
            finally:
                if self._ws is not None:
                    self._ws.settimeout(self._timeout_s)
            if frame is None:
                return
            if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
                raise self._closed_by_server(frame.data)
            if frame.opcode == websocket.ABNF.OPCODE_PING:
                ws.pong(frame.data)

    def _readable(self, sock) -> bool:
        """Return whether the server sent anything, without waiting.

        A peek on a non-blocking socket works for any descriptor number, where
        select() fails above 1023, which a worker with thousands of
        connections reaches.

        Raises:
            ConnectionProblem: the connection is broken.
        """
        previous = sock.gettimeout()
        sock.settimeout(0.0)
        try:
            sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            raise self._connection_lost() from None
        finally:
            sock.settimeout(previous)
        # Data, or an empty peek at the end of the stream: recv_frame reports
        # either.
        return True

    def close(self) -> None:
        """Send a close frame and close the socket; never raises."""
        if self._ws is None:
            return
        try:
            self._ws.close(timeout=1.0)
        except (OSError, websocket.WebSocketException):
            self._ws.shutdown()
        self._ws = None

    def _connection_lost(self) -> ConnectionProblem:
        """Read the server's close frame, if any, to explain a failed send."""
        ws, self._ws = self._ws, None
        data = b""
        try:
            ws.settimeout(0.2)
            frame = ws.recv_frame()
            if frame is not None and frame.opcode == websocket.ABNF.OPCODE_CLOSE:
                data = frame.data
        except (OSError, websocket.WebSocketException):
            pass
        finally:
            ws.shutdown()
        if data:
            return self._closed_by_server(data)
        return ConnectionProblem(
            f"connection to accumulator '{self.accumulator}' was lost: "
            "check that the server is still running",
            kind="disconnected",
        )

    def _closed_by_server(self, data: bytes) -> ConnectionProblem:
        code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
        reason = data[2:].decode("utf-8", "replace")
        if self._ws is not None:
            self._ws.shutdown()
            self._ws = None
        if code == CLOSE_UNKNOWN_ACCUMULATOR:
            return ConnectionProblem(
                f"accumulator '{self.accumulator}' is not registered on the server "
                "(close code 4404): check the name against /v1/health/accumulators "
                "and set --accumulator",
                kind="unknown_accumulator",
            )
        return ConnectionProblem(
            f"server closed the connection to accumulator '{self.accumulator}' "
            f"with code {code} {reason!r}",
            kind=f"closed_{code}",
        )

    def _fetch_ticket(self) -> str:
        """Return a fresh single-use WebSocket ticket.

        Raises:
            ConnectionProblem: the server has no ticket endpoint or refused the key.
        """
        health = HealthClient(self._base_url, self._token, timeout_s=self._timeout_s)
        try:
            reply = health.post_json("/v1/auth/ws-ticket")
        except ConnectionProblem as error:
            if error.kind in ("http_404", "http_405"):
                raise ConnectionProblem(
                    "the server has no ticket endpoint (POST /v1/auth/ws-ticket): "
                    "use --auth header or --auth query",
                    kind="no_tickets",
                ) from None
            raise
        finally:
            health.close()
        ticket = reply.get("ticket")
        if not isinstance(ticket, str) or not ticket:
            raise ConnectionProblem(
                "POST /v1/auth/ws-ticket returned no ticket: use --auth header",
                kind="no_tickets",
            )
        return ticket

    def _classify_connect_error(
        self, error: Exception, secret: str
    ) -> ConnectionProblem:
        where = self._base_url
        if isinstance(error, websocket.WebSocketBadStatusException):
            return self._rejected_upgrade(error.status_code)
        if isinstance(error, ConnectionRefusedError):
            return ConnectionProblem(
                f"cannot connect to {where}: connection refused; start the server "
                "or fix --host",
                kind="refused",
            )
        if isinstance(error, socket.gaierror):
            return ConnectionProblem(
                f"cannot resolve the host in {where}: fix --host", kind="unresolved"
            )
        if isinstance(error, TimeoutError | websocket.WebSocketTimeoutException):
            return ConnectionProblem(
                f"connecting to {where} timed out after {self._timeout_s:g} s: "
                "check --host and that the server is up",
                kind="timeout",
            )
        if isinstance(error, ssl.SSLError):
            return ConnectionProblem(
                f"TLS handshake with {where} failed: use http:// if the server "
                "does not serve TLS",
                kind="tls",
            )
        detail = redact_text(str(error), [self._token, secret])
        return ConnectionProblem(
            f"WebSocket connection to {where} failed: {detail}", kind="connect_failed"
        )

    def _rejected_upgrade(self, status: int) -> ConnectionProblem:
        if status == 401:
            hint = {
                "header": "set TOKEN or --token to a valid API key",
                "query": "set TOKEN or --token to a valid key; today's Cloacina "
                "server takes only single-use tickets in ?token=, so use --auth "
                "header or --auth ticket",
                "ticket": "the ticket was refused; tickets last 60 s and work once",
            }[self._auth]
            return ConnectionProblem(
                f"the server rejected the API key (HTTP 401 at upgrade): {hint}",
                kind="unauthorized",
            )
        if status == 403:
            return ConnectionProblem(
                f"the API key is not authorized for accumulator '{self.accumulator}' "
                "(HTTP 403 at upgrade): use an admin key or a key of the "
                "accumulator's tenant; today's Cloacina server also answers 403 "
                "for an unknown accumulator name, so check --accumulator",
                kind="forbidden",
            )
        return ConnectionProblem(
            f"the server rejected the WebSocket upgrade with HTTP {status}: "
            f"check --host points at a Cloacina server",
            kind=f"http_{status}",
        )
