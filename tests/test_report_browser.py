"""The combined report opened in headless Chromium (Debian's, driven by Playwright): every chart has rendered
traces, the page logs no console errors and fetches nothing from the network. A screenshot is kept in
``test-artifacts/`` for a human to look at."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from harness.report import build_report
from tests.run_fixtures import make_run_dir
from tests.test_harness_runs import run_locust

ROOT = Path(__file__).resolve().parents[1]
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


def open_report(html: Path, screenshot: Path) -> tuple[list[dict], list[str], list[str]]:
    """Load ``html`` and return per-chart trace counts, console errors and network requests."""
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
            page.wait_for_function(
                "() => Array.from(document.querySelectorAll('div.chart')).every("
                "c => (c.querySelector('.js-plotly-plot') || c)._fullLayout)",
                timeout=30_000,
            )
            charts = page.evaluate(RENDERED_TRACES_JS)
            screenshot.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return charts, errors, fetched


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
    assert_renders_cleanly(*open_report(report.html_path, screenshot))
    assert screenshot.stat().st_size > 10_000


def test_the_report_of_a_real_run_renders_in_chromium(tmp_path: Path) -> None:
    """A real Locust run against the embedded service, with the real sampler: its report renders cleanly too."""
    code, run_dir, stderr = run_locust("concurrent_users.py", tmp_path, users=8)
    assert code == 0, stderr[-3000:]
    assert_renders_cleanly(*open_report(run_dir / "report.html", ARTIFACTS / "report-real-run.png"))
