"""The ``loadgen`` command line."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import click

from loadgen import __version__
from loadgen.encoding import WIRE_FORMATS
from loadgen.errors import LoadgenError, UsageProblem
from loadgen.feeds import FEED_NAMES
from loadgen.producer import AUTH_MODES, FRAME_TYPES
from loadgen.stop_signals import Terminated, note_termination

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="loadgen")
def main() -> None:
    """Load generator and send-to-fire latency benchmark for Cloacina graphs."""


@main.command()
@click.option(
    "--host",
    default=None,
    help="Base URL of a Cloacina server, e.g. http://127.0.0.1:8080 "
    "[default: start the reference server on a free loopback port]",
)
@click.option(
    "--token",
    default=lambda: os.environ.get("TOKEN", ""),
    show_default="$TOKEN",
    help="API key; with no --host a fresh key is generated when none is given.",
)
@click.option("--users", default=10, show_default=True, help="Producer connections.")
@click.option(
    "--rate",
    type=float,
    default=None,
    help="Total target send rate in events per second, split evenly across "
    "users [default: 1000].",
)
@click.option(
    "--duration",
    type=float,
    default=None,
    help="Length of the load in seconds [default: 10].",
)
@click.option(
    "--shape",
    default=None,
    help="Target rate over time instead of --rate and --duration: stages "
    "DURATION@RATE or DURATION@FROM..TO, e.g. 10s@100,10s@100..2000,5s@200, or "
    "@FILE for a JSON or TOML file with a stages list.",
)
@click.option("--accumulator", default="orderbook", show_default=True)
@click.option(
    "--graph",
    default="price_signal",
    show_default=True,
    help="Graph whose fire count is polled.",
)
@click.option(
    "--feed",
    default="sine",
    show_default=True,
    help=f"Event source: {', '.join(FEED_NAMES)} (CSV or JSON Lines).",
)
@click.option(
    "--auth",
    type=click.Choice(AUTH_MODES),
    default="header",
    show_default=True,
    help="Send the key as Authorization: Bearer (header), as ?token= (query), "
    "or fetch a single-use ticket per connection (ticket).",
)
@click.option(
    "--frame", type=click.Choice(FRAME_TYPES), default="binary", show_default=True
)
@click.option(
    "--wire",
    type=click.Choice(WIRE_FORMATS),
    default="json",
    show_default=True,
    help="Event payload format: json (the tutorial's debug builds) or bincode "
    "(release builds). The embedded reference server reads the same format; "
    "a server at --host must too (reference server: --wire bincode).",
)
@click.option(
    "--poll-interval-ms",
    default=2.0,
    show_default=True,
    help="Pause between fire-count polls in ms; it is the latency resolution.",
)
@click.option(
    "--probe-interval-ms",
    default=100.0,
    show_default=True,
    help="Pause between latency probes in ms.",
)
@click.option(
    "--send-mode",
    type=click.Choice(["batch", "event"]),
    default="batch",
    show_default=True,
    help="batch writes all due events as pre-built frames in one send; event "
    "sends one frame per event, as a typical Locust user does.",
)
@click.option(
    "--processes",
    default=0,
    show_default=True,
    help="Run the users in this many local Locust worker processes, with this "
    "process as their master; 0 runs them in this process.",
)
@click.option(
    "--master",
    is_flag=True,
    default=False,
    help="Be the Locust master for workers on other machines "
    "(loadgen worker --master-host THIS_HOST).",
)
@click.option(
    "--expect-workers",
    default=1,
    show_default=True,
    help="With --master: workers to wait for before starting.",
)
@click.option(
    "--master-bind-host",
    default="*",
    show_default=True,
    help="With --master: interface the master listens on for workers.",
)
@click.option(
    "--master-port",
    default=5557,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="With --master: port the master listens on for workers.",
)
@click.option(
    "--reconnect-min-ms",
    default=100.0,
    show_default=True,
    help="Shortest pause before a dropped producer reconnects, in ms.",
)
@click.option(
    "--reconnect-max-ms",
    default=5000.0,
    show_default=True,
    help="Maximum pause before reconnecting; pauses double up to it, with jitter.",
)
@click.option(
    "--spawn-rate",
    default=None,
    type=float,
    help="Users started per second [default: all at once].",
)
@click.option(
    "--server-config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML file of graphs, accumulators and keys for the embedded reference "
    "server (see reference_server/examples); only without --host.",
)
@click.option(
    "--server-profile",
    type=click.Choice(["tutorial", "cloacina"]),
    default=None,
    help="Protocol of the embedded reference server: the tutorial's or today's "
    "Cloacina server's [default: tutorial]; only without --host.",
)
@click.option(
    "--ground-truth",
    is_flag=True,
    default=False,
    help="Have the embedded reference server record true fire times, and check "
    "each latency sample against them; only without --host.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Report path [default: reports/run-<UTC time>.json].",
)
def run(**options) -> None:
    """Send orderbook events and measure send-to-fire latency."""
    from loadgen.report import render_summary
    from loadgen.runner import RunConfig, run_load

    config = RunConfig(
        host=options["host"],
        token=options["token"],
        users=options["users"],
        rate_per_s=1000.0 if options["rate"] is None else options["rate"],
        duration_s=10.0 if options["duration"] is None else options["duration"],
        accumulator=options["accumulator"],
        graph=options["graph"],
        feed=options["feed"],
        auth=options["auth"],
        frame=options["frame"],
        wire=options["wire"],
        poll_interval_ms=options["poll_interval_ms"],
        probe_interval_ms=options["probe_interval_ms"],
        spawn_rate=options["spawn_rate"],
        reconnect_min_ms=options["reconnect_min_ms"],
        reconnect_max_ms=options["reconnect_max_ms"],
        send_mode=options["send_mode"],
        processes=options["processes"],
        master=options["master"],
        expect_workers=options["expect_workers"],
        master_bind_host=options["master_bind_host"],
        master_port=options["master_port"],
        output=options["output"],
        server_args=_server_args(
            options["server_config"], options["server_profile"], options["ground_truth"]
        ),
    )
    try:
        config.shape = _shape(options["shape"], options["rate"], options["duration"])
    except LoadgenError as error:
        _fail(error)
    if config.host is not None and not config.token:
        _fail(UsageProblem("missing API key: export TOKEN=<key> or pass --token"))
    # Until the load starts, SIGTERM is noted and acted on between start-up
    # steps, so that the embedded server is stopped. During the load a graceful
    # handler takes over.
    signal.signal(signal.SIGTERM, note_termination)
    try:
        result = run_load(config)
    except LoadgenError as error:
        _fail(error)
    except (KeyboardInterrupt, Terminated) as stop:
        name = "SIGTERM" if isinstance(stop, Terminated) else "Ctrl-C"
        click.echo(f"error: {name} before the load started; no report", err=True)
        sys.exit(143 if isinstance(stop, Terminated) else 130)
    click.echo(render_summary(result.report))
    click.echo(f"report written to {result.path}")
    if result.exit_code:
        click.echo(f"error: {result.report['outcome']['error']}", err=True)
    sys.exit(result.exit_code)


@main.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.pass_context
def serve(context: click.Context) -> None:
    """Start the reference server (options: loadgen serve --help)."""
    from reference_server.cli import main as serve_main

    sys.exit(serve_main(context.args))


@main.command()
@click.option(
    "--master-host",
    required=True,
    help="Host name or address of the machine running loadgen run --master.",
)
@click.option(
    "--master-port",
    default=5557,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port of the master (its --master-port).",
)
def worker(master_host: str, master_port: int) -> None:
    """Run a Locust worker for a loadgen run --master on another machine.

    The worker takes its options, the key included, from the master.
    """
    from loadgen.cluster import worker_command

    command = worker_command(master_host, master_port)
    os.execv(command[0], command)


@main.command()
@click.option(
    "--duration",
    default=5.0,
    show_default=True,
    type=click.FloatRange(0.5, 60),
    help="Seconds to measure the generator and the server, each.",
)
def calibrate(duration: float) -> None:
    """Measure this machine's generator and reference-server maximum rates.

    The generator's maximum is kept in the user's cache folder, so that later
    runs can warn when they ask for more than this machine can send.
    """
    from loadgen.calibrate import format_calibration, run_calibration
    from loadgen.calibration_cache import save_calibration

    try:
        result = run_calibration(duration)
    except LoadgenError as error:
        _fail(error)
    click.echo(format_calibration(result))
    path = save_calibration(result)
    click.echo(f"calibration saved to {path}")


def _shape(spec: str | None, rate: float | None, duration: float | None):
    """Parse --shape; it replaces --rate and --duration, so both may not be given."""
    from loadgen.shapes import load_shape_file, parse_shape

    if spec is None:
        return None
    shape = load_shape_file(spec[1:]) if spec.startswith("@") else parse_shape(spec)
    if rate is not None or duration is not None:
        raise UsageProblem(
            "--shape sets the rate and duration itself: drop --rate and --duration"
        )
    return shape


def _server_args(
    server_config: Path | None, profile: str | None, ground_truth: bool
) -> tuple[str, ...]:
    args: list[str] = []
    if server_config is not None:
        args += ["--config", str(server_config)]
    if profile is not None:
        args += ["--profile", profile]
    if ground_truth:
        args.append("--ground-truth")
    return tuple(args)


def _fail(error: LoadgenError) -> None:
    click.echo(f"error: {error}", err=True)
    sys.exit(2 if isinstance(error, UsageProblem) else 1)


from loadgen.cli_reports import compare, merge, report  # noqa: E402

main.add_command(report)
main.add_command(compare)
main.add_command(merge)
