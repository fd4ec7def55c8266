"""Incremental parsing of HTTP/1.x responses, without I/O, on httptools.

``ResponseParser`` consumes the bytes a socket returns and yields the status,
the body and whether the connection may carry another request. The health
client uses it in place of ``http.client``, which builds several objects and
parses the headers with the ``email`` package on every request, while the
latency probe sends a request every millisecond or so. It reads what HTTP/1.1
servers send to a GET or POST: Content-Length and chunked bodies, bodies that
end when the server closes the connection, ``Connection: close``, interim 1xx
responses, and HTTP/1.0 responses.

httptools (llhttp in C, kept by the uvloop authors) does the parsing. One
parser serves every response on a connection, because a new httptools parser
per response took about twice the time to parse a health response. A reused
one takes about what this project's earlier hand-written parser did
(``tests/benchmarks/bench_http_parse.py`` measures both).
"""

from __future__ import annotations

import httptools

__all__ = [
    "IncompleteResponse",
    "InvalidResponse",
    "MAX_BODY_BYTES",
    "MAX_HEAD_BYTES",
    "ResponseParser",
]

MAX_HEAD_BYTES = 65536
"""Maximum bytes read while the response head is unfinished. httptools has no
limit of its own, and a head that ends within the read that crosses this
limit is accepted."""
MAX_BODY_BYTES = 1024 * 1024 * 1024
"""Largest body accepted, a guard against a runaway response. Health bodies are
far smaller: the fire log's maximum of 200 rows is about 40 kB, though the
reference server's ground-truth lists grow with the fires it has run."""


class InvalidResponse(Exception):
    """The bytes read are not a valid HTTP/1.x response."""


class IncompleteResponse(InvalidResponse):
    """The server closed the connection before the response was complete."""


class ResponseParser:
    """Parser of HTTP/1.x responses to GET or POST requests on one connection.

    It never touches a socket. Pass it what the socket returns with ``feed``,
    and call ``feed_eof`` when a read returns no bytes because the server closed
    the connection. Once ``complete`` is true, ``status``, ``body`` and
    ``keep_alive`` describe the response. Call ``reset`` before the next
    response. Redirects are responses like any other: following them is the
    caller's choice.

    llhttp checks the syntax and delimits the body. The callbacks below add the
    size limits, the rejection of transfer codings other than chunked, the
    skipping of interim 1xx responses, ``extra_data``, and the end of a body
    that the connection's close delimits, because httptools does not expose
    ``llhttp_finish``. Unlike a lenient reader, llhttp rejects both
    Content-Length and Transfer-Encoding in one response, repeated
    Content-Length fields even when equal, folded header lines, and control
    characters in field values.

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
        self._parser = _new_llhttp_parser(self)
        self._clear()

    def reset(self) -> None:
        """Ready the parser for the next response.

        llhttp's parser is kept only after a complete response that kept the
        connection alive with no bytes after it, when llhttp waits at the start
        of a message. Otherwise a new one replaces it, so ``reset`` is also
        right for a response on a new connection.
        """
        if not self.complete or not self.keep_alive or self.extra_data:
            self._parser = _new_llhttp_parser(self)
        self.status = 0
        self.body = b""
        self.keep_alive = True
        self.complete = False
        self.extra_data = False
        self._clear()

    def _clear(self) -> None:
        self._parts: list[bytes] = []
        self._in_head = True
        self._head_bytes = 0
        self._framing = ""
        self._body_size = 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Parse the next bytes read from the connection."""
        if self.complete:
            self.extra_data = self.extra_data or len(data) > 0
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            if self.complete:
                # on_message_begin stopped llhttp at the bytes after the response.
                self.extra_data = True
                return
            # The callbacks below raise InvalidResponse, which httptools wraps.
            if isinstance(error.__context__, InvalidResponse):
                raise error.__context__ from None
            raise InvalidResponse(f"HTTP parser callback failed: {error}") from None
        except httptools.HttpParserError as error:
            if not self.complete:
                raise InvalidResponse(self._describe(error)) from None
            # llhttp read the response, then failed on the bytes after it.
            self.extra_data = True
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                raise InvalidResponse("the response's head is too long")

    def feed_eof(self) -> None:
        """Record that the server closed the connection.

        Raises:
            IncompleteResponse: the response had not ended.
        """
        if not self.complete and not self._in_head and not self._framing:
            self._finish()
        self.keep_alive = False
        if not self.complete:
            raise IncompleteResponse(
                f"the connection closed in the response's {self._part_name()}"
            )

    def _describe(self, error: httptools.HttpParserError) -> str:
        """Return the message for an llhttp syntax error, which names the part."""
        if isinstance(error, httptools.HttpParserInvalidStatusError) or (
            self._in_head and self._parser.get_status_code() == 0
        ):
            return f"invalid status line: {error}"
        if self._in_head:
            return f"invalid header: {error}"
        return f"invalid {self._part_name()}: {error}"

    def _part_name(self) -> str:
        if self._in_head:
            return "head"
        if self._framing == "chunked":
            return "chunked body"
        if self._framing:
            return "body of Content-Length bytes"
        return "body until the connection closes"

    def _finish(self) -> None:
        parts = self._parts
        self.body = parts[0] if len(parts) == 1 else b"".join(parts)
        self._parts = []
        self.complete = True

    # httptools calls the methods below from feed_data. The probe's polls pay
    # for each call, so they do little.

    def on_message_begin(self) -> None:
        # Another message after the response would overwrite its status and
        # body, so llhttp stops here.
        if self.complete:
            raise InvalidResponse("bytes after the response")

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp has checked the syntax. Comparing lengths first skips
        # lower() for all but the two fields that delimit the body.
        size = len(name)
        if size == 14 and name.lower() == b"content-length":
            self._framing = "Content-Length"
            if int(value) > MAX_BODY_BYTES:
                raise InvalidResponse(f"the body exceeds {MAX_BODY_BYTES} bytes")
        elif size == 17 and name.lower() == b"transfer-encoding":
            # Only chunked can be removed here. Another coding, such as gzip,
            # would leave a body that is no JSON.
            self._framing = "chunked"
            if value.strip().lower() != b"chunked":
                codings = value.decode("latin-1")
                raise InvalidResponse(f"unsupported transfer coding {codings!r}")

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status == 101:
            raise InvalidResponse("unexpected 101 Switching Protocols")
        if status < 200:
            # An interim response such as 100 Continue comes before the final
            # one, and llhttp reads the final one as the next message.
            self._framing = ""
            return
        self.status = status
        # llhttp clears its keep-alive flags once the message is complete.
        self.keep_alive = self._parser.should_keep_alive()
        self._in_head = False

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > MAX_BODY_BYTES:
            raise InvalidResponse(f"the body exceeds {MAX_BODY_BYTES} bytes")
        self._parts.append(body)

    def on_message_complete(self) -> None:
        # The end of an interim 1xx response is not the end of the response.
        if not self._in_head:
            self._finish()


def _new_llhttp_parser(protocol: ResponseParser) -> httptools.HttpResponseParser:
    parser = httptools.HttpResponseParser(protocol)
    # Accept lines that end in a bare LF, as http.client does. llhttp calls
    # the leniency dangerous because a proxy that accepts it may read a
    # message differently from the server behind it, but this client
    # forwards nothing.
    parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True)
    return parser
