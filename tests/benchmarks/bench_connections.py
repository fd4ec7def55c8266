"""How many persistent producer connections one worker process holds.

Run with ``python tests/benchmarks/bench_connections.py [--idle 10000]
[--active 2000]``. It starts the reference server on 127.0.0.1, then one Locust
process (the locustfile, headless) with ``--idle`` users that send one event a
minute and, separately, one with ``--active`` users that send 10 events a
second each, and reports how many connections each held, their set-up time
percentiles, and the events sent against what the server accepted.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

TOKEN = "clk_connection_benchmark_key_00000000000000000"
PREFIX = "reference server listening on "
LOCUSTFILE = Path(__file__).resolve().parents[2] / "locustfiles" / "orderbook.py"


def start_server() -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reference_server",
            "--port",
            "0",
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, TOKEN=TOKEN),
        text=True,
    )
    for line in process.stdout:
        if line.startswith(PREFIX):
            return process, line[len(PREFIX) :].strip()
    raise RuntimeError("the reference server did not start")


def open_connections(server: psutil.Process, port: int) -> int:
    return sum(
        1
        for connection in server.net_connections(kind="tcp")
        if connection.laddr
        and connection.laddr.port == port
        and connection.status == psutil.CONN_ESTABLISHED
    )


def run_locust(url: str, users: int, rate_per_user: float, seconds: int, server):
    port = int(url.rsplit(":", 1)[1])
    spawn_rate = min(users, 500)
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(spawn_rate),
        "-t",
        f"{seconds}s",
        "--host",
        url,
        "--rate-per-user",
        str(rate_per_user),
        "--no-probe",
        "--send-mode",
        "batch",
        "--only-summary",
        "--stop-timeout",
        "5",
    ]
    log = tempfile.NamedTemporaryFile(prefix="bench-connections-", delete=False)
    process = subprocess.Popen(
        command, stdout=log, stderr=log, env=dict(os.environ, TOKEN=TOKEN)
    )
    peak = 0
    started = time.monotonic()
    while process.poll() is None and time.monotonic() - started < seconds + 120:
        peak = max(peak, open_connections(server, port))
        time.sleep(1)
    process.wait(timeout=60)
    output = Path(log.name).read_text()
    connects = re.search(r"WS\s+connect\s+(\d+)\s+(\d+)\(", output)
    sent = re.search(r"sent (\d+) events \((\d+) failed\).*accepted (\S+)", output)
    return {
        "peak_connections": peak,
        "connects": int(connects.group(1)) if connects else None,
        "connect_failures": int(connects.group(2)) if connects else None,
        "sent": int(sent.group(1)) if sent else None,
        "failed": int(sent.group(2)) if sent else None,
        "server_accepted": sent.group(3) if sent else None,
        "exit_code": process.returncode,
        "log": log.name,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=10_000)
    parser.add_argument("--active", type=int, default=2_000)
    parser.add_argument("--seconds", type=int, default=60)
    options = parser.parse_args()
    server_process, url = start_server()
    server = psutil.Process(server_process.pid)
    try:
        for label, users, rate in (
            ("idle", options.idle, 1 / 60),
            ("active", options.active, 10.0),
        ):
            result = run_locust(url, users, rate, options.seconds, server)
            print(f"{label}: {users:,} users at {rate:g} events/s each: {result}")
    finally:
        server_process.terminate()
        server_process.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
