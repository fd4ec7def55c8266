"""aiohttp routes: health endpoints and the accumulator and reactor WebSockets.

The handlers only translate between HTTP or WebSocket and the transport-free
core (``auth``, ``registry``, ``commands``, ``health``).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from . import health
from .auth import ApiKey, AuthError, KeyStore, is_authorized
from .commands import handle_command
from .registry import AccumulatorState, Registry
from .runner import GraphRunner

__all__ = ["CLOSE_NOT_REGISTERED", "create_app"]

logger = logging.getLogger(__name__)

CLOSE_NOT_REGISTERED = 4404
"""WebSocket close code for an accumulator or reactor name that is not registered."""

CLOSE_TIMEOUT_S = 5.0
"""Time to wait for the client's close frame after the server sends its own."""

SHUTDOWN_CLOSE_TIMEOUT_S = 1.0
"""Time open WebSockets get to return the server's close frame at shutdown."""

REGISTRY = web.AppKey("registry", Registry)
KEYS = web.AppKey("keys", KeyStore)
WEBSOCKETS = web.AppKey("websockets", weakref.WeakSet)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(registry: Registry, keys: KeyStore) -> web.Application:
    """Build the aiohttp application serving ``registry`` to holders of ``keys``."""
    app = web.Application(middlewares=[_json_route_errors])
    app[REGISTRY] = registry
    app[KEYS] = keys
    app[WEBSOCKETS] = weakref.WeakSet()
    app.on_shutdown.append(_close_websockets)

    app.router.add_get("/health", _server_health)
    app.router.add_get("/v1/health/accumulators", _list_accumulators)
    app.router.add_get("/v1/health/graphs", _list_graphs)
    app.router.add_get("/v1/health/graphs/{name}", _get_graph)
    app.router.add_get("/v1/ws/accumulator/{name}", _accumulator_websocket)
    app.router.add_get("/v1/ws/reactor/{name}", _reactor_websocket)
    return app


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json"
    )


def error_response(status: int, message: str, code: str) -> web.Response:
    """Build the error envelope ``{"error": message, "code": code}``."""
    response = json_response({"error": message, "code": code}, status)
    if status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


@web.middleware
async def _json_route_errors(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    # Turn the router's plain-text 404 and 405 into the JSON error envelope.
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return error_response(404, "no route matches this request", "not_found")
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        return error_response(
            405, f"method {request.method} not allowed; use {allowed}", "not_allowed"
        )


def _authenticate(request: web.Request) -> ApiKey:
    return request.app[KEYS].authenticate(
        request.headers.get("Authorization"), request.query.get("token")
    )


def _visible_tenant(key: ApiKey) -> str | None:
    # None lets an admin key see every tenant.
    return None if key.admin else key.tenant


async def _server_health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def _list_accumulators(request: web.Request) -> web.Response:
    try:
        key = _authenticate(request)
    except AuthError as exc:
        return error_response(401, str(exc), "unauthorized")
    states = request.app[REGISTRY].visible_accumulators(_visible_tenant(key))
    return json_response(
        {"accumulators": [health.accumulator_status(state) for state in states]}
    )


async def _list_graphs(request: web.Request) -> web.Response:
    try:
        key = _authenticate(request)
    except AuthError as exc:
        return error_response(401, str(exc), "unauthorized")
    runners = request.app[REGISTRY].visible_graphs(_visible_tenant(key))
    return json_response({"graphs": [health.graph_status(r) for r in runners]})


async def _get_graph(request: web.Request) -> web.Response:
    try:
        key = _authenticate(request)
    except AuthError as exc:
        return error_response(401, str(exc), "unauthorized")
    name = request.match_info["name"]
    runner = request.app[REGISTRY].graphs.get(name)

    # Another tenant's graph reads as missing, so names do not leak.
    if runner is None or not is_authorized(key, runner.graph.tenant):
        return error_response(404, f"graph '{name}' not found", "graph_not_found")
    return json_response(health.graph_status(runner))


async def _accumulator_websocket(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    registry = request.app[REGISTRY]
    state = registry.accumulators.get(name)
    tenant = state.config.tenant if state is not None else None
    rejection = _check_upgrade(request, "accumulator", name, tenant)
    if rejection is not None:
        return rejection

    ws = await _prepare_websocket(request)
    if state is None:
        return await _close_not_registered(request, ws, "accumulator", name)
    await _receive_events(request, ws, registry, state)
    return ws


async def _reactor_websocket(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    registry = request.app[REGISTRY]
    runner = registry.find_reactor(name)
    tenant = runner.graph.tenant if runner is not None else None
    rejection = _check_upgrade(request, "reactor", name, tenant)
    if rejection is not None:
        return rejection

    ws = await _prepare_websocket(request)
    if runner is None:
        return await _close_not_registered(request, ws, "reactor", name)
    await _answer_commands(request, ws, registry, runner)
    return ws


def _check_upgrade(
    request: web.Request, kind: str, name: str, tenant: str | None
) -> web.Response | None:
    """Return the HTTP error that rejects a WebSocket upgrade, or None to accept.

    An unknown name is accepted here and closed with 4404 after the upgrade,
    as the tutorial describes.
    """
    try:
        key = _authenticate(request)
    except AuthError as exc:
        logger.info("%s %s: rejected %s: %s", kind, name, request.remote, exc)
        return error_response(401, str(exc), "unauthorized")
    if tenant is not None and not is_authorized(key, tenant):
        logger.info(
            "%s %s: rejected key %s of tenant %s from %s",
            kind,
            name,
            key.name,
            key.tenant,
            request.remote,
        )
        return error_response(
            403, f"not authorized for {kind} '{name}'", "endpoint_access_denied"
        )
    if not web.WebSocketResponse().can_prepare(request).ok:
        return error_response(
            426, "expected a WebSocket upgrade request", "upgrade_required"
        )
    return None


async def _prepare_websocket(request: web.Request) -> web.WebSocketResponse:
    # No compression, so each response is a plain text frame that simple
    # clients can parse without inflating it.
    ws = web.WebSocketResponse(compress=False, timeout=CLOSE_TIMEOUT_S)
    await ws.prepare(request)
    request.app[WEBSOCKETS].add(ws)
    return ws


async def _close_not_registered(
    request: web.Request, ws: web.WebSocketResponse, kind: str, name: str
) -> web.WebSocketResponse:
    logger.info(
        "%s %s: closing connection from %s with %d, not registered",
        kind,
        name,
        request.remote,
        CLOSE_NOT_REGISTERED,
    )
    message = f"{kind} '{name}' not registered".encode()
    await ws.close(code=CLOSE_NOT_REGISTERED, message=message)
    return ws


async def _receive_events(
    request: web.Request,
    ws: web.WebSocketResponse,
    registry: Registry,
    state: AccumulatorState,
) -> None:
    name = state.config.name
    logger.info("accumulator %s: connection opened from %s", name, request.remote)
    received = 0
    try:
        async for message in ws:
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                received += 1
                registry.deliver(state, message.data)
            elif message.type == WSMsgType.ERROR:
                logger.warning(
                    "accumulator %s: connection from %s failed: %s",
                    name,
                    request.remote,
                    ws.exception(),
                )
    finally:
        logger.info(
            "accumulator %s: connection from %s closed, %d events received, "
            "close code %s",
            name,
            request.remote,
            received,
            _close_code(ws),
        )


async def _answer_commands(
    request: web.Request,
    ws: web.WebSocketResponse,
    registry: Registry,
    runner: GraphRunner,
) -> None:
    name = runner.graph.name
    logger.info("reactor %s: connection opened from %s", name, request.remote)
    commands = 0
    try:
        async for message in ws:
            if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue
            commands += 1
            response = handle_command(registry, runner, message.data)
            if response["type"] == "Error":
                logger.info("reactor %s: %s", name, response["message"])

            # One frame in one write: the tutorial client reads a single recv().
            await ws.send_frame(orjson.dumps(response), WSMsgType.TEXT)
    except ConnectionResetError as exc:
        logger.info(
            "reactor %s: connection from %s lost: %s", name, request.remote, exc
        )
    finally:
        logger.info(
            "reactor %s: connection from %s closed, %d commands received, "
            "close code %s",
            name,
            request.remote,
            commands,
            _close_code(ws),
        )


def _close_code(ws: web.WebSocketResponse) -> int | None:
    # aiohttp reports a close frame without a status code as 0, a case that
    # RFC 6455 calls 1005 (no status received).
    return 1005 if ws.close_code == 0 else ws.close_code


async def _close_websockets(app: web.Application) -> None:
    # Close in parallel and stop waiting after SHUTDOWN_CLOSE_TIMEOUT_S, because
    # each close waits for a client reply that an idle client may never send.
    closes = [
        ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
        for ws in list(app[WEBSOCKETS])
    ]
    if not closes:
        return
    try:
        await asyncio.wait_for(asyncio.gather(*closes), SHUTDOWN_CLOSE_TIMEOUT_S)
    except TimeoutError:
        logger.info("stopped waiting for WebSocket clients to return the close frame")
