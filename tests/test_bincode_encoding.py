"""Bincode event encoding (``--wire bincode``), without sockets.

Frames are decoded with the reference server's own bincode decoder, so these
tests check the generator against the server's reading of the format.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from loadgen.encoding import encode_bincode, encode_events
from loadgen.feeds import RandomWalkFeed, SineFeed
from loadgen.frames import OPCODE_BINARY, OPCODE_TEXT, decode_frames, encode_frames
from loadgen.tags import TAG_MODULUS, apply_tags, tag_of
from reference_server.bincode import make_decoder

ORDERBOOK = {"best_bid": "f64", "best_ask": "f64"}


def decoded_rows(data: bytes) -> list[tuple[float, float]]:
    """Decode frames with the reference server's bincode decoder."""
    decode = make_decoder(ORDERBOOK)
    rows = []
    for opcode, payload in decode_frames(data):
        assert opcode == OPCODE_BINARY
        value = decode(payload)
        rows.append((value["best_bid"], value["best_ask"]))
    return rows


def test_payload_rows_are_packed_doubles():
    quotes = np.array([[100.1, 100.15], [-3.5, 1e-300]])

    payloads = encode_bincode(quotes)

    assert payloads.shape == (2, 16)
    assert payloads[0].tobytes() == struct.pack("<dd", 100.1, 100.15)
    assert payloads[1].tobytes() == struct.pack("<dd", -3.5, 1e-300)


def test_empty_batch_encodes_nothing():
    assert encode_bincode(np.zeros((0, 2))).shape == (0, 16)
    assert encode_frames(np.zeros((0, 2)), wire="bincode") == b""


def test_single_events_match_batch_frames():
    quotes = SineFeed().next_batch(5)

    events = encode_events(quotes, "bincode")
    data = encode_frames(quotes, wire="bincode")
    frames = [payload for _, payload in decode_frames(data)]

    assert events == frames
    assert encode_events(quotes, "json")[0].startswith(b'{"best_bid":')


def test_frames_masked_one_key_each():
    quotes = RandomWalkFeed().next_batch(64)
    data = encode_frames(quotes, wire="bincode")

    frames = [data[i : i + 22] for i in range(0, len(data), 22)]
    keys = {frame[2:6] for frame in frames}

    assert len(data) == 64 * 22
    assert frames[0][:2] == bytes([0x82, 0x90])
    assert len(keys) > 60
    assert decoded_rows(data) == [tuple(row) for row in quotes.tolist()]


finite = st.floats(allow_nan=False, allow_infinity=False)


quote_batches = hnp.arrays(
    np.float64, st.tuples(st.integers(0, 40), st.just(2)), elements=finite
)


@given(quote_batches)
def test_frames_decode_to_feed_values(quotes):
    rows = decoded_rows(encode_frames(quotes, wire="bincode"))

    assert rows == [tuple(row) for row in quotes.tolist()]


@given(
    st.sampled_from(["sine", "random-walk"]),
    st.integers(0, 10_000),
    st.integers(0, 3 * TAG_MODULUS),
    st.integers(1, 300),
)
def test_tags_survive_bincode(feed_name, seed, first_sequence, count):
    feed = SineFeed() if feed_name == "sine" else RandomWalkFeed(seed=seed)
    quotes = apply_tags(feed.next_batch(count), first_sequence)

    rows = decoded_rows(encode_frames(quotes, decimals=10, wire="bincode"))

    expected = [(first_sequence + i) % TAG_MODULUS for i in range(count)]
    assert [tag_of(bid) for bid, _ in rows] == expected
    assert [ask for _, ask in rows] == quotes[:, 1].tolist()


@pytest.mark.parametrize(
    ("quotes", "options", "message"),
    [
        (np.array([[1.0, np.nan]]), {}, "prices must be finite"),
        (np.array([[1.0, np.inf]]), {}, "prices must be finite"),
        (np.zeros((1, 2)), {"opcode": OPCODE_TEXT}, "not UTF-8 text"),
        (np.zeros((1, 3)), {}, "do not match 2 fields"),
        (np.zeros((1, 2)), {"wire": "xml"}, "invalid wire format 'xml'"),
    ],
    ids=["nan", "infinite", "text-opcode", "shape", "wire"],
)
def test_bad_batches_raise(quotes, options, message):
    options = {"wire": "bincode", **options}

    with pytest.raises(ValueError, match=message):
        encode_frames(quotes, **options)
