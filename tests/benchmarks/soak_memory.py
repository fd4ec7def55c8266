"""Resident memory of the generator and the reference server over a long run.

Run with ``python tests/benchmarks/soak_memory.py [--minutes 10] [--rate 50000]``.
It starts ``loadgen run`` with its embedded reference server at a high rate,
samples the resident memory of both processes every 10 seconds, and prints the
growth from the first minute's sample to the last, against the 50 MB target.
Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

SAMPLE_EVERY_S = 10.0
TARGET_GROWTH_MB = 50.0


def server_child(run: psutil.Process) -> psutil.Process | None:
    for child in run.children(recursive=True):
        if "reference_server" in " ".join(child.cmdline()):
            return child
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=50_000.0)
    options = parser.parse_args()
    duration_s = options.minutes * 60
    report = Path(tempfile.mkdtemp(prefix="loadgen-soak-")) / "soak.json"
    command = [
        sys.executable,
        "-m",
        "loadgen",
        "run",
        "--users",
        "10",
        "--rate",
        str(options.rate),
        "--duration",
        str(duration_s),
        "-o",
        str(report),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    run = psutil.Process(process.pid)
    samples: list[tuple[float, float, float | None]] = []
    started = time.monotonic()
    try:
        while process.poll() is None and time.monotonic() - started < duration_s + 60:
            time.sleep(SAMPLE_EVERY_S)
            server = server_child(run)
            try:
                generator_mb = run.memory_info().rss / 2**20
                server_mb = server.memory_info().rss / 2**20 if server else None
            except psutil.Error:
                break
            if server_mb is None or generator_mb <= 0:
                # The run has ended and its server has stopped.
                break
            samples.append((time.monotonic() - started, generator_mb, server_mb))
            print(
                f"{samples[-1][0]:7.0f} s  generator {generator_mb:8.1f} MB  "
                f"server {server_mb if server_mb is None else round(server_mb, 1)} MB",
                flush=True,
            )
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
    warm = [s for s in samples if s[0] >= 60] or samples
    if len(warm) < 2:
        print("too few samples to judge growth")
        return 1
    first, last = warm[0], warm[-1]
    ok = True
    for index, name in ((1, "generator"), (2, "server")):
        if first[index] is None or last[index] is None:
            print(f"{name}: not sampled")
            continue
        growth = last[index] - first[index]
        verdict = "meets" if growth < TARGET_GROWTH_MB else "misses"
        ok = ok and growth < TARGET_GROWTH_MB
        print(
            f"{name}: {first[index]:.1f} MB at {first[0]:.0f} s, {last[index]:.1f} MB "
            f"at {last[0]:.0f} s, growth {growth:+.1f} MB ({verdict} the "
            f"{TARGET_GROWTH_MB:.0f} MB target)"
        )
    print(f"report: {report}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
