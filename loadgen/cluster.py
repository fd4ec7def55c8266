"""Locust master and workers for ``loadgen run --processes`` and ``--master``.

The workers are ordinary Locust worker processes running this package's Locust
user module, so ``loadgen worker`` on another machine and the local workers of
``--processes`` behave the same way.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loadgen.errors import ConnectionProblem

__all__ = ["LocalWorkers", "free_port", "wait_for_workers", "worker_command"]

LOCUSTFILE = Path(__file__).resolve().parent / "locust_user.py"
"""The Locust user module, used as the locustfile of every worker."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def worker_command(master_host: str, master_port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--worker",
        "--master-host",
        master_host,
        "--master-port",
        str(master_port),
    ]


class LocalWorkers:
    """Worker processes on this machine, stopped by their PIDs."""

    def __init__(self, count: int, master_port: int) -> None:
        self._log = tempfile.NamedTemporaryFile(
            prefix="loadgen-workers-", suffix=".log", delete=False
        )
        self.processes = [
            subprocess.Popen(
                worker_command("127.0.0.1", master_port),
                stdout=self._log,
                stderr=self._log,
                env=dict(os.environ, PYTHONUNBUFFERED="1"),
            )
            for _ in range(count)
        ]

    @property
    def log_path(self) -> str:
        return self._log.name

    def stop(self, timeout_s: float = 15.0) -> None:
        """Wait for the workers to quit after the master's quit; end stragglers."""
        deadline = time.monotonic() + timeout_s
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self._log.close()


def wait_for_workers(runner, count: int, timeout_s: float, progress, gevent) -> None:
    """Wait until ``count`` workers are ready.

    Raises:
        ConnectionProblem: fewer workers connected within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    announced = -1
    while len(runner.clients.ready) < count:
        ready = len(runner.clients.ready)
        if ready != announced:
            print(f"waiting for workers: {ready} of {count} connected", file=progress)
            announced = ready
        if time.monotonic() >= deadline:
            raise ConnectionProblem(
                f"only {ready} of {count} workers connected within {timeout_s:g} s: "
                "start them with loadgen worker --master-host HOST, or check that "
                "the master port is reachable",
                kind="workers_missing",
            )
        gevent.sleep(0.1)
