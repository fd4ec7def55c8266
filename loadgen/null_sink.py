"""A WebSocket endpoint that accepts any upgrade and discards what it receives.

It exists to measure the generator alone: a sink that keeps up shows the
fastest rate the generator can offer. It completes the opening handshake on
any path without checking a key, then counts the bytes it reads and drops them
without parsing frames, so it never sends a close frame or a pong. A plain
HTTP request (no ``Upgrade`` header) gets the counters as JSON::

    python -m loadgen.null_sink --port 0
    null sink listening on http://127.0.0.1:41234
    curl http://127.0.0.1:41234/
    {"bytes_received": 0, "connections": 0, "open_connections": 0}

It runs on uvloop with ``asyncio.BufferedProtocol``, which reads into one
preallocated buffer per connection and so creates no ``bytes`` object per read.
SIGINT and SIGTERM stop it with exit status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import logging
import signal
import sys
from collections.abc import Sequence
from http import HTTPStatus

import uvloop

__all__ = ["LISTENING_PREFIX", "SinkCounters", "SinkProtocol", "main", "start_sink"]

logger = logging.getLogger(__name__)

LISTENING_PREFIX = "null sink listening on "
"""Start of the one stdout line that carries the bound URL."""

WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
"""Fixed string that RFC 6455 appends to Sec-WebSocket-Key before hashing."""

READ_BUFFER_BYTES = 1 << 20
MAX_REQUEST_BYTES = 16 * 1024


class SinkCounters:
    """Totals over all connections since the sink started."""

    def __init__(self) -> None:
        self.bytes_received = 0
        """Bytes read after the opening handshake request, which is not counted."""
        self.connections = 0
        """WebSocket upgrades accepted."""
        self.open_connections = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "bytes_received": self.bytes_received,
            "connections": self.connections,
            "open_connections": self.open_connections,
        }


class SinkProtocol(asyncio.BufferedProtocol):
    """One connection: the HTTP request, then bytes counted and dropped."""

    def __init__(self, counters: SinkCounters) -> None:
        self._counters = counters
        self._buffer = bytearray(READ_BUFFER_BYTES)
        self._request = bytearray()
        self._upgraded = False
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def get_buffer(self, sizehint: int) -> bytearray:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        if self._upgraded:
            self._counters.bytes_received += nbytes
            return
        self._request += self._buffer[:nbytes]
        end = self._request.find(b"\r\n\r\n")
        if end < 0:
            if len(self._request) > MAX_REQUEST_BYTES:
                self._reply_and_close(431, {"error": "request header too large"})
            return

        # Bytes after the request are the first frames: count them too.
        head = bytes(self._request[:end])
        self._counters.bytes_received += len(self._request) - end - 4
        self._request = bytearray()
        self._answer(head)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._upgraded:
            self._counters.open_connections -= 1
        if exc is not None:
            logger.info("connection lost: %s", exc)

    def _answer(self, head: bytes) -> None:
        headers = _parse_headers(head)
        if headers.get("upgrade", "").lower() != "websocket":
            self._reply_and_close(200, self._counters.as_dict())
            return
        key = headers.get("sec-websocket-key")
        if not key:
            self._reply_and_close(400, {"error": "missing Sec-WebSocket-Key"})
            return
        accept = base64.b64encode(
            hashlib.sha1(key.encode() + WEBSOCKET_GUID).digest()
        ).decode()
        assert self._transport is not None
        self._transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\n"
            b"Upgrade: websocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept.encode() + b"\r\n\r\n"
        )
        self._upgraded = True
        self._counters.connections += 1
        self._counters.open_connections += 1

    def _reply_and_close(self, status: int, body: dict) -> None:
        assert self._transport is not None
        data = json.dumps(body).encode()
        self._transport.write(
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + data
        )
        self._transport.close()


def _parse_headers(head: bytes) -> dict[str, str]:
    """Return the request's header fields with lowercase names."""
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, separator, value = line.partition(":")
        if separator:
            headers[name.strip().lower()] = value.strip()
    return headers


async def start_sink(
    host: str = "127.0.0.1", port: int = 0
) -> tuple[asyncio.Server, SinkCounters]:
    """Start listening and return the server and its counters."""
    counters = SinkCounters()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SinkProtocol(counters), host, port, backlog=128
    )
    return server, counters


async def _serve(host: str, port: int) -> None:
    server, counters = await start_sink(host, port)
    bound_host, bound_port = server.sockets[0].getsockname()[:2]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    print(f"{LISTENING_PREFIX}http://{bound_host}:{bound_port}", flush=True)
    logger.info("null sink started on %s:%d", bound_host, bound_port)
    await stop.wait()
    server.close()
    logger.info(
        "null sink stopped after %d bytes on %d connections",
        counters.bytes_received,
        counters.connections,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadgen.null_sink",
        description="Accept WebSocket upgrades on any path and discard the "
        "frames, counting bytes; for measuring the generator alone.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1, loopback only)",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="TCP port to bind; 0 picks a free one"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sink until SIGINT or SIGTERM and return the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s"
    )
    try:
        uvloop.run(_serve(args.host, args.port))
    except OSError as error:
        print(
            f"cannot listen on {args.host}:{args.port}: {error.strerror}; "
            "pick another --port",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
