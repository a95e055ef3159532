"""The combined report: built from full and minimal run directories, exact nearest-rank figures, the verdict
(never PASSED for an interrupted run or one without requests), the headline, the timeline's axes, thresholds and
collapsed panels, plotly.js shared across runs or inline, and the ``python -m harness report`` command.
The rendered page is checked in Chromium by ``tests/harness/report/test_report_browser.py``."""

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

from harness.report import NotARunDirectoryError, build_report
from harness.report.assets import ASSETS_DIR, plotly_asset_name
from harness.report.charts import timeline_figure
from harness.report.distribution import histogram_figure, percentile_figure
from harness.report.rundata.requests import nearest_rank
from harness.report.rundata.view import load_view
from harness.verdict.thresholds import _request_value
from tests.run_fixtures import make_run_dir, write_requests

ROOT = Path(__file__).resolve().parents[3]
CHARTS = ("timeline", "histogram", "percentiles")
T0 = 1_767_000_000.0


def _without_plotly_js(html: str) -> str:
    js = get_plotlyjs()
    assert html.count(js) <= 1, "plotly.js must be embedded at most once"
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


def _shared_src(html: str) -> str:
    (src,) = re.findall(r'<script type="text/javascript" src="([^"]+)"></script>', html)
    return src


def test_full_run_writes_three_files(full_report) -> None:
    for path in (full_report.html_path, full_report.summary_json_path, full_report.summary_md_path):
        assert path.is_file() and path.parent == full_report.run_dir
    assert full_report.verdict == "FAILED"
    assert json.loads(full_report.summary_json_path.read_text()) == json.loads(json.dumps(full_report.summary))


def test_html_fetches_nothing_from_the_network_and_has_every_chart(full_report) -> None:
    html = full_report.html_path.read_text()
    for chart in CHARTS:
        assert f'<div class="chart" id="chart-{chart}">' in html
        assert f'id="plot-{chart}"' in html
    assert get_plotlyjs() not in html  # shared by default, not inline
    assert _shared_src(html) == f"../{ASSETS_DIR}/{plotly_asset_name()}"
    assert _fetched_urls(html) == []
    assert 'id="verdict-status">FAILED<' in html
    for kind in ("cpu_bound", "generator_saturated", "memory_leak", "failures_concentrated", "cache_hit_rate_low"):
        assert f'data-kind="{kind}"' in html
    assert "nearest rank" in html  # the endpoint table says how its percentiles were computed
    assert "NVIDIA T4" in html  # the GPU rows


def test_charts_are_valid_plotly_figures(full_report, tmp_path: Path) -> None:
    # the report builds figure dicts without plotly.py's validation (for speed): validate them here
    minimal = load_view(make_run_dir(tmp_path, sampler=False, locust_csvs=False))
    for view, panels in ((load_view(full_report.run_dir), 13), (minimal, 3)):
        timeline = timeline_figure(view)
        figure = go.Figure(timeline)
        assert len(figure.data) == len(timeline["data"]) > 0
        go.Figure(percentile_figure(view))
        go.Figure(histogram_figure(view))
        rows = [a["text"] for a in timeline["layout"]["annotations"] if a["text"].startswith("<b>")]
        assert len(rows) == panels
    assert [r for r in rows if "Latency" in r] and "Service CPU" not in " ".join(rows)  # minimal: no sampler


def test_text_from_the_run_cannot_break_out_of_the_script(tmp_path: Path) -> None:
    rows, _ = _hand_built_log()
    for row in rows[:3]:
        row.update(name="/x</script><script>alert(1)</script>", ok=False, error="<img src=x onerror=alert(1)>")
    run_dir = tmp_path / "evil"
    run_dir.mkdir()
    write_requests(run_dir / "requests.arrows", rows)
    html = _without_plotly_js(build_report(run_dir).html_path.read_text())
    assert "alert(1)</script>" not in html and "<img src=x" not in html
    # the charts, plotly.js, the zoom ticks, the "plotly.js did not load" check: nothing else opens a script
    assert html.count("<script") == html.count("</script>") == len(CHARTS) + 3


def test_summary_json_schema(full_report) -> None:
    s = full_report.summary
    assert s["schema_version"] == 2 and s["scenario"] == "concurrent_users"
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
    # tests.run_fixtures writes neither of Locust's own two (the exceptions CSV and its HTML report)
    assert s["not_recorded"] == ["locust_exceptions.csv", "locust_report.html"] and s["problems"] == []


def test_summary_md(full_report) -> None:
    md = full_report.summary_md_path.read_text()
    assert md.startswith("## concurrent_users: FAILED")
    assert "Service peak CPU" in md and re.search(r"p50 [\d.]+ ms, p95 [\d.]+ ms, p99 [\d.]+ ms", md)
    assert "FAIL failure_ratio < 1%" in md
    for finding in full_report.findings:
        assert finding.title in md
    assert str(full_report.html_path) in md
    assert re.search(r"\*\*[\d,]+ requests, [\d.]+ req/s, p50 [\d.]+ ms, p95 [\d.]+ ms", md)


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
    assert "Not shown, no data: <b>Users (Locust)</b>: locust_stats_history.csv absent." in html
    collapsed = re.findall(r'<p class="note collapsed">(.*?)</p>', html)
    assert [c for c in collapsed if "no service processes in samples.arrows" in c] == [
        "Not shown, no data: <b>Service CPU, Service RSS, Service threads, Service IO</b>: no service processes in "
        "samples.arrows."
    ]  # four panels, one line
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
    assert s["requests"] == {"source": None, "percentile_method": None, "total": None, "endpoints": [], "ok_ko": []}
    assert "requests.arrows" in s["not_recorded"] and s["resources"]["service"] is not None
    run_dir = make_run_dir(tmp_path / "b", thresholds=None, locust_csvs=False)
    write_requests(run_dir / "requests.arrows", [])
    s = build_report(run_dir).summary
    assert s["requests"]["total"]["requests"] == 0 and s["requests"]["total"]["p95_ms"] is None
    assert s["findings"] == [] and s["verdict"]["status"] == "NO REQUESTS"


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
        assert row["min_ms"] == min(values)
        assert row["bytes_total"] == 10 * len(values) and row["bytes_mean"] == 10.0
    ok, ko, everything_row = s["requests"]["ok_ko"]
    failed = rows[5]["latency_ms"]
    assert (ok["outcome"], ok["requests"], ko["requests"]) == ("OK", len(everything) - 1, 1)
    assert ko["p50_ms"] == ko["p99_ms"] == ko["min_ms"] == failed and everything_row["requests"] == len(everything)
    ok_values = sorted(everything)
    ok_values.remove(failed)
    assert ok["p95_ms"] == _expected(ok_values, 95) and ok["max_ms"] == max(ok_values)
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


# --- the verdict: never PASSED for a run that was interrupted or sent no request ---


def _with_metadata(run_dir: Path, **changes: object) -> Path:
    path = run_dir / "metadata.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return run_dir


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"interrupted": True}, "metadata.json marks the run interrupted"),
        ({"interrupted": True, "stop_reason": "SIGINT (Ctrl-C)"}, "SIGINT (Ctrl-C)"),
        ({"stop_reason": "keyboard interrupt"}, "keyboard interrupt"),
        ({"exit_code": 130}, "exit code 130 (SIGINT)"),
        ({"exit_code": -15}, "exit code -15 (signal 15)"),
        ({"interrupted": "service unreachable"}, "service unreachable"),
    ],
)
def test_an_interrupted_run_is_never_passed(tmp_path: Path, changes: dict, reason: str) -> None:
    run_dir = _with_metadata(make_run_dir(tmp_path, sampler=False, locust_csvs=False), **changes)
    result = build_report(run_dir)
    verdict = result.summary["verdict"]
    assert result.verdict == "INTERRUPTED" and verdict["thresholds_status"] == "PASSED"
    assert verdict["interrupted"] is True and reason in verdict["reason"]
    assert result.summary_md_path.read_text().startswith("## concurrent_users: INTERRUPTED")
    assert 'id="verdict-status">INTERRUPTED<' in result.html_path.read_text()


@pytest.mark.parametrize(
    "changes", [{"interrupted": False}, {"stop_reason": "run time limit reached"}, {"exit_code": 0},
                {"interrupted": None, "stop_reason": 17, "exit_code": "weird"}],
)  # fmt: skip
def test_a_run_that_ended_as_planned_keeps_its_thresholds_verdict(tmp_path: Path, changes: dict) -> None:
    run_dir = _with_metadata(make_run_dir(tmp_path, sampler=False, locust_csvs=False), **changes)
    assert build_report(run_dir).verdict == "PASSED"


def test_a_run_without_metadata_json_did_not_finish(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path, sampler=False, locust_csvs=False)
    (run_dir / "metadata.json").unlink()
    result = build_report(run_dir)
    assert result.verdict == "INTERRUPTED" and "metadata.json is absent" in result.summary["verdict"]["reason"]


def test_a_run_without_requests_says_no_requests_whatever_thresholds_json_says(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path, sampler=False, thresholds=(), locust_csvs=False, duration_s=20)
    write_requests(run_dir / "requests.arrows", [])
    (run_dir / "thresholds.json").write_text(json.dumps({"evaluated": True, "passed": True, "results": []}))
    _with_metadata(run_dir, interrupted=True)  # NO REQUESTS comes first
    result = build_report(run_dir)
    assert result.verdict == "NO REQUESTS" and "no request" in result.summary["verdict"]["reason"]
    html = result.html_path.read_text()
    assert 'id="verdict-status">NO REQUESTS<' in html and 'class="verdict NO-REQUESTS"' in html


def test_the_badge_names_the_failed_thresholds_with_what_was_measured(full_report) -> None:
    html = full_report.html_path.read_text()
    badge = re.search(r'<div class="verdict FAILED" id="verdict">(.*?)</div>', html).group(1)
    assert "1 of 2 thresholds failed" in badge and "<code>failure_ratio &lt; 1%</code> (fail: " in badge
    assert "p95 &lt; 250ms" not in badge  # it passed
    assert full_report.summary["verdict"]["failed_thresholds"] == ["failure_ratio < 1%"]


# --- the top of the page ---


def test_the_headline_gives_the_figures_and_marks_a_breached_one(full_report) -> None:
    s = full_report.summary
    head, total, service = s["headline"], s["requests"]["total"], s["resources"]["service"]
    assert head["requests"] == total["requests"] and head["p99_ms"] == total["p99_ms"]
    assert head["failure_ratio"] == total["failure_ratio"] and head["rps"] == total["rps"]
    assert head["service_cpu_max_percent"] == service["cpu_max_percent"] > 150
    assert head["service_rss_max_mb"] == service["rss_max_mb"] and head["bytes_total"] > 0
    html = full_report.html_path.read_text()
    for key in ("requests", "rps", "errors", "p50", "p95", "p99", "cpu", "rss", "bytes"):
        assert f'id="headline-{key}"' in html
    assert 'class="tile breach" id="headline-errors"' in html and 'class="tile" id="headline-p95"' in html
    assert f"{total['requests']:,}" in html


def test_the_top_findings_are_the_most_severe_two_with_their_suggestions(full_report) -> None:
    html = full_report.html_path.read_text()
    top = html[html.index('id="top-findings"') : html.index("<nav>")]
    first, second, *_ = full_report.summary["findings"]
    assert top.count('class="finding ') == 2
    assert first["title"] in top and second["title"] in top and "Suggestion:" in top
    assert f"all {len(full_report.summary['findings'])} findings" in top


def test_links_to_locusts_own_report_relative_to_the_page(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "runs", sampler=False)
    (run_dir / "locust_report.html").write_text("<html>locust</html>")
    assert 'href="locust_report.html" id="locust-report"' in build_report(run_dir).html_path.read_text()
    html = build_report(run_dir, out=tmp_path / "elsewhere").html_path.read_text()
    assert f'href="../runs/{run_dir.name}/locust_report.html"' in html


# --- the timeline ---


def test_every_panel_has_a_time_axis_in_elapsed_seconds_and_wall_clock(full_report) -> None:
    layout = timeline_figure(load_view(full_report.run_dir))["layout"]
    axes = [k for k in layout if re.fullmatch(r"xaxis\d*", k)]
    assert len(axes) == 13 and layout["meta"]["time_axes"] == sorted(axes, key=lambda a: int(a[5:] or 1))
    for axis in axes:
        assert layout[axis]["title"]["text"] == "elapsed s / wall clock UTC"
        texts = layout[axis]["ticktext"]
        assert texts[0] == "0 s<br>09:20:00" and texts[-1] == "300 s<br>09:25:00"  # T0 is 09:20:00 UTC


def test_latency_is_on_a_log_scale_and_the_ramp_up_is_shaded(full_report) -> None:
    figure = timeline_figure(load_view(full_report.run_dir))
    layout = figure["layout"]
    titles = [a["text"] for a in layout["annotations"] if a["text"].startswith("<b>")]
    latency = titles.index("<b>Latency (nearest rank per bucket, log scale)</b>") + 1
    assert layout[f"yaxis{latency}"]["type"] == "log"
    assert "p95 solid, p99 dashed, p50 dotted" in layout[f"legend{latency}"]["title"]["text"]
    (band,) = layout["shapes"]
    assert band["x0"] == 0 and band["x1"] == 9.0  # 50 users at 5 per second: full after 10 one-second ticks
    names = {t["name"] for t in figure["data"]}
    assert {"all requests p50", "all requests p95", "all requests p99", "ramp-up, 0-9.0 s (shaded)"} <= names


def test_threshold_limits_are_drawn_on_their_panels(tmp_path: Path) -> None:
    thresholds = ("p95 < 20ms", "failure_ratio < 1%", "rps > 50", "service.cpu_percent < 150",
                  "GET /health: p99 < 5ms", "service.rss_growth_mb < 100")  # fmt: skip
    run_dir = make_run_dir(tmp_path, duration_s=60, thresholds=thresholds)
    figure = timeline_figure(load_view(run_dir))
    limits = {t["name"]: t for t in figure["data"] if t["name"].startswith("limit ")}
    layout = figure["layout"]
    panel = {f"y{i + 1 if i else ''}": a["text"] for i, a in enumerate(
        a for a in layout["annotations"] if a["text"].startswith("<b>"))}  # fmt: skip
    assert "Latency" in panel[limits["limit p95 < 20ms (FAIL)"]["yaxis"]]
    assert "Latency" in panel[limits["limit GET /health: p99 < 5ms (PASS)"]["yaxis"]]
    assert "Failed requests" in panel[limits["limit failure_ratio < 1% (PASS)"]["yaxis"]]
    assert "Throughput" in panel[limits["limit rps > 50 (PASS)"]["yaxis"]]
    # the fixture's verdict had no sampler data: an error, drawn in its own color
    cpu = limits["limit service.cpu_percent < 150 (ERROR)"]
    assert "Service CPU" in panel[cpu["yaxis"]] and cpu["line"]["color"] == "#8250df"
    assert len(limits) == 5  # rss growth is not a level: no line
    assert limits["limit failure_ratio < 1% (PASS)"]["line"]["color"] == "#1a7f37"
    histogram = histogram_figure(load_view(run_dir))
    assert [s["x0"] for s in histogram["layout"]["shapes"]] == [20.0]  # the all-requests latency limit


def test_panels_without_data_collapse_to_one_line_saying_why(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path, duration_s=30)  # no GPU
    figure = timeline_figure(load_view(run_dir))
    assert not [a for a in figure["layout"]["annotations"] if "GPU" in a["text"]]
    (collapsed,) = figure["layout"]["meta"]["collapsed"]
    assert collapsed["panels"] == ["GPU utilisation", "GPU memory"] and "libnvidia-ml.so.1" in collapsed["reason"]
    html = build_report(run_dir).html_path.read_text()
    assert html.count("libnvidia-ml.so.1 not found") == 2  # the collapsed line, and the resources' GPU note


# --- additions: distribution, exceptions, resources ---


def test_the_histogram_splits_ok_and_ko_and_counts_every_request(full_report) -> None:
    view = load_view(full_report.run_dir)
    histogram = view.requests.histogram()
    assert histogram.ok.sum() + histogram.ko.sum() == view.requests.size
    assert histogram.ko.sum() == full_report.summary["requests"]["total"]["failures"] > 0
    edges = histogram.edges_ms
    assert edges[0] <= view.requests.latency_ms.min() and edges[-1] >= view.requests.latency_ms.max()
    assert np.allclose(np.diff(np.log10(edges)), 1 / 12)
    assert [t["name"] for t in histogram_figure(view)["data"]] == ["OK", "KO (failed)"]


def test_exceptions_from_locust_exceptions_csv(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path, sampler=False, duration_s=20)
    (run_dir / "locust_exceptions.csv").write_text(
        'Count,Message,Traceback,Nodes\n3,ZeroDivisionError(\'division by zero\'),"  File ""x.py"", line 1\n'
        "    1/0\n\",local\n12,KeyError('<id>'),  File y.py,local\n"
    )
    s = build_report(run_dir).summary
    assert [(e["count"], e["message"]) for e in s["exceptions"]] == [
        (12, "KeyError('<id>')"),
        (3, "ZeroDivisionError('division by zero')"),
    ]
    assert "1/0" in s["exceptions"][1]["traceback"]
    html = (run_dir / "report.html").read_text()
    assert "KeyError(&#x27;&lt;id&gt;&#x27;)" in html and "<details><summary>traceback</summary>" in html
    (run_dir / "locust_exceptions.csv").write_text("Count,Message,Traceback,Nodes\n")
    assert 'id="no-exceptions"' in build_report(run_dir).html_path.read_text()


def test_resources_are_a_table_per_process(full_report) -> None:
    table = full_report.summary["resources"]["table"]
    scopes = [r["scope"] for r in table]
    assert scopes == ["service"] * 4 + ["generator"] * 3 + ["host"]  # supervisor, 2 workers, their total
    total = table[3]
    assert total["process"] == "service total (3 processes)" and total["pid"] is None
    assert total["rss_slope_mb_per_min"] == pytest.approx(30.0, abs=1.0)
    assert total["rss_max_mb"] == full_report.summary["resources"]["service"]["rss_max_mb"]
    for row in table:
        assert set(row) >= {"cpu_mean_percent", "cpu_max_percent", "rss_start_mb", "rss_end_mb", "rss_max_mb"}
    html = full_report.html_path.read_text()
    assert '<table id="resources-table">' in html and "<th>RSS slope MB/min</th>" in html


# --- plotly.js: shared across runs by default, inline on request ---


def test_reports_of_a_runs_directory_share_one_plotly_js(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    first = build_report(make_run_dir(runs, name="20251229-092000-a", sampler=False, duration_s=30))
    second = build_report(make_run_dir(runs, name="20251229-093000-b", sampler=False, duration_s=30))
    asset = runs / ASSETS_DIR / plotly_asset_name()
    assert first.plotly_js == second.plotly_js == asset.resolve()
    assert asset.read_text(encoding="utf-8") == get_plotlyjs()
    assert sorted(p.name for p in (runs / ASSETS_DIR).iterdir()) == [plotly_asset_name()]  # no temp files left
    for result in (first, second):
        html = result.html_path.read_text()
        assert (result.html_path.parent / _shared_src(html)).resolve() == asset.resolve()
        assert result.html_path.stat().st_size < 300_000  # the run's own data, not 4.8 MB of plotly.js
        assert 'id="no-plotly" hidden' in html and "--self-contained" in html  # what to do if it did not load


def test_a_self_contained_report_inlines_plotly_js_and_writes_no_asset(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path / "runs", sampler=False, duration_s=30)
    result = build_report(run_dir, self_contained=True)
    html = result.html_path.read_text()
    assert html.count(get_plotlyjs()) == 1 and result.plotly_js is None
    assert "src=" not in _without_plotly_js(html).split("<body>")[0]
    assert not (tmp_path / "runs" / ASSETS_DIR).exists()
    done = _cli("report", str(run_dir), "--self-contained", "--out", str(tmp_path / "copy"))
    assert done.returncode == 0, done.stderr
    assert get_plotlyjs() in (tmp_path / "copy" / "report.html").read_text()
    assert not (tmp_path / ASSETS_DIR).exists()


def test_an_unwritable_assets_directory_falls_back_to_inline(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run_dir = make_run_dir(runs, sampler=False, duration_s=30)
    (runs / ASSETS_DIR).write_text("a file where the directory should be")
    result = build_report(run_dir)
    assert result.plotly_js is None and get_plotlyjs() in result.html_path.read_text()
    assert any("plotly.js is inline" in p for p in result.summary["problems"])


def test_where_the_time_goes_is_in_the_reports_navigation(tmp_path: Path) -> None:
    """Issue 15: the profile section was on the page but missing from its navigation."""
    from harness.report import build_report
    from harness.report.profile import PROFILE_SUMMARY
    from tests.run_fixtures import make_run_dir

    run_dir = make_run_dir(tmp_path / "runs", duration_s=30)
    (run_dir / PROFILE_SUMMARY).write_text(json.dumps({"error": "py-spy was not found"}))
    page = build_report(run_dir).html_path.read_text()
    nav = page.split("<nav>", 1)[1].split("</nav>", 1)[0]
    assert '<a href="#profile">Where the time goes</a>' in nav and '<section id="profile">' in page
