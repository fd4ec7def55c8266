"""aiohttp application: routes, the JSON error envelope and request ids.

The handlers only translate between HTTP and the transport-free core
(``auth``, ``registry``, ``commands``, ``health``). WebSocket handlers are in
``websocket``, the REST health endpoints in ``rest``, and the load generator's
own endpoints and ``/metrics`` in ``observability``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import WSCloseCode, web

from .auth import ApiKey, AuthError, extract_token
from .state import ServerState

__all__ = [
    "CLOSE_NOT_REGISTERED",
    "STATE",
    "AuthFailure",
    "create_app",
    "error_response",
    "json_response",
    "rest_key",
]

logger = logging.getLogger(__name__)

CLOSE_NOT_REGISTERED = 4404
"""WebSocket close code for an accumulator or reactor name that is not registered."""

SHUTDOWN_CLOSE_TIMEOUT_S = 1.0
"""Time open WebSockets get to return the server's close frame at shutdown."""

STATE = web.AppKey("state", ServerState)
WEBSOCKETS = web.AppKey("websockets", weakref.WeakSet)
REQUEST_ID_HEADER = "x-request-id"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(state: ServerState) -> web.Application:
    """Build the aiohttp application serving ``state``."""
    from . import observability, rest, websocket

    app = web.Application(middlewares=[_json_route_errors])
    app[STATE] = state
    app[WEBSOCKETS] = weakref.WeakSet()
    app.on_response_prepare.append(_add_request_id)
    app.on_shutdown.append(_close_websockets)

    rest.add_routes(app)
    websocket.add_routes(app)
    observability.add_routes(app, ground_truth=state.ground_truth is not None)
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


class AuthFailure(Exception):
    """Request rejected with a ready HTTP response."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def rest_key(request: web.Request, admin: bool = False) -> ApiKey:
    """Return the key of a REST request.

    The cloacina profile reads only ``Authorization: Bearer``; the tutorial
    profile also accepts ``?token=``.

    Raises:
        AuthFailure: 401 for a missing or unknown key, 403 if ``admin`` is
            required and the key is not an admin key.
    """
    state = request.app[STATE]
    authorization = request.headers.get("Authorization")
    try:
        if state.profile.name == "cloacina":
            token = extract_token(authorization, None)
            if token is None:
                raise AuthError("missing or malformed Authorization header")
            key = state.keys.lookup(token)
            if key is None:
                raise AuthError("invalid or revoked API key")
        else:
            key = state.keys.authenticate(authorization, request.query.get("token"))
    except AuthError as exc:
        raise AuthFailure(error_response(401, str(exc), "unauthorized")) from None
    if admin and not key.admin:
        raise AuthFailure(
            error_response(403, "this endpoint needs an admin key", "forbidden")
        )
    return key


@web.middleware
async def _json_route_errors(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    # Turn the router's plain-text 404 and 405 into the JSON error envelope,
    # and count requests like cloacina_api_requests_total.
    state = request.app[STATE]
    try:
        response = await handler(request)
    except AuthFailure as failure:
        response = failure.response
    except web.HTTPNotFound:
        response = error_response(404, "no route matches this request", "not_found")
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        response = error_response(
            405, f"method {request.method} not allowed; use {allowed}", "not_allowed"
        )
    state.api_requests[(request.method, response.status)] += 1
    return response


async def _add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    request_id = request.headers.get(REQUEST_ID_HEADER) or str(uuid.uuid4())
    response.headers[REQUEST_ID_HEADER] = request_id


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
