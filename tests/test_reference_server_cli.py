"""Tests of the command line: keys, configuration errors and signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import websocket
from conftest import ADMIN_TOKEN, start_reference_server, stop_reference_server

from reference_server import cli

EXIT_TIMEOUT_S = 10.0


def run_server_cli(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI for an invocation that must exit on its own."""
    return subprocess.run(
        [sys.executable, "-m", "reference_server", "--port", "0", *args],
        cwd=cwd,
        env=dict(os.environ, **(env or {})),
        capture_output=True,
        text=True,
        timeout=EXIT_TIMEOUT_S,
    )


def test_listening_line_is_only_stdout(tmp_path):
    server = start_reference_server(tmp_path)
    server.process.terminate()
    rest_of_stdout, _ = server.process.communicate(timeout=EXIT_TIMEOUT_S)

    assert server.process.returncode == 0
    assert server.host == "127.0.0.1"
    assert server.port > 0
    assert rest_of_stdout == ""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_with_status_0(tmp_path, signum):
    server = start_reference_server(tmp_path)
    try:
        server.process.send_signal(signum)
        status = server.process.wait(timeout=EXIT_TIMEOUT_S)
    finally:
        stop_reference_server(server.process)

    assert status == 0
    assert "Traceback" not in server.stderr_text()


def test_admin_key_line_masks_env_token(tmp_path):
    server = start_reference_server(tmp_path)
    stop_reference_server(server.process)
    stderr = server.stderr_text()

    assert f"admin key: ****{ADMIN_TOKEN[-4:]} (from $TOKEN)" in stderr
    assert ADMIN_TOKEN not in stderr


def test_token_option_wins_over_env(tmp_path):
    server = start_reference_server(tmp_path, ["--token", "clk_from_option_9876"])
    try:
        ok_status, _ = server.get_json("/v1/health/graphs", "clk_from_option_9876")
        env_status, _ = server.get_json("/v1/health/graphs", ADMIN_TOKEN)
    finally:
        stop_reference_server(server.process)

    assert ok_status == 200
    assert env_status == 401
    assert "****9876 (from --token)" in server.stderr_text()


def test_generated_key_written_0600(tmp_path):
    # An empty $TOKEN counts as unset.
    server = start_reference_server(tmp_path, env={"TOKEN": ""})
    try:
        key_file = tmp_path / ".reference-server-key"
        key = key_file.read_text().strip()
        status, _ = server.get_json("/v1/health/graphs", key)
    finally:
        stop_reference_server(server.process)

    assert key.startswith("clk_")
    assert len(key) == 47
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert status == 200
    stderr = server.stderr_text()
    assert f"****{key[-4:]} (generated, written to .reference-server-key)" in stderr
    assert key not in stderr


def test_bad_config_exits_2(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[[graphs]]\nname = "g"\naccumulators = ["a"]\n')

    result = run_server_cli(["--config", str(config)], tmp_path)

    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(config) in lines[0]
    assert "accumulators" in lines[0]


def test_missing_config_exits_2(tmp_path):
    result = run_server_cli(["--config", "absent.toml"], tmp_path)

    assert result.returncode == 2
    assert "absent.toml: file not found" in result.stderr


def test_port_in_use_exits_1(tmp_path):
    server = start_reference_server(tmp_path)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "reference_server", "--port", str(server.port)],
            cwd=tmp_path,
            env=dict(os.environ, TOKEN=ADMIN_TOKEN),
            capture_output=True,
            text=True,
            timeout=EXIT_TIMEOUT_S,
        )
    finally:
        stop_reference_server(server.process)

    assert result.returncode == 1
    assert "cannot listen on" in result.stderr
    assert result.stdout == ""


def test_sigterm_with_idle_websocket(tmp_path):
    server = start_reference_server(tmp_path)
    # This client never reads, so it never returns the server's close frame.
    ws = websocket.create_connection(
        f"{server.ws_url}/v1/ws/accumulator/orderbook?token={server.token}",
        timeout=5,
    )
    try:
        started_s = time.monotonic()
        server.process.terminate()
        status = server.process.wait(timeout=EXIT_TIMEOUT_S)
        elapsed_s = time.monotonic() - started_s
    finally:
        ws.sock.close()
        stop_reference_server(server.process)

    assert status == 0
    assert elapsed_s < 4.0
    assert "Traceback" not in server.stderr_text()


def test_failed_start_keeps_key_file(tmp_path):
    server = start_reference_server(tmp_path, env={"TOKEN": ""})
    key_file = tmp_path / ".reference-server-key"
    try:
        key = key_file.read_text()
        results = [
            run_server_cli(["--port", str(server.port)], tmp_path, {"TOKEN": ""}),
            run_server_cli(["--port", "-1"], tmp_path, {"TOKEN": ""}),
            run_server_cli(["--port", "70000"], tmp_path, {"TOKEN": ""}),
        ]
        still_valid, _ = server.get_json("/v1/health/graphs", key.strip())
    finally:
        stop_reference_server(server.process)

    assert [result.returncode for result in results] == [1, 2, 2]
    assert key_file.read_text() == key
    assert still_valid == 200
    for result in results:
        assert "written to" not in result.stderr


@pytest.mark.parametrize("port", ["-1", "65536", "70000"])
def test_port_out_of_range_exits_2(tmp_path, port):
    result = run_server_cli(["--port", port], tmp_path)

    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: invalid --port {port}")
    assert "0 to 65535" in lines[0]


def test_unresolvable_host_exits_2(tmp_path, monkeypatch, capsys):
    # Resolution is faked, so no name server is asked.
    def fail(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    monkeypatch.delenv("TOKEN", raising=False)
    key_file = tmp_path / "key"

    status = cli.main(
        ["--host", "no-such-host", "--port", "0", "--key-file", str(key_file)]
    )

    assert status == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: cannot resolve --host 'no-such-host'")
    assert "Name or service not known" in lines[0]
    assert not key_file.exists()


def test_config_not_utf8_exits_2(tmp_path):
    config = tmp_path / "binary.toml"
    config.write_bytes(b'name = "\xff\xfe"\n')

    result = run_server_cli(["--config", str(config)], tmp_path)

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {config}: not UTF-8 text")
    assert "; fix" in lines[0]


def test_help_names_python_module(tmp_path):
    result = run_server_cli(["--help"], tmp_path)

    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m reference_server ")


def test_help_names_calling_command(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["/venv/bin/loadgen", "serve", "--help"])

    status = cli.main(["--help"])

    assert status == 0
    assert capsys.readouterr().out.startswith("usage: loadgen serve ")


def test_help_uses_prog_argument(capsys):
    status = cli.main(["--help"], prog="tool run")

    assert status == 0
    assert capsys.readouterr().out.startswith("usage: tool run ")
