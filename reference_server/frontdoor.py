"""One listening port for two servers: picows for producers, aiohttp for the rest.

picows ingests WebSocket frames about five times as fast as aiohttp but serves
only WebSocket upgrades. The front door reads each new connection's request
line, then hands the connection, with the bytes read so far, to a picows
protocol when the line requests an accumulator WebSocket, and to aiohttp's
request handler otherwise. From then on the chosen protocol owns the socket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

__all__ = ["FrontDoor"]

logger = logging.getLogger(__name__)

MAX_REQUEST_LINE_BYTES = 8190
"""aiohttp's limit; a longer line goes to aiohttp, which rejects it with 4xx."""
REQUEST_LINE_TIMEOUT_S = 10.0
"""Time a new connection gets to send its request line."""


class FrontDoor(asyncio.Protocol):
    """Route one connection by its request line.

    Args:
        http: makes aiohttp's protocol for a connection.
        websocket: makes the picows protocol for a connection's transport.
        is_websocket: whether a request line belongs to ``websocket``.
    """

    def __init__(
        self,
        http: Callable[[], asyncio.Protocol],
        websocket: Callable[[asyncio.Transport], asyncio.BufferedProtocol],
        is_websocket: Callable[[bytes], bool],
    ) -> None:
        self._http = http
        self._websocket = websocket
        self._is_websocket = is_websocket
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(REQUEST_LINE_TIMEOUT_S, transport.close)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n")
        if end < 0 and len(self._buffer) <= MAX_REQUEST_LINE_BYTES:
            return
        line = bytes(self._buffer[:end]) if end >= 0 else b""
        if self._is_websocket(line):
            self._hand_over_buffered(self._websocket(self._transport))
        else:
            self._hand_over(self._http())

    def eof_received(self) -> bool:
        # The peer left before sending a whole request line, so no response is due.
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _hand_over(self, protocol: asyncio.Protocol) -> None:
        self._cancel_timer()
        transport = self._transport
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        protocol.data_received(bytes(self._buffer))
        self._buffer.clear()

    def _hand_over_buffered(self, protocol: asyncio.BufferedProtocol) -> None:
        self._cancel_timer()
        transport = self._transport
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        data = memoryview(self._buffer)
        while data and not transport.is_closing():
            buffer = protocol.get_buffer(len(data))
            size = min(len(buffer), len(data))
            if not size:
                break
            buffer[:size] = data[:size]
            protocol.buffer_updated(size)
            data = data[size:]
        data.release()
        self._buffer.clear()
