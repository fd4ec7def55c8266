"""Batch encoding of events into masked client-to-server WebSocket frames.

``encode_frames`` turns a whole feed batch into complete frames with numpy and
no per-event Python loop, so a producer can send thousands of events with one
``sendall``. Prices are written as fixed-width decimal text: every number of a
batch is padded with leading spaces to the width of the widest one, which JSON
allows as insignificant whitespace. All payloads of a batch then have the same
length, and the batch is one 2-D ``uint8`` matrix that is masked with one XOR.

This module never touches a socket. ``decode_frames`` reads the frames back and
checks them, for tests.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from loadgen.encoding import DEFAULT_FIELDS

__all__ = [
    "OPCODE_TEXT",
    "OPCODE_BINARY",
    "DEFAULT_DECIMALS",
    "MAX_SCALED_MAGNITUDE",
    "FrameError",
    "Frame",
    "encode_frames",
    "encode_payloads",
    "frame_header",
    "decode_frames",
    "iter_frames",
]

OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2

DEFAULT_DECIMALS = 4
"""Digits after the decimal point; the feeds round prices to 4 decimals."""

MAX_SCALED_MAGNITUDE = 2**53
"""Limit of ``|round(price * 10**decimals)|``: above it float64 cannot hold every
integer, so the text would not be the exact rounded price."""

MASK_KEY_BYTES = 4
FIN = 0x80
MASK_BIT = 0x80
SPACE, MINUS, POINT, ZERO = (ord(c) for c in " -.0")


class FrameError(ValueError):
    """Bytes that are not a valid masked client-to-server frame sequence."""


class Frame(NamedTuple):
    """One decoded frame."""

    fin: bool
    opcode: int
    mask_key: bytes
    payload: bytes
    """Unmasked payload."""


def encode_frames(
    quotes: np.ndarray,
    fields: Sequence[str] = DEFAULT_FIELDS,
    opcode: int = OPCODE_BINARY,
    rng: np.random.Generator | None = None,
    decimals: int = DEFAULT_DECIMALS,
) -> bytes:
    """Encode each row of ``quotes`` as one masked frame holding a JSON object.

    Row ``i`` becomes ``{"best_bid":  100.1234,"best_ask":  100.1500}`` with
    the values rounded half to even to ``decimals`` places, so 100.12345 is sent
    as 100.1234. The feeds already round to 4 places, so with the default
    nothing is lost for them.

    Args:
        quotes: float array of shape (n, len(fields)); n may be 0.
        fields: JSON key of each column, in column order.
        opcode: ``OPCODE_BINARY`` (0x2) or ``OPCODE_TEXT`` (0x1).
        rng: source of masking keys for reproducible tests only. None, the
            default, draws them from ``os.urandom``.
        decimals: digits after the decimal point, from 0 to 15.

    Returns:
        n frames, back to back, each with its own masking key.

    Raises:
        ValueError: a price is not finite or too large for exact text (see
            ``MAX_SCALED_MAGNITUDE``), or an argument is out of range.
    """
    payloads = encode_payloads(quotes, fields, decimals)
    count, length = payloads.shape
    header = np.frombuffer(frame_header(opcode, length), dtype=np.uint8)
    keys = _mask_keys(count, rng)

    # Lay the frames out as rows: header, masking key, masked payload.
    start = len(header) + MASK_KEY_BYTES
    frames = np.empty((count, start + length), dtype=np.uint8)
    frames[:, : len(header)] = header
    frames[:, len(header) : start] = keys
    frames[:, start:] = _mask(payloads, keys)
    return frames.tobytes()


def encode_payloads(
    quotes: np.ndarray,
    fields: Sequence[str] = DEFAULT_FIELDS,
    decimals: int = DEFAULT_DECIMALS,
) -> np.ndarray:
    """Render each row of ``quotes`` as a JSON object of fixed-width numbers.

    Returns:
        A ``uint8`` matrix with one unmasked UTF-8 payload per row, all of the
        same length.

    Raises:
        ValueError: as ``encode_frames``.
    """
    quotes = np.asarray(quotes, dtype=np.float64)
    if quotes.ndim != 2 or quotes.shape[1] != len(fields):
        raise ValueError(
            f"quotes of shape {quotes.shape} do not match {len(fields)} fields: "
            f"pass an (n, {len(fields)}) array"
        )
    if not 0 <= decimals <= 15:
        raise ValueError(f"invalid decimals {decimals}: use 0 to 15")
    columns = _render_numbers(quotes, decimals)
    count, _, width = columns.shape

    # Interleave the fixed text ('{"best_bid":', ',"best_ask":', '}') with the
    # rendered numbers.
    keys = [json.dumps(name).encode() for name in fields]
    pieces = [b"{" + keys[0] + b":"]
    pieces += [b"," + key + b":" for key in keys[1:]]
    length = sum(map(len, pieces)) + width * len(fields) + 1
    payloads = np.empty((count, length), dtype=np.uint8)
    position = 0
    for column, piece in enumerate(pieces):
        payloads[:, position : position + len(piece)] = np.frombuffer(piece, np.uint8)
        position += len(piece)
        payloads[:, position : position + width] = columns[:, column]
        position += width
    payloads[:, position] = ord("}")
    return payloads


def frame_header(opcode: int, length: int) -> bytes:
    """Build the first bytes of a final, masked frame, up to the masking key.

    Raises:
        ValueError: ``opcode`` is not a 4-bit value or ``length`` is negative.
    """
    if not 0 <= opcode <= 0xF:
        raise ValueError(f"invalid opcode {opcode:#x}: use 0x0 to 0xf")
    if length < 0:
        raise ValueError(f"invalid payload length {length}")
    first = FIN | opcode
    if length < 126:
        return bytes((first, MASK_BIT | length))
    if length < 2**16:
        return struct.pack(">BBH", first, MASK_BIT | 126, length)
    return struct.pack(">BBQ", first, MASK_BIT | 127, length)


def _render_numbers(values: np.ndarray, decimals: int) -> np.ndarray:
    """Render every value as right-aligned ASCII of one common width.

    Returns:
        A ``uint8`` array of shape (n, columns, width).
    """
    if not np.isfinite(values).all():
        raise ValueError("prices must be finite numbers: JSON has no NaN or Infinity")
    scaled = np.rint(values * 10.0**decimals)
    if values.size and np.abs(scaled).max() >= MAX_SCALED_MAGNITUDE:
        largest = float(np.abs(values).max())
        raise ValueError(
            f"price {largest:g} is too large to write exactly with {decimals} "
            f"decimals: keep |price| * 10**{decimals} below 2**53"
        )

    # Split into integer part and fraction in float64, which holds these
    # integers exactly and divides them faster than int64 does. The floor of
    # the quotient is exact because the dividend is below 2**53.
    negative = scaled < 0
    magnitude = np.abs(scaled)
    unit = 10.0**decimals
    whole = np.floor(magnitude / unit)
    fraction = magnitude - whole * unit

    # Count the digits of the integer part; 0 still takes one digit.
    whole_digits = np.ones(whole.shape, dtype=np.intp)
    limit = 10.0
    while (whole >= limit).any():
        whole_digits += whole >= limit
        limit *= 10
    sign_width = int(negative.any())
    integer_width = int(whole_digits.max(initial=1)) + sign_width
    width = integer_width + (decimals + 1 if decimals else 0)
    text = np.empty((*values.shape, width), dtype=np.uint8)

    # Integer part: digits, spaces to their left and a minus sign just before
    # the first digit of a negative number.
    text[..., :integer_width] = _render_digits(whole, integer_width, pad=SPACE)
    if sign_width:
        rows, columns = np.nonzero(negative)
        places = integer_width - 1 - whole_digits[rows, columns]
        text[rows, columns, places] = MINUS

    # Fraction: always all ``decimals`` digits, trailing zeros included.
    if decimals:
        text[..., integer_width] = POINT
        text[..., integer_width + 1 :] = _render_digits(fraction, decimals, pad=ZERO)
    return text


# The text of every 4-digit group as one uint32 word each: rows 0-9999
# zero-padded ("0042"), rows 10000-19999 the same numbers space-padded
# ("  42"), and row 20000 blank. One ``take`` from this table per group is
# several times faster than taking digits apart one by one.
GROUP_DIGITS = 4
GROUP_SIZE = 10**GROUP_DIGITS
BLANK_GROUP = 2 * GROUP_SIZE
_GROUP_TEXT = "".join(
    [
        *(f"{value:0{GROUP_DIGITS}d}" for value in range(GROUP_SIZE)),
        *(f"{value:{GROUP_DIGITS}d}" for value in range(GROUP_SIZE)),
        " " * GROUP_DIGITS,
    ]
)
GROUP_WORDS = np.frombuffer(_GROUP_TEXT.encode(), dtype=np.uint32)


def _render_digits(numbers: np.ndarray, width: int, pad: int) -> np.ndarray:
    """Render non-negative whole floats right-aligned in ``width`` ASCII columns.

    ``pad`` is ``ZERO`` for leading zeros or ``SPACE`` for leading spaces. The
    caller guarantees that every number has at most ``width`` digits and is
    below 2**53.
    """
    groups = -(-width // GROUP_DIGITS)
    text = np.empty((*numbers.shape, groups * GROUP_DIGITS), dtype=np.uint8)
    for group in range(groups):
        shifted = np.floor(numbers / GROUP_SIZE**group) if group else numbers
        if group < groups - 1:
            shifted = shifted - np.floor(shifted / GROUP_SIZE) * GROUP_SIZE
        row = shifted.astype(np.intp)
        if pad == SPACE:
            # The group holding the first digit is space-padded, groups to its
            # left are blank, and a zero number still shows its "0".
            row += GROUP_SIZE * (numbers < GROUP_SIZE ** (group + 1))
            if group:
                row[numbers < GROUP_SIZE**group] = BLANK_GROUP
        end = text.shape[-1] - group * GROUP_DIGITS
        words = GROUP_WORDS.take(row)[..., None]
        text[..., end - GROUP_DIGITS : end] = words.view(np.uint8)
    return text[..., text.shape[-1] - width :]


def _mask_keys(count: int, rng: np.random.Generator | None) -> np.ndarray:
    # RFC 6455 section 5.3 requires a fresh masking key per frame that the
    # application cannot predict. The kernel's generator gives that; a seeded
    # numpy generator would not, because its stream follows from a few outputs.
    # One os.urandom call per batch keeps the cost to one system call.
    size = count * MASK_KEY_BYTES
    raw = os.urandom(size) if rng is None else rng.bytes(size)
    return np.frombuffer(raw, dtype=np.uint8).reshape(count, MASK_KEY_BYTES)


def _mask(payloads: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """XOR byte ``j`` of payload ``i`` with byte ``j % 4`` of key ``i``."""
    count, length = payloads.shape
    words = -(-length // MASK_KEY_BYTES)

    # Pad each row to whole 4-byte words so the XOR runs on uint32, one key each.
    padded = np.zeros((count, words * MASK_KEY_BYTES), dtype=np.uint8)
    padded[:, :length] = payloads
    masked = padded.view(np.uint32) ^ np.ascontiguousarray(keys).view(np.uint32)
    return masked.view(np.uint8)[:, :length]


def iter_frames(data: bytes):
    """Parse client-to-server frames and unmask their payloads.

    Yields:
        One ``Frame`` per frame in ``data``.

    Raises:
        FrameError: reserved bits set, a frame without a mask, or ``data`` ends
            inside a frame.
    """
    view = memoryview(data)
    position = 0
    while position < len(view):
        # Read the header.
        if len(view) - position < 2:
            raise FrameError(f"truncated frame header at byte {position}")
        first, second = view[position], view[position + 1]
        if first & 0x70:
            raise FrameError(f"reserved bits must be 0 (frame at byte {position})")
        if not second & MASK_BIT:
            raise FrameError(f"client frames must be masked (frame at byte {position})")
        length = second & 0x7F
        offset = position + 2
        if length == 126:
            (length,) = struct.unpack_from(">H", view, offset)
            offset += 2
        elif length == 127:
            (length,) = struct.unpack_from(">Q", view, offset)
            offset += 8

        # Read the masking key and the data.
        end = offset + MASK_KEY_BYTES + length
        if end > len(view):
            raise FrameError(
                f"frame at byte {position} needs {end - position} bytes, "
                f"{len(view) - position} remain"
            )
        key = bytes(view[offset : offset + MASK_KEY_BYTES])
        masked = np.frombuffer(view[offset + MASK_KEY_BYTES : end], dtype=np.uint8)
        tiled = np.resize(np.frombuffer(key, dtype=np.uint8), length)
        yield Frame(bool(first & FIN), first & 0x0F, key, (masked ^ tiled).tobytes())
        position = end


def decode_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Return ``(opcode, payload)`` of every frame in ``data``, unmasked.

    Raises:
        FrameError: as ``iter_frames``, or a frame is not final (FIN unset).
    """
    decoded = []
    for index, frame in enumerate(iter_frames(data)):
        if not frame.fin:
            raise FrameError(f"frame {index} is fragmented: expected FIN set")
        decoded.append((frame.opcode, frame.payload))
    return decoded
