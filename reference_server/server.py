"""Start and stop the reference server on an asyncio event loop."""

from __future__ import annotations

import logging

from aiohttp import web

from .app import create_app
from .auth import KeyStore
from .config import ServerConfig
from .registry import Registry

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
    config: ServerConfig, host: str = "127.0.0.1", port: int = 8080
) -> ReferenceServer:
    """Bind the server and start serving on the running event loop.

    Args:
        config: graphs, accumulators and every accepted API key.
        host: address to bind.
        port: TCP port to bind; 0 picks a free port, see ``ReferenceServer.port``.

    Raises:
        OSError: the address cannot be bound.
    """
    registry = Registry(config)
    app = create_app(registry, KeyStore(config.keys))

    # The load generator polls health endpoints every few milliseconds, and an
    # access log line per request would cost more than the request itself.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port = runner.addresses[0][1]
    server = ReferenceServer(runner, registry, host, bound_port)
    logger.info(
        "reference server listening on %s with %d graph(s) and %d accumulator(s) "
        "from %s",
        server.url,
        len(config.graphs),
        len(config.accumulators),
        config.source,
    )
    return server


def format_url(host: str, port: int) -> str:
    """Return ``http://host:port``, with an IPv6 host in brackets."""
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"
