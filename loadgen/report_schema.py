"""Loading and validating run reports against the schema_version 1 JSON Schema.

The schema ships as ``loadgen/schema/report-v1.schema.json``. Rather than add a
dependency, a small interpreter checks the part of JSON Schema that file uses:
``type``, ``required``, ``properties``, ``additionalProperties``, ``items``,
``enum``, ``const``, ``minimum`` and local ``$ref``. Any other keyword raises
``SchemaError``, so the file cannot silently ask for more than is checked.
"""

from __future__ import annotations

import json
import zlib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from hdrh.codec import (
    HdrCookieException,
    HdrHistogramSettingsException,
    HdrLengthException,
)

from loadgen.errors import LoadgenError
from loadgen.histogram import LatencyHistogram
from loadgen.report import SCHEMA_VERSION

__all__ = [
    "ReportError",
    "SchemaError",
    "HISTOGRAM_ERRORS",
    "decode_histogram",
    "load_report",
    "report_schema",
    "validate_report",
    "latency_histogram",
    "latency_key",
    "interval_histograms",
]

SCHEMA_RESOURCE = "report-v1.schema.json"

SUPPORTED_KEYWORDS = {
    "$schema",
    "$defs",
    "$ref",
    "title",
    "description",
    "type",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "minimum",
}

JSON_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


HISTOGRAM_ERRORS = (
    ValueError,
    RuntimeError,
    IndexError,
    zlib.error,
    HdrCookieException,
    HdrLengthException,
    HdrHistogramSettingsException,
)
"""Exceptions that ``HdrHistogram.decode`` (hdrh 0.10) raises for damaged input."""


class ReportError(LoadgenError):
    """A report file that cannot be used; the message names the file and why."""

    kind = "report"


class SchemaError(Exception):
    """The schema file uses a keyword this validator does not check."""


@cache
def report_schema() -> dict:
    """Return the parsed JSON Schema of schema_version 1 reports."""
    text = resources.files("loadgen.schema").joinpath(SCHEMA_RESOURCE).read_text()
    return json.loads(text)


def load_report(path: str | Path) -> dict:
    """Read a report file, check it against the schema, and return it.

    Raises:
        ReportError: the file is missing, unreadable, truncated, not JSON, of
            another schema_version, or lacks a required field or has a field of
            the wrong type. The message is one line that starts with the path.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"{path}: report file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ReportError(f"{path}: failed to read the report: {error}") from None
    try:
        report = json.loads(text)
    except json.JSONDecodeError as error:
        raise ReportError(f"{path}: {_describe_json_error(text, error)}") from None
    validate_report(report, str(path))
    return report


def validate_report(report: Any, source: str = "report") -> None:
    """Raise ``ReportError`` naming ``source`` and the first problem found."""
    if not isinstance(report, dict):
        raise ReportError(f"{source}: expected a JSON object, got {_type_name(report)}")
    if "schema_version" not in report:
        raise ReportError(
            f"{source}: missing schema_version; this is not a loadgen run report"
        )
    version = report["schema_version"]
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise ReportError(f"{source}: {_describe_version(version)}")
    problem = _first_problem(report, report_schema(), "")
    if problem is not None:
        raise ReportError(f"{source}: {problem}")

    # Check that each latency histogram decodes and matches its summary.
    for key, entry in report["latency"].items():
        if not (isinstance(entry, dict) and "histogram" in entry):
            continue
        where = f"latency.{key}.histogram"
        histogram = decode_histogram(entry["histogram"], source, where)
        expected = entry["summary"]["count"]
        if histogram.count != expected:
            raise ReportError(
                f"{source}: {where} contains {histogram.count:,} samples but "
                f"latency.{key}.summary.count is {expected:,}"
            )
    # Decoding costs about 0.25 ms per interval, under a second for an hour.
    for index, encoded in enumerate(interval_histograms(report) or ()):
        if encoded is not None:
            decode_histogram(encoded, source, f"timeline.latency_intervals[{index}]")


def decode_histogram(encoded: str, source: str, where: str) -> LatencyHistogram:
    """Decode a histogram of a report, or raise ``ReportError`` naming its field."""
    try:
        return LatencyHistogram.decode(encoded)
    except HISTOGRAM_ERRORS as error:
        raise ReportError(
            f"{source}: invalid {where}: not an HdrHistogram in compressed base64 "
            f"({type(error).__name__}: {error})"
        ) from None


def latency_key(*reports: dict) -> str:
    """Return the latency entry that every report has, preferring the corrected one.

    ``send_to_fire_from_intended`` is measured from the intended send time and so
    includes coordinated omission; reports without it fall back to
    ``send_to_fire``.
    """
    corrected = "send_to_fire_from_intended"
    if reports and all(corrected in report["latency"] for report in reports):
        return corrected
    return "send_to_fire"


def latency_histogram(report: dict, key: str = "send_to_fire") -> LatencyHistogram:
    """Decode one of the report's latency histograms."""
    return LatencyHistogram.decode(report["latency"][key]["histogram"])


def interval_histograms(report: dict) -> list[str | None] | None:
    """Return the per-interval latency histograms, or None when the report has none."""
    timeline = report.get("timeline")
    if timeline is None:
        return None
    return timeline.get("latency_intervals")


def _describe_json_error(text: str, error: json.JSONDecodeError) -> str:
    if not text.strip():
        return "empty file, expected a JSON report"
    if error.pos >= len(text.rstrip()):
        return (
            f"truncated file: the JSON ends early at line {error.lineno} "
            f"column {error.colno}; rerun loadgen run to write it again"
        )
    return f"invalid JSON at line {error.lineno} column {error.colno}: {error.msg}"


def _describe_version(version: Any) -> str:
    if isinstance(version, int) and not isinstance(version, bool):
        relation = "newer" if version > SCHEMA_VERSION else "older"
        advice = "upgrade loadgen" if version > SCHEMA_VERSION else "rerun the load"
        return (
            f"schema_version {version} is {relation} than the version this loadgen "
            f"reads ({SCHEMA_VERSION}); {advice} to compare these reports"
        )
    return f"invalid schema_version {version!r}: expected the integer {SCHEMA_VERSION}"


def _first_problem(value: Any, schema: dict, where: str) -> str | None:
    """Return a description of the first schema violation under ``where``, or None."""
    unknown = set(schema) - SUPPORTED_KEYWORDS
    if unknown:
        raise SchemaError(f"unsupported keywords {sorted(unknown)} at {where or '/'}")
    if "$ref" in schema:
        return _first_problem(value, _resolve(schema["$ref"]), where)
    label = where or "the report"

    # Check the value itself.
    if "const" in schema and not _same(value, schema["const"]):
        return f"invalid {label}: expected {schema['const']!r}, got {value!r}"
    if "enum" in schema and not any(_same(value, item) for item in schema["enum"]):
        allowed = ", ".join(repr(item) for item in schema["enum"])
        return f"invalid {label}: expected one of {allowed}, got {value!r}"
    if "type" in schema:
        types = schema["type"]
        types = [types] if isinstance(types, str) else types
        if not any(_has_type(value, name) for name in types):
            expected = " or ".join(types)
            return f"invalid {label}: expected {expected}, got {_type_name(value)}"
    if "minimum" in schema and _is_number(value) and value < schema["minimum"]:
        return f"invalid {label}: {value!r} is below the minimum {schema['minimum']}"

    # Check the members of objects and arrays.
    if isinstance(value, dict):
        for name in schema.get("required", ()):
            if name not in value:
                return f"missing required field {_join(where, name)}"
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for name, member in value.items():
            member_schema = properties.get(name, extra)
            if isinstance(member_schema, dict):
                problem = _first_problem(member, member_schema, _join(where, name))
                if problem is not None:
                    return problem
            elif member_schema is False:
                return f"unexpected field {_join(where, name)}"
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            problem = _first_problem(item, schema["items"], f"{label}[{index}]")
            if problem is not None:
                return problem
    return None


def _resolve(reference: str) -> dict:
    prefix = "#/$defs/"
    if not reference.startswith(prefix):
        raise SchemaError(f"unsupported $ref {reference!r}: only {prefix}NAME")
    return report_schema()["$defs"][reference.removeprefix(prefix)]


def _has_type(value: Any, name: str) -> bool:
    # JSON has no separate integer type, but bool is an int subclass in Python.
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return _is_number(value)
    return isinstance(value, JSON_TYPES[name])


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same(value: Any, expected: Any) -> bool:
    return type(value) is type(expected) and value == expected


def _type_name(value: Any) -> str:
    for name in ("boolean", "null", "string", "object", "array"):
        if isinstance(value, JSON_TYPES[name]):
            return name
    return "integer" if isinstance(value, int) else "number"


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name
