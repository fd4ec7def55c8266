"""Text, Markdown and HTML renderings of a report, without a browser."""

import re

import numpy as np

from loadgen.render_html import percentile_points, render_html
from loadgen.render_markdown import append_to_step_summary, render_markdown
from loadgen.render_text import render_summary
from loadgen.synthetic_report import synthetic_report, without_optional_fields


def sample_report() -> dict:
    rng = np.random.default_rng(4)
    return synthetic_report([list(rng.lognormal(7, 0.5, 30)) for _ in range(8)])


def legacy_report() -> dict:
    return without_optional_fields(sample_report())


def test_text_shows_new_fields():
    text = render_summary(sample_report())
    assert "events late" in text
    assert "rate reached" in text
    assert "from intended send" in text
    assert re.search(r"^generator kept up +yes$", text, re.MULTILINE)


def test_text_of_legacy_report():
    text = render_summary(legacy_report())
    assert "latency p99" in text
    assert "events late" not in text
    assert "from intended send" not in text


def test_text_shows_failed_outcome():
    report = sample_report()
    report["outcome"] = {"status": "failed", "error": "connection refused"}
    assert render_summary(report).endswith(
        "outcome             failed: connection refused"
    )


def test_markdown_tables():
    markdown = render_markdown(sample_report())
    assert markdown.startswith("### loadgen run: completed\n")
    assert "| from actual send |" in markdown
    assert "| from intended send |" in markdown
    table_rows = [line for line in markdown.splitlines() if line.startswith("|")]
    assert len(table_rows) == 7


def test_step_summary_appends(tmp_path, monkeypatch):
    target = tmp_path / "summary.md"
    target.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    assert append_to_step_summary("| a |") == target
    assert target.read_text() == "earlier step\n| a |\n"


def test_step_summary_unset(monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert append_to_step_summary("| a |") is None


def test_html_is_self_contained():
    html = render_html(sample_report())
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html
    assert "<link" not in html
    assert re.findall(r'(?:src|href)="', html) == []


def test_html_charts_have_series():
    html = render_html(sample_report())
    for chart in ("chart-percentiles", "chart-latency-time", "chart-throughput"):
        svg = html.split(f'id="{chart}"')[1].split("</svg>")[0]
        assert 'class="series"' in svg, chart
        assert "no data" not in svg, chart


def test_html_of_legacy_report():
    html = render_html(legacy_report())
    throughput = html.split('id="chart-throughput"')[1].split("</svg>")[0]
    assert "no data" in throughput
    percentiles = html.split('id="chart-percentiles"')[1].split("</svg>")[0]
    assert 'data-series="from actual send"' in percentiles


def test_html_lists_outages():
    report = sample_report()
    report["outages"] = {"windows": [], "probe_outages": 2, "probes_missed": 0}
    errors = render_html(report).split('id="errors"')[1].split("</ul>")[0]
    assert "probe outages: 2" in errors
    assert "probes missed" not in errors


def test_html_escapes_text():
    report = sample_report()
    report["outcome"] = {"status": "failed", "error": "<b>boom</b>"}
    html = render_html(report)
    assert "<b>boom</b>" not in html
    assert "&lt;b&gt;boom&lt;/b&gt;" in html


def test_percentile_points_on_nines_axis():
    points = percentile_points(sample_report()["latency"]["send_to_fire"]["histogram"])
    nines = [x for x, _ in points]
    latencies = [y for _, y in points]
    assert nines[0] == 0.0
    assert abs(nines[-1] - np.log10(240)) < 1e-9
    assert latencies == sorted(latencies)
