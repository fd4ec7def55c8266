"""Start and stop the reference server on an asyncio event loop."""

from __future__ import annotations

import logging

from aiohttp import web

from .app import create_app
from .auth import KeyStore
from .config import ServerConfig
from .groundtruth import GroundTruth
from .httperrors import RequestErrorLog
from .profiles import TUTORIAL, Profile
from .registry import Registry
from .state import DEFAULT_MAX_MESSAGE_BYTES, ServerState

__all__ = ["ReferenceServer", "format_url", "start_server"]

logger = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 2.0
"""Time open connections get to finish when the server stops."""


class ReferenceServer:
    """A running server: its bound address and a ``stop()`` coroutine."""

    def __init__(
        self, runner: web.AppRunner, registry: Registry, host: str, port: int
    ) -> None:
        self.runner = runner
        self.registry = registry
        self.host = host
        self.port = port
        """Bound TCP port, also when port 0 was requested."""

    @property
    def url(self) -> str:
        return format_url(self.host, self.port)

    async def stop(self) -> None:
        """Close connections and the listening socket, then cancel fires."""
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
) -> ReferenceServer:
    """Bind the server and start serving on the running event loop.

    Args:
        config: graphs, accumulators and every accepted API key.
        host: address to bind.
        port: TCP port to bind; 0 picks a free port, see ``ReferenceServer.port``.
        profile: protocol profile, ``TUTORIAL`` or ``CLOACINA``.
        ground_truth: serve the ``/_ground_truth`` endpoints.
        max_message_bytes: largest WebSocket message; larger ones close with 1009.

    Raises:
        OSError: the address cannot be bound.
    """
    recorder = GroundTruth() if ground_truth else None
    registry = Registry(config, profile, recorder)
    state = ServerState(
        registry=registry,
        keys=KeyStore(config.keys),
        profile=profile,
        ground_truth=recorder,
        max_message_bytes=max_message_bytes,
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
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    registry.start()
    bound_port = runner.addresses[0][1]
    server = ReferenceServer(runner, registry, host, bound_port)
    logger.info(
        "reference server listening on %s with %d graph(s) and %d accumulator(s) "
        "from %s, profile %s, ground truth %s",
        server.url,
        len(config.graphs),
        len(config.accumulators),
        config.source,
        profile.name,
        "on" if ground_truth else "off",
    )
    return server


def format_url(host: str, port: int) -> str:
    """Return ``http://host:port``, with an IPv6 host in brackets."""
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"
