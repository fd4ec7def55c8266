"""Accumulator kinds: turn events into boundaries, free of I/O and clocks.

Each reactor owns one processor per declared accumulator, as in Cloacina where
every reactor runs its own accumulator tasks. A processor receives an event
value and returns the boundary to hand to the reactor, or None:

- ``passthrough``: one event gives one boundary, the event itself.
- ``batch``: events are buffered; ``flush()`` (the timer, or the buffer reaching
  ``max_buffer_size``) emits the JSON array of the buffered events.
- ``state``: events are appended to a window of ``capacity`` (oldest evicted,
  < 0 unbounded, 0 stores without emitting) and the whole window is emitted.

The codec decides the representation: the tutorial profile passes decoded and
validated objects, the cloacina profile passes raw JSON bytes, as the real
server does, and decodes them only where its accumulator kind does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from .config import AccumulatorConfig

__all__ = ["Codec", "Processor", "make_processor"]


class Codec:
    """Conversion between event values and the objects inside a window or batch.

    Args:
        decode: value to object; raises ``ValueError`` for an invalid event.
        encode: list of objects to the boundary value of a batch or window.
    """

    def __init__(
        self, decode: Callable[[Any], Any], encode: Callable[[list[Any]], Any]
    ) -> None:
        self.decode = decode
        self.encode = encode


class Processor:
    """Passthrough processor; the base of the buffering kinds."""

    kind = "passthrough"

    def __init__(self, config: AccumulatorConfig, codec: Codec) -> None:
        self.config = config
        self.codec = codec
        self.boundaries_emitted = 0
        """Boundaries handed to the reactor, ``events_total`` on the health endpoint."""
        self.decode_failures = 0
        """Events dropped because they did not decode (state and batch kinds)."""

    @property
    def buffer_depth(self) -> int:
        """Events held in the buffer or window; 0 for passthrough."""
        return 0

    @property
    def buffer_capacity(self) -> int | None:
        return None

    def process(self, value: Any) -> Any | None:
        """Return the boundary for one event, or None if it emits nothing yet."""
        self.boundaries_emitted += 1
        return value

    def flush(self) -> Any | None:
        """Return a pending boundary when the flush timer fires, else None."""
        return None


class BatchProcessor(Processor):
    kind = "batch"

    def __init__(self, config: AccumulatorConfig, codec: Codec) -> None:
        super().__init__(config, codec)
        self.buffer: list[Any] = []

    @property
    def buffer_depth(self) -> int:
        return len(self.buffer)

    @property
    def buffer_capacity(self) -> int | None:
        return self.config.max_buffer_size

    def process(self, value: Any) -> Any | None:
        # Cloacina skips non-JSON events at flush time, so an all-invalid batch
        # emits nothing. Decoding here gives the same result earlier.
        try:
            self.buffer.append(self.codec.decode(value))
        except ValueError:
            self.decode_failures += 1
            return None
        limit = self.config.max_buffer_size
        if limit is not None and len(self.buffer) >= limit:
            return self.flush()
        return None

    def flush(self) -> Any | None:
        if not self.buffer:
            return None
        batch, self.buffer = self.buffer, []
        self.boundaries_emitted += 1
        return self.codec.encode(batch)


class StateProcessor(Processor):
    kind = "state"

    def __init__(self, config: AccumulatorConfig, codec: Codec) -> None:
        super().__init__(config, codec)
        capacity = config.capacity
        self.window: deque[Any] = deque(maxlen=capacity if capacity > 0 else None)

    @property
    def buffer_depth(self) -> int:
        return len(self.window)

    @property
    def buffer_capacity(self) -> int | None:
        return self.config.capacity if self.config.capacity > 0 else None

    def process(self, value: Any) -> Any | None:
        try:
            item = self.codec.decode(value)
        except ValueError:
            self.decode_failures += 1
            return None
        if self.config.capacity == 0:
            return None
        self.window.append(item)
        self.boundaries_emitted += 1
        return self.codec.encode(list(self.window))


def make_processor(config: AccumulatorConfig, codec: Codec) -> Processor:
    """Build the processor of an accumulator's kind."""
    if config.kind == "batch":
        return BatchProcessor(config, codec)
    if config.kind == "state":
        return StateProcessor(config, codec)
    return Processor(config, codec)
