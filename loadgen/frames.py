"""Batch encoding of events into masked client-to-server WebSocket frames.

``encode_frames`` turns a whole feed batch into complete frames with numpy and
no per-event Python loop, so a producer can send thousands of events with one
``sendall``. For JSON, prices are written as fixed-width decimal text: every
number of a batch is padded with leading spaces to the width of the widest one,
which JSON allows as insignificant whitespace. All payloads of a batch then have
the same length, and the batch is one 2-D ``uint8`` matrix that is masked with
one XOR. Bincode payloads have a fixed length anyway (see ``loadgen.encoding``).

This module never touches a socket. ``decode_frames`` reads the frames back and
checks them, for tests.
"""

from __future__ import annotations

import functools
import json
import os
import struct
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from loadgen.encoding import DEFAULT_FIELDS, encode_bincode

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
    wire: str = "json",
) -> bytes:
    """Encode each row of ``quotes`` as one masked frame with one event.

    Row ``i`` becomes ``{"best_bid":   100.1234,"best_ask":   100.1500   }``:
    numbers are right-aligned with spaces and their fraction is padded with
    zeros to a multiple of 4 digits. Values are rounded half to even to
    ``decimals`` places, so 100.12345 is sent as 100.1234. The sine and
    random-walk feeds already round to 4 places, so with the default nothing
    is lost for them, but replayed quotes may lose digits.

    With ``wire="bincode"`` row ``i`` becomes its bincode payload instead, 8
    bytes per field with the exact doubles, and ``decimals`` does not apply.

    Args:
        quotes: float array of shape (n, len(fields)); n may be 0.
        fields: JSON key of each column, in column order.
        opcode: ``OPCODE_BINARY`` (0x2) or ``OPCODE_TEXT`` (0x1).
        rng: source of masking keys for reproducible tests only. None, the
            default, draws them from ``os.urandom``.
        decimals: digits after the decimal point, from 1 to 12.
        wire: ``json`` or ``bincode``. Bincode needs ``OPCODE_BINARY``
            because its bytes are not UTF-8 text.

    Returns:
        n frames, back to back, each with its own masking key.

    Raises:
        ValueError: a price is not finite or too large for exact text (see
            ``MAX_SCALED_MAGNITUDE``), or an argument is out of range.
    """
    if wire == "bincode":
        return _bincode_frames(quotes, fields, opcode, rng)
    if wire != "json":
        raise ValueError(f"invalid wire format {wire!r}: use json or bincode")
    rows, layout = _render_rows(quotes, fields, opcode, decimals)
    keys = _mask_keys(len(rows), rng)

    # Write the keys after the header and mask the payload. The payload starts
    # 2 bytes before a word boundary when the header is 2 bytes long, so the
    # aligned words are masked with the key rotated by those 2 bytes, and the
    # 2 leading bytes with the key's first half.
    halves = rows.view(np.uint16)
    key_halves = keys.view(np.uint16)
    key_column = layout.header_bytes // 2
    halves[:, key_column] = key_halves[:, 0]
    halves[:, key_column + 1] = key_halves[:, 1]
    if layout.lead_bytes:
        halves[:, key_column + 2] ^= key_halves[:, 0]
        rotated = np.ascontiguousarray(key_halves[:, ::-1]).view(np.uint32)
    else:
        rotated = keys.view(np.uint32)
    rows[:, FIRST_PAYLOAD_WORD:] ^= rotated
    return rows.tobytes()


def _bincode_frames(
    quotes: np.ndarray,
    fields: Sequence[str],
    opcode: int,
    rng: np.random.Generator | None,
) -> bytes:
    """Encode each row of ``quotes`` as one masked frame of its bincode payload."""
    quotes = np.asarray(quotes, dtype=np.float64)
    if quotes.ndim != 2 or quotes.shape[1] != len(fields):
        raise ValueError(
            f"quotes of shape {quotes.shape} do not match {len(fields)} fields: "
            f"pass an (n, {len(fields)}) array"
        )
    if opcode != OPCODE_BINARY:
        raise ValueError(
            "bincode payloads are not UTF-8 text: send them with OPCODE_BINARY"
        )
    payloads = encode_bincode(quotes)
    count, length = payloads.shape
    header = np.frombuffer(frame_header(opcode, length), dtype=np.uint8)
    keys = _mask_keys(count, rng)

    # Each payload is a whole number of 4-byte words, so XOR with the key seen
    # as one uint32 masks byte i with key byte i % 4.
    masked = payloads.view(np.uint32) ^ keys.view(np.uint32)
    rows = np.empty((count, len(header) + MASK_KEY_BYTES + length), dtype=np.uint8)
    rows[:, : len(header)] = header
    rows[:, len(header) : len(header) + MASK_KEY_BYTES] = keys
    rows[:, len(header) + MASK_KEY_BYTES :] = masked.view(np.uint8)
    return rows.tobytes()


def encode_payloads(
    quotes: np.ndarray,
    fields: Sequence[str] = DEFAULT_FIELDS,
    decimals: int = DEFAULT_DECIMALS,
) -> np.ndarray:
    """Render each row of ``quotes`` as the unmasked payload ``encode_frames`` sends.

    Returns:
        A ``uint8`` matrix with one UTF-8 payload per row, all of one length.

    Raises:
        ValueError: as ``encode_frames``.
    """
    rows, layout = _render_rows(quotes, fields, OPCODE_BINARY, decimals)
    return rows.view(np.uint8)[:, layout.header_bytes + MASK_KEY_BYTES :]


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


# Every frame of a batch is one row of 32-bit words, laid out so that each
# rendered piece of text is exactly one word:
#
#   | header | masking key | {"best_bid":  | 100. | 1234 | ,"best_ask": | ...
#
# Constant text is padded with spaces to end on a word boundary, which JSON
# allows around values and before "}". The header and key take 6 bytes, so
# the first 2 payload bytes share a word with the key's end. A header of 4
# bytes, for payloads of 126 bytes or more, leaves the payload aligned.
FIRST_PAYLOAD_WORD = 2
WORD_BYTES = 4

# Text of every word a number can contain, as one uint32 each. "Point" words
# end an integer part: 3 digits and ".". "Group" words hold 4 digits of the
# integer part's higher digits or of the fraction. Each comes zero-padded
# ("042."), space-padded (" 42.") and with a minus sign ("-42."). Where the
# sign does not fit, the minus row repeats the space-padded text.
POINT_COUNT = 1000
GROUP_COUNT = 10_000


def _word_texts() -> list[str]:
    def negative(value: int, digits: int) -> str:
        text = f"-{value}"
        return text.rjust(digits) if len(text) <= digits else f"{value:{digits}d}"

    points = [
        *(f"{v:03d}." for v in range(POINT_COUNT)),
        *(f"{v:3d}." for v in range(POINT_COUNT)),
        *(negative(v, 3) + "." for v in range(POINT_COUNT)),
    ]
    groups = [
        *(f"{v:04d}" for v in range(GROUP_COUNT)),
        *(f"{v:4d}" for v in range(GROUP_COUNT)),
        *(negative(v, 4) for v in range(GROUP_COUNT)),
    ]
    return [*points, *groups, "    ", "   -"]


WORDS = np.frombuffer("".join(_word_texts()).encode(), dtype=np.uint32)
POINT_ZERO, POINT_SPACE, POINT_MINUS = (i * POINT_COUNT for i in range(3))
GROUP_ZERO, GROUP_SPACE, GROUP_MINUS = (
    3 * POINT_COUNT + i * GROUP_COUNT for i in range(3)
)
BLANK_WORD = 3 * POINT_COUNT + 3 * GROUP_COUNT
MINUS_WORD = BLANK_WORD + 1


class _Layout(NamedTuple):
    template: np.ndarray
    """One frame row as uint32 words, with zeros where key and numbers go."""
    header_bytes: int
    lead_bytes: int
    """Payload bytes before the first aligned word: 2 or 0."""
    number_columns: tuple[int, ...]
    """Word index where each field's number starts."""


def _render_rows(
    quotes: np.ndarray, fields: Sequence[str], opcode: int, decimals: int
) -> tuple[np.ndarray, _Layout]:
    """Render unmasked frames with zero keys, one row of uint32 words each."""
    quotes = np.asarray(quotes, dtype=np.float64)
    if quotes.ndim != 2 or quotes.shape[1] != len(fields):
        raise ValueError(
            f"quotes of shape {quotes.shape} do not match {len(fields)} fields: "
            f"pass an (n, {len(fields)}) array"
        )
    if not 1 <= decimals <= 12:
        raise ValueError(f"invalid decimals {decimals}: use 1 to 12")
    integer_words, number_words = _number_words(quotes, decimals)
    layout = _layout(tuple(fields), opcode, len(integer_words) + len(number_words))
    rows = np.empty((len(quotes), len(layout.template)), dtype=np.uint32)
    rows[:] = layout.template
    words = [*integer_words, *number_words]
    for field, start in enumerate(layout.number_columns):
        for offset, indexes in enumerate(words):
            rows[:, start + offset] = WORDS.take(indexes[:, field])
    return rows, layout


def _number_words(
    values: np.ndarray, decimals: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Choose the ``WORDS`` index of every word of every number.

    Returns:
        Index arrays shaped like ``values``: the integer part's words from
        the most significant, then the fraction's words.
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

    # Split into integer part and fraction in float64, which stores these
    # integers exactly and divides them faster than int64 does. Each floor of
    # a quotient is exact because the dividend is below 2**53.
    negative = scaled < 0
    magnitude = np.abs(scaled)
    unit = 10.0**decimals
    whole = np.floor(magnitude / unit)
    fraction = magnitude - whole * unit

    # Word j of the integer part starts at ``starts[j]``: the point word has
    # the lowest 3 digits, each further word 4 more. ``top`` is the word of a
    # number's first digit. Most batches need one word, so the loops below
    # skip the words and comparisons that no number of the batch needs.
    largest = float(whole.max(initial=0.0))
    starts = [0.0, float(POINT_COUNT)]
    while starts[-1] <= largest:
        starts.append(starts[-1] * GROUP_COUNT)
    top = np.zeros(values.shape, dtype=np.intp)
    for start in starts[1:-1]:
        top += whole >= start

    # A minus sign fits in the top word unless that word is full of digits;
    # then it spills into a word of its own.
    has_minus = bool(negative.any())
    if has_minus:
        full_from = np.array([100.0, *(s * 1000 for s in starts[1:-1])])
        full = whole >= full_from[top]
        in_top = negative & ~full
        spill = negative & full
        count = int((top + 1 + spill).max(initial=1))
    else:
        count = len(starts) - 1

    integer_words = []
    for j in range(count - 1, -1, -1):
        group = whole if j == 0 else np.floor(whole / starts[j])
        size = POINT_COUNT if j == 0 else GROUP_COUNT
        group = (group - np.floor(group / size) * size).astype(np.intp)
        zero, space, minus = (
            (POINT_ZERO, POINT_SPACE, POINT_MINUS)
            if j == 0
            else (GROUP_ZERO, GROUP_SPACE, GROUP_MINUS)
        )
        word = space + group
        if has_minus:
            word += np.where(in_top, minus - space, 0)
        if j < len(starts) - 2:
            word = np.where(j < top, zero + group, word)
        if j > 0:
            beyond = BLANK_WORD
            if has_minus:
                beyond = np.where(spill & (top + 1 == j), MINUS_WORD, BLANK_WORD)
            word = np.where(j > top, beyond, word)
        integer_words.append(word)

    # The fraction is padded with zeros to whole words: 4 decimals give one.
    fraction_words = -(-decimals // 4)
    fraction = fraction * 10.0 ** (4 * fraction_words - decimals)
    number_words = []
    for j in range(fraction_words - 1, -1, -1):
        group = np.floor(fraction / float(GROUP_COUNT) ** j) if j else fraction
        group = group - np.floor(group / GROUP_COUNT) * GROUP_COUNT
        number_words.append(GROUP_ZERO + group.astype(np.intp))
    return integer_words, number_words


@functools.lru_cache(maxsize=64)
def _layout(fields: tuple[str, ...], opcode: int, number_words: int) -> _Layout:
    """Lay out the constant text and the number slots of one frame row."""
    keys = [json.dumps(name, ensure_ascii=False).encode() for name in fields]
    pieces = [b"{" + keys[0] + b":", *(b"," + key + b":" for key in keys[1:])]
    for header_bytes in (2, 4):
        start = header_bytes + MASK_KEY_BYTES
        text = bytearray()
        number_columns = []
        for piece in pieces:
            text += piece
            text += b" " * (-(start + len(text)) % WORD_BYTES)
            number_columns.append((start + len(text)) // WORD_BYTES)
            text += bytes(WORD_BYTES * number_words)
        text += b" " * (-(start + len(text) + 1) % WORD_BYTES) + b"}"
        while header_bytes == 4 and len(text) < 126:
            # RFC 6455 requires the shortest length encoding, so a payload
            # that needs this header must be at least 126 bytes long.
            text[-1:] = b"    }"
        header = frame_header(opcode, len(text))
        if len(header) == header_bytes:
            break
    else:
        raise ValueError(
            f"payload of {len(text)} bytes is too long for batch encoding: "
            "use fewer or shorter field names"
        )
    row = header + bytes(MASK_KEY_BYTES) + bytes(text)
    template = np.frombuffer(row, dtype=np.uint32)
    return _Layout(template, header_bytes, start % WORD_BYTES, tuple(number_columns))


def _mask_keys(count: int, rng: np.random.Generator | None) -> np.ndarray:
    # RFC 6455 section 5.3 requires a fresh masking key per frame that the
    # application cannot predict. The kernel's generator gives that; a seeded
    # numpy generator would not, because its stream follows from a few outputs.
    # One os.urandom call per batch keeps the cost to one system call.
    size = count * MASK_KEY_BYTES
    raw = os.urandom(size) if rng is None else rng.bytes(size)
    return np.frombuffer(raw, dtype=np.uint8).reshape(count, MASK_KEY_BYTES)


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
