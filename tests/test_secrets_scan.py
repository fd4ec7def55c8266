"""Every command run with a known key: the key appears in no output or file."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import start_reference_server, stop_reference_server

pytestmark = pytest.mark.slow

KEY = "clk_secret_scan_key_MUST_NOT_APPEAR_7f3a9c"
LOCUSTFILE = Path(__file__).resolve().parent.parent / "locustfiles" / "orderbook.py"


def run(command, cwd, env_key=True, timeout=120):
    env = dict(os.environ)
    env.pop("TOKEN", None)
    if env_key:
        env["TOKEN"] = KEY
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    return result.stdout + result.stderr


def files_containing_key(root: Path) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and KEY.encode() in path.read_bytes():
            found.append(path)
    return found


def test_no_command_leaks_the_key(tmp_path):
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    server = start_reference_server(server_dir, ["--token", KEY], env={"TOKEN": KEY})
    loadgen = [sys.executable, "-m", "loadgen"]
    outputs = []
    try:
        short = ["--duration", "2", "--users", "2", "--rate", "100"]
        outputs.append(
            run(
                [*loadgen, "run", "--token", KEY, *short, "-o", "a.json"],
                tmp_path,
                env_key=False,
            )
        )
        outputs.append(
            run(
                [*loadgen, "run", "--host", server.url, *short, "-o", "b.json"],
                tmp_path,
            )
        )
        outputs.append(
            run(
                [
                    *loadgen,
                    "run",
                    "--host",
                    server.url,
                    "--auth",
                    "query",
                    *short,
                    "-o",
                    "c.json",
                ],
                tmp_path,
            )
        )
        outputs.append(
            run(
                [
                    *loadgen,
                    "run",
                    "--host",
                    server.url,
                    "--auth",
                    "query",
                    "--accumulator",
                    "nope",
                    *short,
                ],
                tmp_path,
            )
        )
        outputs.append(
            run(
                [
                    *loadgen,
                    "run",
                    "--host",
                    server.url,
                    "--token",
                    KEY + "x",
                    "--auth",
                    "query",
                    *short,
                ],
                tmp_path,
            )
        )
        outputs.append(
            run(
                [
                    sys.executable,
                    "-m",
                    "locust",
                    "-f",
                    str(LOCUSTFILE),
                    "--headless",
                    "-u",
                    "2",
                    "-r",
                    "2",
                    "-t",
                    "2s",
                    "--host",
                    server.url,
                    "--token",
                    KEY,
                    "--csv",
                    "locust",
                    "--html",
                    "locust.html",
                    "--logfile",
                    "locust.log",
                ],
                tmp_path,
                env_key=False,
            )
        )
        outputs.append(
            run(
                [
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
                    "2s",
                    "--host",
                    server.url,
                    "--auth",
                    "query",
                    "--accumulator",
                    "nope",
                ],
                tmp_path,
            )
        )
        for report_format in ("text", "markdown", "html"):
            outputs.append(
                run(
                    [
                        *loadgen,
                        "report",
                        "b.json",
                        "--format",
                        report_format,
                        "-o",
                        f"b.{report_format}",
                    ],
                    tmp_path,
                )
            )
        outputs.append(run([*loadgen, "compare", "a.json", "b.json"], tmp_path))
    finally:
        stop_reference_server(server.process)
    assert (tmp_path / "b.json").exists()
    assert (tmp_path / "b.html").exists()
    assert (tmp_path / "locust.html").exists()
    assert "p99" in outputs[-1]
    for number, output in enumerate(outputs):
        assert KEY not in output, f"command {number} printed the key"
    assert files_containing_key(tmp_path) == []
    assert KEY not in server.stderr_text()
