"""Start and stop the reference server on an asyncio event loop."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from . import producer_ws
from .app import create_app
from .auth import KeyStore
from .config import ServerConfig
from .framestep import frame_step
from .frontdoor import FrontDoor
from .groundtruth import GroundTruth
from .httperrors import RequestErrorLog
from .profiles import TUTORIAL, Profile
from .registry import Registry
from .state import DEFAULT_MAX_MESSAGE_BYTES, ServerState

__all__ = ["ReferenceServer", "format_url", "start_server"]

logger = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 2.0
"""Time open connections get to finish when the server stops."""
SHUTDOWN_CLOSE_TIMEOUT_S = 1.0
"""Time producers get to return the server's close frame when it stops."""
BACKLOG = 1024
"""Pending connections the listening socket holds; benchmarks open thousands."""


class ReferenceServer:
    """A running server: its bound address and a ``stop()`` coroutine."""

    def __init__(
        self,
        runner: web.AppRunner,
        listener: asyncio.Server,
        state: ServerState,
        host: str,
        port: int,
    ) -> None:
        self.runner = runner
        self.listener = listener
        self.state = state
        self.registry = state.registry
        self.host = host
        self.port = port
        """Bound TCP port, also when port 0 was requested."""

    @property
    def url(self) -> str:
        return format_url(self.host, self.port)

    async def stop(self) -> None:
        """Close connections and the listening socket, then cancel fires."""
        self.listener.close()
        producer_ws.close_all(self.state)
        deadline = asyncio.get_running_loop().time() + SHUTDOWN_CLOSE_TIMEOUT_S
        while self.state.producer_connections:
            if asyncio.get_running_loop().time() > deadline:
                logger.info("stopped waiting for producers to return the close frame")
                break
            await asyncio.sleep(0.01)
        await self.runner.cleanup()
        await self.registry.stop()
        logger.info("reference server on %s stopped", self.url)


async def start_server(
    config: ServerConfig,
    host: str = "127.0.0.1",
    port: int = 8080,
    profile: Profile = TUTORIAL,
    ground_truth: bool = False,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    frame_step_choice: str = "auto",
) -> ReferenceServer:
    """Bind the server and start serving on the running event loop.

    Args:
        config: graphs, accumulators and every accepted API key.
        host: address to bind.
        port: TCP port to bind; 0 picks a free port, see ``ReferenceServer.port``.
        profile: protocol profile, ``TUTORIAL`` or ``CLOACINA``.
        ground_truth: serve the ``/_ground_truth`` endpoints.
        max_message_bytes: largest WebSocket message; larger ones close with 1009.
        frame_step_choice: ``--frame-step``, one of ``framestep.FRAME_STEPS``.

    Raises:
        OSError: the address cannot be bound.
        FrameStepError: the compiled frame step was requested and is missing.
    """
    frame_base, frame_label = frame_step(frame_step_choice)
    recorder = GroundTruth() if ground_truth else None
    registry = Registry(config, profile, recorder)
    state = ServerState(
        registry=registry,
        keys=KeyStore(config.keys),
        profile=profile,
        ground_truth=recorder,
        max_message_bytes=max_message_bytes,
        frame_step=frame_label,
    )
    app = create_app(state)

    # The load generator polls health endpoints every few milliseconds, and an
    # access log line per request would cost more than the request itself.
    runner = web.AppRunner(
        app,
        access_log=None,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        logger=RequestErrorLog(logging.getLogger("aiohttp.server"), state.http_errors),
    )
    await runner.setup()
    http, websocket = runner.server, producer_ws.protocol_factory(state, frame_base)
    try:
        listener = await asyncio.get_running_loop().create_server(
            lambda: FrontDoor(http, websocket, _is_producer_upgrade),
            host,
            port,
            backlog=BACKLOG,
            reuse_address=True,
        )
    except BaseException:
        await runner.cleanup()
        raise
    registry.start()
    bound_port = listener.sockets[0].getsockname()[1]
    server = ReferenceServer(runner, listener, state, host, bound_port)
    logger.info(
        "reference server listening on %s with %d graph(s) and %d accumulator(s) "
        "from %s, profile %s, ground truth %s, frame step %s",
        server.url,
        len(config.graphs),
        len(config.accumulators),
        config.source,
        profile.name,
        "on" if ground_truth else "off",
        frame_label,
    )
    return server


def _is_producer_upgrade(request_line: bytes) -> bool:
    # picows serves only HTTP/1.1 GET upgrades; anything else goes to aiohttp.
    return request_line.startswith(
        b"GET " + producer_ws.ACCUMULATOR_PATH
    ) and request_line.endswith(b" HTTP/1.1")


def format_url(host: str, port: int) -> str:
    """Return ``http://host:port``, with an IPv6 host in brackets."""
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"
