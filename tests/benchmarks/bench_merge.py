"""What lossless merging costs a worker: CPU share and bytes per report.

Run with ``python tests/benchmarks/bench_merge.py``. It builds a worker's run
state with the recording rates of a busy worker (a schedule-lag sample per
batch at 1,000 batches a second, 20 probe samples a second, a few new
connections), then times the delta a worker adds to each stats report and the
master's merge of it, at one report a second. The cost is printed as a share
of one core, next to the bytes each report adds.
"""

from __future__ import annotations

import json
import random
import statistics
import time

from loadgen.distributed import ClusterMerger, WorkerShipper
from loadgen.locust_user import LoadgenState
from loadgen.probe import LatencyProbe

BATCHES_PER_S = 1000
PROBES_PER_S = 20
CONNECTS_PER_S = 5
REPORTS = 30


class _Quiet:
    """Just enough of a producer and health client to build a probe."""


def busy_state(rng: random.Random) -> LoadgenState:
    state = LoadgenState()
    state.counters.timeline.start_s = time.perf_counter()
    state.probe = LatencyProbe(_Quiet(), _Quiet(), "price_signal", feed=None)
    return state


def one_second_of_samples(state: LoadgenState, rng: random.Random) -> float:
    """Record one second's samples; return the seconds spent recording."""
    started = time.perf_counter()
    now = time.perf_counter()
    for _ in range(BATCHES_PER_S):
        state.schedule_lag.record_us(rng.expovariate(1 / 300))
        state.counters.record_sent(now, 1000, 64_000, late=rng.randrange(3))
    probe = state.probe
    for _ in range(PROBES_PER_S):
        latency = rng.expovariate(1 / 1500)
        probe.histogram.record_us(latency)
        probe.histogram_from_intended.record_us(latency * 1.1)
        probe.error_bound.record_us(rng.expovariate(1 / 800))
        second = int(now - probe.interval_origin_s)
        probe.intervals.record_us(second, latency)
    for _ in range(CONNECTS_PER_S):
        state.connect_time.record_us(rng.expovariate(1 / 5000))
    return time.perf_counter() - started


def measure(track_deltas: bool) -> dict:
    rng = random.Random(7)
    worker = busy_state(rng)
    shipper = WorkerShipper(worker) if track_deltas else None
    master = LoadgenState()
    merger = ClusterMerger(master)
    record_s, ship_s, merge_s, sizes = [], [], [], []
    for _ in range(REPORTS):
        record_s.append(one_second_of_samples(worker, rng))
        if shipper is None:
            continue
        started = time.perf_counter()
        payload = shipper.payload()
        ship_s.append(time.perf_counter() - started)
        sizes.append(len(json.dumps(payload)))
        started = time.perf_counter()
        merger.merge("worker-1", payload)
        merge_s.append(time.perf_counter() - started)
    result = {"record_s": statistics.median(record_s)}
    if shipper is not None:
        result.update(
            ship_s=statistics.median(ship_s),
            merge_s=statistics.median(merge_s),
            bytes=statistics.median(sizes),
            merged_ok=master.schedule_lag.count == worker.schedule_lag.count,
        )
    return result


def main() -> None:
    plain = measure(track_deltas=False)
    tracked = measure(track_deltas=True)
    extra_recording_s = max(0.0, tracked["record_s"] - plain["record_s"])
    worker_share = (tracked["ship_s"] + extra_recording_s) * 100
    print(f"reports: {REPORTS}, one per second")
    print(f"  building a delta:          {tracked['ship_s'] * 1e3:8.3f} ms per report")
    print(f"  recording into deltas too: {extra_recording_s * 1e3:8.3f} ms per second")
    print(f"  worker CPU share:          {worker_share:8.3f} % of one core")
    print(f"  master merge:              {tracked['merge_s'] * 1e3:8.3f} ms per report")
    print(f"  bytes per report (JSON):   {tracked['bytes']:8,.0f}")
    print(f"  merged counts equal:       {tracked['merged_ok']}")
    verdict = "meets" if worker_share < 2.0 else "misses"
    print(f"  {verdict} the 2% target")


if __name__ == "__main__":
    main()
