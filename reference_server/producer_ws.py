"""The accumulator WebSocket endpoint on picows, the ingest hot path.

picows parses frames in C and makes the RFC 6455 checks of each frame header:
masking (1002), opcodes (1002), control frame sizes (1002), close codes and the
frame size limit (1009). This module replies to pings and adds the rules
that span frames or need the payload: reserved bits without an extension
(1002), reassembly of fragmented messages and their size limit (1009), UTF-8 of
text messages (1007) and the close handshake.

Data frames are not delivered one by one. The per-frame step (``framestep``)
collects the whole binary frames of one socket read, and they go to
``Registry.deliver_run`` together at the read's last frame, or before any
other frame, so order is kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson
from picows import (
    WSAutoPingStrategy,
    WSCloseCode,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)
from picows.picows import WSProtocol

from .app import CLOSE_NOT_REGISTERED, REQUEST_ID_HEADER
from .groundtruth import GROUND_TRUTH_HEADER
from .registry import AccumulatorState
from .state import ServerState
from .upgrade import Rejection, UpgradeRequest, resolve_upgrade

__all__ = ["ACCUMULATOR_PATH", "close_all", "protocol_factory"]

logger = logging.getLogger(__name__)

ACCUMULATOR_PATH = b"/v1/ws/accumulator/"
CLOSE_TIMEOUT_S = 5.0
"""Time to wait for the client's close frame after the server sends its own."""
HANDSHAKE_TIMEOUT_S = 5.0
READ_MAX_BYTES = 64 * 1024
"""Largest socket read, which bounds each connection's read buffer."""
READ_BUFFER_BYTES = 4096
"""First size of a connection's read buffer. picows doubles it as needed, and
it starts small so that thousands of idle producers fit in memory."""

BINARY = WSMsgType.BINARY
TEXT = WSMsgType.TEXT
CLOSE = WSMsgType.CLOSE
CONTINUATION = WSMsgType.CONTINUATION
NO_STATUS = 1005
"""RFC 6455 code for a close frame that carries no status code."""


class _PicowsLog(logging.LoggerAdapter):
    # picows logs each frame it rejects at ERROR; the connection logs and counts
    # those itself, with its accumulator and peer. An adapter, unlike a
    # Logger, also keeps picows from making a child logger per connection.
    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if not str(msg).startswith("WS parser error"):
            super().log(level, msg, *args, **kwargs)


_picows_logger = _PicowsLog(logging.getLogger("picows.server"))
logging.getLogger("picows").setLevel(logging.WARNING)


class _ReadCappedProtocol(WSProtocol):
    """picows's protocol with reads of at most ``READ_MAX_BYTES``.

    picows doubles its read buffer whenever a read fills it, so a producer
    that outpaces the server would grow each connection's buffer to
    megabytes. Capped reads keep that memory bounded.
    """

    def get_buffer(self, size_hint: int) -> memoryview:
        return super().get_buffer(size_hint)[:READ_MAX_BYTES]


def protocol_factory(
    state: ServerState, frame_base: type[WSListener]
) -> Callable[[Any], WSProtocol]:
    """Return a factory of picows protocols for the front door's hand-over.

    Args:
        frame_base: the per-frame step that connections build on, from
            ``framestep.frame_step``.
    """
    connection_class = type("ProducerConnection", (_ProducerConnection, frame_base), {})

    def make(transport: asyncio.Transport) -> WSProtocol:
        peer = _peer(transport)
        return _ReadCappedProtocol(
            None,  # host and port: client side only
            None,  # path: client side only
            False,  # is_client_side
            partial(_upgrade, state, peer, connection_class),
            _picows_logger,
            True,  # disconnect_on_exception
            HANDSHAKE_TIMEOUT_S,
            False,  # enable_auto_ping
            20.0,
            20.0,
            WSAutoPingStrategy.PING_WHEN_IDLE,
            False,  # enable_auto_pong: each frame reaches on_ws_frame
            state.max_message_bytes,
            None,  # extra_headers: client side only
            READ_BUFFER_BYTES,
        )

    return make


def close_all(state: ServerState) -> None:
    """Send 1001 to every open accumulator connection, as at shutdown."""
    for connection in list(state.producer_connections):
        connection.close(WSCloseCode.GOING_AWAY, "server shutdown")


def _upgrade(
    state: ServerState,
    peer: tuple[str, int],
    connection_class: type[_ProducerConnection],
    request: WSUpgradeRequest,
) -> WSUpgradeResponseWithListener:
    request_id = request.headers.get(REQUEST_ID_HEADER) or str(uuid.uuid4())
    target = urlsplit(request.path.decode("latin-1"))
    name = unquote(target.path[len(ACCUMULATOR_PATH) :])
    if not name or "/" in name:
        rejection = Rejection(404, "no route matches this request", "not_found")
        return _rejected(state, rejection, request_id)

    view = UpgradeRequest(
        headers=request.headers,
        query=dict(parse_qsl(target.query, keep_blank_values=True)),
        remote=peer[0],
    )
    resolved = resolve_upgrade(state, view, "accumulator", name)
    if isinstance(resolved, Rejection):
        return _rejected(state, resolved, request_id)
    _, accumulator = resolved

    # picows accepts only "Connection: upgrade", but RFC 7230 allows a token
    # list, which resolve_upgrade has already checked.
    request.headers["Connection"] = "upgrade"
    recorded = request.headers.get(GROUND_TRUTH_HEADER) == "1"
    listener = connection_class(state, name, accumulator, peer, recorded)
    state.api_requests[("GET", 101)] += 1
    response = WSUpgradeResponse.create_101_response({REQUEST_ID_HEADER: request_id})
    return WSUpgradeResponseWithListener(response, listener)


def _rejected(
    state: ServerState, rejection: Rejection, request_id: str
) -> WSUpgradeResponseWithListener:
    state.api_requests[("GET", rejection.status)] += 1
    headers = {
        **rejection.headers,
        "Content-Type": "application/json",
        REQUEST_ID_HEADER: request_id,
    }
    body = orjson.dumps(rejection.body)
    response = WSUpgradeResponse.create_error_response(rejection.status, body, headers)
    return WSUpgradeResponseWithListener(response, None)


class _ProducerConnection:
    """One producer's accumulator connection, on top of a per-frame step.

    ``protocol_factory`` joins this class with the step's base class: the step
    calls ``_on_events`` and ``_other_frame``, and reads ``_plain``.

    Args:
        accumulator: the resolved accumulator, or None to close with 4404.
        recorded: record each event's arrival for the ground-truth endpoint.
    """

    def __init__(
        self,
        state: ServerState,
        name: str,
        accumulator: AccumulatorState | None,
        peer: tuple[str, int],
        recorded: bool,
    ) -> None:
        super().__init__()
        self.state = state
        self.name = name
        self.accumulator = accumulator
        self.peer = peer
        self.transport: WSTransport | None = None
        self.received = 0
        """Data frames received, text ones included: each event's connection_seq."""
        self.close_code: int | None = None
        self._fragments: bytearray | None = None
        """The fragmented message being reassembled, None when none is open."""
        self._fragment_type = BINARY
        self._sent_close = False
        """Whether this class sent a close frame; picows may send one itself."""
        self._timer: asyncio.TimerHandle | None = None
        self._text_events = state.profile.text_frames_are_events
        self._stop_at_drop = state.profile.close_when_nothing_accepted
        self._deliver_run = state.registry.deliver_run
        recorder = state.ground_truth if recorded else None
        self._recorder = recorder
        self._connection_id = recorder.open_connection(peer[1]) if recorder else 0

    # picows callbacks.

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        state = self.state
        state.connections["accumulator"] += 1
        state.producer_connections.add(self)
        logger.info(
            "accumulator %s: connection opened from %s:%s%s",
            self.name,
            *self.peer,
            ", ground truth recorded" if self._recorder else "",
        )
        if self.accumulator is None:
            self._close_not_registered()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        # Payloads that a failed read left behind still count, as for a
        # reader of one frame at a time.
        self._on_events(self.take_read())
        if self._timer is not None:
            self._timer.cancel()
        state = self.state
        state.producer_connections.discard(self)
        state.connections["accumulator"] -= 1
        state.ws_messages[("accumulator", "in")] += self.received
        handshake = transport.close_handshake
        if handshake is not None and handshake.sent is not None:
            if not self._sent_close:
                # picows rejected a frame and closed with this code.
                self._count_error(int(handshake.sent.code), handshake.sent.reason)
            if self.close_code is None:
                self.close_code = int(handshake.sent.code)
        logger.info(
            "accumulator %s: connection from %s:%s closed, %d events received, "
            "close code %s",
            self.name,
            *self.peer,
            self.received,
            self.close_code,
        )

    @property
    def _plain(self) -> bool:
        """Whether a whole binary frame is an event: no fragmented message is
        open and no close frame has been sent."""
        return self._fragments is None and not self._close_sent

    @property
    def _close_sent(self) -> bool:
        """Whether a close frame went out, from this class or from picows after
        a frame that it rejected. Data frames after it are ignored."""
        transport = self.transport
        return self._sent_close or (
            transport is not None and transport.is_close_frame_sent
        )

    # Closing.

    def close(self, code: int, reason: str) -> None:
        """Send a close frame, then disconnect on the client's reply or a timeout."""
        if self._close_sent or self.transport is None or self.transport.is_disconnected:
            return
        self._sent_close = True
        self.transport.send_close(code, reason.encode())
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(CLOSE_TIMEOUT_S, self.transport.disconnect)

    def _fail(self, code: int, reason: str) -> None:
        self._count_error(code, reason)
        self.close(code, reason)

    def _count_error(self, code: int, reason: str) -> None:
        state = self.state
        state.ws_errors[str(code)] += 1
        logger.warning(
            "accumulator %s: connection from %s:%s failed: %d %s "
            "(%d such errors so far)",
            self.name,
            *self.peer,
            code,
            reason,
            sum(state.ws_errors.values()),
        )

    # Frames other than a whole binary message.

    def _other_frame(self, frame: WSFrame) -> None:
        kind = frame.msg_type
        if self._close_sent:
            if kind == CLOSE:
                self._on_close_reply(frame)
            return
        if frame.rsv1 or frame.rsv2 or frame.rsv3:
            self._fail(WSCloseCode.PROTOCOL_ERROR, "reserved bits set, no extension")
        elif kind == CLOSE:
            self._on_close(frame)
        elif kind == WSMsgType.PONG:
            return
        elif kind == WSMsgType.PING:
            self.transport.send_pong(frame.get_payload_as_bytes())
        elif kind == CONTINUATION:
            self._continue_message(frame)
        elif self._fragments is not None:
            self._fail(
                WSCloseCode.PROTOCOL_ERROR, "new message inside a fragmented one"
            )
        elif not frame.fin:
            self._fragments = bytearray()
            self._fragment_type = kind
            self._continue_message(frame)
        else:
            self._on_message(kind, frame.get_payload_as_bytes())

    def _on_close(self, frame: WSFrame) -> None:
        code = _close_code(frame)
        self.close_code = code
        if code == NO_STATUS or _is_valid_close_code(code):
            # Echo the client's code, as RFC 6455 section 5.5.1 suggests.
            self._sent_close = True
            self.transport.send_close(WSCloseCode.OK if code == NO_STATUS else code)
        else:
            self._fail(WSCloseCode.PROTOCOL_ERROR, f"invalid close code {code}")
        self.transport.disconnect()

    def _on_close_reply(self, frame: WSFrame) -> None:
        if self.close_code is None:
            self.close_code = _close_code(frame)
        self.transport.disconnect()

    def _continue_message(self, frame: WSFrame) -> None:
        if self._fragments is None:
            self._fail(WSCloseCode.PROTOCOL_ERROR, "continuation frame with no message")
            return
        if len(self._fragments) + frame.payload_size > self.state.max_message_bytes:
            self._fail(WSCloseCode.MESSAGE_TOO_BIG, "message too big")
            return
        self._fragments += frame.get_payload_as_memoryview()
        if frame.fin:
            payload = bytes(self._fragments)
            self._fragments = None
            self._on_message(self._fragment_type, payload)

    def _on_message(self, kind: int, payload: bytes) -> None:
        if kind == TEXT:
            try:
                payload.decode("utf-8")
            except UnicodeDecodeError:
                self._fail(WSCloseCode.INVALID_TEXT, "text message is not UTF-8")
                return
        if kind == BINARY or self._text_events:
            self._on_events([payload])
        else:
            self.received += 1
            self._ignore_text_frame()

    def _ignore_text_frame(self) -> None:
        # Cloacina logs every ignored text frame, but one line per 1000 is enough here.
        state = self.state
        state.text_frames_ignored += 1
        if state.text_frames_ignored % 1000 == 1:
            logger.warning(
                "accumulator %s: text frame from %s:%s ignored (%d so far); "
                "send JSON as a binary frame",
                self.name,
                *self.peer,
                state.text_frames_ignored,
            )

    # Delivery.

    def _on_events(self, payloads: list[bytes]) -> None:
        """Deliver the events of whole messages, in arrival order."""
        if not payloads:
            return
        self.received += len(payloads)
        if self._recorder is not None:
            self._deliver_recorded(payloads)
        elif not self._deliver_run(self.accumulator, payloads, self._stop_at_drop):
            self._close_not_registered()

    def _deliver_recorded(self, payloads: list[bytes]) -> None:
        # These payloads are the latest data frames of the connection.
        arrived_mono_ns = time.monotonic_ns()
        arrived_wall_ns = time.time_ns()
        deliver = self.state.registry.deliver
        recorder = self._recorder
        first_seq = self.received - len(payloads) + 1
        for offset, payload in enumerate(payloads):
            event_index = deliver(self.accumulator, payload)
            if event_index > 0:
                recorder.record_event(
                    self._connection_id,
                    event_index,
                    first_seq + offset,
                    self.name,
                    arrived_mono_ns,
                    arrived_wall_ns,
                )
            elif event_index < 0 and self._stop_at_drop:
                self._close_not_registered()
                return

    def _close_not_registered(self) -> None:
        logger.info(
            "accumulator %s: closing connection from %s:%s with %d, not registered",
            self.name,
            *self.peer,
            CLOSE_NOT_REGISTERED,
        )
        self.close(CLOSE_NOT_REGISTERED, f"accumulator '{self.name}' not registered")


def _peer(transport: asyncio.BaseTransport) -> tuple[str, int]:
    peername = transport.get_extra_info("peername")
    if not peername:
        return ("unknown", 0)
    return (peername[0], peername[1])


def _close_code(frame: WSFrame) -> int:
    """Return a close frame's status code, 1005 (no status) when it has none."""
    return NO_STATUS if frame.payload_size == 0 else int(frame.get_close_code())


def _is_valid_close_code(code: int) -> bool:
    """Return whether a peer may send ``code`` (RFC 6455 section 7.4 and the
    IANA registry): 1000 to 1003, 1007 to 1014, or 3000 to 4999."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999
