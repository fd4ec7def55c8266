"""The per-frame step of the accumulator endpoint: compiled, or in Python.

picows calls a listener once per frame. The step batches the whole binary
frames of one socket read into a list of payloads for the connection's
``_on_events`` and passes every other frame to its ``_other_frame``, in order.
``fastframes.FrameBatcher`` does this in C; ``PythonFrameBatcher`` is the
fallback for an install that could not build it, and is slower.
"""

from __future__ import annotations

import logging
import operator

from picows import WSFrame, WSListener, WSMsgType, WSTransport

__all__ = ["FRAME_STEPS", "FrameStepError", "PythonFrameBatcher", "frame_step"]

FRAME_STEPS = ("auto", "compiled", "python")
"""Choices of ``--frame-step``; auto takes the compiled step when it was built."""

logger = logging.getLogger(__name__)

BINARY = WSMsgType.BINARY

_HEADER = operator.attrgetter("msg_type", "fin", "rsv1", "rsv2", "rsv3")
_BINARY = (BINARY, 1, 0, 0, 0)
"""Header of a whole binary message with no reserved bit set."""


class PythonFrameBatcher(WSListener):
    """The Python version of ``fastframes.FrameBatcher``, with the same contract.

    Each frame costs several Python calls here, which is why the compiled
    version exists.
    """

    def __init__(self) -> None:
        self._run: list[bytes] = []
        """Payloads of the current read's whole binary frames, not handed over."""
        self._plain_now: bool | None = None
        """``_plain`` as read at the read's first frame or after the last call
        into the connection, the only places where it can change."""

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if self._plain_now is None:
            self._plain_now = self._plain
        if self._plain_now and _HEADER(frame) == _BINARY:
            self._run.append(frame.get_payload_as_bytes())
        else:
            self._hand_over()
            self._plain_now = None
            self._other_frame(frame)
        if frame.last_in_buffer:
            self._hand_over()
            self._plain_now = None

    def _hand_over(self) -> None:
        if self._run:
            run = self._run
            self._run = []
            self._on_events(run)

    def take_read(self) -> list[bytes]:
        """Return and forget the payloads not handed over, as at a disconnect."""
        run = self._run
        self._run = []
        self._plain_now = None
        return run


class FrameStepError(Exception):
    """The compiled step was requested but cannot be loaded."""


def frame_step(choice: str) -> tuple[type[WSListener], str]:
    """Return the base class of producer connections for ``--frame-step`` and
    the step's name, ``compiled`` or ``python``.

    Raises:
        FrameStepError: ``choice`` is ``compiled`` and the module was not built.
    """
    if choice == "python":
        return PythonFrameBatcher, "python"
    try:
        from .fastframes import FrameBatcher
    except (ImportError, ValueError) as error:
        # ValueError: built against another picows whose types differ in size.
        if choice == "compiled":
            raise FrameStepError(
                f"the compiled frame step cannot be loaded ({error}); reinstall "
                "with `pip install -e .` where gcc and the Python headers are "
                "present, or pass --frame-step python"
            ) from error
        logger.warning(
            "the compiled frame step cannot be loaded (%s), so producers are "
            "served by the Python step, about four times slower; reinstall with "
            "`pip install -e .` where gcc and the Python headers are present",
            error,
        )
        return PythonFrameBatcher, "python"
    return FrameBatcher, "compiled"
