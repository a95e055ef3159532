"""The combined report of a run: latency, throughput and the server's CPU, memory, IO and GPU on one time axis,
judged by the thresholds verdict and the analysis' findings.

Everything comes from the files of the run directory (see ``harness.rundir``), so a report can be rebuilt later,
elsewhere: ``python -m harness report RUN_DIR [--out DIR]`` or ``build_report(run_dir)``. Writes three files:

    report.html    one self-contained page (plotly.js inline, no network requests): charts and tables
    summary.json   every figure of the tables, machine-readable (schema: ``harness._report_summary``)
    summary.md     a few lines for CI logs and pull requests

Optional inputs that are absent (sampler files, thresholds, Locust CSVs) make their part say "not recorded".
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness._report_charts import percentile_figure, timeline_figure
from harness._report_html import render_page
from harness._report_load import NotARunDirectoryError, load_run
from harness._report_summary import SCHEMA_VERSION, summarize
from harness._report_view import RunView, build_view
from harness.analysis import AnalysisLimits, Finding, analyze

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
    """What ``build_report`` wrote and concluded. ``verdict`` is PASSED, FAILED, NO THRESHOLDS or NOT RECORDED."""

    run_dir: Path
    html_path: Path
    summary_json_path: Path
    summary_md_path: Path
    verdict: str
    findings: list[Finding]
    summary: dict[str, Any]
    elapsed_s: float


def _write(path: Path, text: str) -> None:
    """Write atomically (temp file, then rename): a reader never sees half a report."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


def _fmt_ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f} ms"


def render_markdown(summary: dict[str, Any], html_path: Path) -> str:
    """summary.md: the verdict line, top-line RPS / p95 / failure ratio, failed thresholds, findings, the report."""
    verdict = summary["verdict"]
    lines = [f"## {summary['scenario']}: {verdict['status']}", ""]
    total = summary["requests"]["total"]
    if total:
        ratio = total.get("failure_ratio")
        lines.append(
            f"**{total['requests']:,} requests, {total['rps']:,.1f} req/s, p95 {_fmt_ms(total.get('p95_ms'))}, "
            f"p99 {_fmt_ms(total.get('p99_ms'))}, failures {'–' if ratio is None else f'{ratio:.2%}'}** "
            f"over {summary['duration_s']:,.0f} s against {summary.get('host') or 'an unknown host'}"
        )
    else:
        lines.append("Requests not recorded.")
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
    run_dir: Path | str, out: Path | str | None = None, *, limits: AnalysisLimits | None = None
) -> ReportResult:
    """Read the run directory ``run_dir``, analyze it, and write report.html, summary.json and summary.md into
    ``out`` (a directory, created if missing; default: the run directory).

    Raises NotARunDirectoryError (a ValueError) when ``run_dir`` is not a run directory.
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    out_dir = Path(out) if out is not None else run_dir
    view = build_view(load_run(run_dir))
    limits = limits or AnalysisLimits()
    findings = analyze(view, limits)
    summary = summarize(view, findings, limits)
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / "report.html"
    summary_json = out_dir / "summary.json"
    summary_md = out_dir / "summary.md"
    figures = {"timeline": timeline_figure(view), "percentiles": percentile_figure(view)}
    notes = _notes(view)
    _write(html_path, render_page(summary, figures, notes))
    _write(summary_json, json.dumps(summary, indent=2, default=str) + "\n")
    _write(summary_md, render_markdown(summary, html_path))
    return ReportResult(
        run_dir=run_dir, html_path=html_path, summary_json_path=summary_json, summary_md_path=summary_md,
        verdict=summary["verdict"]["status"], findings=findings, summary=summary,
        elapsed_s=time.perf_counter() - started,
    )  # fmt: skip


def _notes(view: RunView) -> list[str]:
    return [text for name, text in _NOT_RECORDED_NOTES.items() if not (view.run.path / name).is_file()]
