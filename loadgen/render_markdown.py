"""A compact Markdown summary of a run report, for a pull request or CI job page."""

from __future__ import annotations

import os
from pathlib import Path

from loadgen.render_text import LATENCY_ROWS, format_int

__all__ = ["render_markdown", "append_to_step_summary"]


def render_markdown(report: dict) -> str:
    """Return a heading, a one-line context and two small tables."""
    config = report["config"]
    counts = report["counts"]
    throughput = report["throughput"]
    outcome = report["outcome"]
    latency = report["latency"]
    actual = latency["send_to_fire"]
    intended = latency.get("send_to_fire_from_intended")

    lines = [
        f"### loadgen run: {outcome['status']}",
        "",
        f"{config['users']} users, target {config['rate_per_s']:,.0f} events/s, "
        f"{report['duration_s']:g} s against `{report['target']['graph']}` "
        f"(started {report['started_at']})",
        "",
        "| events sent | failed | late | send rate | fires during run |",
        "|---:|---:|---:|---:|---:|",
        f"| {format_int(counts['sent'])} | {format_int(counts['failed'])} "
        f"| {format_int(counts.get('late'))} "
        f"| {throughput['send_rate_per_s']:,.1f}/s "
        f"| {format_int(report['fires']['fires_during_run'])} |",
        "",
    ]

    header = "| send-to-fire | " + " | ".join(label for _, label in LATENCY_ROWS)
    lines += [header + " | samples |", "|---" + "|---:" * (len(LATENCY_ROWS) + 1) + "|"]
    entries = [("from actual send", actual)]
    if intended is not None:
        entries.append(("from intended send", intended))
    for label, entry in entries:
        summary = entry["summary"]
        cells = [_ms(summary[key]) for key, _ in LATENCY_ROWS]
        lines.append(
            f"| {label} | " + " | ".join(cells) + f" | {format_int(summary['count'])} |"
        )

    if counts["failed_by_kind"]:
        failures = ", ".join(
            f"{kind} {count:,}" for kind, count in counts["failed_by_kind"].items()
        )
        lines += ["", f"Failures: {failures}"]
    if outcome["error"]:
        lines += ["", f"Error: {outcome['error']}"]
    self_check = report.get("self_check")
    if self_check is not None and not self_check["kept_up"]:
        lines += ["", "Warning: the load generator did not keep up with its schedule."]
    return "\n".join(lines) + "\n"


def append_to_step_summary(markdown: str) -> Path | None:
    """Append to the file named by ``$GITHUB_STEP_SUMMARY``, if that is set.

    GitHub Actions shows that file on the job's summary page.
    """
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as file:
        file.write(markdown if markdown.endswith("\n") else markdown + "\n")
    return path


def _ms(value_us) -> str:
    return "n/a" if value_us is None else f"{value_us / 1000:,.2f} ms"
