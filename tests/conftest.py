"""Shared fixtures: a reference server subprocess on a free loopback port.

``reference_server`` starts ``python -m reference_server --port 0`` with the
built-in tutorial graph; ``reference_server_factory`` starts one per call, for
example with a TOML configuration. Both stop the process by its PID at teardown.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ADMIN_TOKEN = "clk_test_admin_key_for_reference_server_tests_01"
"""Admin key passed to every server the fixtures start, through $TOKEN."""

LISTENING_PREFIX = "reference server listening on "
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


@dataclass
class RunningServer:
    """A reference server subprocess and how to reach it."""

    process: subprocess.Popen[str]
    host: str
    port: int
    token: str = ADMIN_TOKEN
    stderr_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def get_json(
        self, path: str, token: str | None = None, use_query: bool = False
    ) -> tuple[int, dict]:
        """GET a path with the admin key (or ``token``) and return status and body.

        ``use_query`` sends the key as ``?token=`` instead of a Bearer header;
        an empty ``token`` sends no key at all.
        """
        key = self.token if token is None else token
        url = self.url + path
        headers = {}
        if key and use_query:
            url += ("&" if "?" in url else "?") + f"token={key}"
        elif key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def stderr_text(self) -> str:
        return self.stderr_path.read_text() if self.stderr_path else ""


def start_reference_server(
    tmp_dir: Path,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> RunningServer:
    """Start ``python -m reference_server --port 0`` and wait for its port.

    Args:
        tmp_dir: working directory; receives the server's stderr as server.err.
        args: further command-line arguments, such as ``["--config", path]``.
        env: environment overrides; by default $TOKEN is ``ADMIN_TOKEN``.

    Raises:
        RuntimeError: the server exited or printed no listening line in time.
    """
    process_env = dict(os.environ, TOKEN=ADMIN_TOKEN)
    process_env.update(env or {})
    stderr_path = tmp_dir / "server.err"
    with open(stderr_path, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "reference_server", "--port", "0", *args],
            cwd=tmp_dir,
            env=process_env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    line = _read_line(process, START_TIMEOUT_S)
    if not line.startswith(LISTENING_PREFIX):
        stop_reference_server(process)
        raise RuntimeError(
            f"reference server printed {line!r} instead of the listening line; "
            f"stderr: {stderr_path.read_text()}"
        )
    url = line[len(LISTENING_PREFIX) :].strip()
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return RunningServer(process, host, int(port), stderr_path=stderr_path)


def stop_reference_server(process: subprocess.Popen[str]) -> int | None:
    """Terminate a started server by its PID and return its exit status."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)
    if process.stdout is not None:
        process.stdout.close()
    return process.returncode


def _read_line(process: subprocess.Popen[str], timeout_s: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout_s)
    if not ready:
        return ""
    return process.stdout.readline()


@pytest.fixture
def reference_server_factory(tmp_path: Path) -> Iterator:
    """Return ``start(args=(), env=None, config=None)``, which starts a server.

    ``config`` is a TOML file passed as ``--config``. Every server started is
    stopped at teardown.
    """
    started: list[RunningServer] = []

    def start(
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        config: Path | str | None = None,
    ) -> RunningServer:
        if config is not None:
            args = [*args, "--config", str(config)]
        server = start_reference_server(tmp_path, args, env)
        started.append(server)
        return server

    yield start
    for server in started:
        stop_reference_server(server.process)


@pytest.fixture
def reference_server(reference_server_factory) -> RunningServer:
    """Start a reference server with the built-in tutorial graph."""
    return reference_server_factory()
