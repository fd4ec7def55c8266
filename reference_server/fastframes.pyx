# cython: language_level=3, boundscheck=False, wraparound=False
"""The per-frame step of the accumulator endpoint, compiled.

picows calls its listener once per frame. In Python that call, the opcode's
conversion to an enum and the reads of the FIN and reserved bits cost more
than decoding the event. Here they are C field reads, and Python runs once per
socket read: whole binary frames are copied into a list of payloads that goes
to ``_on_events`` at the read's last frame, and any other frame goes to
``_other_frame`` after the payloads before it.

``producer_ws`` falls back to its Python version of this step when the module
was not built.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from picows.picows cimport WSFrame, WSListener, WSMsgType, WSTransport


cdef class FrameBatcher(WSListener):
    """Base of a producer connection: batches a read's whole binary frames.

    The subclass provides ``_plain`` (whether a whole binary frame is an
    event), ``_on_events(payloads)`` and ``_other_frame(frame)``. ``_plain``
    is read at a read's first frame and again after each call into the
    subclass, the only places where it can change.
    """

    cdef list _run
    cdef int _plain_now
    """1 or 0 once asked in this read, -1 before."""

    def __cinit__(self, *args, **kwargs):
        self._run = []
        self._plain_now = -1

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        if self._plain_now < 0:
            self._plain_now = 1 if self._plain else 0
        if (
            self._plain_now
            and frame.msg_type == WSMsgType.BINARY
            and frame.fin
            and not (frame.rsv1 or frame.rsv2 or frame.rsv3)
        ):
            self._run.append(
                PyBytes_FromStringAndSize(frame.payload_ptr, frame.payload_size)
            )
        else:
            self._hand_over()
            self._plain_now = -1
            self._other_frame(frame)
        if frame.last_in_buffer:
            self._hand_over()
            self._plain_now = -1

    cdef _hand_over(self):
        if self._run:
            run = self._run
            self._run = []
            self._on_events(run)

    def take_read(self):
        """Return and forget the payloads not handed over, as at a disconnect."""
        run = self._run
        self._run = []
        self._plain_now = -1
        return run
