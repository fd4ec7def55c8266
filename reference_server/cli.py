"""Command line: ``python -m reference_server [options]``.

On start the server writes exactly one line to stdout,
``reference server listening on http://HOST:PORT``, so a parent process can read
the bound port when it passes ``--port 0``. The admin key line and the logs go
to stderr. SIGINT and SIGTERM stop the server with exit status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence

import uvloop

from .auth import mask_key, resolve_admin_key, write_key_file
from .config import ConfigError, KeyConfig, ServerConfig, default_config, load_config
from .framestep import FRAME_STEPS, FrameStepError
from .profiles import PROFILES, WIRE_FORMATS, Profile, with_wire
from .server import start_server
from .state import DEFAULT_MAX_MESSAGE_BYTES

__all__ = ["LISTENING_PREFIX", "main", "program_name"]

logger = logging.getLogger(__name__)

LISTENING_PREFIX = "reference server listening on "
"""Start of the stdout line that carries the bound URL."""

EXIT_CONFIG_ERROR = 2
EXIT_BIND_ERROR = 1
MAX_PORT = 65535


def build_parser(prog: str = "python -m reference_server") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Reference server for the Cloacina accumulator and reactor "
        "WebSockets and the health endpoints, for load tests and tutorials.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument(
        "--port",
        type=int,
        default=8080,
        help="TCP port to bind, 0 to 65535; 0 picks a free one",
    )
    parser.add_argument(
        "--token",
        help="admin API key; default: $TOKEN, else a generated key",
    )
    parser.add_argument(
        "--config",
        metavar="FILE.toml",
        help="graphs, accumulators and keys; default: the tutorial graph",
    )
    parser.add_argument(
        "--key-file",
        default=".reference-server-key",
        help="file that receives a generated admin key, mode 0600",
    )
    parser.add_argument(
        "--profile",
        default="tutorial",
        choices=sorted(PROFILES),
        help="protocol to serve: the tutorial's description (default) or the "
        "Cloacina server's code",
    )
    parser.add_argument(
        "--wire",
        default="json",
        choices=WIRE_FORMATS,
        help="payload format of accumulator events, tutorial profile only: json "
        "(debug builds, default) or bincode (release builds: the boundary's "
        "fields in declaration order); REST bodies stay JSON",
    )
    parser.add_argument(
        "--ground-truth",
        action="store_true",
        help="record event arrivals and fire times for /_ground_truth/*",
    )
    parser.add_argument(
        "--max-message-bytes",
        type=int,
        default=DEFAULT_MAX_MESSAGE_BYTES,
        help="largest WebSocket message in bytes; larger ones close with 1009 "
        "(default: 64 MiB, as tungstenite)",
    )
    parser.add_argument(
        "--frame-step",
        default="auto",
        choices=FRAME_STEPS,
        help="per-frame step of accumulator connections: compiled (C, built "
        "at install), python (slower, for comparison) or auto (compiled when "
        "it was built, default)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="minimum level of log messages on stderr",
    )
    return parser


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run the server until SIGINT or SIGTERM and return the exit status.

    Args:
        argv: arguments without the program name; default ``sys.argv[1:]``.
        prog: program name in the usage line; default derived from
            ``sys.argv``, see ``program_name``.
    """
    try:
        args = build_parser(prog or program_name(argv)).parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    problem = _check_options(args)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    try:
        profile = with_wire(PROFILES[args.profile], args.wire)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    try:
        config = load_config(args.config) if args.config else default_config()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR

    key, origin = resolve_admin_key(args.token, os.environ)
    admin_key = KeyConfig(key=key, name="admin", tenant=None, admin=True)
    config = dataclasses.replace(config, keys=(*config.keys, admin_key))
    return uvloop.run(_serve(config, args, profile, origin))


def program_name(argv: Sequence[str] | None = None) -> str:
    """Return the program name for the usage line, from ``sys.argv``.

    ``python -m reference_server`` gives that command. A program that passes
    the tail of its own arguments as ``argv``, as ``loadgen serve --help``
    does, gets its own name and the words before that tail: ``loadgen serve``.
    """
    command = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if command in ("", "__main__.py", "-c"):
        return "python -m reference_server"
    words = list(sys.argv[1:])
    tail = list(argv) if argv is not None else words
    if tail and words[-len(tail) :] == tail:
        words = words[: -len(tail)]
    elif tail:
        words = []
    return " ".join([command, *words])


def _check_options(args: argparse.Namespace) -> str | None:
    """Return why the port, host or message limit is invalid, or None."""
    if not 0 <= args.port <= MAX_PORT:
        return f"invalid --port {args.port}; use 0 to {MAX_PORT} (0 picks a free port)"
    if args.max_message_bytes < 1:
        return "--max-message-bytes must be at least 1"
    if args.host:
        # Resolve here, so an unknown name gets one line instead of the
        # event loop's error, and before anything is written.
        try:
            socket.getaddrinfo(
                args.host, args.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        except socket.gaierror as exc:
            return (
                f"cannot resolve --host {args.host!r}: {exc.strerror}; "
                "pass an IP address such as 127.0.0.1 or a resolvable name"
            )
    return None


def _write_admin_key(key: str, origin: str, key_file: str) -> bool:
    """Write a generated admin key to its file and print the masked key line."""
    if origin == "generated":
        try:
            write_key_file(key_file, key)
        except OSError as exc:
            print(
                f"error: cannot write the generated admin key to {key_file}: "
                f"{exc.strerror}; pass --key-file PATH or --token KEY",
                file=sys.stderr,
            )
            return False
        origin = f"generated, written to {key_file}"
    print(f"admin key: {mask_key(key)} ({origin})", file=sys.stderr, flush=True)
    return True


async def _serve(
    config: ServerConfig, args: argparse.Namespace, profile: Profile, origin: str
) -> int:
    host, port = args.host, args.port
    # Install the handlers first: a parent may send SIGTERM as soon as it
    # reads the listening line.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, _request_stop, stop, signum)

    try:
        server = await start_server(
            config,
            host,
            port,
            profile=profile,
            ground_truth=args.ground_truth,
            max_message_bytes=args.max_message_bytes,
            frame_step_choice=args.frame_step,
        )
    except FrameStepError as exc:
        print(f"error: --frame-step compiled: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    except socket.gaierror as exc:
        print(
            f"error: cannot resolve --host {host!r}: {exc.strerror or exc}; "
            "pass an IP address such as 127.0.0.1 or a resolvable name",
            file=sys.stderr,
        )
        return EXIT_CONFIG_ERROR
    except OSError as exc:
        print(
            f"error: cannot listen on {host}:{port}: {exc.strerror or exc}; "
            "choose another --port, or 0 for a free one",
            file=sys.stderr,
        )
        return EXIT_BIND_ERROR

    # Write a generated key only now: a start that fails to bind must not
    # replace the key file of a server already running from this directory.
    admin_key = config.keys[-1].key
    if not _write_admin_key(admin_key, origin, args.key_file):
        await server.stop()
        return EXIT_CONFIG_ERROR
    logger.info("accumulator events are read as %s (--wire)", profile.wire)
    print(f"{LISTENING_PREFIX}{server.url}", flush=True)

    await stop.wait()
    await server.stop()
    return 0


def _request_stop(stop: asyncio.Event, signum: int) -> None:
    logger.info("received %s, stopping", signal.Signals(signum).name)
    stop.set()
