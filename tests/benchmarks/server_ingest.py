"""Ingest benchmark of the reference server; run on demand, not by pytest.

    /work/venv/bin/python tests/benchmarks/server_ingest.py [--profile cloacina]
        [--frame-step python]

Starts the server with ``taskset`` on one core (when available), then measures
events per second accepted by the server (from ``/_loadgen/stats``) in two
shapes: frames written back to back on one connection, and one frame per TCP
segment from many connections. Each event is a tutorial order book; the
server decodes and validates it (tutorial profile), updates the reactor and
fires the graph inline.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

TOKEN = "clk_benchmark_admin_key_000000000000000000000000"
EVENT = b'{"best_bid": 100.1, "best_ask": 100.15}'


def masked_frame(payload: bytes) -> bytes:
    # A zero mask leaves the payload unchanged, which is valid and cheap.
    return struct.pack("!BB", 0x82, 0x80 | len(payload)) + b"\0\0\0\0" + payload


def start_server(
    profile: str, core: int, frame_step: str = "auto"
) -> tuple[subprocess.Popen, int]:
    command = [sys.executable, "-m", "reference_server", "--port", "0"]
    command += ["--profile", profile, "--log-level", "WARNING"]
    command += ["--frame-step", frame_step]
    if shutil.which("taskset"):
        command = ["taskset", "-c", str(core), *command]
    process = subprocess.Popen(
        command,
        env=dict(os.environ, TOKEN=TOKEN),
        stdout=subprocess.PIPE,
        text=True,
        cwd=tempfile.mkdtemp(),
    )
    line = process.stdout.readline()
    return process, int(line.rsplit(":", 1)[1])


def stats(port: int) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/_loadgen/stats",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def open_ws(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            "GET /v1/ws/accumulator/orderbook HTTP/1.1\r\nHost: x\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {TOKEN}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def measure(port: int, send, duration_s: float) -> tuple[float, float]:
    """Run ``send(stop_event)`` and return accepted events/s and server CPU/s."""
    before = stats(port)
    started = time.perf_counter()
    stop = threading.Event()
    send(stop, duration_s)
    # Wait until the server has processed what is buffered; the run ends at
    # the first poll that saw the final count.
    total = stats(port)["events_total"]
    finished = time.perf_counter()
    while True:
        time.sleep(0.02)
        latest = stats(port)["events_total"]
        if latest == total:
            break
        total = latest
        finished = time.perf_counter()
    elapsed = finished - started
    after = stats(port)
    events = after["events_total"] - before["events_total"]
    cpu = after["cpu_seconds"] - before["cpu_seconds"]
    return events / elapsed, cpu / elapsed


def back_to_back(port: int, server_core: int):
    sock = open_ws(port)
    batch = masked_frame(EVENT) * 4096

    def send(stop, duration_s):
        # Keep the sender off the server's core, as loadgen calibrate does.
        others = os.sched_getaffinity(0) - {server_core}
        previous = os.sched_getaffinity(0)
        if others:
            os.sched_setaffinity(0, others)
        try:
            deadline = time.perf_counter() + duration_s
            while time.perf_counter() < deadline:
                sock.sendall(batch)
        finally:
            os.sched_setaffinity(0, previous)

    return send


def _send_one_per_segment(port: int, connections: int, deadline: float) -> None:
    # A sender process: one frame per send() on each connection in turn.
    socks = [open_ws(port) for _ in range(connections)]
    for sock in socks:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    frame = masked_frame(EVENT)
    while time.time() < deadline:
        for sock in socks:
            sock.send(frame)
    for sock in socks:
        sock.close()


def one_per_segment(port: int, connections: int, senders: int):
    """Return a sender of one frame per TCP segment from ``senders`` processes.

    One Python process makes about 150,000 send() calls a second on this
    machine class, so several processes share the connections.
    """

    def send(stop, duration_s):
        deadline = time.time() + duration_s
        share = max(1, connections // senders)
        processes = [
            multiprocessing.Process(
                target=_send_one_per_segment, args=(port, share, deadline)
            )
            for _ in range(senders)
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join()

    return send


def describe(rate: float, cpu: float) -> str:
    # Events per server CPU second stays comparable when other processes
    # share the core and the server gets less than a whole one.
    per_cpu = rate / cpu if cpu > 0 else 0.0
    return (
        f"{rate:,.0f} events/s, server CPU {cpu:.2f}, "
        f"{per_cpu:,.0f} events per server CPU second"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--profile", default="tutorial", choices=["tutorial", "cloacina"]
    )
    parser.add_argument("--duration-s", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--senders",
        type=int,
        default=2,
        help="processes sending one frame per segment (default 2)",
    )
    parser.add_argument("--core", type=int, default=0, help="CPU core for the server")
    parser.add_argument(
        "--frame-step",
        default="auto",
        choices=["auto", "compiled", "python"],
        help="the server's --frame-step (default auto)",
    )
    args = parser.parse_args()

    process, port = start_server(args.profile, args.core, args.frame_step)
    try:
        print(f"server frame step: {stats(port)['frame_step']}")
        rate, cpu = measure(port, back_to_back(port, args.core), args.duration_s)
        print(f"back to back, 1 connection: {describe(rate, cpu)}")
        sender = one_per_segment(port, args.connections, args.senders)
        rate, cpu = measure(port, sender, args.duration_s)
        print(
            f"one frame per segment, {args.connections} connections, "
            f"{args.senders} sender processes: "
            f"{describe(rate, cpu)}"
        )
    finally:
        process.terminate()
        process.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
