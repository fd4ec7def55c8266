"""Loading reports: the schema file, version checks and one-line errors."""

import copy
import json

import pytest

from loadgen.report_schema import (
    ReportError,
    latency_key,
    load_report,
    report_schema,
    validate_report,
)
from loadgen.synthetic_report import synthetic_report, without_optional_fields


def full_report() -> dict:
    return synthetic_report([[800, 900, 1000]] * 3)


def legacy_report() -> dict:
    """A report as the runner wrote it before timeline, self_check and the rest."""
    return without_optional_fields(full_report())


def write(tmp_path, report, name="report.json"):
    path = tmp_path / name
    path.write_text(json.dumps(report))
    return path


def error_of(path) -> str:
    with pytest.raises(ReportError) as caught:
        load_report(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message


def test_full_report_loads(tmp_path):
    report = full_report()
    assert load_report(write(tmp_path, report)) == report


def test_legacy_report_loads(tmp_path):
    report = legacy_report()
    assert load_report(write(tmp_path, report)) == report
    assert latency_key(report) == "send_to_fire"
    assert latency_key(full_report()) == "send_to_fire_from_intended"


def test_extra_fields_are_accepted(tmp_path):
    report = full_report()
    report["counts"]["something_new"] = 3
    assert load_report(write(tmp_path, report)) == report


def test_missing_file(tmp_path):
    message = error_of(tmp_path / "absent.json")
    assert "not found" in message


def test_truncated_file(tmp_path):
    path = tmp_path / "cut.json"
    path.write_text(json.dumps(full_report(), indent=2)[:500])
    message = error_of(path)
    assert "truncated file" in message


def test_empty_file(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text("")
    assert "empty file" in error_of(path)


def test_invalid_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"schema_version": 1,, "tool": {}}\n')
    message = error_of(path)
    assert "invalid JSON at line 1" in message


def test_not_an_object(tmp_path):
    assert "expected a JSON object, got array" in error_of(write(tmp_path, [1, 2]))


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        (2, "schema_version 2 is newer"),
        (0, "schema_version 0 is older"),
        ("1", "invalid schema_version '1'"),
        (True, "invalid schema_version True"),
    ],
)
def test_unknown_schema_version(tmp_path, version, expected):
    report = full_report()
    report["schema_version"] = version
    assert expected in error_of(write(tmp_path, report))


def test_missing_schema_version(tmp_path):
    report = full_report()
    del report["schema_version"]
    assert "missing schema_version" in error_of(write(tmp_path, report))


@pytest.mark.parametrize(
    "field",
    [
        ("counts", "sent"),
        ("latency", "send_to_fire", "summary", "p99"),
        ("latency", "send_to_fire", "histogram"),
        ("outcome",),
    ],
)
def test_missing_required_field(tmp_path, field):
    report = full_report()
    parent = report
    for name in field[:-1]:
        parent = parent[name]
    del parent[field[-1]]
    message = error_of(write(tmp_path, report))
    assert f"missing required field {'.'.join(field)}" in message


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        (("counts", "sent"), "12", "invalid counts.sent: expected integer, got string"),
        (("counts", "sent"), True, "expected integer, got boolean"),
        (("counts", "failed"), -1, "below the minimum 0"),
        (("outcome", "status"), "crashed", "expected one of 'completed'"),
        (("latency", "send_to_fire", "unit"), "ms", "expected 'us', got 'ms'"),
        (("counts", "failed_by_kind", "timeout"), 1.5, "counts.failed_by_kind.timeout"),
        (("timeline", "sent"), [1, None], "invalid timeline.sent[1]"),
    ],
)
def test_wrong_field_type(tmp_path, field, value, expected):
    report = full_report()
    parent = report
    for name in field[:-1]:
        parent = parent[name]
    parent[field[-1]] = value
    assert expected in error_of(write(tmp_path, report))


def test_validate_names_source():
    report = copy.deepcopy(full_report())
    del report["fires"]
    with pytest.raises(ReportError, match=r"^baseline: missing required field fires"):
        validate_report(report, "baseline")


def test_schema_file_is_json_schema():
    schema = report_schema()
    assert schema["$schema"].endswith("/draft/2020-12/schema")
    assert schema["properties"]["schema_version"] == {"const": 1}


def test_real_report_shape_loads(tmp_path):
    """A report as the first runner wrote it, without any optional field."""
    report = {
        "schema_version": 1,
        "tool": {"name": "loadgen", "version": "0.1.0", "python": "3.11.7"},
        "started_at": "2026-12-04T15:43:36.929Z",
        "finished_at": "2026-12-04T15:43:41.989Z",
        "duration_s": 5.057,
        "target": {
            "base_url": "http://127.0.0.1:41333",
            "embedded_reference_server": True,
            "accumulator": "orderbook",
            "graph": "price_signal",
        },
        "config": {
            "users": 5,
            "rate_per_s": 500.0,
            "rate_per_user": 100.0,
            "duration_s": 5.0,
            "spawn_rate": 5,
            "feed": "sine",
            "auth": "header",
            "frame": "binary",
            "poll_interval_ms": 2.0,
            "probe_interval_ms": 100.0,
        },
        "counts": {
            "attempted": 2500,
            "sent": 2500,
            "failed": 0,
            "failed_by_kind": {},
            "bytes_sent": 99417,
            "connects": 5,
            "connect_failures_by_kind": {},
            "probe_events_sent": 49,
            "server_received": 2500,
        },
        "throughput": {"send_rate_per_s": 494.3, "target_rate_per_s": 500.0},
        "fires": {
            "fire_count_before": 0,
            "fire_count_after": 2549,
            "fires_during_run": 2549,
        },
        "latency": legacy_report()["latency"],
        "outcome": {"status": "completed", "error": None},
    }
    assert load_report(write(tmp_path, report)) == report


def test_damaged_histogram(tmp_path):
    report = full_report()
    report["latency"]["send_to_fire"]["histogram"] = "SGVsbG8gd29ybGQ="
    message = error_of(write(tmp_path, report))
    assert "invalid latency.send_to_fire.histogram: not an HdrHistogram" in message


def test_damaged_interval_histogram(tmp_path):
    report = full_report()
    report["timeline"]["latency_intervals"][1] = "HISTFAAAAHR4nJNpmSzMwMCQ"
    message = error_of(write(tmp_path, report))
    assert "invalid timeline.latency_intervals[1]: not an HdrHistogram" in message


def test_summary_count_mismatch(tmp_path):
    report = full_report()
    report["latency"]["send_to_fire"]["summary"]["count"] += 1
    message = error_of(write(tmp_path, report))
    assert "latency.send_to_fire.histogram contains 9 samples" in message
    assert "summary.count is 10" in message
