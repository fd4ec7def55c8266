"""Logging of malformed HTTP requests: one line per kind instead of tracebacks.

aiohttp 3.14 rejects a request it cannot parse (a header line over 8190 bytes,
too many headers, an invalid Content-Length) with 400 and logs the parser
exception at ERROR with a traceback. Such requests are the client's fault, and
a fuzzer or a broken client can send thousands. ``RequestErrorLog`` replaces
aiohttp's ``aiohttp.server`` logger: it counts those errors by kind and
logs the first of each kind at WARNING, without a traceback. Other records
pass through unchanged.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["RequestErrorLog", "error_kind"]

logger = logging.getLogger(__name__)

MAX_KIND_CHARS = 80


def error_kind(error: HttpProcessingError) -> str:
    """Return the parser's message without the request bytes it may quote.

    aiohttp appends the offending bytes (``...: b'Content-Length: abc'``),
    which may contain a key, so only the text before them is kept.
    """
    message = str(error.message or type(error).__name__)
    first_line = message.splitlines()[0] if message else ""
    kind = first_line.partition(": b")[0].rstrip(": .")[:MAX_KIND_CHARS]
    # The kind is also a Prometheus label value, where " and \ need escapes.
    kind = kind.replace('"', "'").replace("\\", "/")
    return kind or type(error).__name__


class RequestErrorLog(logging.LoggerAdapter):
    """Adapter for aiohttp's request handler logger that counts parse errors.

    Args:
        target: the logger that receives every record, ``aiohttp.server``.
        counts: receives one count per rejected request, by ``error_kind``.
    """

    def __init__(self, target: logging.Logger, counts: Counter[str]) -> None:
        super().__init__(target, {})
        self.counts = counts

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        if exc_info is True:
            exc_info = sys.exc_info()[1]
        if level >= logging.ERROR and isinstance(exc_info, HttpProcessingError):
            self._count(exc_info, args[0] if args else "unknown")
            return
        self.logger.log(level, msg, *args, **kwargs)

    def _count(self, error: HttpProcessingError, peer: object) -> None:
        kind = error_kind(error)
        self.counts[kind] += 1
        if self.counts[kind] == 1:
            logger.warning(
                "rejected a malformed HTTP request from %s with %s: %s; later "
                "ones of this kind are counted in reference_server_http_errors_total",
                peer,
                error.code,
                kind,
            )
