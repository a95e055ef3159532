"""The combined report opened in headless Chromium (Debian's, driven by Playwright): every chart has rendered
traces, the page logs no console errors and fetches nothing from the network; what a reader sees at the top (the
verdict naming its failed thresholds, the headline figures) and on every timeline panel (a time axis in elapsed
seconds and wall clock) is read back from the rendered page. plotly.js loads from the runs directory's shared
``_assets/``; a self-contained copy opens alone. Screenshots are kept in ``test-artifacts/`` for a human."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from harness.report import build_report
from harness.report.tables import fmt_ms
from tests.harness.test_harness_runs import run_locust
from tests.run_fixtures import make_run_dir

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The flags this machine needs: no sandbox as root, no GPU, no background traffic to Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
pytestmark = pytest.mark.slow

RENDERED_TRACES_JS = """
() => Array.from(document.querySelectorAll('div.chart')).map(chart => {
    const plot = chart.querySelector('.js-plotly-plot') || chart;
    return {
        id: chart.id,
        declared: (plot.data || []).length,
        drawn: (plot._fullData || []).filter(t => t.visible !== false).length,
        svgTraces: plot.querySelectorAll('.trace').length,
        glCanvases: plot.querySelectorAll('canvas').length,
    };
})
"""


# What the reader sees: the badge, the headline tiles, and per timeline panel its x tick labels and axis title.
PAGE_JS = """
() => {
    const text = sel => { const e = document.querySelector(sel); return e ? e.innerText : null; };
    const plot = document.getElementById('plot-timeline');
    const panels = plot ? Array.from(plot.querySelectorAll('g.cartesianlayer > g.subplot')).map(g => ({
        id: g.getAttribute('class'),
        ticks: Array.from(g.querySelectorAll('.xaxislayer-above text')).map(t => t.textContent),
    })) : [];
    const xTitles = plot ? Array.from(plot.querySelectorAll('.infolayer [class^="g-x"][class$="title"] text'))
        .map(t => t.textContent) : [];
    const layout = plot && plot._fullLayout;
    const logAxes = layout ? Object.keys(layout).filter(k => /^yaxis\\d*$/.test(k) && layout[k].type === 'log') : [];
    const tiles = {};
    document.querySelectorAll('#headline .tile').forEach(t => {
        tiles[t.id.replace('headline-', '')] = {value: t.querySelector('.value').innerText,
                                               breach: t.classList.contains('breach')};
    });
    return {verdict: text('#verdict'), status: text('#verdict-status'), tiles, panels, xTitles, logAxes,
            noPlotlyShown: !document.getElementById('no-plotly').hidden, topFindings: text('#top-findings'),
            legend: plot ? Array.from(plot.querySelectorAll('.infolayer > g[class^="legend"] text'))
                .map(t => t.textContent) : []};
}
"""
CLOCK = re.compile(r"^-?[\d.]+ s\d\d:\d\d:\d\d$")  # "12 s" over "09:20:12": textContent joins the two lines


def open_report(html: Path, screenshot: Path) -> tuple[list[dict], list[str], list[str]]:
    """Load ``html`` and return per-chart trace counts, console errors and network requests."""
    charts, errors, fetched, _ = open_page(html, screenshot)
    return charts, errors, fetched


def open_page(html: Path, screenshot: Path | None, wait_charts: bool = True) -> tuple[list, list, list, dict]:
    """Load ``html``; return per-chart trace counts, console errors, network requests and what PAGE_JS read."""
    errors: list[str] = []
    fetched: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: fetched.append(r.url) if r.url.startswith(("http:", "https:")) else None)
            page.goto(html.as_uri(), wait_until="load")
            if wait_charts:
                page.wait_for_function(
                    "() => Array.from(document.querySelectorAll('div.chart')).every("
                    "c => (c.querySelector('.js-plotly-plot') || c)._fullLayout)",
                    timeout=30_000,
                )
            charts = page.evaluate(RENDERED_TRACES_JS)
            seen = page.evaluate(PAGE_JS)
            if screenshot is not None:
                screenshot.parent.mkdir(exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return charts, errors, fetched, seen


def assert_reads_at_a_glance(seen: dict[str, Any], summary: dict[str, Any]) -> None:
    """The badge names every failed threshold; the headline tiles show the summary's figures; every timeline
    panel has time tick labels in elapsed seconds and wall clock, and a time axis title; latency is on a log axis."""
    verdict = summary["verdict"]
    assert seen["status"] == verdict["status"]
    for name in verdict["failed_thresholds"]:
        assert name in seen["verdict"], (name, seen["verdict"])
    head = summary["headline"]
    tiles = seen["tiles"]
    assert tiles["requests"]["value"] == f"{head['requests']:,}"
    for p in ("p50", "p95", "p99"):
        assert tiles[p]["value"] == fmt_ms(head[f"{p}_ms"], unit=True)
    assert tiles["errors"]["value"] == f"{head['failure_ratio']:.2%}"
    assert tiles["rps"]["value"] == f"{head['rps']:,.1f}"
    if head["service_cpu_max_percent"] is not None:
        assert tiles["cpu"]["value"] == f"{head['service_cpu_max_percent']:,.0f}%"
        assert tiles["rss"]["value"] == f"{head['service_rss_max_mb']:,.0f} MB"
    assert len(seen["panels"]) >= 3 and len(seen["xTitles"]) == len(seen["panels"])
    assert set(seen["xTitles"]) == {"elapsed s / wall clock UTC"}
    for panel in seen["panels"]:
        assert len(panel["ticks"]) >= 3 and all(CLOCK.match(t) for t in panel["ticks"]), panel
    assert len(seen["logAxes"]) == 1  # the latency panel
    assert not seen["noPlotlyShown"]


def assert_renders_cleanly(charts: list[dict], errors: list[str], fetched: list[str]) -> None:
    """Every chart declared traces and drew them all; no console errors; nothing fetched from the network."""
    assert len(charts) >= 2, charts
    for chart in charts:
        assert chart["declared"] > 0 and chart["drawn"] == chart["declared"], chart
        assert chart["svgTraces"] + chart["glCanvases"] > 0, chart
    assert errors == []
    assert fetched == []


def test_the_report_renders_every_chart_without_errors_or_network(tmp_path: Path) -> None:
    run_dir = make_run_dir(
        tmp_path, cpu_bound=True, rss_leak_mb_per_min=20.0, failing_endpoint="POST /v1/online/batch",
        cache_hit_rate=0.5, gpu=True, service_workers=2, generator_processes=2,
    )  # fmt: skip
    report = build_report(run_dir)
    screenshot = ARTIFACTS / "report.png"
    charts, errors, fetched, seen = open_page(report.html_path, screenshot)
    assert_renders_cleanly(charts, errors, fetched)
    assert screenshot.stat().st_size > 10_000
    assert_reads_at_a_glance(seen, report.summary)
    assert seen["status"] == "FAILED" and "failure_ratio < 1%" in seen["verdict"]
    assert seen["tiles"]["errors"]["breach"] and not seen["tiles"]["p95"]["breach"]
    assert "What matters most" in seen["topFindings"] and "Suggestion:" in seen["topFindings"]
    assert {"all requests p50", "all requests p95", "all requests p99"} <= set(seen["legend"])
    assert any(t.startswith("limit failure_ratio < 1%") for t in seen["legend"])
    assert any(t.startswith("ramp-up") for t in seen["legend"])


def test_a_report_copied_alone_opens_offline_when_self_contained(tmp_path: Path) -> None:
    """Shared plotly.js: the report copied away from its runs directory says how to rebuild it (and its tables
    still read); built --self-contained, the copy renders every chart on its own."""
    run_dir = make_run_dir(tmp_path / "runs", sampler=False, duration_s=30)
    shared = build_report(run_dir)
    alone = tmp_path / "copied" / "alone"
    alone.mkdir(parents=True)
    shutil.copy(shared.html_path, alone / "report.html")
    _, errors, fetched, seen = open_page(alone / "report.html", None, wait_charts=False)
    assert seen["noPlotlyShown"] and seen["status"] == "PASSED" and fetched == []
    assert [e for e in errors if "ERR_FILE_NOT_FOUND" not in e] == []  # only the missing plotly.js
    standalone = build_report(run_dir, out=tmp_path / "standalone", self_contained=True)
    shutil.copy(standalone.html_path, alone / "report.html")
    charts, errors, fetched, seen = open_page(alone / "report.html", ARTIFACTS / "report-self-contained.png")
    assert_renders_cleanly(charts, errors, fetched)
    assert_reads_at_a_glance(seen, standalone.summary)


def test_the_report_of_a_real_run_renders_in_chromium(tmp_path: Path) -> None:
    """A real Locust run against the embedded service, with the real sampler: its report renders cleanly too."""
    code, run_dir, stderr = run_locust("concurrent_users.py", tmp_path, "--threshold", "p95 < 0.1ms", users=8)
    assert code == 3, stderr[-3000:]  # the impossible threshold failed
    charts, errors, fetched, seen = open_page(run_dir / "report.html", ARTIFACTS / "report-real-run.png")
    assert_renders_cleanly(charts, errors, fetched)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert_reads_at_a_glance(seen, summary)
    assert seen["status"] == "FAILED" and "p95 < 0.1ms" in seen["verdict"] and seen["tiles"]["p95"]["breach"]
    assert (tmp_path / "_assets").is_dir()  # plotly.js shared beside the run directory
