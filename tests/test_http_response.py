"""The HTTP/1.x response parser, fed bytes directly without sockets."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadgen import http_response
from loadgen.http_response import (
    MAX_BODY_BYTES,
    MAX_HEAD_BYTES,
    IncompleteResponse,
    InvalidResponse,
    ResponseParser,
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


def test_chunked_with_content_length_is_invalid():
    # RFC 9112 section 6.3: such a response ought to be handled as an error,
    # because it may be an attempt at response smuggling.
    with pytest.raises(InvalidResponse, match="invalid header: Content-Length"):
        parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n"
            b"\r\n3\r\nabc\r\n0\r\n\r\n"
        )


def test_chunk_longer_than_size_is_invalid():
    with pytest.raises(InvalidResponse, match="invalid chunked body"):
        parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n")


def test_invalid_chunk_size():
    with pytest.raises(InvalidResponse, match="invalid chunked body: .*chunk size"):
        parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\n")


@pytest.mark.parametrize("codings", [b"gzip, chunked", b"chunked, gzip", b"gzip"])
def test_other_transfer_coding_is_rejected(codings):
    with pytest.raises(InvalidResponse, match="unsupported transfer coding"):
        parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: %s\r\n\r\n" % codings)


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
    with pytest.raises(InvalidResponse, match="invalid header"):
        parse(b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n")


@pytest.mark.parametrize(
    "field", [b"X: a\x01b", b"X: a\x00b", b"X: a\x7fb", b"X: a\r\n folded"]
)
def test_control_character_or_fold_is_invalid(field):
    with pytest.raises(InvalidResponse, match="invalid header"):
        parse(b"HTTP/1.1 200 OK\r\n%s\r\nContent-Length: 2\r\n\r\n{}" % field)


def test_obs_text_in_field_value():
    parser = parse(b"HTTP/1.1 200 OK\r\nX: caf\xe9\tbar\r\nContent-Length: 2\r\n\r\n{}")
    assert parser.body == b"{}"


def test_conflicting_content_lengths():
    with pytest.raises(InvalidResponse, match="invalid header: .*Content-Length"):
        parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n")


def test_repeated_equal_content_lengths_are_invalid():
    # RFC 9110 section 8.6 lets a recipient reject them, and llhttp does.
    with pytest.raises(InvalidResponse, match="invalid header: .*Content-Length"):
        parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}")


def test_negative_content_length():
    with pytest.raises(InvalidResponse, match="invalid header: .*Content-Length"):
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


@pytest.mark.parametrize(
    "response",
    [
        PLAIN + b"HTTP/1.1",
        PLAIN + b"xyz",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}x",
    ],
)
def test_extra_data_after_response(response):
    parser = parse(response)
    assert parser.complete
    assert parser.extra_data


def test_second_response_leaves_first_intact():
    second = b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope"
    parser = parse(PLAIN + second)
    assert parser.extra_data
    assert parser.status == 200
    assert parser.body == BODY
    assert parser.keep_alive


def test_extra_data_in_later_read():
    parser = parse(PLAIN)
    parser.feed(b"x")
    assert parser.extra_data


def test_head_too_long():
    with pytest.raises(InvalidResponse, match="too long"):
        parse(b"HTTP/1.1 200 OK\r\nX: " + b"a" * MAX_HEAD_BYTES)


def test_head_at_limit_in_pieces():
    head = b"HTTP/1.1 200 OK\r\nX: " + b"a" * (MAX_HEAD_BYTES - 40)
    parser = parse(head[:1000], head[1000:], b"\r\nContent-Length: 2\r\n\r\n{}")
    assert parser.body == b"{}"


def test_content_length_too_large():
    with pytest.raises(InvalidResponse, match="exceeds"):
        parse(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1))


def test_chunks_too_large(monkeypatch):
    # The limit applies to chunk data as it arrives.
    monkeypatch.setattr(http_response, "MAX_BODY_BYTES", 10)
    parser = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    parser.feed(b"8\r\nabcdefgh\r\n")
    with pytest.raises(InvalidResponse, match="exceeds 10 bytes"):
        parser.feed(b"8\r\nabcdefgh\r\n")


def test_body_until_close_too_large(monkeypatch):
    monkeypatch.setattr(http_response, "MAX_BODY_BYTES", 10)
    with pytest.raises(InvalidResponse, match="exceeds 10 bytes"):
        parse(b"HTTP/1.1 200 OK\r\n\r\n", b"a" * 6, b"a" * 6)


def test_reset_keeps_llhttp_parser_after_keep_alive():
    parser = parse(PLAIN)
    llhttp_parser = parser._parser
    parser.reset()
    assert not parser.complete
    assert parser.body == b""
    parser.feed(PLAIN)
    assert parser._parser is llhttp_parser
    assert parser.complete
    assert parser.body == BODY


@pytest.mark.parametrize(
    "first",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
        PLAIN + b"x",
        PLAIN[:-1],
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    ],
)
def test_reset_replaces_llhttp_parser_otherwise(first):
    parser = ResponseParser()
    llhttp_parser = parser._parser
    try:
        parser.feed(first)
    except InvalidResponse:
        pass
    parser.reset()
    assert parser._parser is not llhttp_parser
    parser.feed(PLAIN)
    assert parser.complete
    assert parser.body == BODY
    assert not parser.extra_data


# Responses with the framing the health endpoints could use, built from parts.
field_names = st.sampled_from(
    [b"Content-Type", b"Date", b"Server", b"X-Request-Id", b"content-type", b"Vary"]
)
# RFC 9110 field values: visible ASCII, obs-text, spaces and tabs.
field_values = st.binary(max_size=20).filter(
    lambda value: all(byte in (9, 32) or 33 <= byte != 127 for byte in value)
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


@given(st.lists(responses(), min_size=1, max_size=4))
def test_reused_parser_reads_each_response(cases):
    parser = ResponseParser()
    for status, body, framing, response in cases:
        parser.reset()
        parser.feed(response)
        if framing == "close":
            parser.feed_eof()
        assert parser.complete
        assert parser.status == status
        assert parser.body == body
        assert parser.keep_alive == (framing in ("length", "chunked"))
