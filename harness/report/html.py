"""report.html: one page built from the summary and the figures, that answers in 30 seconds.

At the top: a red banner when the service injected a fault on purpose (``harness.target.faults``), the verdict badge
(naming the failed thresholds, or why the run is INTERRUPTED / NO REQUESTS), the
headline figures (requests, RPS, errors, p50/p95/p99, peak service CPU and RSS, bytes received), the one or two
findings that matter most with their suggestions, and links (Locust's own report). Then the timeline, the
distribution, the tables. Every chart sits in ``<div class="chart" id="chart-<name>">``; every table comes from
summary.json. plotly.js comes from ``harness.report.assets`` (shared file or inline); without it the page says
how to get it, and the tables still read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from typing import Any

from harness.report.open_model import open_model_html
from harness.report.prometheus import prometheus_html
from harness.report.tables import (
    endpoints_table,
    environment_table,
    exceptions_table,
    failures_table,
    finding_block,
    findings_blocks,
    fmt_bytes,
    fmt_measure,
    fmt_ms,
    fmt_num,
    ok_ko_table,
    resources_table,
    thresholds_table,
)

__all__ = ["TOP_FINDINGS", "render_page"]

TOP_FINDINGS = 2  # findings shown at the top of the page, most severe first
_PLOT_CONFIG = {"displaylogo": False, "responsive": True}
# Headline tile -> the threshold metrics (over all requests) it shows.
_TILE_METRICS = {
    "requests": ("requests",), "rps": ("rps",), "errors": ("failure_ratio",), "p50": ("p50",), "p95": ("p95",),
    "p99": ("p99",), "cpu": ("service.cpu_percent",), "rss": ("service.rss_mb", "service.rss_growth_mb"),
}  # fmt: skip
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1500px;padding:0 24px;
color:#222}
header{display:flex;align-items:center;gap:20px;flex-wrap:wrap;padding:14px 0 8px}
h1{font-size:22px;margin:0}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #eee}
.verdict{display:flex;align-items:baseline;gap:14px;padding:6px 18px;border-radius:6px;color:#fff;max-width:1100px}
.verdict .status{font-size:26px;font-weight:700;letter-spacing:1px;white-space:nowrap}
.verdict .why{font-size:14px}.verdict code{font-size:14px;background:rgba(255,255,255,.18);padding:0 4px;
border-radius:3px}
.verdict.PASSED{background:#1a7f37}.verdict.FAILED{background:#cf222e}.verdict.INTERRUPTED,
.verdict.NO-REQUESTS{background:#9a6700}.verdict.NOT-RECORDED,.verdict.NO-THRESHOLDS{background:#6e7781}
.stress{font-size:17px;margin:10px 0}.tiles{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0}
.tile{flex:1 1 0;border:1px solid #ddd;border-radius:6px;padding:6px 10px;min-width:96px;background:#fafafa}
.tile .label{font-size:12px;color:#555}.tile .value{font-size:22px;font-weight:600;font-variant-numeric:tabular-nums}
.tile .sub{font-size:11px;color:#777}.tile.breach{border-color:#cf222e;background:#fff5f5}
.tile.breach .value{color:#cf222e}
.top-findings .finding{margin:6px 0}.top-findings h2{border:0;margin:14px 0 4px;font-size:16px}
dl.meta{display:flex;flex-wrap:wrap;gap:2px 18px;margin:6px 0;font-size:13px}dl.meta div{display:flex;gap:6px}
dl.meta dt{color:#666}dl.meta dd{margin:0}
nav{font-size:13px;margin:8px 0;border-bottom:2px solid #ddd;padding-bottom:8px}nav a{margin-right:14px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}caption{caption-side:bottom;text-align:left;color:#555;
font-size:12px;padding-top:4px;max-width:1100px}
th,td{border:1px solid #ddd;padding:3px 8px;vertical-align:top}th{background:#f6f8fa;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr.total td{font-weight:600;background:#fafafa}
.status-pass{color:#1a7f37;font-weight:600}.status-fail,.status-error{color:#cf222e;font-weight:600}
.finding{border-left:5px solid #999;padding:6px 12px;margin:8px 0;background:#fafafa}
.finding.critical{border-color:#cf222e}.finding.warning{border-color:#d4a72c}.finding.info{border-color:#0969da}
.finding h3{margin:0 0 4px;font-size:15px}.finding .sev{text-transform:uppercase;font-size:11px;color:#555}
.finding pre{font-size:11px;margin:4px 0;white-space:pre-wrap}.finding p{margin:4px 0}
.note{color:#666;font-size:13px}.chart{width:100%}code{font-size:12px}
.fault-banner{background:#cf222e;color:#fff;font-weight:700;padding:10px 18px;border-radius:6px;margin:6px 0;
font-size:16px}.fault-banner .why{font-weight:400;font-size:13px}
.warn{background:#fff8c5;border:1px solid #d4a72c;padding:8px 12px;border-radius:6px}
details pre{font-size:11px;white-space:pre-wrap;max-width:900px}
"""
# Recomputes the time ticks (elapsed seconds over the UTC wall clock) of every panel when the timeline is zoomed.
_TIME_TICKS_JS = """
function featureloadTimeTicks(gd){
  const meta=(gd.layout||{}).meta||{};if(!meta.time_axes)return;
  const steps=[0.1,0.2,0.5,1,2,5,10,15,30,60,120,300,600,900,1800,3600,7200,21600,43200,86400];
  gd.on('plotly_relayout',ev=>{
    if(Object.keys(ev).some(k=>k.includes('tick')))return;
    const r=gd._fullLayout[meta.time_axes[0]].range,a=+r[0],b=+r[1],span=Math.max(b-a,1e-3);
    const step=steps.find(s=>span/s<=10)||span/10,vals=[],texts=[];
    for(let v=Math.ceil(a/step)*step;v<=b+step*1e-6;v+=step){
      const x=Math.abs(v)<1e-9?0:Math.round(v*1e6)/1e6;vals.push(x);
      texts.push(x+' s<br>'+new Date((meta.t0_s+x)*1000).toISOString().slice(11,19));}
    const upd={};meta.time_axes.forEach(ax=>{upd[ax+'.tickvals']=vals;upd[ax+'.ticktext']=texts;});
    Plotly.relayout(gd,upd);});
}
"""


def _script_json(value: Any) -> str:
    """JSON for inside a <script>: compact, numpy scalars as numbers, and every '<' escaped (\\u003c) so no
    text from the run (an endpoint name, an error message) can close the script."""
    text = json.dumps(value, separators=(",", ":"), default=lambda o: o.item() if hasattr(o, "item") else str(o))
    return text.replace("<", "\\u003c")


def _chart(name: str, figure: dict[str, Any] | None, missing: str) -> str:
    if figure is None:
        return f'<div class="chart" id="chart-{name}"><p class="note">{escape(missing)}</p></div>'
    height = int(figure["layout"].get("height", 450))
    layout = figure["layout"]
    if "meta" in layout:  # plotly.js needs only what the zoom ticks read; the page shows the rest once, as text
        layout = {**layout, "meta": {k: v for k, v in layout["meta"].items() if k != "collapsed"}}
    call = ", ".join(_script_json(part) for part in (figure["data"], layout, _PLOT_CONFIG))
    return (
        f'<div class="chart" id="chart-{name}"><div id="plot-{name}" class="plotly-graph-div" '
        f'style="height:{height}px;width:100%"></div><script>if(window.Plotly){{Plotly.newPlot("plot-{name}", '
        f"{call}).then(featureloadTimeTicks);}}</script></div>"
    )


def _badge(s: dict[str, Any]) -> str:
    """The verdict: its status, and what it rests on (failed thresholds, or why there is no verdict)."""
    verdict = s["verdict"]
    status = verdict["status"]
    failed = {r.get("threshold"): r for r in verdict["results"] if r.get("status") != "pass"}
    parts = []
    if verdict.get("reason"):
        parts.append(escape(verdict["reason"]))
    if failed:
        named = ", ".join(
            f"<code>{escape(str(t))}</code> ({escape(str(r.get('status')))}: "
            f"{fmt_measure(r.get('measured'), r.get('unit') or '')})"
            for t, r in failed.items()
        )
        parts.append(f"{len(failed)} of {len(verdict['results'])} thresholds failed: {named}")
    elif status == "PASSED":
        parts.append(f"all {len(verdict['results'])} thresholds passed")
    elif status in ("NO THRESHOLDS", "NOT RECORDED"):
        parts.append(escape(verdict["note"]))
    why = f'<span class="why" id="verdict-why">{"; ".join(parts)}</span>' if parts else ""
    return (
        f'<div class="verdict {status.replace(" ", "-")}" id="verdict">'
        f'<span class="status" id="verdict-status">{escape(status)}</span>{why}</div>'
    )


def _breached(s: dict[str, Any]) -> set[str]:
    """The headline tiles whose figure broke a threshold over all requests."""
    bad = {r.get("metric") for r in s["verdict"]["results"] if r.get("status") != "pass" and not r.get("endpoint")}
    return {tile for tile, metrics in _TILE_METRICS.items() if bad.intersection(metrics)}


def _fault_banner(s: dict[str, Any]) -> str:
    """A red banner when the service injected a fault on purpose, so nobody mistakes this run for a real one."""
    faults = s.get("faults") or {}
    if not faults.get("banner"):
        return ""
    return (f'<div class="fault-banner" id="fault-banner">{escape(faults["banner"].upper())}<div class="why">'
            f"Source: {escape(str(faults.get('source')))}.</div></div>")  # fmt: skip


def _stress(s: dict[str, Any]) -> str:
    """A stress profile's answer, above the tiles: the highest load held within the SLO and what broke next."""
    stress = s.get("stress")
    if not stress:
        return ""
    return f'<p class="stress" id="stress-result"><b>Stress: {escape(stress["headline"])}</b></p>'


def _tiles(s: dict[str, Any]) -> str:
    h = s["headline"]
    total = s["requests"]["total"] or {}
    service = s["resources"]["service"] or {}
    capacity = service.get("capacity_cores")
    ratio = h.get("failure_ratio")
    source = h.get("source") or "not recorded"
    tiles = [
        ("requests", "requests", fmt_num(h.get("requests")), f"in {s['duration_s']:,.1f} s"),
        ("rps", "RPS", fmt_num(h.get("rps")), "requests / run duration"),
        ("errors", "errors", "–" if ratio is None else f"{ratio:.2%}", f"{fmt_num(total.get('failures'))} failed"),
        ("p50", "p50", fmt_ms(h.get("p50_ms"), unit=True), source),
        ("p95", "p95", fmt_ms(h.get("p95_ms"), unit=True), source),
        ("p99", "p99", fmt_ms(h.get("p99_ms"), unit=True), source),
        ("cpu", "peak service CPU", "–" if h.get("service_cpu_max_percent") is None
         else f"{h['service_cpu_max_percent']:,.0f}%",
         f"of one core; capacity {capacity * 100}%" if capacity else "of one core"),
        ("rss", "peak service RSS", "–" if h.get("service_rss_max_mb") is None
         else f"{h['service_rss_max_mb']:,.0f} MB", "all service processes"),
        ("bytes", "received", fmt_bytes(h.get("bytes_total")), "response bodies"),
    ]  # fmt: skip
    breached = _breached(s)
    sources = "; ".join(f"{k}: {v}" for k, v in (h.get("figure_sources") or {}).items())
    why = (s["requests"].get("log") or {}).get("why")
    note = (f'<p class="note" id="headline-source">Requests, RPS, errors and p50/p95/p99 over all requests: '
            f"<b>{escape(source)}</b>{f' ({escape(why)})' if why else ''}. {escape(sources)}.</p>")  # fmt: skip
    return '<div class="tiles" id="headline">' + "".join(
        f'<div class="tile{" breach" if key in breached else ""}" id="headline-{key}"><div class="label">'
        f'{escape(label)}</div><div class="value">{value}</div><div class="sub">{escape(sub)}</div></div>'
        for key, label, value, sub in tiles
    ) + "</div>" + note  # fmt: skip


def _top_findings(s: dict[str, Any]) -> str:
    findings = s["findings"]
    if not findings:
        return '<p class="note" id="top-findings">No findings: no rule fired on this run\'s data.</p>'
    shown = findings[:TOP_FINDINGS]
    more = len(findings) - len(shown)
    link = f' <a href="#findings" class="note">all {len(findings)} findings</a>' if more else ""
    blocks = "".join(finding_block(f, evidence=False) for f in shown)
    return f'<div class="top-findings" id="top-findings"><h2>What matters most{link}</h2>{blocks}</div>'


def _meta(s: dict[str, Any], locust_report_href: str | None) -> str:
    profile = s.get("profile") or {}
    locust = f'<a href="{escape(locust_report_href)}" id="locust-report">Locust\'s own report</a>' if (
        locust_report_href) else "not recorded"  # fmt: skip
    meta = [
        ("host", fmt_num(s.get("host"))), ("started", fmt_num(s.get("started_at"))),
        ("duration", f"{s['duration_s']:,.1f} s"), ("profile", fmt_num(profile.get("name") if profile else None)),
        ("run directory", fmt_num(s.get("run_dir"))), ("Locust report", locust),
    ]  # fmt: skip
    return '<dl class="meta">' + "".join(f"<div><dt>{escape(k)}</dt><dd>{v}</dd></div>" for k, v in meta) + "</dl>"


def _timeline(figure: dict[str, Any] | None) -> str:
    notes = ""
    if figure is not None:
        collapsed = figure["layout"].get("meta", {}).get("collapsed") or []
        notes = "".join(f'<p class="note collapsed">Not shown, no data: <b>{escape(", ".join(c["panels"]))}</b>: '
                        f"{escape(c['reason'])}.</p>" for c in collapsed)  # fmt: skip
    caption = ('<p class="note">Time axes: seconds since the run start over the wall clock (UTC). Requests are '
               "bucketed; sampler series averaged per bucket where the sampler ticked faster. Shaded: the ramp-up. "
               "Dash-dot lines: threshold limits (green passed, red failed), judged over the whole run or every "
               "window, so a single bucket may cross one.</p>")  # fmt: skip
    return caption + _chart("timeline", figure, "Nothing on the time axis was recorded.") + notes


def render_page(summary: dict[str, Any], figures: dict[str, dict[str, Any] | None], notes: Sequence[str], *,
                plotly_tag: str, locust_report_href: str | None = None, plotly_missing: str = "") -> str:  # fmt: skip
    """The whole page. ``figures`` maps chart names (timeline, histogram, percentiles) to plotly figure dicts
    (None: not recorded); ``notes`` lists inputs not recorded; ``plotly_tag`` is the script loading plotly.js;
    ``plotly_missing`` what to tell the reader when it did not load."""
    s = summary
    title = f"{s['scenario']}: {s['verdict']['status']}"
    sections = [
        ("timeline", "Timeline", _timeline(figures.get("timeline")) + prometheus_html(s.get("prometheus"))),
        ("distribution", "Response-time distribution",
         _chart("histogram", figures.get("histogram"), "Response times not recorded (no requests.arrows).")
         + ok_ko_table(s)),
        ("endpoints", "Endpoints", endpoints_table(s)
         + _chart("percentiles", figures.get("percentiles"), "Latency percentiles not recorded (no requests.arrows).")),
        ("latency-hdr", "Open model and HDR latency",
         open_model_html(s.get("latency_hdr"),
                         _chart("open-model", figures.get("open_model"), "Not an open-model run."))),
        ("failures", "Failures", failures_table(s)),
        ("exceptions", "Exceptions", exceptions_table(s)),
        ("thresholds", "Thresholds", thresholds_table(s)),
        ("findings", "Findings", findings_blocks(s)),
        ("resources", "Resources", resources_table(s)),
        ("environment", "Environment", environment_table(s)),
    ]  # fmt: skip
    nav = "".join(f'<a href="#{key}">{escape(name)}</a>' for key, name, _ in sections)
    body = "".join(f'<section id="{key}"><h2>{escape(name)}</h2>{html}</section>' for key, name, html in sections)
    problems = "".join(f"<li>{escape(p)}</li>" for p in s.get("problems", []))
    absent = f"<p>Not recorded: {escape('; '.join(notes))}.</p>" if notes else ""
    footer = (
        f'<footer class="note"><p>Built by harness.report from the files of {escape(str(s["run_dir"]))} at '
        f"{escape(s['generated_at'])}.</p>{absent}{f'<ul>{problems}</ul>' if problems else ''}</footer>"
    )
    missing = (f'<p class="warn" id="no-plotly" hidden>{escape(plotly_missing)}</p><script>if(!window.Plotly)'
               'document.getElementById("no-plotly").hidden=false;</script>')  # fmt: skip
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style>{plotly_tag}<script>{_TIME_TICKS_JS}</script>"
        f"</head><body><header><h1>{escape(str(s['scenario']))}</h1>{_badge(s)}</header>{_fault_banner(s)}{missing}"
        f"{_stress(s)}{_tiles(s)}{_top_findings(s)}{_meta(s, locust_report_href)}<nav>{nav}</nav>{body}{footer}"
        "</body></html>\n"
    )
