"""aiohttp WebSocketResponse that closes with 1002 on an unmasked client frame."""

from __future__ import annotations

from typing import Any

from aiohttp import WSCloseCode, web
from aiohttp.http_websocket import WebSocketError

from .frames import ClientFrameScanner

__all__ = ["StrictWebSocketResponse"]


class _MaskCheckingParser:
    """Wrapper of aiohttp's frame parser that rejects unmasked frames."""

    def __init__(self, parser: Any, queue: Any) -> None:
        self._parser = parser
        self._queue = queue
        self._scanner = ClientFrameScanner()
        self._failed = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self._failed:
            return True, b""
        offset = self._scanner.find_unmasked(bytes(data))
        if offset < 0:
            return self._parser.feed_data(data)
        if offset:
            eof, tail = self._parser.feed_data(data[:offset])
            if eof:
                return eof, tail

        # aiohttp answers a parser exception with a close frame of its code.
        self._failed = True
        self._queue.set_exception(
            WebSocketError(WSCloseCode.PROTOCOL_ERROR, "client frames must be masked")
        )
        return True, b""

    def feed_eof(self) -> None:
        self._parser.feed_eof()


class StrictWebSocketResponse(web.WebSocketResponse):
    """WebSocketResponse that also enforces client frame masking."""

    def _post_start(self, request: Any, protocol: Any, writer: Any) -> None:
        super()._post_start(request, protocol, writer)
        # NOTE: bytes that arrived in the same read as the upgrade request are
        # parsed by aiohttp before this wrapper is installed, so an unmasked
        # frame sent before the 101 response is not caught.
        request.protocol._payload_parser = _MaskCheckingParser(
            self._parser, self._reader
        )
