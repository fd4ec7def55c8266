"""Producer settings shared by the Locust user, the probe and ``loadgen run``."""

from __future__ import annotations

import os
from dataclasses import dataclass

from loadgen.encoding import WIRE_FORMATS
from loadgen.errors import UsageProblem
from loadgen.feeds import FEED_NAMES, FeedError, make_feed
from loadgen.producer import AUTH_MODES, FRAME_TYPES
from loadgen.shapes import parse_shape

__all__ = ["LoadSettings", "add_locust_options", "check_wire", "settings_from_options"]

SEND_MODES = ("event", "batch")
"""``event`` sends one frame and one Locust request per event; ``batch`` writes
all due events as pre-built frames in one send and counts per batch."""

MAX_RATE_PER_S = 100_000_000
MAX_PROBE_INTERVAL_MS = 60_000
MAX_RECONNECT_MS = 600_000


@dataclass(frozen=True)
class LoadSettings:
    """Producer and probe settings: target, payload, rate, auth and polling."""

    token: str
    accumulator: str = "orderbook"
    graph: str = "price_signal"
    feed: str = "sine"
    rate_per_user: float = 10.0
    auth: str = "header"
    frame: str = "binary"
    wire: str = "json"
    """Event payload format, one of ``loadgen.encoding.WIRE_FORMATS``."""
    poll_interval_ms: float = 2.0
    probe_interval_ms: float = 100.0
    probe: bool = True
    reconnect_min_ms: float = 100.0
    reconnect_max_ms: float = 5000.0
    send_mode: str = "event"
    shape: str = ""
    """Total target rate over time (``loadgen.shapes`` stages) shared by all
    users; empty for a constant ``rate_per_user``."""
    shape_users: int = 0
    """Users that share ``shape``; 0 means Locust's ``--users``."""

    def __repr__(self) -> str:
        # The dataclass repr would print the key.
        return (
            f"LoadSettings(accumulator={self.accumulator!r}, graph={self.graph!r}, "
            f"feed={self.feed!r}, rate_per_user={self.rate_per_user})"
        )

    def validate(self) -> None:
        """Raise ``UsageProblem`` naming the first unusable value and its fix."""
        if not self.token:
            raise UsageProblem("missing API key: export TOKEN=<key> or pass --token")
        if not 0 < self.rate_per_user <= MAX_RATE_PER_S:
            raise UsageProblem(
                f"invalid rate {self.rate_per_user:g} events/s per user: use a "
                f"number above 0 and at most {MAX_RATE_PER_S:,}"
            )
        if self.auth not in AUTH_MODES:
            raise UsageProblem(
                f"invalid auth {self.auth!r}: use {', '.join(AUTH_MODES)}"
            )
        if self.send_mode not in SEND_MODES:
            raise UsageProblem(
                f"invalid send mode {self.send_mode!r}: use event or batch"
            )
        if self.frame not in FRAME_TYPES:
            raise UsageProblem(f"invalid frame {self.frame!r}: use binary or text")
        check_wire(self.wire, self.frame)
        if not 0 < self.poll_interval_ms <= 1000:
            raise UsageProblem(
                f"invalid poll interval {self.poll_interval_ms:g} ms: use a value "
                "above 0 and at most 1000"
            )
        if not 0 <= self.probe_interval_ms <= MAX_PROBE_INTERVAL_MS:
            raise UsageProblem(
                f"invalid probe interval {self.probe_interval_ms:g} ms: use 0 to "
                f"{MAX_PROBE_INTERVAL_MS:,}"
            )
        if not 0 < self.reconnect_min_ms <= self.reconnect_max_ms <= MAX_RECONNECT_MS:
            raise UsageProblem(
                f"invalid reconnect bounds {self.reconnect_min_ms:g} and "
                f"{self.reconnect_max_ms:g} ms: use 0 < minimum <= maximum <= "
                f"{MAX_RECONNECT_MS:,}"
            )
        if not self.accumulator or not self.graph:
            raise UsageProblem("accumulator and graph names must not be empty")
        try:
            make_feed(self.feed)
        except FeedError as error:
            raise UsageProblem(str(error)) from None
        if self.shape:
            parse_shape(self.shape)


def check_wire(wire: str, frame: str) -> None:
    """Raise ``UsageProblem`` when the wire format or its frame type is unusable."""
    if wire not in WIRE_FORMATS:
        raise UsageProblem(f"invalid wire {wire!r}: use json or bincode")
    if wire == "bincode" and frame != "binary":
        raise UsageProblem(
            "--wire bincode needs --frame binary: bincode payloads are not "
            "UTF-8 text, which text frames must carry"
        )


def add_locust_options(parser) -> None:
    """Register this project's options on Locust's argument parser."""
    # Locust's own parser, not an argument group, takes is_secret and shows
    # these options in the web UI.
    group = parser
    group.add_argument(
        "--token",
        # Not defaulted from $TOKEN here: Locust embeds option defaults in its
        # web page, so the key would reach every browser. It is read at use.
        default="",
        is_secret=True,
        help="API key of the Cloacina server (default: $TOKEN)",
    )
    group.add_argument(
        "--accumulator", default="orderbook", help="accumulator to send events to"
    )
    group.add_argument(
        "--graph", default="price_signal", help="graph whose fire count is polled"
    )
    group.add_argument(
        "--feed",
        default="sine",
        help=f"event source: {', '.join(FEED_NAMES)} (CSV or JSON Lines)",
    )
    group.add_argument(
        "--rate-per-user",
        type=float,
        default=10.0,
        help="events per second that each user sends (default 10)",
    )
    group.add_argument(
        "--auth",
        choices=AUTH_MODES,
        default="header",
        help="send the key as Authorization: Bearer (header), as ?token= (query), "
        "or fetch a single-use ticket per connection (ticket)",
    )
    group.add_argument(
        "--frame", choices=FRAME_TYPES, default="binary", help="WebSocket frame type"
    )
    group.add_argument(
        "--wire",
        choices=WIRE_FORMATS,
        default="json",
        help="event payload format: json (the tutorial's debug builds) or bincode "
        "(release builds; the server must read bincode too)",
    )
    group.add_argument(
        "--poll-interval-ms",
        type=float,
        default=2.0,
        help="pause between the probe's fire-count polls, in ms (its resolution)",
    )
    group.add_argument(
        "--probe-interval-ms",
        type=float,
        default=100.0,
        help="pause between latency probes, in ms",
    )
    group.add_argument(
        "--shape",
        default="",
        help="total target rate over time, shared by all users, instead of "
        "--rate-per-user: stages DURATION@RATE or DURATION@FROM..TO, e.g. "
        "30s@1000,30s@1000..5000",
    )
    group.add_argument(
        "--shape-users",
        type=int,
        default=0,
        help="users that share --shape (default: Locust's --users)",
    )
    group.add_argument(
        "--send-mode",
        choices=SEND_MODES,
        default="event",
        help="event: one frame and one Locust request per event; batch: all due "
        "events in one write, one Locust request per batch (much faster)",
    )
    group.add_argument(
        "--reconnect-min-ms",
        type=float,
        default=100.0,
        help="shortest pause before reconnecting a dropped producer, in ms",
    )
    group.add_argument(
        "--reconnect-max-ms",
        type=float,
        default=5000.0,
        help="maximum pause before reconnecting; pauses double up to it, in ms",
    )
    group.add_argument(
        "--no-probe",
        action="store_true",
        default=False,
        help="do not measure send-to-fire latency",
    )


def settings_from_options(options) -> LoadSettings:
    """Build settings from Locust's parsed options; missing options get defaults."""
    defaults = LoadSettings(token="")
    return LoadSettings(
        token=getattr(options, "token", "") or os.environ.get("TOKEN", ""),
        accumulator=getattr(options, "accumulator", defaults.accumulator),
        graph=getattr(options, "graph", defaults.graph),
        feed=getattr(options, "feed", defaults.feed),
        rate_per_user=getattr(options, "rate_per_user", defaults.rate_per_user),
        auth=getattr(options, "auth", defaults.auth),
        frame=getattr(options, "frame", defaults.frame),
        wire=getattr(options, "wire", defaults.wire),
        poll_interval_ms=getattr(
            options, "poll_interval_ms", defaults.poll_interval_ms
        ),
        probe_interval_ms=getattr(
            options, "probe_interval_ms", defaults.probe_interval_ms
        ),
        probe=not getattr(options, "no_probe", False),
        reconnect_min_ms=getattr(
            options, "reconnect_min_ms", defaults.reconnect_min_ms
        ),
        reconnect_max_ms=getattr(
            options, "reconnect_max_ms", defaults.reconnect_max_ms
        ),
        send_mode=getattr(options, "send_mode", defaults.send_mode),
        shape=getattr(options, "shape", defaults.shape) or "",
        shape_users=getattr(options, "shape_users", 0)
        or getattr(options, "num_users", 0)
        or 0,
    )
