"""Reference server for Cloacina computation-graph endpoints.

It serves the accumulator and reactor WebSockets and the health endpoints of
the WebSocket event injection tutorial, so that the load generator and the
tutorial clients can run without a Cloacina deployment. Start it with
``python -m reference_server`` or from code with ``start_server``.
"""

from .config import ServerConfig, default_config, load_config
from .server import ReferenceServer, start_server

__all__ = [
    "ReferenceServer",
    "ServerConfig",
    "default_config",
    "load_config",
    "start_server",
]
