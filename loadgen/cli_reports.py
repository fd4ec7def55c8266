"""The ``loadgen report``, ``loadgen compare`` and ``loadgen merge`` commands.

Exit status: 0 for success (and for compare, no regression), 1 when compare
finds a regression, 2 for unusable input such as a missing or truncated report,
a report of another schema_version, or a report without latency samples.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from loadgen.errors import LoadgenError

__all__ = ["report", "compare", "merge"]

EXIT_REGRESSION = 1
EXIT_UNUSABLE = 2


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "markdown", "html"]),
    default="text",
    show_default=True,
    help="text: the summary table; markdown: a table for a pull request or CI "
    "job summary; html: one self-contained page with charts.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write [default: standard output].",
)
def report(file: Path, output_format: str, output: Path | None) -> None:
    """Render a run report as text, Markdown or HTML.

    With --format markdown the table is also appended to $GITHUB_STEP_SUMMARY
    when that variable is set.
    """
    from loadgen.report_schema import load_report

    loaded = _run(load_report, file)
    if output_format == "html":
        from loadgen.render_html import render_html

        rendered = render_html(loaded, title=file.name)
    elif output_format == "markdown":
        from loadgen.render_markdown import append_to_step_summary, render_markdown

        rendered = render_markdown(loaded)
        summary_path = append_to_step_summary(rendered)
        if summary_path is not None:
            click.echo(f"appended the summary to {summary_path}", err=True)
    else:
        from loadgen.render_text import render_summary

        rendered = render_summary(loaded) + "\n"
    _write(rendered, output)


@click.command()
@click.argument("baseline", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("candidate", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--max-regression",
    multiple=True,
    metavar="METRIC=VALUE",
    help="How much worse METRIC may get: p99=10%, p50=2ms, throughput=5%, "
    "error_rate=0.1% (percentage points). Repeatable.",
)
@click.option(
    "--min-ratio",
    multiple=True,
    metavar="METRIC=RATIO",
    help="Lowest candidate/baseline ratio of a higher-is-better metric, e.g. "
    "throughput=0.95. Repeatable.",
)
@click.option(
    "--thresholds",
    "thresholds_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML file with [max_regression] and [min_ratio] tables; options win.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "markdown", "json"]),
    default="text",
    show_default=True,
)
@click.option(
    "--confidence",
    type=click.FloatRange(0.5, 0.999),
    default=0.95,
    show_default=True,
    help="Coverage of the bootstrap interval of each percentile's change.",
)
@click.option(
    "--iterations",
    type=click.IntRange(100, 20_000),
    default=1000,
    show_default=True,
    help="Bootstrap replicates per percentile.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write [default: standard output].",
)
def compare(
    baseline: Path,
    candidate: Path,
    max_regression: tuple[str, ...],
    min_ratio: tuple[str, ...],
    thresholds_file: Path | None,
    output_format: str,
    confidence: float,
    iterations: int,
    seed: int,
    output: Path | None,
) -> None:
    """Compare a CANDIDATE run report with a BASELINE report.

    A metric regresses when it is worse than its threshold and the whole
    bootstrap interval of its change lies beyond that threshold. Defaults:
    p50, p90 and p99 +10%, error rate +0.1 percentage points, throughput ratio
    0.95. Exit status: 0 pass, 1 regression, 2 unusable input.
    """
    from loadgen.compare import compare_reports
    from loadgen.render_compare import render_comparison
    from loadgen.report_schema import load_report
    from loadgen.thresholds import resolve_thresholds

    thresholds = _run(resolve_thresholds, thresholds_file, max_regression, min_ratio)
    reports = [_run(load_report, path) for path in (baseline, candidate)]
    comparison = _run(
        compare_reports,
        *reports,
        thresholds,
        names=(str(baseline), str(candidate)),
        confidence=confidence,
        iterations=iterations,
        seed=seed,
    )
    _write(render_comparison(comparison, output_format) + "\n", output)
    sys.exit(EXIT_REGRESSION if comparison.regressed else 0)


@click.command()
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path)
)
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Path of the merged report.",
)
def merge(files: tuple[Path, ...], output: Path) -> None:
    """Merge reports of load generators that ran at the same time.

    Histograms are added, so the merged percentiles are exact; counts are
    summed and timelines aligned on their start times.
    """
    from loadgen.merge import merge_reports
    from loadgen.report import write_report
    from loadgen.report_schema import load_report

    if len(files) < 2:
        _fail(LoadgenError("merge needs at least two reports"))
    reports = [_run(load_report, path) for path in files]
    merged = _run(merge_reports, reports, [str(path) for path in files])
    path = write_report(merged, output)
    click.echo(f"merged {len(files)} reports into {path}")


def _run(load_report, path: Path) -> dict:
    return _run(load_report, path)


def _run(function, *args, **kwargs):
    """Call ``function``, turning a ``LoadgenError`` into one line and exit 2."""
    try:
        return function(*args, **kwargs)
    except LoadgenError as error:
        _fail(error)


def _fail(error: LoadgenError) -> None:
    click.echo(f"error: {error}", err=True)
    sys.exit(EXIT_UNUSABLE)


def _write(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    click.echo(f"wrote {output}", err=True)
