"""Accumulator and reactor WebSocket handlers.

Upgrade checks follow the profile. The cloacina profile, like the Cloacina
server, rejects a request that is not a WebSocket upgrade before checking the
key, rejects unknown, foreign and ambiguous names with 403, and takes
``?token=`` only as a single-use ticket. The tutorial profile accepts a key in
``?token=`` and closes with 4404 after the upgrade for an unknown name.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from .app import CLOSE_NOT_REGISTERED, STATE, WEBSOCKETS, error_response
from .auth import ApiKey, extract_token
from .commands import handle_cloacina_command, handle_command
from .groundtruth import GROUND_TRUTH_HEADER
from .registry import DROPPED, AccumulatorState
from .runner import GraphRunner
from .state import ServerState
from .strictws import StrictWebSocketResponse

__all__ = ["add_routes"]

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 5.0
"""Time to wait for the client's close frame after the server sends its own."""

DATA_FRAMES = (WSMsgType.TEXT, WSMsgType.BINARY)
END_FRAMES = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/ws/accumulator/{name}", _accumulator_websocket)
    app.router.add_get("/v1/ws/reactor/{name}", _reactor_websocket)


class _Rejection(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _authenticate(request: web.Request, kind: str, name: str) -> ApiKey:
    """Return the key of an upgrade request, with the 401 bodies of the profile."""
    state = request.app[STATE]
    authorization = request.headers.get("Authorization")
    query_token = request.query.get("token")
    bearer = extract_token(authorization, None)

    if bearer is not None:
        key = state.keys.lookup(bearer)
        if key is None:
            message = (
                "invalid bearer token"
                if state.profile.query_token_is_ticket
                else "invalid or revoked API key"
            )
            raise _reject(request, kind, name, 401, message, "invalid_signature")
        return key
    if query_token:
        key = state.tickets.redeem(query_token)
        if key is None and not state.profile.query_token_is_ticket:
            key = state.keys.lookup(query_token)
            if key is None:
                message = "invalid or revoked API key"
                raise _reject(request, kind, name, 401, message, "invalid_signature")
        if key is None:
            message = "invalid or expired WebSocket ticket"
            raise _reject(request, kind, name, 401, message, "ticket_expired")
        return key
    raise _reject(request, kind, name, 401, "missing auth token", "not_authorized")


def _reject(
    request: web.Request, kind: str, name: str, status: int, message: str, reason: str
) -> _Rejection:
    state = request.app[STATE]
    state.ws_auth_failures[reason] += 1
    logger.info(
        "%s %s: rejected upgrade from %s with %d: %s",
        kind,
        name,
        request.remote,
        status,
        message,
    )
    code = "unauthorized" if status == 401 else "endpoint_access_denied"
    return _Rejection(error_response(status, message, code))


def _check_upgrade_request(request: web.Request) -> None:
    # aiohttp 3.14 also accepts the draft version 8; RFC 6455 section 4.4 asks
    # for 426 with the supported version instead, as tungstenite does.
    if request.headers.get("Sec-WebSocket-Version", "13") != "13":
        response = error_response(
            426, "unsupported WebSocket version; use 13", "upgrade_required"
        )
        response.headers["Sec-WebSocket-Version"] = "13"
        raise _Rejection(response)
    if not web.WebSocketResponse().can_prepare(request).ok:
        raise _Rejection(
            error_response(
                426, "expected a WebSocket upgrade request", "upgrade_required"
            )
        )


def _resolve(
    request: web.Request, kind: str, name: str
) -> tuple[ApiKey, Any] | web.Response:
    """Authenticate and resolve the name; return the key and target or a response.

    A None target means: upgrade, then close with 4404 (tutorial profile).
    """
    state = request.app[STATE]
    profile = state.profile
    try:
        if not profile.unknown_name_after_upgrade:
            _check_upgrade_request(request)
        key = _authenticate(request, kind, name)
        registry = state.registry
        if kind == "accumulator":
            target = registry.resolve_accumulator(key, name)
        else:
            target = registry.resolve_reactor(key, name)
        known = registry.name_exists(name, kind)
        if target is None and (known or not profile.unknown_name_after_upgrade):
            raise _reject(
                request,
                kind,
                name,
                403,
                f"not authorized for {kind} '{name}'",
                "tenant_mismatch",
            )
        if profile.unknown_name_after_upgrade:
            _check_upgrade_request(request)
    except _Rejection as rejection:
        return rejection.response
    return key, target


async def _prepare(request: web.Request, endpoint: str) -> web.WebSocketResponse | None:
    """Complete the upgrade; return None when the peer left before it completed."""
    state = request.app[STATE]
    # No compression, so each response is a plain text frame that simple
    # clients can parse without inflating it.
    ws = StrictWebSocketResponse(
        compress=False,
        timeout=CLOSE_TIMEOUT_S,
        max_msg_size=state.max_message_bytes,
    )
    try:
        await ws.prepare(request)
    except ConnectionResetError:
        # The peer closed its side before the 101 response was written: an
        # ordinary disconnect, logged once and then only counted.
        state.upgrades_abandoned += 1
        if state.upgrades_abandoned == 1:
            logger.info(
                "%s: peer %s left before the upgrade completed; later cases are "
                "counted in /_loadgen/stats, not logged",
                endpoint,
                request.remote,
            )
        return None
    request.app[WEBSOCKETS].add(ws)
    state.connections[endpoint] += 1
    return ws


async def _close_not_registered(
    request: web.Request, ws: web.WebSocketResponse, kind: str, name: str
) -> None:
    logger.info(
        "%s %s: closing connection from %s with %d, not registered",
        kind,
        name,
        request.remote,
        CLOSE_NOT_REGISTERED,
    )
    message = f"{kind} '{name}' not registered".encode()
    await ws.close(code=CLOSE_NOT_REGISTERED, message=message)


async def _accumulator_websocket(request: web.Request) -> web.StreamResponse:
    return await _serve_websocket(request, "accumulator", _receive_events)


async def _serve_websocket(
    request: web.Request, kind: str, serve
) -> web.StreamResponse:
    """Authorize, upgrade, and run ``serve`` or close 4404 for an unknown name.

    Args:
        kind: ``accumulator`` or ``reactor``, the endpoint and its counter.
        serve: coroutine taking (request, ws, state, target) that runs the
            connection once the name resolved to a target.
    """
    name = request.match_info["name"]
    resolved = _resolve(request, kind, name)
    if isinstance(resolved, web.Response):
        return resolved
    _, target = resolved

    state = request.app[STATE]
    ws = await _prepare(request, kind)
    if ws is None:
        return web.Response(status=499)
    try:
        if target is None:
            await _close_not_registered(request, ws, kind, name)
        else:
            await serve(request, ws, state, target)
    finally:
        state.connections[kind] -= 1
    return ws


async def _receive_events(
    request: web.Request,
    ws: web.WebSocketResponse,
    state: ServerState,
    accumulator: AccumulatorState,
) -> None:
    name = accumulator.config.name
    peer = _peer(request)
    recorder = state.ground_truth
    if request.headers.get(GROUND_TRUTH_HEADER) != "1":
        recorder = None
    connection_id = recorder.open_connection(peer[1]) if recorder else 0
    logger.info(
        "accumulator %s: connection opened from %s:%s%s",
        name,
        *peer,
        ", ground truth recorded" if recorder else "",
    )

    deliver = state.registry.deliver
    text_events = state.profile.text_frames_are_events
    close_when_dropped = state.profile.close_when_nothing_accepted
    messages = state.ws_messages
    received = 0
    """Data frames received, text ones included: each event's connection_seq."""
    binary, text = WSMsgType.BINARY, WSMsgType.TEXT
    try:
        while True:
            message = await ws.receive()
            arrived_mono_ns = time.monotonic_ns() if recorder is not None else 0
            kind = message.type
            if kind is binary or (kind is text and text_events):
                received += 1
                event_index = deliver(accumulator, message.data)
                if event_index > 0:
                    if recorder is not None:
                        recorder.record_event(
                            connection_id,
                            event_index,
                            received,
                            name,
                            arrived_mono_ns,
                            time.time_ns(),
                        )
                elif event_index == DROPPED and close_when_dropped:
                    await _close_not_registered(request, ws, "accumulator", name)
                    break
            elif kind is WSMsgType.TEXT:
                received += 1
                _ignore_text_frame(state, name, peer)
            elif kind in END_FRAMES:
                break
            elif kind is WSMsgType.ERROR:
                _log_protocol_error(state, ws, "accumulator", name, peer)
                break
    except ConnectionResetError as exc:
        logger.info("accumulator %s: connection from %s:%s lost: %s", name, *peer, exc)
    finally:
        messages[("accumulator", "in")] += received
        logger.info(
            "accumulator %s: connection from %s:%s closed, %d events received, "
            "close code %s",
            name,
            *peer,
            received,
            _close_code(ws),
        )


def _ignore_text_frame(state: ServerState, name: str, peer: tuple[str, int]) -> None:
    # Cloacina logs every ignored text frame; one line per 1000 is enough here.
    state.text_frames_ignored += 1
    if state.text_frames_ignored % 1000 == 1:
        logger.warning(
            "accumulator %s: text frame from %s:%s ignored (%d so far); "
            "send JSON as a binary frame",
            name,
            *peer,
            state.text_frames_ignored,
        )


def _log_protocol_error(
    state: ServerState,
    ws: web.WebSocketResponse,
    kind: str,
    name: str,
    peer: tuple[str, int],
) -> None:
    state.ws_errors[str(ws.close_code)] += 1
    logger.warning(
        "%s %s: connection from %s:%s failed: %s (%d such errors so far)",
        kind,
        name,
        *peer,
        ws.exception(),
        sum(state.ws_errors.values()),
    )


async def _reactor_websocket(request: web.Request) -> web.StreamResponse:
    return await _serve_websocket(request, "reactor", _answer_commands)


async def _answer_commands(
    request: web.Request,
    ws: web.WebSocketResponse,
    state: ServerState,
    runner: GraphRunner,
) -> None:
    name = runner.graph.reactor
    peer = _peer(request)
    cloacina = state.profile.name == "cloacina"
    logger.info("reactor %s: connection opened from %s:%s", name, *peer)
    commands = 0
    try:
        while True:
            message = await ws.receive()
            if message.type in END_FRAMES:
                break
            if message.type is WSMsgType.ERROR:
                _log_protocol_error(state, ws, "reactor", name, peer)
                break
            # Cloacina processes only text frames on this endpoint.
            if message.type not in DATA_FRAMES or (
                cloacina and message.type is not WSMsgType.TEXT
            ):
                continue
            commands += 1
            state.ws_messages[("reactor", "in")] += 1
            if cloacina:
                response = handle_cloacina_command(runner, message.data)
            else:
                response = handle_command(state.registry, runner, message.data)
            if response["type"] in ("Error", "error"):
                logger.info("reactor %s: %s", name, response["message"])

            # One frame in one write: the tutorial client reads a single recv().
            await ws.send_frame(orjson.dumps(response), WSMsgType.TEXT)
            state.ws_messages[("reactor", "out")] += 1
    except ConnectionResetError as exc:
        logger.info("reactor %s: connection from %s:%s lost: %s", name, *peer, exc)
    finally:
        logger.info(
            "reactor %s: connection from %s:%s closed, %d commands received, "
            "close code %s",
            name,
            *peer,
            commands,
            _close_code(ws),
        )


def _peer(request: web.Request) -> tuple[str, int]:
    transport = request.transport
    peername = transport.get_extra_info("peername") if transport else None
    if not peername:
        return (request.remote or "unknown", 0)
    return (peername[0], peername[1])


def _close_code(ws: web.WebSocketResponse) -> int | None:
    # aiohttp reports a close frame without a status code as 0, a case that
    # RFC 6455 calls 1005 (no status received).
    return 1005 if ws.close_code == 0 else ws.close_code
