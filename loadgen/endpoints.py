"""URLs of the Cloacina endpoints, built from the base URL a user gives."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from loadgen.errors import UsageProblem

__all__ = ["normalize_base_url", "accumulator_ws_url", "graph_health_path"]


def normalize_base_url(host: str) -> str:
    """Return ``scheme://host:port`` for an ``http``, ``https``, ``ws`` or ``wss`` URL.

    Raises:
        UsageProblem: the URL is malformed, has another scheme or no host.
    """
    try:
        parts = urlsplit(host if "://" in host else f"http://{host}")
    except ValueError as error:  # for example, an unclosed "[" in an IPv6 address
        raise UsageProblem(
            f"invalid host {host!r} ({error}): use a URL such as "
            "http://127.0.0.1:8080 or http://[::1]:8080"
        ) from None
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        raise UsageProblem(
            f"invalid host {host!r}: use a URL such as http://127.0.0.1:8080"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UsageProblem(
            f"invalid host {host!r}: give the server's base URL without a path, "
            "e.g. http://127.0.0.1:8080"
        )
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise UsageProblem(
            f"invalid port in host {host!r}: use a URL such as http://127.0.0.1:8080"
        ) from None
    hostname = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{scheme}://{hostname}:{port}"


def accumulator_ws_url(base_url: str, accumulator: str) -> str:
    ws_base = base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return f"{ws_base}/v1/ws/accumulator/{quote(accumulator, safe='')}"


def graph_health_path(graph: str) -> str:
    return f"/v1/health/graphs/{quote(graph, safe='')}"
