"""Compare event generators side by side against the null sink on loopback.

Run it from the repository root::

    python tests/benchmarks/bench_generator.py
    python tests/benchmarks/bench_generator.py --duration 5 --repetitions 5

Contenders, each sending orderbook events as masked WebSocket frames on one
connection for ``--duration`` seconds:

- ``loadgen-locust``: this project's Locust user, ``locustfiles/orderbook.py``
  run by the ``locust`` command with one user in batch mode, paced open-model
  at a target rate it cannot reach (``loadgen.calibrate.run_locust_user``, the
  same run as ``loadgen calibrate``). Its send count comes from the
  locustfile's accounting line and is checked against the sink's byte count.
  The ratios compare this row with the others;
- ``raw-loop``: this project's sending loop without Locust,
  ``loadgen.calibrate.send_paced_batches``, with the Locust user's feed, tags
  and decimals, so that the two rows differ by what Locust costs;
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

Then, in the same run, ``server_ingest.py`` measures the reference server's
ingest rate ``--repetitions`` times in both of its shapes, back to back on one
connection and one frame per TCP segment, against the server targets
(``--no-server`` skips it).
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
CONTENDERS = {
    "loadgen-locust": "loadgen Locust user (batch)",
    "raw-loop": "loadgen raw batch loop, no Locust",
    "locust": "typical Locust user",
    "websocket-client": "websocket-client loop",
    "tutorial": "tutorial producer",
    "artillery": "Artillery",
}
"""Contender name on the command line, and its label in the table."""
COMPARED = "loadgen-locust"
"""The contender whose ratios to the others are the result."""
TARGET_RATE_PER_S = 1_000_000
TARGET_VS_LOCUST = 20.0
TARGET_VS_ARTILLERY = 10.0
ARTILLERY_PAYLOAD = '{"best_bid": 100.1, "best_ask": 100.15}'
ARTILLERY_FRAME_BYTES = 6 + len(ARTILLERY_PAYLOAD)
"""2-byte header, 4-byte masking key and the payload, which is under 126 bytes."""
PROCESS_TIMEOUT_S = 120.0
ARTILLERY_INSTALL_TIMEOUT_S = 600.0


# Workers: each runs in its own process and prints one JSON line.


def run_worker(name: str, url: str, duration_s: float) -> dict:
    if name == "raw-loop":
        return raw_loop_worker(url, duration_s)
    if name == "websocket-client":
        return websocket_client_worker(url, duration_s)
    if name == "tutorial":
        return tutorial_worker(url, duration_s)
    raise ValueError(f"unknown worker {name!r}")


def raw_loop_worker(url: str, duration_s: float) -> dict:
    from loadgen.calibrate import (
        UNREACHABLE_RATE_PER_S,
        connect_accumulator,
        send_paced_batches,
    )
    from loadgen.feeds import SineFeed
    from loadgen.pacing import Schedule
    from loadgen.shapes import LoadShape

    ws = connect_accumulator(url)
    shape = LoadShape.constant(UNREACHABLE_RATE_PER_S, duration_s)
    schedule = Schedule(shape, time.perf_counter())
    result = send_paced_batches(ws.sock, SineFeed(), schedule, duration_s, tagged=True)
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


def measure_loadgen_locust(url: str, duration_s: float, rate_per_s: float, cpu):
    """Run the project's locustfile with one user in batch mode, flat out."""
    from loadgen.calibrate import run_locust_user

    run = run_locust_user(url, duration_s, rate_per_s, cpu=cpu)
    if not run.flat_out:
        print(
            f"warning: the Locust user reached {run.rate_per_s:,.0f} of its "
            f"{rate_per_s:,.0f} events/s target, so it may have been paced: "
            "raise --rate-per-user",
            flush=True,
        )
    if run.sink_events != run.sent:
        print(
            f"warning: the locustfile logged {run.sent:,} events sent, but the "
            f"sink read {run.sink_bytes:,} bytes, {run.sink_events:,} events",
            flush=True,
        )
    return {
        "rate_per_s": run.rate_per_s,
        "events": run.sent,
        "failed": run.failed,
        "elapsed_s": run.elapsed_s,
        "run_time_s": run.run_time_s,
        "wall_s": run.wall_s,
        "bytes": run.bytes_sent,
        "sink_events": run.sink_events,
        "flat_out": run.flat_out,
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


def ratio_text(numerator: float | None, denominator: float | None) -> str:
    if not numerator or not denominator:
        return "n/a"
    return f"{numerator / denominator:.1f}x"


def print_table(results: dict[str, list[dict]], skipped: dict[str, str]) -> None:
    """Print the Markdown table and the comparison of ``COMPARED`` with the targets.

    The ratio columns divide each row's median by the median of the typical
    Locust user and of Artillery.
    """
    medians = {
        name: statistics.median(run["rate_per_s"] for run in runs)
        for name, runs in results.items()
        if runs
    }
    locust, artillery = medians.get("locust"), medians.get("artillery")
    print()
    print(
        "| contender | median events/s | min | max | runs "
        "| vs typical Locust | vs Artillery |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, label in CONTENDERS.items():
        if name in skipped:
            print(f"| {label} | skipped: {skipped[name]} | | | | | |")
            continue
        if name not in medians:
            continue
        rates = [run["rate_per_s"] for run in results[name]]
        print(
            f"| {label} | {medians[name]:,.0f} | {min(rates):,.0f} | "
            f"{max(rates):,.0f} | {len(rates)} | "
            f"{ratio_text(medians[name], locust)} | "
            f"{ratio_text(medians[name], artillery)} |"
        )

    compared = medians.get(COMPARED)
    if compared is None:
        return
    print()
    print(f"Targets, on the median of the {CONTENDERS[COMPARED]}:")
    checks = [
        (f"at least {TARGET_RATE_PER_S:,} events/s", compared, TARGET_RATE_PER_S),
        (
            f"at least {TARGET_VS_LOCUST:g}x the typical Locust user",
            compared / locust if locust else None,
            TARGET_VS_LOCUST,
        ),
        (
            f"at least {TARGET_VS_ARTILLERY:g}x Artillery",
            compared / artillery if artillery else None,
            TARGET_VS_ARTILLERY,
        ),
    ]
    for text, value, target in checks:
        if value is None:
            print(f"- {text}: not measured")
            continue
        formatted = f"{value:,.0f} events/s" if target > 1000 else f"{value:.1f}x"
        print(f"- {text}: {formatted}, {'met' if value >= target else 'NOT met'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--repetitions", type=int, default=3, help="runs per contender")
    parser.add_argument(
        "--only",
        default=",".join(CONTENDERS),
        help=f"comma-separated contenders, from {', '.join(CONTENDERS)}",
    )
    parser.add_argument(
        "--rate-per-user",
        type=float,
        default=None,
        help="target rate of the loadgen Locust user in events/s; default "
        "loadgen.calibrate.FLAT_OUT_RATE_PER_S, above what it can reach",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="also write the machine, the load averages and every run as JSON",
    )
    parser.add_argument(
        "--artillery-dir",
        type=Path,
        help="directory with Artillery installed by npm, or to install it into; "
        "default: a temporary directory",
    )
    parser.add_argument(
        "--no-server",
        action="store_true",
        help="skip the reference server's ingest measurement",
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
        parser.error(
            f"unknown contenders {sorted(unknown)}: use {', '.join(CONTENDERS)}"
        )
    if args.rate_per_user is None:
        from loadgen.calibrate import FLAT_OUT_RATE_PER_S

        args.rate_per_user = FLAT_OUT_RATE_PER_S
    contender_cpu, sink_cpu = choose_cpus()
    machine = describe_machine()
    print(json.dumps(machine))
    load_before = os.getloadavg()
    print(f"load average before: {format_load(load_before)}", flush=True)
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
                    if name == COMPARED:
                        run = measure_loadgen_locust(
                            url, args.duration, args.rate_per_user, contender_cpu
                        )
                    elif name == "locust":
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
                    print(f"run {repetition} {name}: {describe_run(run)}", flush=True)
        finally:
            stop(sink)
    server_runs = [] if args.no_server else measure_server(args.repetitions)
    load_after = os.getloadavg()
    print(f"load average after: {format_load(load_after)}")
    print_table(results, skipped)
    print_server_table(server_runs)
    if args.output is not None:
        record = {
            "machine": machine,
            "duration_s": args.duration,
            "rate_per_user": args.rate_per_user,
            "load_average_before": load_before,
            "load_average_after": load_after,
            "skipped": skipped,
            "runs": results,
            "server_runs": server_runs,
        }
        args.output.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return 0


SERVER_TARGETS = {"back_to_back": 1_000_000, "one_per_segment": 150_000}
"""Reference server ingest targets in events/s, per shape."""
SERVER_SHAPES = {
    "back_to_back": "back to back, 1 connection",
    "one_per_segment": "one frame per segment, 64 connections",
}


def measure_server(repetitions: int, duration_s: float = 5.0) -> list[dict]:
    """Measure the reference server's ingest in both shapes, ``repetitions`` times.

    Each repetition starts its own server, pinned to CPU 0 when ``taskset``
    exists, as ``server_ingest.py`` does.
    """
    sys.path.insert(0, str(HERE))
    import server_ingest

    runs = []
    for repetition in range(1, repetitions + 1):
        process, port = server_ingest.start_server("tutorial", 0)
        try:
            step = server_ingest.stats(port)["frame_step"]
            print(f"run {repetition} server frame step: {step}", flush=True)
            shapes = {
                "back_to_back": server_ingest.back_to_back(port, 0),
                "one_per_segment": server_ingest.one_per_segment(port, 64, 2),
            }
            for shape, send in shapes.items():
                rate, cpu = server_ingest.measure(port, send, duration_s)
                run = {"shape": shape, "rate_per_s": rate, "server_cpu": cpu}
                runs.append(run)
                print(
                    f"run {repetition} server {shape}: "
                    f"{server_ingest.describe(rate, cpu)}",
                    flush=True,
                )
        finally:
            process.terminate()
            process.wait(timeout=10)
    return runs


def print_server_table(runs: list[dict]) -> None:
    """Print the server ingest table and whether each median meets its target."""
    if not runs:
        return
    print()
    print("| reference server ingest | median events/s | min | max | runs | target |")
    print("|---|---:|---:|---:|---:|---|")
    for shape, label in SERVER_SHAPES.items():
        rates = [run["rate_per_s"] for run in runs if run["shape"] == shape]
        if not rates:
            continue
        median = statistics.median(rates)
        target = SERVER_TARGETS[shape]
        verdict = "met" if median >= target else "NOT met"
        print(
            f"| {label} | {median:,.0f} | {min(rates):,.0f} | {max(rates):,.0f} "
            f"| {len(rates)} | {target:,}: {verdict} |"
        )


def describe_run(run: dict) -> str:
    text = (
        f"{run['rate_per_s']:,.0f} events/s ({run['events']:,} events, "
        f"sink read {run['sink_bytes'] / 1e6:,.1f} MB"
    )
    if "sink_events" in run:
        text += (
            f", {run['sink_events']:,} events by its byte count; sent for "
            f"{run['elapsed_s']:.1f} s of a {run['run_time_s']} s run"
        )
    return text + ")"


def format_load(load: tuple[float, float, float]) -> str:
    return f"{load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} (1, 5 and 15 minutes)"


if __name__ == "__main__":
    raise SystemExit(main())
