"""Server-wide state shared by the aiohttp handlers: registry, keys, counters."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .auth import KeyStore, TicketStore
from .groundtruth import GroundTruth
from .profiles import Profile
from .registry import Registry

__all__ = ["DEFAULT_MAX_MESSAGE_BYTES", "ServerState"]

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""tungstenite's default maximum message size, used by the Cloacina server."""


@dataclass
class ServerState:
    registry: Registry
    keys: KeyStore
    profile: Profile
    ground_truth: GroundTruth | None = None
    """Recorder behind ``/_ground_truth``; None unless ``--ground-truth``."""
    tickets: TicketStore = field(default_factory=TicketStore)
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    frame_step: str = "python"
    """Per-frame step of producer connections, ``compiled`` or ``python``."""
    connections: Counter[str] = field(default_factory=Counter)
    """Open WebSockets by endpoint, ``accumulator`` or ``reactor``."""
    ws_messages: Counter[tuple[str, str]] = field(default_factory=Counter)
    """WebSocket messages by (endpoint, direction)."""
    ws_auth_failures: Counter[str] = field(default_factory=Counter)
    ws_errors: Counter[str] = field(default_factory=Counter)
    """Connections that ended with a protocol error, by close code."""
    text_frames_ignored: int = 0
    upgrades_abandoned: int = 0
    """Upgrades whose peer closed before the 101 response was written."""
    http_errors: Counter[str] = field(default_factory=Counter)
    """Requests rejected by aiohttp's HTTP parser with 400, by error kind."""
    api_requests: Counter[tuple[str, int]] = field(default_factory=Counter)
    producer_connections: set[Any] = field(default_factory=set)
    """Open accumulator WebSockets, served by picows; see ``producer_ws``."""
