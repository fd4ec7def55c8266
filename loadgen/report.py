"""The run report: a JSON document, its atomic write, and the summary table.

The layout is documented in docs/report-schema.md and checked by
``loadgen.report_schema``; the table is built in ``loadgen.render_text``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from loadgen.errors import UsageProblem
from loadgen.render_text import render_summary

__all__ = ["SCHEMA_VERSION", "write_report", "render_summary", "default_report_path"]

SCHEMA_VERSION = 1
"""Version of the report layout; readers reject versions they do not know."""


def default_report_path(started_at: str, directory: str | Path = "reports") -> Path:
    """Return ``reports/run-YYYYmmddTHHMMSSZ.json`` for a run started at that time."""
    stamp = started_at.replace("-", "").replace(":", "").split(".")[0]
    return Path(directory) / f"run-{stamp}Z.json"


def check_report_path(path: str | Path) -> Path:
    """Check before a run that a report can be written at ``path``.

    Raises:
        UsageProblem: the path is empty, names something other than a regular
            file, or its folder cannot be created or written.
    """
    if not str(path).strip():
        raise UsageProblem("invalid --output '': name a file such as reports/run.json")
    path = Path(path)
    if path.exists() and not path.is_file():
        raise UsageProblem(
            f"invalid --output {path}: it exists and is not a regular file; "
            "name a new or existing .json file"
        )
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    try:
        if not folder.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        # A file made and removed in the nearest existing folder proves that
        # the run can write there, without creating folders for a bad option.
        descriptor, probe = tempfile.mkstemp(prefix=".loadgen-write-test-", dir=folder)
        os.close(descriptor)
        os.unlink(probe)
    except OSError as error:
        raise UsageProblem(
            f"cannot write the report to {path}: {error.strerror}; choose a "
            "writable folder with --output"
        ) from None
    return path


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
