"""The HTTP/1.x response parser, fed bytes directly without sockets."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadgen.http_response import (
    MAX_BODY_BYTES,
    MAX_HEAD_BYTES,
    IncompleteResponse,
    InvalidResponse,
    ResponseParser,
    parse_plain_response,
)

BODY = b'{"items":[],"total":0}'
PLAIN = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json; charset=utf-8\r\n"
    b"Content-Length: 22\r\n"
    b"Date: Fri, 04 Dec 2026 18:23:17 GMT\r\n"
    b"Server: Python/3.11 aiohttp/3.14.5\r\n"
    b"\r\n" + BODY
)


def parse(*pieces: bytes, eof: bool = False) -> ResponseParser:
    parser = ResponseParser()
    for piece in pieces:
        parser.feed(piece)
    if eof:
        parser.feed_eof()
    return parser


def one_byte_at_a_time(data: bytes) -> list[bytes]:
    return [data[index : index + 1] for index in range(len(data))]


def test_plain_response_in_one_piece():
    parser = parse(PLAIN)
    assert parser.complete
    assert parser.status == 200
    assert parser.body == BODY
    assert parser.keep_alive
    assert not parser.extra_data


def test_plain_response_one_byte_at_a_time():
    parser = parse(*one_byte_at_a_time(PLAIN))
    assert parser.complete
    assert parser.body == BODY
    assert parser.keep_alive


def test_incomplete_until_last_byte():
    parser = parse(PLAIN[:-1])
    assert not parser.complete
    parser.feed(PLAIN[-1:])
    assert parser.complete


def test_memoryview_input():
    parser = parse(memoryview(bytearray(PLAIN)))
    assert parser.body == BODY


def test_chunked_body_with_extension_and_trailer():
    response = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\n"
        b'{"ite\r\n'
        b"11\r\n"
        b'ms":[],"total":0}\r\n'
        b"0\r\n"
        b"X-Trailer: yes\r\n"
        b"\r\n"
    )
    for pieces in ([response], one_byte_at_a_time(response)):
        parser = parse(*pieces)
        assert parser.complete
        assert parser.body == BODY
        assert parser.keep_alive


def test_chunked_with_content_length_closes():
    parser = parse(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n"
        b"\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    assert parser.body == b"abc"
    assert not parser.keep_alive


def test_chunk_longer_than_size_is_invalid():
    with pytest.raises(InvalidResponse, match="longer than its chunk size"):
        parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n")


def test_invalid_chunk_size():
    with pytest.raises(InvalidResponse, match="invalid chunk size"):
        parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\n")


def test_gzip_transfer_coding_is_rejected():
    with pytest.raises(InvalidResponse, match="unsupported transfer coding"):
        parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")


def test_connection_close_ends_keep_alive():
    parser = parse(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    )
    assert parser.complete
    assert parser.body == b"{}"
    assert not parser.keep_alive


def test_connection_keep_alive_with_other_options():
    parser = parse(
        b"HTTP/1.1 200 OK\r\nConnection: Upgrade, CLOSE\r\nContent-Length: 0\r\n\r\n"
    )
    assert parser.complete
    assert not parser.keep_alive


def test_body_until_close():
    parser = parse(b"HTTP/1.1 200 OK\r\n\r\n{", b"}")
    assert not parser.complete
    parser.feed_eof()
    assert parser.complete
    assert parser.body == b"{}"
    assert not parser.keep_alive


def test_http_1_0_closes_unless_keep_alive():
    closing_parser = parse(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    assert closing_parser.body == b"{}"
    assert not closing_parser.keep_alive
    keep_alive_parser = parse(
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}"
    )
    assert keep_alive_parser.keep_alive


def test_interim_response_is_skipped():
    parser = parse(b"HTTP/1.1 100 Continue\r\n\r\n" + PLAIN)
    assert parser.status == 200
    assert parser.body == BODY


def test_no_body_for_204_and_304():
    for status in (204, 304):
        parser = parse(b"HTTP/1.1 %d X\r\nContent-Length: 5\r\n\r\n" % status)
        assert parser.complete
        assert parser.status == status
        assert parser.body == b""


def test_empty_content_length_body():
    parser = parse(b"HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n")
    assert parser.complete
    assert parser.status == 302
    assert parser.body == b""


def test_bare_line_feeds_are_accepted():
    parser = parse(b"HTTP/1.1 404 Not Found\nContent-Length: 2\n\n{}")
    assert parser.status == 404
    assert parser.body == b"{}"


def test_bare_line_feed_head_before_crlf_body():
    parser = parse(b"HTTP/1.1 200 OK\nContent-Length: 6\n\nab\r\n\r\n")
    assert parser.body == b"ab\r\n\r\n"


def test_status_without_reason_phrase():
    parser = parse(b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\n{}")
    assert parser.status == 200


@pytest.mark.parametrize(
    "head",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"HTTP/2 200\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
    ],
)
def test_invalid_status_line(head):
    with pytest.raises(InvalidResponse, match="invalid status line"):
        parse(head)


def test_header_line_without_colon():
    with pytest.raises(InvalidResponse, match="invalid header line"):
        parse(b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n")


def test_conflicting_content_lengths():
    with pytest.raises(InvalidResponse, match="invalid Content-Length"):
        parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n")


def test_repeated_equal_content_lengths():
    parser = parse(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}"
    )
    assert parser.body == b"{}"


def test_negative_content_length():
    with pytest.raises(InvalidResponse, match="invalid Content-Length"):
        parse(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n")


def test_switching_protocols_is_invalid():
    with pytest.raises(InvalidResponse, match="101"):
        parse(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")


def test_eof_in_head():
    with pytest.raises(IncompleteResponse, match="head"):
        parse(b"HTTP/1.1 200 OK\r\nContent-", eof=True)


def test_eof_in_body():
    with pytest.raises(IncompleteResponse, match="Content-Length"):
        parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}", eof=True)


def test_eof_before_any_byte():
    with pytest.raises(IncompleteResponse):
        parse(eof=True)


def test_extra_data_after_response():
    parser = parse(PLAIN + b"HTTP/1.1")
    assert parser.complete
    assert parser.extra_data
    later = parse(PLAIN)
    later.feed(b"x")
    assert later.extra_data


def test_head_too_long():
    with pytest.raises(InvalidResponse, match="too long"):
        parse(b"HTTP/1.1 200 OK\r\nX: " + b"a" * MAX_HEAD_BYTES)


def test_content_length_too_large():
    with pytest.raises(InvalidResponse, match="exceeds"):
        parse(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1))


def test_chunks_too_large():
    with pytest.raises(InvalidResponse, match="exceeds"):
        parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"%x\r\n" % (MAX_BODY_BYTES + 1)
        )


def test_plain_parse_of_typical_response():
    assert parse_plain_response(PLAIN) == (200, BODY)


def test_plain_parse_ignores_name_case():
    response = b"HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 2\r\n\r\n{}"
    assert parse_plain_response(response) == (200, b"{}")


def test_plain_parse_of_error_status():
    response = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}"
    assert parse_plain_response(response) == (404, b"{}")


@pytest.mark.parametrize(
    "response",
    [
        PLAIN[:-1],
        PLAIN + b"x",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTRANSFER-ENCODING: chunked\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n{}",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 100 Continue\r\n\r\n" + PLAIN,
        b"HTTP/1.1 204 No Content\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n 3\r\n\r\n{}",
        b"HTTP/1.1 200 OK\nContent-Length: 2\n\n{}",
        b"",
    ],
)
def test_plain_parse_declines_other_responses(response):
    assert parse_plain_response(response) is None


# Responses with the framing the health endpoints could use, built from parts.
field_names = st.sampled_from(
    [b"Content-Type", b"Date", b"Server", b"X-Request-Id", b"content-type", b"Vary"]
)
field_values = st.binary(max_size=20).filter(
    lambda value: b"\r" not in value and b"\n" not in value
)
framings = st.sampled_from(["length", "chunked", "close", "connection-close"])


@st.composite
def responses(draw):
    status = draw(st.sampled_from([200, 201, 302, 401, 403, 404, 500]))
    body = draw(st.binary(max_size=300))
    fields = draw(st.lists(st.tuples(field_names, field_values), max_size=4))
    framing = draw(framings)
    lines = [b"HTTP/1.1 %d Reason" % status]
    lines += [name + b": " + value.strip() for name, value in fields]
    if framing in ("length", "connection-close"):
        lines.append(b"Content-Length: %d" % len(body))
    if framing == "connection-close":
        lines.append(b"Connection: close")
    if framing == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
        sizes = draw(st.lists(st.integers(1, 50), max_size=10))
        encoded, position = b"", 0
        for size in sizes:
            piece = body[position : position + size]
            if piece:
                encoded += b"%x\r\n" % len(piece) + piece + b"\r\n"
            position += size
        body = body[:position] if sizes else b""
        payload = encoded + b"0\r\n\r\n"
    else:
        payload = body
    response = b"\r\n".join(lines) + b"\r\n\r\n" + payload
    return status, body, framing, response


@given(responses(), st.lists(st.integers(1, 64), max_size=30))
def test_parser_agrees_on_any_split(case, cuts):
    status, body, framing, response = case
    pieces, position = [], 0
    for cut in cuts:
        pieces.append(response[position : position + cut])
        position += cut
    pieces.append(response[position:])
    parser = parse(*pieces, eof=framing == "close")
    assert parser.complete
    assert parser.status == status
    assert parser.body == body
    assert parser.keep_alive == (framing in ("length", "chunked"))


@given(responses())
def test_plain_parse_matches_parser(case):
    status, body, framing, response = case
    plain = parse_plain_response(response)
    if framing == "length":
        assert plain == (status, body)
    else:
        assert plain is None
