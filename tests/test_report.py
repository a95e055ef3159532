"""The combined report: built from full and minimal run directories, exact nearest-rank figures, a self-contained
HTML page, and the ``python -m harness report`` command."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.offline import get_plotlyjs

from harness._report_charts import percentile_figure, timeline_figure
from harness._report_requests import nearest_rank
from harness._report_view import load_view
from harness.report import NotARunDirectoryError, build_report
from harness.thresholds import _request_value
from tests.run_fixtures import make_run_dir, write_requests

ROOT = Path(__file__).resolve().parents[1]
CHARTS = ("timeline", "percentiles")
T0 = 1_767_000_000.0


def _without_plotly_js(html: str) -> str:
    js = get_plotlyjs()
    assert html.count(js) == 1, "plotly.js must be embedded exactly once"
    return html.replace(js, "")


def _fetched_urls(html: str) -> list[str]:
    """URLs the browser would fetch: src/href attributes, CSS url(), @import (links in text are fine)."""
    page = _without_plotly_js(html)
    patterns = (
        r"""\b(?:src|href)\s*=\s*["']?\s*((?:https?:)?//[^"'\s>]+)""",
        r"url\(\s*['\"]?((?:https?:)?//[^)'\"]+)",
        r"@import\s+['\"]?((?:https?:)?//\S+)",
    )
    return [url for pattern in patterns for url in re.findall(pattern, page, flags=re.IGNORECASE)]


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory):
    run_dir = make_run_dir(
        tmp_path_factory.mktemp("full"), cpu_bound=True, rss_leak_mb_per_min=30.0, generator_cpu_percent=95.0,
        failing_endpoint="POST /v1/online/batch", cache_hit_rate=0.5, gpu=True, service_workers=2,
        generator_processes=3,
    )  # fmt: skip
    return build_report(run_dir)


def test_full_run_writes_three_files(full_report) -> None:
    for path in (full_report.html_path, full_report.summary_json_path, full_report.summary_md_path):
        assert path.is_file() and path.parent == full_report.run_dir
    assert full_report.verdict == "FAILED"
    assert json.loads(full_report.summary_json_path.read_text()) == json.loads(json.dumps(full_report.summary))


def test_html_is_self_contained_with_every_chart(full_report) -> None:
    html = full_report.html_path.read_text()
    for chart in CHARTS:
        assert f'<div class="chart" id="chart-{chart}">' in html
        assert f'id="plot-{chart}"' in html
    assert '<script src="http' not in html and "<script src=" not in html
    assert _fetched_urls(html) == []
    assert 'id="verdict">FAILED<' in html
    for kind in ("cpu_bound", "generator_saturated", "memory_leak", "failures_concentrated", "cache_hit_rate_low"):
        assert f'data-kind="{kind}"' in html
    assert "nearest rank" in html  # the endpoint table says how its percentiles were computed
    assert "NVIDIA T4" in html  # the GPU rows


def test_charts_are_valid_plotly_figures(full_report, tmp_path: Path) -> None:
    # the report builds figure dicts without plotly.py's validation (for speed): validate them here
    for view in (load_view(full_report.run_dir), load_view(make_run_dir(tmp_path, sampler=False, locust_csvs=False))):
        timeline = timeline_figure(view)
        figure = go.Figure(timeline)
        assert len(figure.data) == len(timeline["data"]) > 0
        go.Figure(percentile_figure(view))
        rows = [a["text"] for a in timeline["layout"]["annotations"] if a["text"].startswith("<b>")]
        assert len(rows) == 12 and "Service CPU" in rows[3]


def test_text_from_the_run_cannot_break_out_of_the_script(tmp_path: Path) -> None:
    rows, _ = _hand_built_log()
    for row in rows[:3]:
        row.update(name="/x</script><script>alert(1)</script>", ok=False, error="<img src=x onerror=alert(1)>")
    run_dir = tmp_path / "evil"
    run_dir.mkdir()
    write_requests(run_dir / "requests.arrows", rows)
    html = _without_plotly_js(build_report(run_dir).html_path.read_text())
    assert "alert(1)</script>" not in html and "<img src=x" not in html
    assert html.count("<script") == html.count("</script>") == len(CHARTS) + 1  # + plotly.js itself


def test_summary_json_schema(full_report) -> None:
    s = full_report.summary
    assert s["schema_version"] == 1 and s["scenario"] == "concurrent_users"
    assert s["verdict"]["status"] == "FAILED" and s["verdict"]["failed"]
    assert {e["endpoint"] for e in s["requests"]["endpoints"]} >= {"POST /v1/online/batch", "GET /health"}
    assert s["requests"]["total"]["requests"] == sum(e["requests"] for e in s["requests"]["endpoints"])
    assert s["failures"][0]["endpoint"] == "POST /v1/online/batch"
    assert {f["kind"] for f in s["findings"]} >= {"cpu_bound", "generator_saturated", "memory_leak"}
    for finding in s["findings"]:
        assert set(finding) == {"kind", "severity", "title", "evidence", "message", "suggestion"}
    service = s["resources"]["service"]
    assert service["processes"] == 3 and service["workers"] == 2 and service["capacity_cores"] == 2
    assert service["rss_slope_mb_per_min"] == pytest.approx(30.0, abs=1.0)
    assert s["resources"]["generator"]["cpu_max_percent"] > 95.0
    assert s["resources"]["host"]["mem_total_mb"] == 8192
    assert s["resources"]["gpu"][0]["name"] == "NVIDIA T4" and s["resources"]["gpu_note"] is None
    assert s["resources"]["sampler"]["processes_seen"] == 7 and s["resources"]["sampler"]["interval_s"] == 1.0
    env = s["environment"]
    assert env["cpu_count_logical"] == 2 and env["git_commit"].startswith("0123456") and env["workers"] == 2
    assert env["memory_total_gb"] == 8.0 and env["packages"]["locust"] == "2.47.0"
    assert s["not_recorded"] == [] and s["problems"] == []


def test_summary_md(full_report) -> None:
    md = full_report.summary_md_path.read_text()
    assert md.startswith("## concurrent_users: FAILED")
    assert "FAIL failure_ratio < 1%" in md
    for finding in full_report.findings:
        assert finding.title in md
    assert str(full_report.html_path) in md
    assert re.search(r"\*\*[\d,]+ requests, [\d.]+ req/s, p95 [\d.]+ ms", md)


def test_minimal_run_dir_says_not_recorded(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path, sampler=False, thresholds=None, locust_csvs=False)
    result = build_report(run_dir)
    s = result.summary
    assert result.verdict == "NOT RECORDED"
    assert s["resources"]["service"] is None and s["resources"]["host"] is None
    assert s["resources"]["gpu_note"] == "no GPU recorded: sampler.json not recorded"
    assert "samples.arrows" in s["not_recorded"] and "thresholds.json" in s["not_recorded"]
    assert s["findings"] == [] and "cpu_bound" in s["analysis"]["unevaluated"]
    html = result.html_path.read_text()
    assert "not recorded (no service processes in samples.arrows)" in html
    assert 'id="no-findings"' in html
    for chart in CHARTS:
        assert f'id="chart-{chart}"' in html
    assert "none: no rule fired" in result.summary_md_path.read_text()


def test_locust_csvs_alone_make_a_report(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path, sampler=False, failing_endpoint="GET /health")
    (run_dir / "requests.arrows").unlink()
    s = build_report(run_dir).summary
    assert s["requests"]["source"] == "locust_stats.csv" and "not nearest rank" in s["requests"]["percentile_method"]
    assert s["failures"][0]["endpoint"] == "GET /health"
    html = (run_dir / "report.html").read_text()
    assert 'id="chart-percentiles"><p class="note">' in html


def test_metadata_alone_or_an_empty_log_make_a_report(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "a", thresholds=None, locust_csvs=False)
    (run_dir / "requests.arrows").unlink()
    s = build_report(run_dir).summary
    assert s["requests"] == {"source": None, "percentile_method": None, "total": None, "endpoints": []}
    assert "requests.arrows" in s["not_recorded"] and s["resources"]["service"] is not None
    run_dir = make_run_dir(tmp_path / "b", thresholds=None, locust_csvs=False)
    write_requests(run_dir / "requests.arrows", [])
    s = build_report(run_dir).summary
    assert s["requests"]["total"]["requests"] == 0 and s["requests"]["total"]["p95_ms"] is None
    assert s["findings"] == []


def _hand_built_log() -> tuple[list[dict], dict[str, list[float]]]:
    rng = np.random.default_rng(7)
    latencies = {
        "GET /a": [float(v) for v in range(1, 101)],  # 1..100 ms
        "POST /b": [10.0, 20.0, 30.0],
        "GET /c": [5.0, 1.0, 7.0, 3.0, 2.0, 6.0, 4.0],
    }
    rows = []
    for endpoint, values in latencies.items():
        rtype, name = endpoint.split(" ")
        for v in values:
            ts = T0 + rng.random() * 10
            rows.append({"ts_s": ts, "request_type": rtype, "name": name, "latency_ms": v, "ok": True,
                         "response_bytes": 10, "error": None, "worker": "local"})  # fmt: skip
    rows.sort(key=lambda r: r["ts_s"])
    rows[5].update(ok=False, error="HTTPError: 503")  # one failure, to check the counts
    return rows, latencies


def _expected(values: list[float], p: int) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(Fraction(p, 100) * len(ordered)) - 1]


def test_endpoint_percentiles_are_exact_nearest_rank(tmp_path: Path) -> None:
    rows, latencies = _hand_built_log()
    run_dir = tmp_path / "hand"
    run_dir.mkdir()
    write_requests(run_dir / "requests.arrows", rows, batch_rows=17)
    s = build_report(run_dir).summary
    stats = {e["endpoint"]: e for e in s["requests"]["endpoints"]}
    assert stats["GET /a"]["p50_ms"] == 50 and stats["GET /a"]["p99_ms"] == 99 and stats["GET /a"]["max_ms"] == 100
    assert [stats["POST /b"][f"p{p}_ms"] for p in (50, 90, 95, 99)] == [20, 30, 30, 30]
    assert stats["GET /c"]["p50_ms"] == 4  # ceil(0.5 * 7) = 4th of 1..7
    everything = [v for values in latencies.values() for v in values]
    for endpoint, values in [*latencies.items(), ("Aggregated", everything)]:
        row = stats.get(endpoint) or s["requests"]["total"]
        for p in (50, 90, 95, 99):
            assert row[f"p{p}_ms"] == _expected(values, p), (endpoint, p)
        assert row["requests"] == len(values) and row["mean_ms"] == pytest.approx(np.mean(values))
    assert s["requests"]["total"]["failures"] == 1 and s["failures"][0]["error"] == "HTTPError: 503"
    assert s["verdict"]["status"] == "NOT RECORDED" and s["duration_s"] < 10  # no metadata: the log's own span


def test_bucket_percentiles_match_the_thresholds_definition() -> None:
    rng = np.random.default_rng(1)
    groups = [rng.lognormal(2, 1, n) for n in (0, 1, 2, 3, 10, 99, 100, 1001)]
    counts = np.array([g.size for g in groups])
    starts = np.cumsum(counts) - counts
    values = np.concatenate([np.sort(g) for g in groups])
    for p in ("p50", "p95", "p99", "p99.9"):
        got = nearest_rank(values, starts, counts, p)
        want = [_request_value(p, g, np.zeros(g.size, bool), 1.0) for g in groups]
        assert np.isnan(got[0]) and want[0] is None
        assert list(got[1:]) == want[1:]


def test_a_torn_request_log_and_a_broken_file_still_make_a_report(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path, sampler=False)
    log = run_dir / "requests.arrows"
    os.truncate(log, log.stat().st_size - 100)  # a run killed mid-write
    (run_dir / "thresholds.json").write_text("{not json")
    s = build_report(run_dir).summary
    assert s["requests"]["total"]["requests"] > 0
    assert any("thresholds.json could not be read" in p for p in s["problems"])
    assert s["verdict"]["status"] == "NOT RECORDED"


def test_out_writes_elsewhere(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "runs", sampler=False, duration_s=30)
    result = build_report(run_dir, out=tmp_path / "elsewhere")
    assert result.html_path == tmp_path / "elsewhere" / "report.html" and result.html_path.is_file()
    assert not (run_dir / "report.html").exists()


def test_not_a_run_directory(tmp_path: Path) -> None:
    with pytest.raises(NotARunDirectoryError, match="is not a run directory"):
        build_report(tmp_path)
    with pytest.raises(NotARunDirectoryError, match="does not exist"):
        build_report(tmp_path / "missing")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_cli_builds_a_report(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path, duration_s=60, generator_cpu_percent=96.0)
    done = _cli("report", str(run_dir))
    assert done.returncode == 0, done.stderr
    assert "## concurrent_users: PASSED" in done.stdout and "Load generator saturated" in done.stdout
    assert (run_dir / "report.html").is_file() and (run_dir / "summary.json").is_file()


def test_cli_rejects_what_is_not_a_run_directory(tmp_path: Path) -> None:
    done = _cli("report", str(tmp_path))
    assert done.returncode == 2
    assert "is not a run directory" in done.stderr and "metadata.json" in done.stderr
    assert "Traceback" not in done.stderr
    assert _cli("report").returncode == 2  # argparse: RUN_DIR missing
    assert _cli().returncode == 2


def test_a_run_without_thresholds_is_not_called_passed(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path)
    (run_dir / "thresholds.json").write_text(json.dumps({"evaluated": False, "passed": True}))
    result = build_report(run_dir)
    assert result.verdict == "NO THRESHOLDS"
    assert "NO THRESHOLDS" in result.summary_md_path.read_text()
    assert 'class="verdict NO-THRESHOLDS"' in result.html_path.read_text()
