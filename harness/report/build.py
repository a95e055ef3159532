"""The combined report of a run: latency, throughput and the server's CPU, memory, IO and GPU on one time axis,
judged by the thresholds verdict and the analysis' findings.

Everything comes from the files of the run directory (see ``harness.recording.rundir``), so a report can be rebuilt
later, elsewhere: ``python -m harness report RUN_DIR [--out DIR] [--self-contained]`` or ``build_report(run_dir)``.
Writes three files:

    report.html    one page, no network requests: the verdict, headline figures and top findings, then charts and
                   tables (``harness.report.html``)
    summary.json   every figure of the tables, machine-readable (schema: ``harness.report.summary``)
    summary.md     a few lines for CI logs and pull requests

plotly.js (4.8 MB) is shared by default: written once into ``_assets/`` beside the run directories (``runs/_assets``)
and loaded relatively, so a report costs its own data only; ``self_contained=True`` inlines it instead, for a page
that opens alone anywhere (``harness.report.assets``).

Optional inputs that are absent (sampler files, thresholds, Locust CSVs) make their part say "not recorded".
No secret reaches the three files: the summary they are all rendered from goes through harness.recording.redact's rule
(URL passwords, secret-named keys and flag values), whatever the run directory holds.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.recording.redact import Redactor
from harness.report.assets import ASSETS_DIR, plotly_script
from harness.report.charts import timeline_figure
from harness.report.distribution import histogram_figure, percentile_figure
from harness.report.html import render_page
from harness.report.open_model import open_model_figure, open_model_summary
from harness.report.profile import with_profile_section
from harness.report.rundata.analysis import AnalysisLimits, Finding, analyze
from harness.report.rundata.load import NotARunDirectoryError, load_run
from harness.report.rundata.view import RunView, build_view
from harness.report.summary import SCHEMA_VERSION, summarize

__all__ = ["SCHEMA_VERSION", "NotARunDirectoryError", "ReportResult", "build_report", "render_markdown"]

_NOT_RECORDED_NOTES = {
    "samples.arrows": "sampler processes (samples.arrows)",
    "host.arrows": "host series (host.arrows)",
    "locust_stats_history.csv": "users over time (locust_stats_history.csv)",
    "requests.arrows": "the request log (requests.arrows)",
    "thresholds.json": "thresholds verdict (thresholds.json)",
    "metadata.json": "run metadata (metadata.json)",
}


@dataclass(frozen=True)
class ReportResult:
    """What ``build_report`` wrote and concluded. ``verdict`` is one of ``harness.report.verdict.STATUSES``
    (NO REQUESTS, INTERRUPTED, FAILED, PASSED, NO THRESHOLDS, NOT RECORDED); ``plotly_js`` is the shared plotly.js
    file the page loads, None when it is inline."""

    run_dir: Path
    html_path: Path
    summary_json_path: Path
    summary_md_path: Path
    verdict: str
    findings: list[Finding]
    summary: dict[str, Any]
    elapsed_s: float
    plotly_js: Path | None = None


def _write(path: Path, text: str) -> None:
    """Write atomically (temp file, then rename): a reader never sees half a report."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


def _fmt_ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.3g} ms"


def render_markdown(summary: dict[str, Any], html_path: Path) -> str:
    """summary.md: the verdict line, top-line RPS / p50 / p95 / p99 / failure ratio and peak service CPU and RSS,
    failed thresholds, findings, the report."""
    verdict = summary["verdict"]
    lines = [f"## {summary['scenario']}: {verdict['status']}", ""]
    if banner := (summary.get("faults") or {}).get("banner"):
        lines += [f"**{banner.upper()}**", ""]
    if verdict.get("reason"):
        lines += [f"{verdict['reason'][0].upper()}{verdict['reason'][1:]}.", ""]
    if stress := summary.get("stress"):
        lines += [f"**Stress: {stress['headline']}.**", ""]
    total = summary["requests"]["total"]
    if total:
        ratio = total.get("failure_ratio")
        rps = total.get("rps")
        lines.append(
            f"**{total['requests']:,} requests, {'–' if rps is None else f'{rps:,.1f}'} req/s, "
            f"p50 {_fmt_ms(total.get('p50_ms'))}, p95 {_fmt_ms(total.get('p95_ms'))}, "
            f"p99 {_fmt_ms(total.get('p99_ms'))}, failures {'–' if ratio is None else f'{ratio:.2%}'}** "
            f"over {summary['duration_s']:,.0f} s against {summary.get('host') or 'an unknown host'} "
            f"({summary['requests'].get('source_note') or 'source unknown'})"
        )
    else:
        lines.append("Requests not recorded.")
    head = summary.get("headline") or {}
    if head.get("service_cpu_max_percent") is not None:
        lines.append(f"Service peak CPU {head['service_cpu_max_percent']:,.0f}% of one core, peak RSS "
                     f"{head.get('service_rss_max_mb') or 0:,.0f} MB.")  # fmt: skip
    if (prometheus := summary.get("prometheus")) is not None:
        failed = prometheus.get("error")
        lines.append(f"Prometheus ({prometheus.get('url')}): {'FAILED: ' + failed if failed else 'pulled'}.")
    lines += ["", f"Thresholds: {verdict['note']}."]
    for line in verdict["failed"]:
        lines.append(f"- {line}")
    lines += ["", "### Findings"]
    if summary["findings"]:
        for f in summary["findings"]:
            lines.append(f"- **{f['severity']}** {f['title']}: {f['message']} → {f['suggestion']}")
    else:
        lines.append("- none: no rule fired on this run's data")
    lines += ["", f"Report: {html_path}", ""]
    return "\n".join(lines)


def build_report(
    run_dir: Path | str, out: Path | str | None = None, *, limits: AnalysisLimits | None = None,
    self_contained: bool = False,
) -> ReportResult:  # fmt: skip
    """Read the run directory ``run_dir``, analyze it, and write report.html, summary.json and summary.md into
    ``out`` (a directory, created if missing; default: the run directory). plotly.js is shared in
    ``<out>/../_assets/`` (written when missing), or inline in the page when ``self_contained``.

    Raises NotARunDirectoryError (a ValueError) when ``run_dir`` is not a run directory.
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    out_dir = Path(out) if out is not None else run_dir
    view = build_view(load_run(run_dir))
    limits = limits or AnalysisLimits()
    latency_hdr = open_model_summary(run_dir, view.run.metadata, view.t0_s)  # HDR figures, open model
    findings = analyze(view, limits, latency_hdr)
    summary = Redactor().value(summarize(view, findings, limits))
    summary["latency_hdr"] = latency_hdr
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / "report.html"
    summary_json = out_dir / "summary.json"
    summary_md = out_dir / "summary.md"
    figures = {"timeline": timeline_figure(view), "histogram": histogram_figure(view),
               "percentiles": percentile_figure(view),
               "open_model": open_model_figure(summary["latency_hdr"])}  # fmt: skip
    plotly = plotly_script(out_dir, self_contained=self_contained)
    if plotly.note:
        summary["problems"].append(plotly.note)
    locust = run_dir / "locust_report.html"
    href = os.path.relpath(locust.resolve(), out_dir.resolve()) if locust.is_file() else None
    missing = (
        f"The charts need plotly.js from {plotly.src}, shared by the reports of a runs directory, and it did "
        f"not load: keep this report in its runs directory beside {ASSETS_DIR}/, or rebuild it standalone "
        f"with `python -m harness report {run_dir} --self-contained`. The tables below are complete."
    )
    page = render_page(summary, figures, _notes(view), plotly_tag=plotly.tag, locust_report_href=href,
                       plotly_missing=missing)  # fmt: skip
    page = with_profile_section(page, run_dir)  # "where the time goes", when a CPU profile was recorded
    _write(html_path, page)
    _write(summary_json, json.dumps(summary, indent=2, default=str) + "\n")
    _write(summary_md, render_markdown(summary, html_path))
    return ReportResult(
        run_dir=run_dir, html_path=html_path, summary_json_path=summary_json, summary_md_path=summary_md,
        verdict=summary["verdict"]["status"], findings=findings, summary=summary,
        elapsed_s=time.perf_counter() - started, plotly_js=plotly.asset,
    )  # fmt: skip


def _notes(view: RunView) -> list[str]:
    return [text for name, text in _NOT_RECORDED_NOTES.items() if not (view.run.path / name).is_file()]
