"""What the latency probe costs: CPU share of one core at a 1 ms poll interval.

Run with ``python tests/benchmarks/bench_probe.py``. For a fast graph and for a
graph that takes 50 ms per fire (so the probe polls about 30 times per probe),
it starts the reference server on 127.0.0.1, runs the probe alone for 10
seconds with a 1 ms poll interval and a 100 ms probe interval, and prints the
probe process's CPU time as a share of one core against the 5% target, with
the samples' error bounds, so that a cheaper probe can be seen to be no less
accurate.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from loadgen.detection import choose_detector
from loadgen.feeds import SineFeed
from loadgen.health import HealthClient
from loadgen.probe import LatencyProbe
from loadgen.producer import Producer

TOKEN = "clk_probe_benchmark_key_0000000000000000000"
DURATION_S = 10.0
GRAPH = """
[[accumulators]]
name = "orderbook"
[accumulators.fields]
best_bid = "f64"
best_ask = "f64"
[[graphs]]
name = "price_signal"
accumulators = ["orderbook"]
execution_time_ms = {execution_time_ms}
"""
PREFIX = "reference server listening on "


def start_server(config: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reference_server",
            "--port",
            "0",
            "--config",
            str(config),
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


def polling_probe(url: str) -> tuple[LatencyProbe, Producer, HealthClient]:
    """Return a probe of the tutorial graph that polls every 1 ms, and its clients."""
    producer = Producer(url, "orderbook", TOKEN)
    producer.connect()
    health = HealthClient(url, TOKEN)
    probe = LatencyProbe(
        producer,
        health,
        "price_signal",
        SineFeed(),
        poll_interval_s=0.001,
        probe_interval_s=0.1,
        detector=choose_detector(health, "price_signal", "orderbook"),
    )
    return probe, producer, health


def measure(execution_time_ms: float) -> tuple[float, LatencyProbe]:
    folder = Path(tempfile.mkdtemp(prefix="loadgen-probe-bench-"))
    config = folder / "graph.toml"
    config.write_text(GRAPH.format(execution_time_ms=execution_time_ms))
    server, url = start_server(config)
    try:
        probe, producer, health = polling_probe(url)
        stopper = threading.Timer(DURATION_S, probe.stop)
        me = psutil.Process()
        before = me.cpu_times()
        started = time.perf_counter()
        stopper.start()
        probe.run()
        wall = time.perf_counter() - started
        after = me.cpu_times()
        producer.close()
        health.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
    cpu = (after.user - before.user) + (after.system - before.system)
    return cpu / wall * 100, probe


def main() -> None:
    for execution_time_ms in (0, 50):
        share, probe = measure(execution_time_ms)
        verdict = "meets" if share < 5.0 else "misses"
        bound = probe.error_bound
        print(
            f"graph of {execution_time_ms:>2} ms per fire: probe used {share:5.2f}% of "
            f"a core over {DURATION_S:.0f} s ({probe.sent} probes, "
            f"{probe.histogram.count} samples, error bound p50 "
            f"{bound.value_at_percentile(50) / 1000:.2f} ms, p99 "
            f"{bound.value_at_percentile(99) / 1000:.2f} ms); {verdict} the 5% target"
        )


if __name__ == "__main__":
    main()
