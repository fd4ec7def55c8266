"""Tests of the batch frame encoder: against its decoder and a real server."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import websocket

from loadgen.feeds import RandomWalkFeed, SineFeed
from loadgen.frames import (
    OPCODE_BINARY,
    OPCODE_TEXT,
    FrameError,
    decode_frames,
    encode_frames,
    encode_payloads,
    frame_header,
    iter_frames,
)

FIELDS = ("best_bid", "best_ask")


def decoded_quotes(data: bytes, fields=FIELDS) -> np.ndarray:
    """Decode frames and parse each payload back into one row of floats."""
    rows = []
    for _, payload in decode_frames(data):
        document = json.loads(payload)
        assert list(document) == list(fields)
        rows.append([document[name] for name in fields])
    return np.array(rows, dtype=np.float64).reshape(-1, len(fields))


@pytest.mark.parametrize(
    "quotes",
    [
        SineFeed().next_batch(2000),
        RandomWalkFeed(seed=7).next_batch(2000),
        np.array([[-0.5, -123.25], [-999.9, -1000.1], [-1e6, 1e6], [0.0, -0.0]]),
        np.array([[0.00004, -0.00004], [9.99995, 99.99995]]),
        np.array([[1.5e11, -2.5e11], [1.0, 2.0]]),
    ],
    ids=["sine", "random-walk", "negative", "rounding", "large"],
)
def test_frames_round_trip(quotes):
    data = encode_frames(quotes)

    assert np.array_equal(decoded_quotes(data), np.round(quotes, 4))


def test_frames_all_final_binary_and_same_length():
    quotes = RandomWalkFeed(seed=1).next_batch(500)
    frames = list(iter_frames(encode_frames(quotes)))

    assert len(frames) == 500
    assert all(frame.fin for frame in frames)
    assert {frame.opcode for frame in frames} == {OPCODE_BINARY}
    assert len({len(frame.payload) for frame in frames}) == 1


def test_frames_text_opcode():
    data = encode_frames(SineFeed().next_batch(10), opcode=OPCODE_TEXT)

    assert {opcode for opcode, _ in decode_frames(data)} == {OPCODE_TEXT}


@pytest.mark.parametrize("decimals", [1, 2, 4, 6, 8, 12])
def test_frames_decimals(decimals):
    quotes = np.random.default_rng(3).normal(0, 50, (300, 2))

    decoded = decoded_quotes(encode_frames(quotes, decimals=decimals))

    assert np.array_equal(decoded, np.round(quotes, decimals))


def test_frames_payload_is_fixed_width_json():
    quotes = np.array([[100.1, 100.15], [99.95, 100.0]])

    payloads = encode_payloads(quotes)

    assert payloads.tobytes().decode().count("{") == 2
    first = payloads[0].tobytes()
    assert first.startswith(b'{"best_bid":')
    assert b"100.1000" in first
    assert b"100.1500" in first
    assert first.endswith(b"}")


def test_frames_other_fields():
    fields = ("a" * 60, "b" * 40, 'quote"d é')
    quotes = np.random.default_rng(5).normal(100, 10, (50, 3))

    data = encode_frames(quotes, fields=fields)

    assert np.array_equal(decoded_quotes(data, fields), np.round(quotes, 4))


def test_frames_long_payload_uses_16_bit_length():
    fields = ("x" * 80, "y" * 80)
    data = encode_frames(np.array([[1.0, 2.0]]), fields=fields)

    assert data[1] == 0x80 | 126
    length = int.from_bytes(data[2:4], "big")
    assert length >= 126
    assert len(decode_frames(data)[0][1]) == length


def test_frames_empty_batch():
    assert encode_frames(np.zeros((0, 2))) == b""


def test_frames_fresh_mask_per_frame():
    count = 50_000
    data = encode_frames(RandomWalkFeed().next_batch(count))
    keys = [frame.mask_key for frame in iter_frames(data)]

    # 50,000 random 32-bit keys repeat about 0.3 times on average, so more
    # than 3 repeats means the keys are not drawn independently.
    assert len(set(keys)) >= count - 3
    key_bytes = np.frombuffer(b"".join(keys), dtype=np.uint8)
    assert abs(key_bytes.mean() - 127.5) < 2.0
    assert len(np.unique(key_bytes)) == 256


def test_frames_fresh_mask_per_batch():
    quotes = SineFeed().next_batch(100)

    assert encode_frames(quotes) != encode_frames(quotes)


def test_frames_seeded_rng_repeats():
    quotes = SineFeed().next_batch(100)

    first = encode_frames(quotes, rng=np.random.default_rng(9))
    second = encode_frames(quotes, rng=np.random.default_rng(9))

    assert first == second


@pytest.mark.parametrize(
    "value, message",
    [
        (np.nan, "finite"),
        (np.inf, "finite"),
        (1e12, "too large"),
    ],
)
def test_frames_reject_unwritable_price(value, message):
    with pytest.raises(ValueError, match=message):
        encode_frames(np.array([[1.0, value]]))


def test_frames_reject_wrong_shape():
    with pytest.raises(ValueError, match="do not match 2 fields"):
        encode_frames(np.zeros((4, 3)))


@pytest.mark.parametrize("decimals", [0, 13])
def test_frames_reject_decimals(decimals):
    with pytest.raises(ValueError, match="invalid decimals"):
        encode_frames(np.zeros((1, 2)), decimals=decimals)


def test_frame_header_length_forms():
    assert frame_header(OPCODE_BINARY, 125) == bytes([0x82, 0x80 | 125])
    assert frame_header(OPCODE_BINARY, 126) == bytes([0x82, 0xFE, 0, 126])
    assert frame_header(OPCODE_TEXT, 70_000)[:2] == bytes([0x81, 0xFF])


def test_decoder_rejects_unmasked_frame():
    with pytest.raises(FrameError, match="must be masked"):
        decode_frames(bytes([0x82, 0x02]) + b"{}")


def test_decoder_rejects_reserved_bits():
    data = bytearray(encode_frames(np.array([[1.0, 2.0]])))
    data[0] |= 0x40

    with pytest.raises(FrameError, match="reserved bits"):
        decode_frames(bytes(data))


def test_decoder_rejects_truncated_frame():
    data = encode_frames(np.array([[1.0, 2.0]]))

    with pytest.raises(FrameError, match="remain"):
        decode_frames(data[:-1])


def test_decoder_rejects_fragment():
    data = bytearray(encode_frames(np.array([[1.0, 2.0]])))
    data[0] &= 0x7F

    with pytest.raises(FrameError, match="fragmented"):
        decode_frames(bytes(data))


def accumulator_row(server) -> dict:
    status, body = server.get_json("/v1/health/accumulators")
    assert status == 200
    (row,) = [row for row in body["accumulators"] if row["name"] == "orderbook"]
    return row


def test_reference_server_accepts_frames(reference_server):
    before = accumulator_row(reference_server)
    ws = websocket.WebSocket()
    ws.connect(
        reference_server.ws_url + "/v1/ws/accumulator/orderbook",
        header=[f"Authorization: Bearer {reference_server.token}"],
        timeout=10,
    )
    batches = [
        SineFeed().next_batch(1000),
        RandomWalkFeed(seed=2).next_batch(1000),
        np.array([[-1.25, 0.0], [12345.6789, -98765.4321]] * 500),
    ]
    sent = 0
    try:
        for quotes in batches:
            ws.sock.sendall(encode_frames(quotes))
            sent += len(quotes)
        ws.sock.sendall(encode_frames(SineFeed().next_batch(10), opcode=OPCODE_TEXT))
        sent += 10

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            row = accumulator_row(reference_server)
            counted = row["events_total"] + row["events_rejected"]
            if counted - before["events_total"] - before["events_rejected"] >= sent:
                break
            time.sleep(0.05)
    finally:
        ws.close(timeout=1)

    assert row["events_total"] - before["events_total"] == sent
    assert row["events_rejected"] - before["events_rejected"] == 0
