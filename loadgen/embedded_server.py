"""The reference server started as a child process for ``loadgen run``.

It runs in its own process rather than a thread: Locust's gevent patches
threading in this process, and a shared GIL would let the generator slow the
server it measures.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time

from loadgen.errors import ConnectionProblem, UsageProblem

__all__ = ["EmbeddedServer"]

READY_PREFIX = "reference server listening on "
PR_SET_PDEATHSIG = 1
START_TIMEOUT_S = 20.0


def _stop_with_parent() -> None:
    """Ask Linux to send the server SIGTERM when loadgen dies, however it dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        # NOTE: without prctl (not Linux), a loadgen killed by SIGKILL leaves
        # the server running.
        pass


class EmbeddedServer:
    """A reference server on a free loopback port with a fresh admin key."""

    def __init__(self, extra_args: tuple[str, ...] = ()) -> None:
        self.token = "clk_" + secrets.token_urlsafe(32)
        self.base_url = ""
        self._extra_args = extra_args
        self._process: subprocess.Popen | None = None
        self._log = tempfile.NamedTemporaryFile(
            prefix="loadgen-reference-server-", suffix=".log", delete=False
        )

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def log_path(self) -> str:
        return self._log.name

    def start(self) -> str:
        """Start the server and return its base URL once it listens.

        Raises:
            ConnectionProblem: the server exited or did not listen in time.
        """
        env = dict(os.environ, TOKEN=self.token, PYTHONUNBUFFERED="1")
        command = [
            sys.executable,
            "-m",
            "reference_server",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            *self._extra_args,
        ]
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            text=True,
            preexec_fn=_stop_with_parent,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            line = self._process.stdout.readline()
            if not line:
                break
            if line.startswith(READY_PREFIX):
                self.base_url = line[len(READY_PREFIX) :].strip()
                return self.base_url
        try:
            code = self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        reason = self._last_log_line().removeprefix("error: ")
        self.stop()
        if code == 2:
            # The server exits 2 for an unusable configuration or option.
            raise UsageProblem(f"the reference server rejected its options: {reason}")
        raise ConnectionProblem(
            f"the embedded reference server did not start: {reason} "
            f"(full log: {self.log_path})",
            kind="server_start",
        )

    def _last_log_line(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            lines = [line.strip() for line in log if line.strip()]
        return lines[-1] if lines else "it printed nothing"

    def stop(self) -> None:
        """Stop the server with SIGTERM, then SIGKILL after 5 s."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._process = None
        self._log.close()
