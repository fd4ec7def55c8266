"""Incremental parsing of HTTP/1.x responses, without I/O.

``ResponseParser`` consumes the bytes a socket returns and yields the status,
the body and whether the connection may carry another request. The health
client uses it in place of ``http.client``, which builds several objects and
parses the headers with the ``email`` package on every request, while the
latency probe sends a request every millisecond or so. It reads what HTTP/1.1
servers send to a GET or POST: Content-Length and chunked bodies, bodies that
end when the server closes the connection, ``Connection: close``, interim 1xx
responses, and HTTP/1.0 responses.
"""

# TODO: this parser is the project's own, but httptools (llhttp in C, kept by
# the uvloop authors) parses the same responses. Replace it once the per-poll
# cost of httptools' callbacks is measured against parse_plain_response.

from __future__ import annotations

import re

__all__ = [
    "IncompleteResponse",
    "InvalidResponse",
    "MAX_BODY_BYTES",
    "MAX_HEAD_BYTES",
    "ResponseParser",
    "parse_plain_response",
]

MAX_HEAD_BYTES = 65536
"""Largest status line and header block, and largest chunk-size or trailer line."""
MAX_BODY_BYTES = 1024 * 1024 * 1024
"""Largest body accepted, a guard against a runaway response. Health bodies are
far smaller: the fire log's maximum of 200 rows is about 40 kB, though the
reference server's ground-truth lists grow with the fires it has run."""
HEX_DIGITS = b"0123456789abcdefABCDEF"
_FRAMING_LINE = re.compile(
    rb"\n(?:(content-length|transfer-encoding|connection)[ \t]*:[ \t]*([^\r\n]*)"
    rb"|[ \t])",
    re.IGNORECASE,
)
"""A header line that delimits the body or the connection, or a folded line."""

# Parser states, named for what the next bytes are.
_HEAD = "head"
_FIXED_BODY = "body of Content-Length bytes"
_BODY_UNTIL_CLOSE = "body until the connection closes"
_CHUNK_SIZE = "chunk size line"
_CHUNK_DATA = "chunk data"
_CHUNK_END = "line end after chunk data"
_TRAILERS = "trailer section"
_DONE = "done"


def parse_plain_response(data: bytes) -> tuple[int, bytes] | None:
    """Return the status and body if ``data`` is exactly one plain response.

    A plain response is HTTP/1.1 with CRLF line ends, a final status other than
    204 or 304, one Content-Length, no Transfer-Encoding and no Connection
    field, so the connection stays open. The health endpoints send such
    responses, and this check costs a fraction of what ``ResponseParser``
    costs on each of the probe's polls. For anything else it returns None, and
    the caller passes the same bytes to ``ResponseParser``. For a response
    that ``ResponseParser`` accepts, both return the same status and body, but
    this function does not check that every header line has a colon.
    """
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0 or not data.startswith(b"HTTP/1.1 "):
        return None
    code = data[9:12]
    if not code.isdigit() or data[12:13] not in (b" ", b"\r"):
        return None
    status = int(code)
    if status < 200 or status == 204 or status == 304:
        return None

    # One regular expression scan finds every line that matters. It measured
    # faster than a separate substring search for each field name.
    fields = _FRAMING_LINE.findall(data, 9, head_end)
    if len(fields) != 1 or fields[0][0].lower() != b"content-length":
        return None
    length = fields[0][1].rstrip()
    body_start = head_end + 4
    if not length.isdigit() or len(data) - body_start != int(length):
        return None
    return status, data[body_start:]


class InvalidResponse(Exception):
    """The bytes read are not a valid HTTP/1.x response."""


class IncompleteResponse(InvalidResponse):
    """The server closed the connection before the response was complete."""


class ResponseParser:
    """Parser of one HTTP/1.x response to a GET or POST request.

    It never touches a socket. Pass it what the socket returns with ``feed``,
    and call ``feed_eof`` when a read returns no bytes because the server closed
    the connection. Once ``complete`` is true, ``status``, ``body`` and
    ``keep_alive`` describe the response. Redirects are responses like any
    other: following them is the caller's choice.

    Raises (from ``feed`` and ``feed_eof``):
        InvalidResponse: the bytes break HTTP/1.1 message syntax, use a
            transfer coding other than chunked, or exceed a size limit.
        IncompleteResponse: the connection closed before the response ended.
    """

    def __init__(self) -> None:
        self.status = 0
        """Status code of the final response, after any interim 1xx responses."""
        self.body = b""
        """The body, with the chunked transfer coding removed."""
        self.keep_alive = True
        """Whether the connection may carry another request after this response."""
        self.complete = False
        """Whether the whole response has been read."""
        self.extra_data = False
        """Whether bytes followed the response, which leaves the connection unusable."""
        self._state = _HEAD
        self._pending = b""
        self._parts: list[bytes] = []
        self._remaining = 0
        self._body_size = 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Parse the next bytes read from the connection."""
        if self.complete:
            self.extra_data = self.extra_data or len(data) > 0
            return
        data = self._pending + data if self._pending else bytes(data)
        self._pending = b""
        position = 0
        size = len(data)
        while position < size and not self.complete:
            state = self._state
            if state is _FIXED_BODY or state is _CHUNK_DATA:
                end = min(size, position + self._remaining)
                self._parts.append(data[position:end])
                self._remaining -= end - position
                position = end
                if self._remaining == 0 and state is _FIXED_BODY:
                    self._finish()
                elif self._remaining == 0:
                    self._state = _CHUNK_END
            elif state is _BODY_UNTIL_CLOSE:
                self._add_to_body_size(size - position)
                self._parts.append(data[position:])
                position = size
            else:
                # The head and the chunk framing lines wait until they are whole.
                end = self._parse_framing(data, position)
                if end < 0:
                    self._keep_pending(data[position:])
                    return
                position = end
        if self.complete and position < size:
            self.extra_data = True

    def feed_eof(self) -> None:
        """Record that the server closed the connection.

        Raises:
            IncompleteResponse: the response had not ended.
        """
        if self._state is _BODY_UNTIL_CLOSE:
            self._finish()
        self.keep_alive = False
        if not self.complete:
            raise IncompleteResponse(
                f"the connection closed in the response's {self._state}"
            )

    def _finish(self) -> None:
        parts = self._parts
        self.body = parts[0] if len(parts) == 1 else b"".join(parts)
        self._parts = []
        self._state = _DONE
        self.complete = True

    def _keep_pending(self, rest: bytes) -> None:
        if len(rest) > MAX_HEAD_BYTES:
            raise InvalidResponse(f"the response's {self._state} is too long")
        self._pending = rest

    def _add_to_body_size(self, size: int) -> None:
        self._body_size += size
        if self._body_size > MAX_BODY_BYTES:
            raise InvalidResponse(f"the body exceeds {MAX_BODY_BYTES} bytes")

    def _parse_framing(self, data: bytes, start: int) -> int:
        """Parse a head or one chunk framing line at ``start``.

        Returns:
            The position after what was parsed, or -1 if it is not whole yet.
        """
        if self._state is _HEAD:
            return self._parse_head(data, start)
        end = data.find(b"\n", start)
        if end < 0:
            return -1
        line = data[start:end].rstrip(b"\r")
        if self._state is _CHUNK_SIZE:
            self._start_chunk(line)
        elif self._state is _CHUNK_END:
            if line:
                raise InvalidResponse("chunk data is longer than its chunk size")
            self._state = _CHUNK_SIZE
        elif not line:
            # An empty line ends the trailer section, and so the body.
            self._finish()
        return end + 1

    def _parse_head(self, data: bytes, start: int) -> int:
        # Servers end lines with CRLF, but a bare LF is accepted too, as
        # http.client accepts it. The head ends at the first empty line.
        crlf_end = data.find(b"\r\n\r\n", start)
        lf_end = data.find(b"\n\n", start)
        if lf_end >= 0 and (crlf_end < 0 or lf_end < crlf_end):
            end, after = lf_end, lf_end + 2
        elif crlf_end >= 0:
            end, after = crlf_end, crlf_end + 4
        else:
            return -1
        if end - start > MAX_HEAD_BYTES:
            raise InvalidResponse(f"the response head exceeds {MAX_HEAD_BYTES} bytes")
        lines = data[start:end].split(b"\n")

        # Read the status line.
        status_line = lines[0].rstrip(b"\r")
        version = status_line[:9]
        code = status_line[9:12]
        if (
            version not in (b"HTTP/1.1 ", b"HTTP/1.0 ")
            or len(code) != 3
            or not code.isdigit()
            or status_line[12:13] not in (b"", b" ")
        ):
            raise InvalidResponse(f"invalid status line {status_line[:80]!r}")
        status = int(code)
        if 100 <= status < 200 and status != 101:
            # An interim response such as 100 Continue comes before the final one.
            return after

        # Read the fields that delimit the body and the connection.
        lengths = set()
        transfer_codings: list[bytes] = []
        connection_options: list[bytes] = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                raise InvalidResponse(f"invalid header line {line[:80]!r}")
            name = name.strip().lower()
            if name == b"content-length":
                lengths.add(value.strip())
            elif name == b"transfer-encoding":
                transfer_codings += _tokens(value)
            elif name == b"connection":
                connection_options += _tokens(value)
        self.status = status
        if version == b"HTTP/1.1 ":
            self.keep_alive = b"close" not in connection_options
        else:
            self.keep_alive = b"keep-alive" in connection_options
        self._delimit_body(status, lengths, transfer_codings)
        return after

    def _delimit_body(self, status: int, lengths: set, transfer_codings: list) -> None:
        # The rules come in the order that RFC 9112 section 6.3 gives them.
        if status == 101:
            raise InvalidResponse("unexpected 101 Switching Protocols")
        if status in (204, 304):
            self._finish()
        elif transfer_codings:
            # Only chunked can be removed here. Another coding, such as gzip,
            # would leave a body that is no JSON.
            if any(coding != b"chunked" for coding in transfer_codings):
                codings = b", ".join(transfer_codings).decode("latin-1")
                raise InvalidResponse(f"unsupported transfer coding {codings!r}")
            # A Content-Length beside chunked may be an attempt at response
            # smuggling, so the connection is not reused after it.
            self.keep_alive = self.keep_alive and not lengths
            self._state = _CHUNK_SIZE
        elif lengths:
            length = next(iter(lengths)) if len(lengths) == 1 else b""
            if not length.isdigit():
                values = b", ".join(sorted(lengths)).decode("latin-1")
                raise InvalidResponse(f"invalid Content-Length {values!r}")
            self._remaining = int(length)
            self._add_to_body_size(self._remaining)
            self._state = _FIXED_BODY
            if self._remaining == 0:
                self._finish()
        else:
            # Without either header the body ends when the server closes.
            self.keep_alive = False
            self._state = _BODY_UNTIL_CLOSE

    def _start_chunk(self, line: bytes) -> None:
        # A chunk size may carry extensions after a semicolon; they are ignored.
        size_text = line.partition(b";")[0].strip()
        if not size_text or size_text.lstrip(HEX_DIGITS):
            raise InvalidResponse(f"invalid chunk size line {line[:80]!r}")
        size = int(size_text, 16)
        self._add_to_body_size(size)
        if size == 0:
            self._state = _TRAILERS
        else:
            self._remaining = size
            self._state = _CHUNK_DATA


def _tokens(value: bytes) -> list[bytes]:
    """Return the lowercased members of a comma-separated header value."""
    return [token.strip().lower() for token in value.split(b",") if token.strip()]
