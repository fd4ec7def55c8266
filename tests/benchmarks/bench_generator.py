"""Compare event generators side by side against the null sink on loopback.

Run it from the repository root::

    python tests/benchmarks/bench_generator.py
    python tests/benchmarks/bench_generator.py --duration 5 --repetitions 5

Contenders, each sending orderbook events as masked WebSocket frames on one
connection for ``--duration`` seconds:

- ``batch``: this project's generator, ``loadgen.frames.encode_frames`` and one
  ``sendall`` per batch, paced open-model at a target rate it cannot reach;
- ``locust``: a typical Locust WebSocket user (``locustfile_typical.py``),
  headless with one user; its rate is Locust's own request count per second;
- ``websocket-client``: ``json.dumps`` and ``ws.send`` in a tight loop;
- ``tutorial``: the tutorial's ``AccumulatorClient.send`` in a tight loop;
- ``artillery``: Artillery's WebSocket engine with one virtual user, when
  ``node`` is installed and ``npm install artillery`` works. Artillery
  reports no exact send count, so the sink counts its frames.

Every contender runs as its own process, pinned to one CPU, and the sink to
another CPU when the machine has two. Every repetition runs each contender
once, in turn, so a slow moment of the machine spreads over all of them.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
LOCUSTFILE = HERE / "locustfile_typical.py"
TUTORIAL_CLIENT = ROOT / "tests" / "tutorial_clients" / "persistent_producer.py"
CONTENDERS = ("batch", "locust", "websocket-client", "tutorial", "artillery")
ARTILLERY_PAYLOAD = '{"best_bid": 100.1, "best_ask": 100.15}'
ARTILLERY_FRAME_BYTES = 6 + len(ARTILLERY_PAYLOAD)
"""2-byte header, 4-byte masking key and the payload, which is under 126 bytes."""
PROCESS_TIMEOUT_S = 120.0
ARTILLERY_INSTALL_TIMEOUT_S = 600.0


# Workers: each runs in its own process and prints one JSON line.


def run_worker(name: str, url: str, duration_s: float) -> dict:
    if name == "batch":
        return batch_worker(url, duration_s)
    if name == "websocket-client":
        return websocket_client_worker(url, duration_s)
    if name == "tutorial":
        return tutorial_worker(url, duration_s)
    raise ValueError(f"unknown worker {name!r}")


def batch_worker(url: str, duration_s: float) -> dict:
    from loadgen.calibrate import (
        UNREACHABLE_RATE_PER_S,
        connect_accumulator,
        send_paced_batches,
    )
    from loadgen.feeds import RandomWalkFeed
    from loadgen.pacing import Schedule
    from loadgen.shapes import LoadShape

    ws = connect_accumulator(url)
    shape = LoadShape.constant(UNREACHABLE_RATE_PER_S, duration_s)
    schedule = Schedule(shape, time.perf_counter())
    result = send_paced_batches(ws.sock, RandomWalkFeed(), schedule, duration_s)
    ws.shutdown()
    return {
        "events": result.sent,
        "elapsed_s": result.elapsed_s,
        "bytes": result.bytes_sent,
        "failed": result.failed,
    }


def websocket_client_worker(url: str, duration_s: float) -> dict:
    import websocket

    ws = websocket.create_connection(
        url.replace("http://", "ws://", 1) + "/v1/ws/accumulator/orderbook"
    )
    sent = 0
    started = time.perf_counter()
    deadline = started + duration_s
    while time.perf_counter() < deadline:
        event = {"best_bid": 100.0 + sent % 100 / 100, "best_ask": 100.15}
        ws.send(json.dumps(event), websocket.ABNF.OPCODE_BINARY)
        sent += 1
    elapsed_s = time.perf_counter() - started
    ws.shutdown()
    return {"events": sent, "elapsed_s": elapsed_s}


def tutorial_worker(url: str, duration_s: float) -> dict:
    spec = importlib.util.spec_from_file_location("tutorial", TUTORIAL_CLIENT)
    tutorial = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tutorial)
    host, port = url.removeprefix("http://").rsplit(":", 1)
    client = tutorial.AccumulatorClient(host, int(port), "orderbook", "")

    # The event is computed as the tutorial's main loop does, without its sleep.
    sent = seq = 0
    started = time.perf_counter()
    deadline = started + duration_s
    while time.perf_counter() < deadline:
        mid = 100.0 + math.sin(seq * 0.05) * 0.5
        spread = 0.05 + abs(math.cos(seq * 0.1)) * 0.10
        event = {
            "best_bid": round(mid - spread / 2, 4),
            "best_ask": round(mid + spread / 2, 4),
        }
        if client.send(event):
            sent += 1
        seq += 1
    elapsed_s = time.perf_counter() - started
    client.sock.close()
    return {"events": sent, "elapsed_s": elapsed_s}


# The parent: sink, pinning, repetitions and the table.


def pin_to(cpu: int | None):
    """Return a ``preexec_fn`` that pins the child to ``cpu``, or None."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def choose_cpus() -> tuple[int | None, int | None]:
    """Return (contender CPU, sink CPU), or Nones where pinning is not possible."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None, None
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]


def start_sink(cpu: int | None) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "loadgen.null_sink", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=pin_to(cpu),
    )
    line = process.stdout.readline()
    prefix = "null sink listening on "
    if not line.startswith(prefix):
        stop(process)
        raise SystemExit(f"the null sink printed {line!r} instead of {prefix!r}")
    return process, line[len(prefix) :].strip()


def stop(process: subprocess.Popen, group: bool = False) -> None:
    """Stop a process this script started, by its PID (or its own group)."""
    if process.poll() is None:
        if group:
            os.killpg(process.pid, signal.SIGTERM)
        else:
            process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            if group:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
            process.wait(timeout=10)


def sink_bytes(url: str) -> int:
    with urllib.request.urlopen(url + "/stats", timeout=5) as response:
        return json.loads(response.read())["bytes_received"]


def measure_worker(name: str, url: str, duration_s: float, cpu) -> dict:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        name,
        "--url",
        url,
        "--duration",
        str(duration_s),
    ]
    completed = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=duration_s + PROCESS_TIMEOUT_S,
        preexec_fn=pin_to(cpu),
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"worker {name} failed: {completed.stderr.strip()}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    return {"rate_per_s": result["events"] / result["elapsed_s"], **result}


def measure_locust(url: str, duration_s: float, cpu, work_dir: Path) -> dict:
    prefix = work_dir / "locust"
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "-u",
        "1",
        "-r",
        "1",
        "-t",
        f"{max(1, round(duration_s))}s",
        "--host",
        url,
        "--csv",
        str(prefix),
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    completed = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=duration_s + PROCESS_TIMEOUT_S,
        preexec_fn=pin_to(cpu),
        check=False,
    )
    stats = Path(f"{prefix}_stats.csv")
    if not stats.exists():
        raise RuntimeError(f"locust wrote no stats: {completed.stderr.strip()[-500:]}")
    with stats.open() as file:
        rows = {row["Name"]: row for row in csv.DictReader(file)}
    send = rows["send"]
    return {
        "rate_per_s": float(send["Requests/s"]),
        "events": int(send["Request Count"]),
        "failed": int(send["Failure Count"]),
    }


def install_artillery(work_dir: Path) -> tuple[Path | None, str]:
    """Install Artillery into ``work_dir`` and return its binary or a reason.

    An install already in ``work_dir`` is used as it is.
    """
    binary = work_dir / "node_modules" / ".bin" / "artillery"
    if binary.exists():
        return binary, ""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None, "node or npm is not installed"
    try:
        completed = subprocess.run(
            ["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund"]
            + ["artillery"],
            cwd=work_dir,
            capture_output=True,
            text=True,
            timeout=ARTILLERY_INSTALL_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return (
            None,
            f"npm install artillery timed out after {ARTILLERY_INSTALL_TIMEOUT_S:g} s",
        )
    if completed.returncode != 0 or not binary.exists():
        return None, f"npm install artillery failed: {completed.stderr.strip()[-300:]}"
    return binary, ""


def measure_artillery(
    binary: Path, url: str, duration_s: float, cpu, work_dir: Path
) -> dict:
    """Run one Artillery virtual user and count its frames at the sink.

    Artillery's loop has no time limit, so the user loops far longer than the
    window, and the window starts once the first frames reach the sink.
    """
    config = work_dir / "artillery.json"
    target = url.replace("http://", "ws://", 1) + "/v1/ws/accumulator/orderbook"
    config.write_text(
        json.dumps(
            {
                "config": {
                    "target": target,
                    "phases": [{"duration": 1, "arrivalCount": 1}],
                },
                "scenarios": [
                    {
                        "engine": "ws",
                        "flow": [
                            {
                                "loop": [{"send": ARTILLERY_PAYLOAD}],
                                "count": 100_000_000,
                            }
                        ],
                    }
                ],
            }
        )
    )
    process = subprocess.Popen(
        [str(binary), "run", str(config)],
        cwd=work_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=pin_to(cpu),
        start_new_session=True,
        env=dict(os.environ, ARTILLERY_DISABLE_TELEMETRY="true"),
    )
    try:
        before = sink_bytes(url)
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        while sink_bytes(url) == before:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("artillery sent nothing")
            time.sleep(0.05)
        time.sleep(1.0)
        first, started = sink_bytes(url), time.perf_counter()
        time.sleep(duration_s)
        last, elapsed_s = sink_bytes(url), time.perf_counter() - started
    finally:
        stop(process, group=True)
    events = (last - first) // ARTILLERY_FRAME_BYTES
    return {"rate_per_s": events / elapsed_s, "events": events}


def describe_machine() -> dict:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def print_table(results: dict[str, list[dict]], skipped: dict[str, str]) -> None:
    medians = {
        name: statistics.median(run["rate_per_s"] for run in runs)
        for name, runs in results.items()
        if runs
    }
    baseline = medians.get("locust")
    print()
    print("| contender | median events/s | min | max | runs | vs Locust |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in CONTENDERS:
        if name in skipped:
            print(f"| {name} | skipped: {skipped[name]} | | | | |")
            continue
        if name not in medians:
            continue
        rates = [run["rate_per_s"] for run in results[name]]
        ratio = f"{medians[name] / baseline:.1f}x" if baseline else "n/a"
        print(
            f"| {name} | {medians[name]:,.0f} | {min(rates):,.0f} | "
            f"{max(rates):,.0f} | {len(rates)} | {ratio} |"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--repetitions", type=int, default=3, help="runs per contender")
    parser.add_argument(
        "--only", default=",".join(CONTENDERS), help="comma-separated contenders"
    )
    parser.add_argument(
        "--artillery-dir",
        type=Path,
        help="directory with Artillery installed by npm, or to install it into; "
        "default: a temporary directory",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(run_worker(args.worker, args.url, args.duration)))
        return 0

    chosen = [name for name in args.only.split(",") if name]
    unknown = set(chosen) - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contenders {sorted(unknown)}: use {CONTENDERS}")
    contender_cpu, sink_cpu = choose_cpus()
    machine = describe_machine()
    print(json.dumps(machine))
    print(
        f"pinning: contenders to CPU {contender_cpu}, sink to CPU {sink_cpu}"
        if contender_cpu is not None
        else "pinning: not possible, processes are not pinned"
    )

    results: dict[str, list[dict]] = {name: [] for name in chosen}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-generator-") as temp:
        work_dir = Path(temp)
        artillery = None
        if "artillery" in chosen:
            artillery_dir = args.artillery_dir or work_dir
            artillery_dir.mkdir(parents=True, exist_ok=True)
            artillery, reason = install_artillery(artillery_dir)
            if artillery is None:
                skipped["artillery"] = reason
                print(f"artillery skipped: {reason}")
        sink, url = start_sink(sink_cpu)
        try:
            for repetition in range(1, args.repetitions + 1):
                for name in chosen:
                    if name in skipped:
                        continue
                    before = sink_bytes(url)
                    if name == "locust":
                        run = measure_locust(
                            url, args.duration, contender_cpu, work_dir
                        )
                    elif name == "artillery":
                        run = measure_artillery(
                            artillery, url, args.duration, contender_cpu, work_dir
                        )
                    else:
                        run = measure_worker(name, url, args.duration, contender_cpu)
                    time.sleep(0.5)
                    run["sink_bytes"] = sink_bytes(url) - before
                    results[name].append(run)
                    print(
                        f"run {repetition} {name}: {run['rate_per_s']:,.0f} events/s "
                        f"({run['events']:,} events, sink read "
                        f"{run['sink_bytes'] / 1e6:,.1f} MB)",
                        flush=True,
                    )
        finally:
            stop(sink)
    print_table(results, skipped)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
