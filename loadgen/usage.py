"""CPU use of the generator process and, when it runs here, the server process."""

from __future__ import annotations

import time

import psutil

__all__ = ["ProcessUsage"]


class ProcessUsage:
    """CPU seconds used between construction and ``stop``, as a share of one core.

    Args:
        server_pid: the embedded reference server's process id, or None.
        worker_pids: local Locust worker processes; their CPU use counts as
            the generator's.
    """

    def __init__(
        self, server_pid: int | None = None, worker_pids: tuple | list = ()
    ) -> None:
        self._processes = {"generator": psutil.Process()}
        for number, pid in enumerate(worker_pids):
            try:
                self._processes[f"worker {number}"] = psutil.Process(pid)
            except psutil.Error:
                pass
        if server_pid is not None:
            try:
                self._processes["server"] = psutil.Process(server_pid)
            except psutil.Error:
                pass
        self._started = time.perf_counter()
        self._cpu_start = {name: self._cpu(p) for name, p in self._processes.items()}
        self.percent: dict[str, float | None] = {}
        """CPU use in percent of one core, by process role, after ``stop``."""

    def stop(self) -> None:
        wall = max(time.perf_counter() - self._started, 1e-9)
        for name, process in self._processes.items():
            used = self._cpu(process)
            start = self._cpu_start[name]
            if used is None or start is None:
                self.percent[name] = None
            else:
                self.percent[name] = round((used - start) / wall * 100, 1)
        workers = [v for k, v in self.percent.items() if k.startswith("worker ")]
        if workers and None not in workers:
            # Local workers generate the load; the master only coordinates.
            self.percent["generator"] = round(
                sum(workers) + (self.percent["generator"] or 0.0), 1
            )

    @staticmethod
    def _cpu(process: psutil.Process) -> float | None:
        try:
            times = process.cpu_times()
        except psutil.Error:
            return None
        return times.user + times.system
