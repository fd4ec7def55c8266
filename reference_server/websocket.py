"""WebSocket handlers on aiohttp: the reactor endpoint, and accumulator requests
that the front door did not hand to picows.

Upgrade checks are in ``upgrade``. Producers' accumulator upgrades are served by
picows (``producer_ws``); aiohttp sees an accumulator request only when it is
not a plain HTTP/1.1 GET on a new connection, and answers it with the same
rejections, or with 426 when the request would have been accepted.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from .app import CLOSE_NOT_REGISTERED, STATE, WEBSOCKETS, error_response
from .auth import ApiKey
from .commands import handle_cloacina_command, handle_command
from .runner import GraphRunner
from .state import ServerState
from .strictws import StrictWebSocketResponse
from .upgrade import Rejection, UpgradeRequest, resolve_upgrade

__all__ = ["add_routes"]

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 5.0
"""Time to wait for the client's close frame after the server sends its own."""

DATA_FRAMES = (WSMsgType.TEXT, WSMsgType.BINARY)
END_FRAMES = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/ws/accumulator/{name}", _accumulator_websocket)
    app.router.add_get("/v1/ws/reactor/{name}", _reactor_websocket)


def _resolve(
    request: web.Request, kind: str, name: str
) -> tuple[ApiKey, Any] | web.Response:
    """Authorize an upgrade; return the key and target or the rejection response."""
    view = UpgradeRequest(request.headers, request.query, request.remote or "unknown")
    resolved = resolve_upgrade(request.app[STATE], view, kind, name)
    if isinstance(resolved, Rejection):
        response = error_response(resolved.status, resolved.message, resolved.code)
        response.headers.update(resolved.headers)
        return response
    return resolved


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
    resolved = _resolve(request, "accumulator", request.match_info["name"])
    if isinstance(resolved, web.Response):
        return resolved
    # NOTE: an upgrade on a reused keep-alive connection, or over HTTP/1.0,
    # reaches aiohttp instead of picows and is rejected here, while the
    # Cloacina server would accept it. WebSocket clients open a new connection.
    return error_response(
        426,
        "send the accumulator upgrade as HTTP/1.1 GET on a new connection",
        "upgrade_required",
    )


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
