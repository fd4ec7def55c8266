"""Whether to accept a WebSocket upgrade, free of the library that serves it.

Upgrade checks follow the profile. The cloacina profile, like the Cloacina
server, rejects a request that is not a WebSocket upgrade before checking the
key, rejects unknown, foreign and ambiguous names with 403, and takes
``?token=`` only as a single-use ticket. The tutorial profile accepts a key in
``?token=`` and closes with 4404 after the upgrade for an unknown name.

Both WebSocket servers use this module: picows for accumulator upgrades and
aiohttp for reactor upgrades and for requests the front door hands to aiohttp.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .auth import ApiKey, extract_token
from .state import ServerState

__all__ = ["Rejection", "UpgradeRequest", "resolve_upgrade"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpgradeRequest:
    """The parts of an upgrade request that the checks read."""

    headers: Mapping[str, str]
    """Request headers, looked up case-insensitively."""
    query: Mapping[str, str]
    remote: str
    """Peer address, for logs."""


@dataclass(frozen=True)
class Rejection:
    """An HTTP error response in the JSON error envelope."""

    status: int
    message: str
    code: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def body(self) -> dict[str, str]:
        return {"error": self.message, "code": self.code}


class _Rejected(Exception):
    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.status)
        self.rejection = rejection


def resolve_upgrade(
    state: ServerState, request: UpgradeRequest, kind: str, name: str
) -> tuple[ApiKey, Any] | Rejection:
    """Authenticate and resolve the name; return the key and target or a rejection.

    A None target means: upgrade, then close with 4404 (tutorial profile).

    Args:
        kind: ``accumulator`` or ``reactor``.
    """
    profile = state.profile
    try:
        if not profile.unknown_name_after_upgrade:
            _check_upgrade(request)
        key = _authenticate(state, request, kind, name)
        registry = state.registry
        if kind == "accumulator":
            target = registry.resolve_accumulator(key, name)
        else:
            target = registry.resolve_reactor(key, name)
        known = registry.name_exists(name, kind)
        if target is None and (known or not profile.unknown_name_after_upgrade):
            message = f"not authorized for {kind} '{name}'"
            raise _reject(state, request, kind, name, 403, message, "tenant_mismatch")
        if profile.unknown_name_after_upgrade:
            _check_upgrade(request)
    except _Rejected as rejected:
        return rejected.rejection
    return key, target


def _authenticate(
    state: ServerState, request: UpgradeRequest, kind: str, name: str
) -> ApiKey:
    """Return the key of an upgrade request, with the 401 bodies of the profile."""
    bearer = extract_token(request.headers.get("Authorization"), None)
    query_token = request.query.get("token")

    def reject(message: str, reason: str) -> _Rejected:
        return _reject(state, request, kind, name, 401, message, reason)

    if bearer is not None:
        key = state.keys.lookup(bearer)
        if key is None:
            message = (
                "invalid bearer token"
                if state.profile.query_token_is_ticket
                else "invalid or revoked API key"
            )
            raise reject(message, "invalid_signature")
        return key
    if query_token:
        key = state.tickets.redeem(query_token)
        if key is None and not state.profile.query_token_is_ticket:
            key = state.keys.lookup(query_token)
            if key is None:
                raise reject("invalid or revoked API key", "invalid_signature")
        if key is None:
            raise reject("invalid or expired WebSocket ticket", "ticket_expired")
        return key
    raise reject("missing auth token", "not_authorized")


def _reject(
    state: ServerState,
    request: UpgradeRequest,
    kind: str,
    name: str,
    status: int,
    message: str,
    reason: str,
) -> _Rejected:
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
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    return _Rejected(Rejection(status, message, code, headers))


def _check_upgrade(request: UpgradeRequest) -> None:
    headers = request.headers
    # For any other version, RFC 6455 section 4.4 calls for an HTTP error such
    # as 426 with the supported version, as tungstenite sends. aiohttp alone
    # would also accept version 8.
    if headers.get("Sec-WebSocket-Version", "13") != "13":
        raise _Rejected(
            Rejection(
                426,
                "unsupported WebSocket version; use 13",
                "upgrade_required",
                {"Sec-WebSocket-Version": "13"},
            )
        )
    if not is_upgrade(headers):
        raise _Rejected(
            Rejection(426, "expected a WebSocket upgrade request", "upgrade_required")
        )


def is_upgrade(headers: Mapping[str, str]) -> bool:
    """Return whether the headers ask for a WebSocket upgrade with a valid key."""
    if headers.get("Upgrade", "").strip().lower() != "websocket":
        return False
    tokens = headers.get("Connection", "").lower().split(",")
    if "upgrade" not in (token.strip() for token in tokens):
        return False
    if "Sec-WebSocket-Version" not in headers:
        return False
    try:
        key = base64.b64decode(headers.get("Sec-WebSocket-Key", ""), validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(key) == 16
