"""Compare JSON and bincode events: generator rate, server decoding and ingest.

Run it from the repository root::

    python tests/benchmarks/bench_wire.py
    python tests/benchmarks/bench_wire.py --repetitions 3 --duration 5

Three measurements, each for ``--wire json`` and ``--wire bincode`` in turn,
``--repetitions`` times:

- ``generator``: the Locust user as ``loadgen calibrate`` runs it (one user,
  batch mode, ``--no-probe``) plus ``--wire``, against the null sink. The
  target rate is ``GENERATOR_TARGET_PER_S``, above what either format
  reaches here, so the user sends flat out;
- ``deliver``: ``Registry.deliver`` of the tutorial profile in this process,
  the minimum over 15 runs of 20,000 tagged events, decoding included;
- ``ingest``: a reference server with ``--wire`` takes frames built before
  the clock starts, written back to back on one connection. The rate is its
  accepted events over the time until it has taken all of them.

With two or more CPUs, the process under test runs pinned to CPU 0 and its
peer (sink or server) to CPU 1.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loadgen.calibrate import (
    LOCUSTFILE,
    NULL_SINK_TOKEN,
    _parse_accounting,
    _read_batch_stats,
    connect_accumulator,
    started_null_sink,
)
from loadgen.encoding import WIRE_FORMATS, encode_events
from loadgen.feeds import make_feed
from loadgen.frames import encode_frames
from loadgen.health import HealthClient
from loadgen.tags import apply_tags
from reference_server.config import default_config
from reference_server.profiles import TUTORIAL, with_wire
from reference_server.registry import Registry

GENERATOR_TARGET_PER_S = 20_000_000
"""``--rate-per-user`` of the generator runs; neither format reached half of
it on a 2-core virtual machine."""
DELIVER_EVENTS = 20_000
DELIVER_RUNS = 15
BATCH_EVENTS = 4096
PREBUILT_BATCHES = 64
DRAIN_TIMEOUT_S = 20.0


def pin(pid: int, cpu: int) -> None:
    if len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(pid, {cpu})


def measure_generator(sink_url: str, wire: str, duration_s: float) -> float:
    """Return the Locust user's events per second against the null sink."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    env["TOKEN"] = NULL_SINK_TOKEN
    with tempfile.TemporaryDirectory(prefix="bench-wire-") as temp:
        prefix = Path(temp) / "locust"
        command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]
        command += ["--headless", "-u", "1", "-r", "1", "-t", f"{duration_s:.0f}s"]
        command += ["--host", sink_url, "--rate-per-user", str(GENERATOR_TARGET_PER_S)]
        command += ["--send-mode", "batch", "--no-probe", "--only-summary"]
        command += ["--csv", str(prefix), "--wire", wire]
        done = subprocess.run(
            command,
            env=env,
            cwd=temp,
            capture_output=True,
            text=True,
            timeout=4 * duration_s + 60,
            preexec_fn=lambda: pin(0, 0),
            check=False,
        )
        output = done.stderr + done.stdout
        if done.returncode != 0:
            raise RuntimeError(f"locust failed: {output.strip()[-500:]}")
        sent, _ = _parse_accounting(output)
        _, _, elapsed_s = _read_batch_stats(prefix, output)
    return sent / elapsed_s


def measure_deliver(wire: str) -> float:
    """Return the minimum ``Registry.deliver`` time per event in microseconds."""
    quotes = apply_tags(make_feed("sine").next_batch(DELIVER_EVENTS), 0)
    payloads = encode_events(quotes, wire)
    best_s = float("inf")
    for _ in range(DELIVER_RUNS):
        registry = Registry(default_config(), with_wire(TUTORIAL, wire))
        accumulator = registry.accumulators[("public", "orderbook")]
        deliver = registry.deliver
        started = time.perf_counter()
        for payload in payloads:
            deliver(accumulator, payload)
        best_s = min(best_s, time.perf_counter() - started)
        if accumulator.events_total != DELIVER_EVENTS:
            raise RuntimeError(f"{wire}: {accumulator.events_rejected} rejected")
    return best_s / DELIVER_EVENTS * 1e6


def measure_ingest(wire: str, duration_s: float) -> float:
    """Return the events per second a ``--wire`` server accepted on one connection."""
    feed = make_feed("sine")
    buffers = [
        encode_frames(
            apply_tags(feed.next_batch(BATCH_EVENTS), index * BATCH_EVENTS),
            decimals=10,
            wire=wire,
        )
        for index in range(PREBUILT_BATCHES)
    ]
    token = "clk_bench_wire_" + secrets.token_hex(16)
    command = [sys.executable, "-m", "reference_server", "--port", "0"]
    command += ["--log-level", "WARNING", "--wire", wire]
    server = subprocess.Popen(
        command,
        env=dict(os.environ, TOKEN=token),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=lambda: pin(0, 1),
    )
    try:
        line = server.stdout.readline()
        if "listening on " not in line:
            raise RuntimeError(f"the reference server printed {line!r}")
        url = line.split("listening on ", 1)[1].strip()
        health = HealthClient(url, token, timeout_s=5.0)
        before = _counts(health)
        ws = connect_accumulator(url, token)
        sent = 0
        started = time.perf_counter()
        deadline = started + duration_s
        while time.perf_counter() < deadline:
            for data in buffers:
                ws.sock.sendall(data)
                sent += BATCH_EVENTS
                if time.perf_counter() >= deadline:
                    break

        # Wait until the server has taken every frame sent.
        drain_deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while True:
            accepted, rejected = (
                now - then for now, then in zip(_counts(health), before, strict=True)
            )
            if accepted + rejected >= sent or time.monotonic() > drain_deadline:
                break
            time.sleep(0.01)
        elapsed_s = time.perf_counter() - started
        ws.shutdown()
        health.close()
        if rejected:
            raise RuntimeError(f"{wire}: the server rejected {rejected} events")
        return accepted / elapsed_s
    finally:
        server.terminate()
        server.wait(timeout=10)
        server.stdout.close()


def _counts(health: HealthClient) -> tuple[int, int]:
    row = health.get_json("/v1/health/accumulators")["accumulators"][0]
    return row["events_total"], row["events_rejected"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=6.0, help="seconds per run")
    parser.add_argument("--repetitions", type=int, default=2)
    parser.add_argument("--output", type=Path, help="write every result as JSON")
    args = parser.parse_args()

    pin(0, 0)
    results = []
    with started_null_sink() as sink:
        pin(sink.pid, 1)
        for repetition in range(args.repetitions):
            for wire in WIRE_FORMATS:
                rate = measure_generator(sink.url, wire, args.duration)
                results.append(("generator", wire, repetition, rate))
                print(f"generator {wire:8s} {rate / 1e6:6.2f} million events/s")
    for repetition in range(args.repetitions):
        for wire in WIRE_FORMATS:
            per_event_us = measure_deliver(wire)
            results.append(("deliver", wire, repetition, per_event_us))
            print(f"deliver   {wire:8s} {per_event_us:6.2f} us per event")
    for repetition in range(args.repetitions):
        for wire in WIRE_FORMATS:
            rate = measure_ingest(wire, args.duration)
            results.append(("ingest", wire, repetition, rate))
            print(f"ingest    {wire:8s} {rate:10,.0f} events/s")
    if args.output is not None:
        rows = [
            {"measure": m, "wire": w, "repetition": r, "value": v}
            for m, w, r, v in results
        ]
        args.output.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
