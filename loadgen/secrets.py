"""Redaction of API keys and tickets from anything that is printed or stored."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["mask", "redact_url", "redact_text"]

SECRET_QUERY_KEYS = frozenset({"token", "ticket", "api_key", "key"})
REDACTED = "***"


def mask(secret: str, visible: int = 4) -> str:
    """Return ``****`` followed by the last few characters, or ``****`` if short."""
    if len(secret) <= visible * 2:
        return "****"
    return "****" + secret[-visible:]


def redact_url(url: str) -> str:
    """Replace secret query values and user-info passwords in a URL."""
    parts = urlsplit(url)
    query = [
        (name, REDACTED if name.lower() in SECRET_QUERY_KEYS else value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    netloc = parts.netloc
    if "@" in netloc:
        netloc = REDACTED + "@" + netloc.rsplit("@", 1)[1]
    return urlunsplit(
        (parts.scheme, netloc, parts.path, urlencode(query, safe="*"), parts.fragment)
    )


def redact_text(text: str, secrets: list[str] | tuple[str, ...]) -> str:
    """Replace each known secret and any ``token=`` query value in free text."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return re.sub(r"(?i)\b(token|ticket)=[^&\s'\"]+", r"\1=" + REDACTED, text)
