"""Client frame header scanner: finds the first unmasked frame (RFC 6455 5.1).

aiohttp 3.14 accepts unmasked client frames, but RFC 6455 requires the server
to close the connection when one arrives. The scanner only reads frame headers
and skips payloads, without touching a socket, so the adapter can run it over
each chunk before aiohttp parses the chunk.
"""

from __future__ import annotations

__all__ = ["ClientFrameScanner"]


class ClientFrameScanner:
    """Track frame boundaries across chunks of a client's byte stream."""

    def __init__(self) -> None:
        self._skip = 0
        """Payload bytes of the current frame not yet seen."""
        self._pending = b""
        """Start of a frame header cut off at the end of the last chunk."""

    def find_unmasked(self, data: bytes) -> int:
        """Return the offset in ``data`` of the first unmasked frame, else -1.

        An unmasked frame whose header began in an earlier chunk gives 0.
        """
        # Fast path: the chunk is exactly one masked frame with a payload of
        # at most 125 bytes, the usual read when a client sends one event per
        # TCP segment.
        if not self._skip and not self._pending and len(data) >= 6:
            second = data[1]
            length = second & 0x7F
            if second & 0x80 and length < 126 and len(data) == 6 + length:
                return -1
        shift = len(self._pending)
        buf = self._pending + data if shift else data
        self._pending = b""
        pos = self._skip
        self._skip = 0
        size = len(buf)
        while pos < size:
            if size - pos < 2:
                self._pending = buf[pos:]
                return -1

            # Read the header: mask bit and payload length.
            second = buf[pos + 1]
            if not second & 0x80:
                return max(0, pos - shift)
            length = second & 0x7F
            extra = 2 if length == 126 else 8 if length == 127 else 0
            header_size = 2 + extra + 4
            if size - pos < header_size:
                self._pending = buf[pos:]
                return -1
            if extra:
                length = int.from_bytes(buf[pos + 2 : pos + 2 + extra], "big")

            # Skip the payload.
            pos += header_size + length
        self._skip = pos - size
        return -1
