"""Calibration: the fastest rate the generator can send and the server can take.

``calibrate_generator`` runs the locustfile users run
(``locustfiles/orderbook.py``) through the ``locust`` command: one process,
one user in batch mode, paced open-model at a target rate it cannot reach,
against the null sink, which discards what it reads. The rate it measures is
therefore the Locust user's own limit, by the same code path and the same
count as the ``loadgen Locust user (batch)`` row of
``tests/benchmarks/bench_generator.py``, which calls ``run_locust_user`` too.
``calibrate_server`` sends frames built before the clock starts to a reference
server on one connection and counts what the server accepted, so the rate it
measures is the server's ingest limit. ``run_calibration`` does both and
``format_calibration`` prints the result.

``send_paced_batches`` is the generator loop without Locust: the benchmark
shows it as a separate row, to show what Locust's scheduling costs.

Every server and the Locust run are subprocesses on 127.0.0.1, stopped by
their PID. When the machine has at least two CPUs, the generator runs pinned
to one CPU and the server to another, so the two do not compete for a core.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import re
import secrets
import select
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import websocket

from loadgen.counters import RunCounters
from loadgen.errors import LoadgenError
from loadgen.feeds import make_feed
from loadgen.frames import OPCODE_BINARY, encode_frames
from loadgen.health import HealthClient
from loadgen.pacing import Schedule
from loadgen.tags import apply_tags

__all__ = [
    "DEFAULT_BATCH_EVENTS",
    "FLAT_OUT_RATE_PER_S",
    "CalibrationError",
    "LocustRun",
    "SendResult",
    "calibrate_generator",
    "calibrate_server",
    "run_calibration",
    "format_calibration",
    "run_locust_user",
    "send_paced_batches",
    "started_null_sink",
    "started_reference_server",
    "connect_accumulator",
]

DEFAULT_BATCH_EVENTS = 4096
"""Events per ``sendall`` of ``send_paced_batches``. That loop ran for 2 s
per size against the null sink on a shared 2-core machine. It sent 3.2
million events/s with 1,024, 4.3 million with 4,096, 6.2 million with 8,192
and 3.7 million with 16,384, and such runs vary by tens of percent. Encoding
alone costs least per event near 4,096."""

LATE_THRESHOLD_S = 0.010
"""An event sent more than this after its intended send time counts as late,
as in the Locust user."""

UNREACHABLE_RATE_PER_S = 1e9
"""Target rate for measuring the raw loop's maximum: every event is always due."""

FLAT_OUT_RATE_PER_S = 5_000_000
"""``--rate-per-user`` when measuring the Locust user's maximum. One user
reached 1.8 to 3.1 million events/s on a shared 2-core machine (see
docs/benchmarks.md), so it stays behind this schedule and sends flat out. A
run that reaches 90 % of it is flagged, because it may have been paced rather
than flat out."""
# The Locust user yields to gevent after each chunk of 4,096 frames, so a user
# far behind this schedule still lets Locust's -t timer end the run on time.

PACED_SHARE = 0.9
"""Share of the target rate above which a run may have kept up with it."""

USER_DECIMALS = 10
"""Decimals of the Locust user's batch frames (``TAGGED_DECIMALS`` in
``loadgen.locust_user``), which keep each bid's sequence tag."""

LOCUSTFILE = Path(__file__).resolve().parent.parent / "locustfiles" / "orderbook.py"
"""The locustfile users run; present in a clone or an editable install."""

LOCUSTFILE_TEXT = "from loadgen.locust_user import OrderbookUser\n"
"""The whole of that locustfile's code, written to a temporary file where the
clone is absent, as after a wheel install."""

ACCOUNTING_LINE = re.compile(
    r"accumulator '(?P<accumulator>[^']*)': sent (?P<sent>\d+) events "
    r"\((?P<failed>\d+) failed\)"
)
"""The line the locustfile logs at test stop (logger ``loadgen.locust_user``)."""

LOCUST_START_ALLOWANCE_S = 1
"""Seconds added to Locust's ``-t``. Locust arms that timer with
``gevent.spawn_later``, whose clock is the event loop's cached time. That
time does not advance while the locustfile is imported, so the test ends early
by the import time: -t 3s ended 2.0 s after the start in one run here. The
measured rate does not depend on it, because it uses Locust's own interval."""

LOCUST_TIMEOUT_S = 60.0
"""Time allowed beyond ``FLAT_OUT_TIMEOUT_FACTOR`` times the run's -t."""
FLAT_OUT_TIMEOUT_FACTOR = 4
NULL_SINK_TOKEN = "clk_null_sink_ignores_keys"
"""The Locust user will not start without a key; the null sink checks none."""

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
DRAIN_TIMEOUT_S = 10.0
ACCUMULATOR = "orderbook"
GENERATOR_CPU = 0
SERVER_CPU = 1


class CalibrationError(LoadgenError, RuntimeError):
    """A failed calibration step, with a message naming the step and the cause."""

    kind = "calibration"


@dataclass
class SendResult:
    """Result of one paced sending loop."""

    sent: int
    """Events written to the socket."""
    failed: int
    """Events due but not sent because the connection failed."""
    late: int
    """Sent events that left later than ``LATE_THRESHOLD_S`` after their
    intended send time."""
    behind: int
    """Events due by the end that were never taken: the backlog left when the
    sender could not keep up with the schedule."""
    bytes_sent: int
    elapsed_s: float
    """Time from the schedule's start to the end of the last send."""
    batches: int

    @property
    def rate_per_s(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


def send_paced_batches(
    sock: socket.socket,
    feed,
    schedule: Schedule,
    duration_s: float,
    counters: RunCounters | None = None,
    batch_events: int = DEFAULT_BATCH_EVENTS,
    opcode: int = OPCODE_BINARY,
    tagged: bool = False,
) -> SendResult:
    """Send every event of ``schedule`` that falls due, in batches, for a while.

    This is the open-model generator loop: events that are due are taken from
    the schedule, encoded ``batch_events`` at a time with fresh masking keys
    and written with one ``sendall`` per batch. A batch is never held back
    waiting for more events. When nothing is due the loop sleeps until the
    next intended send time. A failed send ends the loop: that batch counts as
    failed, and later events stay in the schedule, counted in ``behind``.

    Args:
        sock: a connected socket whose WebSocket handshake is complete.
        feed: any feed of ``loadgen.feeds``.
        schedule: intended send times; the loop starts at ``schedule.start_s``
            on the ``time.perf_counter`` clock.
        duration_s: stop taking events this many seconds after the start.
        counters: receive ``record_sent`` per batch and ``record_failed``.
        batch_events: maximum events per ``sendall``.
        opcode: ``OPCODE_BINARY`` or ``OPCODE_TEXT``.
        tagged: encode as the Locust user does: each bid carries the event's
            index in the schedule as a ``loadgen.tags`` sequence tag, written
            with ``USER_DECIMALS`` decimals.
    """
    counters = counters if counters is not None else RunCounters()
    sent = late = failed = byte_count = batches = 0
    deadline = schedule.start_s + duration_s
    now = time.perf_counter()
    while now < deadline and not schedule.finished:
        # Take at most one batch of the due events, so that the deadline is
        # checked between batches even when the backlog is large.
        due = schedule.due_count(now) - schedule.next_index
        if due <= 0:
            time.sleep(min(schedule.seconds_until_next(now), deadline - now))
            now = time.perf_counter()
            continue
        first = schedule.next_index
        count = min(batch_events, due)
        schedule.next_index += count
        late_until = schedule.due_count(now - LATE_THRESHOLD_S)
        batch_late = max(0, min(late_until - first, count))

        quotes = feed.next_batch(count)
        if tagged:
            quotes = apply_tags(quotes, first)
            data = encode_frames(quotes, opcode=opcode, decimals=USER_DECIMALS)
        else:
            data = encode_frames(quotes, opcode=opcode)
        try:
            sock.sendall(data)
        except OSError:
            failed += count
            counters.record_failed(time.perf_counter(), "disconnected", count)
            break
        now = time.perf_counter()
        counters.record_sent(now, count, len(data), batch_late)
        sent += count
        late += batch_late
        byte_count += len(data)
        batches += 1
    now = time.perf_counter()
    behind = max(0, schedule.due_count(min(now, deadline)) - schedule.next_index)
    return SendResult(
        sent, failed, late, behind, byte_count, now - schedule.start_s, batches
    )


@dataclass
class LocustRun:
    """Counts and times of one headless Locust run of the orderbook user."""

    sent: int
    """Events sent, from the locustfile's accounting line at test stop."""
    failed: int
    """Events due but not sent, from the same line."""
    batches: int
    """Locust requests named ``send ... (batch)``, one per write."""
    bytes_sent: int
    """Frame bytes written: Locust's mean content size times ``batches``."""
    elapsed_s: float
    """Locust's test start to its last request: ``batches`` over Locust's
    ``Requests/s``, which Locust computes over that interval."""
    run_time_s: int
    """The ``-t`` limit. ``elapsed_s`` is shorter by Locust's start time (see
    ``LOCUST_START_ALLOWANCE_S``) and longer when the user ran behind schedule
    (see ``FLAT_OUT_RATE_PER_S``)."""
    wall_s: float
    """The ``locust`` command from start to exit, imports included."""
    sink_bytes: int
    """Bytes the null sink read during the run, the close frame included."""
    target_rate_per_s: float
    """The ``--rate-per-user`` the user was paced at."""

    @property
    def rate_per_s(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def sink_events(self) -> int:
        """Events the sink read: its bytes over the run's mean frame size."""
        if self.bytes_sent <= 0:
            return 0
        return self.sink_bytes * self.sent // self.bytes_sent

    @property
    def flat_out(self) -> bool:
        """Whether the run stayed well below its target rate, so it was not paced."""
        return self.rate_per_s < PACED_SHARE * self.target_rate_per_s


def run_locust_user(
    sink_url: str,
    duration_s: float,
    rate_per_s: float = FLAT_OUT_RATE_PER_S,
    feed: str = "sine",
    cpu: int | None = None,
) -> LocustRun:
    """Run the orderbook locustfile with one user in batch mode against a null sink.

    The command is ``locust -f locustfiles/orderbook.py --headless -u 1 -r 1
    -t Ns --rate-per-user R --send-mode batch --no-probe`` with ``--csv``, so
    the rate comes from the same code and the same statistics a user gets.
    ``LOCUST_*`` variables are removed from the environment, so that no
    setting from the caller's shell changes the run.

    Args:
        sink_url: ``http://127.0.0.1:PORT`` of a running null sink.
        duration_s: run time; Locust takes whole seconds, so it is rounded up,
            and ``LOCUST_START_ALLOWANCE_S`` is added.
        rate_per_s: the user's target rate in events per second.
        feed: the user's ``--feed``.
        cpu: pin the Locust process to this CPU; None leaves it unpinned.

    Raises:
        CalibrationError: Locust failed or timed out, or its output has no
            accounting line or no batch statistics.
    """
    run_time_s = math.ceil(duration_s) + LOCUST_START_ALLOWANCE_S
    timeout_s = FLAT_OUT_TIMEOUT_FACTOR * run_time_s + LOCUST_TIMEOUT_S
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    env["TOKEN"] = NULL_SINK_TOKEN
    with tempfile.TemporaryDirectory(prefix="loadgen-locust-") as temp:
        work_dir = Path(temp)
        csv_prefix = work_dir / "locust"
        command = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(_locustfile(work_dir)),
            "--headless",
            "-u",
            "1",
            "-r",
            "1",
            "-t",
            f"{run_time_s}s",
            "--host",
            sink_url,
            "--rate-per-user",
            f"{rate_per_s:.0f}",
            "--send-mode",
            "batch",
            "--feed",
            feed,
            "--no-probe",
            "--only-summary",
            "--csv",
            str(csv_prefix),
        ]
        before = _read_sink_bytes(sink_url)
        started = time.perf_counter()
        try:
            completed = subprocess.run(
                command,
                cwd=work_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                preexec_fn=None if cpu is None else _pin_child(cpu),
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise CalibrationError(
                f"locust did not finish a {run_time_s} s run within {timeout_s:g} s"
            ) from None
        wall_s = time.perf_counter() - started
        output = completed.stderr + completed.stdout
        if completed.returncode != 0:
            raise CalibrationError(
                f"locust exited with status {completed.returncode}: "
                f"{output.strip()[-500:]}"
            )
        sent, failed = _parse_accounting(output)
        batches, bytes_sent, elapsed_s = _read_batch_stats(csv_prefix, output)
    received = _wait_for_sink_bytes(sink_url, before + bytes_sent) - before
    return LocustRun(
        sent=sent,
        failed=failed,
        batches=batches,
        bytes_sent=bytes_sent,
        elapsed_s=elapsed_s,
        run_time_s=run_time_s,
        wall_s=wall_s,
        sink_bytes=received,
        target_rate_per_s=rate_per_s,
    )


def _locustfile(work_dir: Path) -> Path:
    """Return the repository's locustfile, or write its one import to ``work_dir``."""
    if LOCUSTFILE.is_file():
        return LOCUSTFILE
    path = work_dir / "orderbook.py"
    path.write_text(LOCUSTFILE_TEXT, encoding="utf-8")
    return path


def _pin_child(cpu: int):
    """Return a ``preexec_fn`` that pins the child process to ``cpu``."""
    return lambda: os.sched_setaffinity(0, {cpu})


def _parse_accounting(output: str) -> tuple[int, int]:
    """Return (sent, failed) from the locustfile's accounting line in ``output``."""
    match = ACCOUNTING_LINE.search(output)
    if match is None:
        raise CalibrationError(
            "locust logged no line \"accumulator '...': sent N events (F failed)\"; "
            f"the end of its output was: {output.strip()[-500:]}"
        )
    return int(match["sent"]), int(match["failed"])


def _read_batch_stats(csv_prefix: Path, output: str) -> tuple[int, int, float]:
    """Return (batches, bytes, elapsed seconds) from Locust's ``_stats.csv``."""
    path = Path(f"{csv_prefix}_stats.csv")
    try:
        with path.open(newline="", encoding="utf-8") as file:
            rows = list(csv.DictReader(file))
    except OSError as error:
        raise CalibrationError(
            f"locust wrote no statistics to {path} ({error.strerror}): "
            f"{output.strip()[-500:]}"
        ) from None
    for row in rows:
        if row["Type"] == "WS" and row["Name"].endswith("(batch)"):
            batches = int(row["Request Count"])
            requests_per_s = float(row["Requests/s"])
            if batches == 0 or requests_per_s <= 0:
                break
            bytes_sent = round(float(row["Average Content Size"]) * batches)
            return batches, bytes_sent, batches / requests_per_s
    raise CalibrationError(
        f"locust's statistics in {path} show no batch sent: {output.strip()[-500:]}"
    )


def calibrate_generator(
    duration_s: float = 5.0,
    feed: str = "sine",
    pin_cpus: bool = True,
    rate_per_s: float = FLAT_OUT_RATE_PER_S,
) -> dict:
    """Measure the Locust user's maximum send rate against the null sink.

    One user of ``locustfiles/orderbook.py`` runs in batch mode through the
    ``locust`` command (see ``run_locust_user``), paced at ``rate_per_s``.

    Returns:
        ``rate_per_s`` (events per second), ``sent``, ``failed``, ``batches``,
        ``bytes_sent``, ``bytes_per_s``, ``sink_bytes_received``,
        ``sink_events``, ``elapsed_s``, ``run_time_s``, ``wall_s``,
        ``target_rate_per_s``, ``flat_out`` (False when the run came within
        ``PACED_SHARE`` of its target, so its maximum may be higher) and
        ``cpus`` (where each side was pinned, or None).

    Raises:
        CalibrationError: the null sink or Locust failed.
    """
    with started_null_sink() as sink, _pinned(sink.pid, pin_cpus) as cpus:
        # The Locust process inherits this process's CPU from ``_pinned``.
        run = run_locust_user(sink.url, duration_s, rate_per_s, feed)
    return {
        "rate_per_s": run.rate_per_s,
        "sent": run.sent,
        "failed": run.failed,
        "batches": run.batches,
        "bytes_sent": run.bytes_sent,
        "bytes_per_s": run.bytes_sent / run.elapsed_s,
        "sink_bytes_received": run.sink_bytes,
        "sink_events": run.sink_events,
        "elapsed_s": run.elapsed_s,
        "run_time_s": run.run_time_s,
        "wall_s": run.wall_s,
        "target_rate_per_s": run.target_rate_per_s,
        "flat_out": run.flat_out,
        "cpus": cpus,
    }


def calibrate_server(
    duration_s: float = 5.0,
    batch_events: int = DEFAULT_BATCH_EVENTS,
    prebuilt_events: int = 262_144,
    pin_cpus: bool = True,
) -> dict:
    """Measure the reference server's ingest rate on one connection.

    Frames for ``prebuilt_events`` events are encoded before the clock starts
    and sent back to back, over and over, for ``duration_s`` seconds. TCP flow
    control slows the sender to the server's pace. The rate is the growth of
    the server's ``events_total`` divided by the time from the first send until
    the server has taken every frame sent.

    Returns:
        ``rate_per_s``, ``sent``, ``accepted``, ``rejected``, ``elapsed_s`` and
        ``cpus``.

    Raises:
        CalibrationError: the server did not start or did not take every event
            within ``DRAIN_TIMEOUT_S`` after the sending stopped.
    """
    # NOTE: the prebuilt frames are reused in a loop, so masking keys repeat
    # every ``prebuilt_events`` frames. The server is ours and on loopback, so
    # this is acceptable here and keeps encoding out of the measurement.
    # The frames are the Locust user's: the default feed, tagged bids and
    # ``USER_DECIMALS`` decimals, so the server parses what users send.
    feed = make_feed("sine")
    buffers = [
        encode_frames(
            apply_tags(feed.next_batch(batch_events), index * batch_events),
            decimals=USER_DECIMALS,
        )
        for index in range(max(1, prebuilt_events // batch_events))
    ]
    token = "clk_calibrate_" + secrets.token_hex(16)
    with (
        started_reference_server(token) as server,
        _pinned(server.pid, pin_cpus) as cpus,
    ):
        health = HealthClient(server.url, token, timeout_s=5.0)
        try:
            before = _accumulator_row(health)
            ws = connect_accumulator(server.url, token)
            sent = 0
            started = time.perf_counter()
            deadline = started + duration_s
            try:
                while time.perf_counter() < deadline:
                    for data in buffers:
                        ws.sock.sendall(data)
                        sent += batch_events
                        if time.perf_counter() >= deadline:
                            break
                accepted, rejected, finished = _wait_for_events(health, before, sent)
            finally:
                ws.shutdown()
        finally:
            health.close()
    if accepted + rejected < sent:
        raise CalibrationError(
            f"the reference server took {accepted + rejected} of {sent} events "
            f"within {DRAIN_TIMEOUT_S:g} s after the sending stopped"
        )
    elapsed_s = finished - started
    return {
        "rate_per_s": accepted / elapsed_s,
        "sent": sent,
        "accepted": accepted,
        "rejected": rejected,
        "elapsed_s": elapsed_s,
        "cpus": cpus,
    }


def run_calibration(duration_s: float = 5.0) -> dict:
    """Measure the generator, then the reference server, for ``duration_s`` each.

    Returns:
        ``{"generator": ..., "server": ..., "duration_s": ...}`` with the
        dictionaries of ``calibrate_generator`` and ``calibrate_server``.
    """
    generator = calibrate_generator(duration_s)
    server = calibrate_server(duration_s)
    return {"generator": generator, "server": server, "duration_s": duration_s}


def format_calibration(result: dict) -> str:
    """Format a ``run_calibration`` result as a few lines of text."""
    generator, server = result["generator"], result["server"]
    lines = [
        f"generator -> null sink: {generator['rate_per_s']:>12,.0f} events/s "
        f"({generator['bytes_per_s'] / 1e6:,.0f} MB/s, "
        f"{generator['sent']:,} events in {generator['elapsed_s']:.1f} s; "
        "one Locust user, batch mode)",
        f"reference server ingest: {server['rate_per_s']:>12,.0f} events/s "
        f"({server['accepted']:,} accepted, {server['rejected']:,} rejected "
        f"in {server['elapsed_s']:.1f} s)",
    ]
    if not generator["flat_out"]:
        lines.append(
            "the generator came within "
            f"{100 - PACED_SHARE * 100:.0f} % of its target of "
            f"{generator['target_rate_per_s']:,.0f} events/s, so its maximum "
            "may be higher than measured"
        )
    if generator["cpus"] is None:
        lines.append("processes were not pinned to CPUs")
    else:
        lines.append(
            f"generator pinned to CPU {generator['cpus'][0]}, "
            f"each server to CPU {generator['cpus'][1]}"
        )
    ratio = generator["rate_per_s"] / server["rate_per_s"]
    lines.append(
        f"one generator process can offer {ratio:,.1f} times what the "
        "reference server takes on one connection"
    )
    return "\n".join(lines)


@dataclass
class StartedServer:
    """A server subprocess listening on loopback."""

    process: subprocess.Popen
    url: str
    """``http://127.0.0.1:PORT``."""

    @property
    def pid(self) -> int:
        return self.process.pid


@contextlib.contextmanager
def started_null_sink() -> Iterator[StartedServer]:
    """Run ``python -m loadgen.null_sink --port 0`` for the ``with`` block."""
    from loadgen.null_sink import LISTENING_PREFIX

    command = [sys.executable, "-m", "loadgen.null_sink", "--port", "0"]
    with _started_server(command, os.environ, LISTENING_PREFIX) as server:
        yield server


@contextlib.contextmanager
def started_reference_server(token: str) -> Iterator[StartedServer]:
    """Run ``python -m reference_server --port 0`` with ``token`` as admin key."""
    command = [
        sys.executable,
        "-m",
        "reference_server",
        "--port",
        "0",
        "--log-level",
        "WARNING",
    ]
    env = dict(os.environ, TOKEN=token)
    prefix = "reference server listening on "
    with _started_server(command, env, prefix) as server:
        yield server


@contextlib.contextmanager
def _started_server(
    command: Sequence[str], env, prefix: str
) -> Iterator[StartedServer]:
    process = subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT_S)
        line = process.stdout.readline() if ready else ""
        if not line.startswith(prefix):
            raise CalibrationError(
                f"{' '.join(command[1:])} printed {line!r} instead of "
                f"{prefix!r} within {START_TIMEOUT_S:g} s"
            )
        yield StartedServer(process, line[len(prefix) :].strip())
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """Terminate a started process by its PID and wait for it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)
    if process.stdout is not None:
        process.stdout.close()


def connect_accumulator(base_url: str, token: str | None = None) -> websocket.WebSocket:
    """Open a WebSocket to the orderbook accumulator of ``base_url``.

    Only the handshake goes through websocket-client; callers write frames to
    ``ws.sock`` directly.
    """
    url = base_url.replace("http://", "ws://", 1) + f"/v1/ws/accumulator/{ACCUMULATOR}"
    header = [f"Authorization: Bearer {token}"] if token else []
    ws = websocket.WebSocket(enable_multithread=False)
    ws.connect(url, header=header, timeout=10)
    return ws


@contextlib.contextmanager
def _pinned(server_pid: int, enabled: bool) -> Iterator[tuple[int, int] | None]:
    """Pin this process to one CPU and the server to another, then restore."""
    available = sorted(_allowed_cpus())
    if not enabled or len(available) < 2:
        yield None
        return
    own_cpu, server_cpu = available[GENERATOR_CPU], available[SERVER_CPU]
    previous = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(server_pid, {server_cpu})
        os.sched_setaffinity(0, {own_cpu})
    except OSError:
        yield None
        return
    try:
        yield own_cpu, server_cpu
    finally:
        os.sched_setaffinity(0, previous)


def _allowed_cpus() -> set[int]:
    try:
        return os.sched_getaffinity(0)
    except AttributeError:
        return set()


def _read_sink_bytes(url: str) -> int:
    """Return the bytes the null sink at ``url`` has read since it started."""
    with urllib.request.urlopen(url + "/", timeout=5) as response:
        return json.loads(response.read())["bytes_received"]


def _wait_for_sink_bytes(url: str, expected: int) -> int:
    """Poll the null sink until it has read ``expected`` bytes or time runs out."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    received = 0
    while time.monotonic() < deadline:
        received = _read_sink_bytes(url)
        if received >= expected:
            break
        time.sleep(0.02)
    return received


def _accumulator_row(health: HealthClient) -> dict:
    listing = health.get_json("/v1/health/accumulators")
    for row in listing.get("accumulators", listing.get("items", [])):
        if row.get("name") == ACCUMULATOR:
            return row
    raise CalibrationError(f"the reference server has no accumulator '{ACCUMULATOR}'")


def _wait_for_events(
    health: HealthClient, before: dict, sent: int
) -> tuple[int, int, float]:
    """Poll until the server has counted ``sent`` more events, or time runs out.

    Returns:
        Events accepted and rejected since ``before``, and the
        ``time.perf_counter`` time of the poll that saw the last of them.
    """
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while True:
        row = _accumulator_row(health)
        seen_at = time.perf_counter()
        accepted = row["events_total"] - before["events_total"]
        rejected = row["events_rejected"] - before["events_rejected"]
        if accepted + rejected >= sent or time.monotonic() > deadline:
            return accepted, rejected, seen_at
        time.sleep(0.005)


if __name__ == "__main__":
    print(format_calibration(run_calibration()))
