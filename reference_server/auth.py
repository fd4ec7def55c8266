"""API keys: lookup, tenant authorization and the admin key at start.

A request carries its key either in ``Authorization: Bearer <key>`` or, for
clients that cannot set headers such as browsers, in the ``?token=`` query
parameter. The header wins when both are present.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .config import KeyConfig

__all__ = [
    "ApiKey",
    "AuthError",
    "KeyStore",
    "TicketStore",
    "generate_key",
    "is_authorized",
    "mask_key",
    "resolve_admin_key",
    "write_key_file",
]

KEY_PREFIX = "clk_"


class AuthError(Exception):
    """Request rejected with 401 because its key is missing or unknown."""


@dataclass(frozen=True)
class ApiKey:
    name: str
    tenant: str | None
    """Tenant the key belongs to; None for an admin key."""
    admin: bool


class KeyStore:
    """Known API keys, stored as SHA-256 digests so no plaintext is kept."""

    def __init__(self, keys: Iterable[KeyConfig] = ()) -> None:
        self._keys: dict[str, ApiKey] = {}
        for key in keys:
            self.add(key)

    def add(self, key: KeyConfig) -> None:
        self._keys[_digest(key.key)] = ApiKey(key.name, key.tenant, key.admin)

    def lookup(self, key: str) -> ApiKey | None:
        return self._keys.get(_digest(key))

    def authenticate(
        self, authorization: str | None, query_token: str | None
    ) -> ApiKey:
        """Return the key a request carries.

        Args:
            authorization: value of the ``Authorization`` header, if any.
            query_token: value of the ``token`` query parameter, if any.

        Raises:
            AuthError: no key is given, or the key is unknown.
        """
        token = extract_token(authorization, query_token)
        if token is None:
            raise AuthError("missing auth token")
        key = self.lookup(token)
        if key is None:
            raise AuthError("invalid or revoked API key")
        return key


TICKET_TTL_S = 60.0
"""Lifetime of a WebSocket ticket, as on the Cloacina server."""
TICKET_CAPACITY = 1024
"""Unredeemed tickets kept; the oldest is forgotten first."""


class TicketStore:
    """Single-use WebSocket tickets: ``POST /v1/auth/ws-ticket`` in Cloacina.

    A ticket is a UUID4 string that stands for the key that requested it. It
    expires after ``TICKET_TTL_S`` and is consumed by its first redemption.
    """

    def __init__(self, ttl_s: float = TICKET_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._tickets: OrderedDict[str, tuple[ApiKey, float]] = OrderedDict()

    def issue(self, key: ApiKey) -> str:
        """Return a new ticket for ``key``."""
        now_s = time.monotonic()
        while self._tickets:
            oldest = next(iter(self._tickets.values()))
            if oldest[1] > now_s and len(self._tickets) < TICKET_CAPACITY:
                break
            self._tickets.popitem(last=False)
        ticket = str(uuid.uuid4())
        self._tickets[ticket] = (key, now_s + self.ttl_s)
        return ticket

    def redeem(self, ticket: str) -> ApiKey | None:
        """Consume a ticket and return its key, or None if unknown or expired."""
        entry = self._tickets.pop(ticket, None)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]


def extract_token(authorization: str | None, query_token: str | None) -> str | None:
    """Return the key from a Bearer header, else from the query, else None."""
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    if query_token:
        return query_token
    return None


def is_authorized(key: ApiKey, tenant: str) -> bool:
    """Return whether a key may reach an endpoint owned by ``tenant``."""
    return key.admin or key.tenant == tenant


def generate_key() -> str:
    """Return a new random key: ``clk_`` and 43 URL-safe base64 characters."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def mask_key(key: str) -> str:
    """Return the key with all but its last four characters hidden."""
    return "****" + key[-4:]


def resolve_admin_key(
    token_option: str | None, environ: Mapping[str, str]
) -> tuple[str, str]:
    """Choose the admin key from ``--token``, else ``$TOKEN``, else a new one.

    Returns:
        The key and its origin: ``"from --token"``, ``"from $TOKEN"`` or
        ``"generated"``.
    """
    if token_option:
        return token_option, "from --token"
    if environ.get("TOKEN"):
        return environ["TOKEN"], "from $TOKEN"
    return generate_key(), "generated"


def write_key_file(path: str | Path, key: str) -> None:
    """Write a key to a file readable only by its owner (mode 0600).

    Raises:
        OSError: the file cannot be created or written.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        # The mode given to os.open applies only when the file is created.
        os.fchmod(file.fileno(), 0o600)
        file.write(key + "\n")


def _digest(key: str) -> str:
    # aiohttp decodes header bytes that are not UTF-8 to lone surrogates, which
    # strict UTF-8 cannot encode. "surrogatepass" encodes any string, and equal
    # strings still give equal digests, so such a key gets the usual 401.
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
