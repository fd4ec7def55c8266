"""The run report: a JSON document, its atomic write, and the summary table.

The layout is documented in docs/report-schema.md and checked by
``loadgen.report_schema``; the table is built in ``loadgen.render_text``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from loadgen.render_text import render_summary

__all__ = ["SCHEMA_VERSION", "write_report", "render_summary", "default_report_path"]

SCHEMA_VERSION = 1
"""Version of the report layout; readers reject versions they do not know."""


def default_report_path(started_at: str, directory: str | Path = "reports") -> Path:
    """Return ``reports/run-YYYYmmddTHHMMSSZ.json`` for a run started at that time."""
    stamp = started_at.replace("-", "").replace(":", "").split(".")[0]
    return Path(directory) / f"run-{stamp}Z.json"


def write_report(report: dict, path: str | Path) -> Path:
    """Write the report through a temporary file and a rename.

    A crash therefore leaves either the old file or the complete new one, never
    half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(report, file, indent=2)
            file.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
