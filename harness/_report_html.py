"""report.html: one self-contained page (plotly.js inline once, no network requests) built from the summary
and the figures. Every chart sits in ``<div class="chart" id="chart-<name>">``; every table comes from summary.json.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from plotly.offline import get_plotlyjs

__all__ = ["render_page"]

_PLOT_CONFIG = {"displaylogo": False, "responsive": True}
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1500px;padding:0 24px;
color:#222}
header{display:flex;align-items:center;gap:24px;flex-wrap:wrap;border-bottom:2px solid #ddd;padding:12px 0}
h1{font-size:22px;margin:0}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #eee}
.verdict{font-size:26px;font-weight:700;padding:6px 18px;border-radius:6px;color:#fff;letter-spacing:1px}
.verdict.PASSED{background:#1a7f37}.verdict.FAILED{background:#cf222e}.verdict.NOT-RECORDED,.verdict.NO-THRESHOLDS{background:#6e7781}
dl.meta{display:grid;grid-template-columns:auto auto auto auto;gap:2px 14px;margin:0;font-size:13px}
dl.meta dt{color:#666}dl.meta dd{margin:0}
nav{font-size:13px;margin:8px 0}nav a{margin-right:14px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}caption{caption-side:bottom;text-align:left;color:#555;
font-size:12px;padding-top:4px;max-width:1100px}
th,td{border:1px solid #ddd;padding:3px 8px;vertical-align:top}th{background:#f6f8fa;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr.total td{font-weight:600;background:#fafafa}
.status-pass{color:#1a7f37;font-weight:600}.status-fail,.status-error{color:#cf222e;font-weight:600}
.finding{border-left:5px solid #999;padding:6px 12px;margin:8px 0;background:#fafafa}
.finding.critical{border-color:#cf222e}.finding.warning{border-color:#d4a72c}.finding.info{border-color:#0969da}
.finding h3{margin:0 0 4px;font-size:15px}.finding .sev{text-transform:uppercase;font-size:11px;color:#555}
.finding pre{font-size:11px;margin:4px 0;white-space:pre-wrap}
.note{color:#666;font-size:13px}.chart{width:100%}code{font-size:12px}
"""


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return escape(str(value))


def _measure(value: Any, unit: str) -> str:
    """A threshold figure in its unit: ratios as percentages, the rest with 3 significant digits or more."""
    if not isinstance(value, int | float):
        return "–"
    if unit == "ratio":
        return f"{value:.2%}"
    return f"{value:,.1f} {escape(unit)}" if abs(value) >= 100 else f"{value:.3g} {escape(unit)}"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = "", numeric: Sequence[bool] = (),
           row_class: Sequence[str] = ()) -> str:  # fmt: skip
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for r, row in enumerate(rows):
        cls = f' class="{row_class[r]}"' if r < len(row_class) and row_class[r] else ""
        cells = "".join(
            f'<td class="num">{cell}</td>' if i < len(numeric) and numeric[i] else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _script_json(value: Any) -> str:
    """JSON for inside a <script>: compact, numpy scalars as numbers, and every '<' escaped (\\u003c) so no
    text from the run (an endpoint name, an error message) can close the script."""
    text = json.dumps(value, separators=(",", ":"), default=lambda o: o.item() if hasattr(o, "item") else str(o))
    return text.replace("<", "\\u003c")


def _chart(name: str, figure: dict[str, Any] | None, missing: str) -> str:
    if figure is None:
        return f'<div class="chart" id="chart-{name}"><p class="note">{escape(missing)}</p></div>'
    height = int(figure["layout"].get("height", 450))
    call = ", ".join(_script_json(part) for part in (figure["data"], figure["layout"], _PLOT_CONFIG))
    return (
        f'<div class="chart" id="chart-{name}"><div id="plot-{name}" class="plotly-graph-div" '
        f'style="height:{height}px;width:100%"></div><script>Plotly.newPlot("plot-{name}", {call});</script></div>'
    )


def _header(s: dict[str, Any]) -> str:
    verdict = s["verdict"]
    status = verdict["status"]
    profile = s.get("profile") or {}
    meta = [
        ("host", s.get("host")), ("started", s.get("started_at")), ("ended", s.get("ended_at")),
        ("duration", f"{s['duration_s']:,.1f} s"), ("profile", profile.get("name") if profile else None),
        ("run directory", s.get("run_dir")), ("thresholds", verdict["note"]),
        ("findings", len(s["findings"])),
    ]  # fmt: skip
    items = "".join(f"<dt>{escape(k)}</dt><dd>{_num(v)}</dd>" for k, v in meta)
    return (
        f"<header><h1>{escape(str(s['scenario']))}</h1>"
        f'<div class="verdict {status.replace(" ", "-")}" id="verdict">{escape(status)}</div>'
        f'<dl class="meta">{items}</dl></header>'
    )


def _endpoints(s: dict[str, Any]) -> str:
    req = s["requests"]
    if req["source"] is None:
        return '<p class="note">Requests not recorded (neither requests.arrows nor locust_stats.csv).</p>'
    rows, classes = [], []
    for e in [*req["endpoints"], *([req["total"]] if req["total"] else [])]:
        ratio = e.get("failure_ratio")
        rows.append([escape(str(e["endpoint"])), _num(e["requests"]), _num(e["failures"]),
                     "–" if ratio is None else f"{ratio:.2%}", _num(e.get("rps"), 2),
                     *(_num(e.get(f"{p}_ms")) for p in ("p50", "p90", "p95", "p99", "max"))])  # fmt: skip
        classes.append("total" if e is req["total"] else "")
    caption = (f"Latency in ms. Source: {req['source']}. Percentiles: {req['percentile_method']}. "
               f"RPS = requests / run duration ({s['duration_s']:,.1f} s).")  # fmt: skip
    headers = ["endpoint", "requests", "failures", "failure %", "RPS", "p50", "p90", "p95", "p99", "max"]
    return _table(headers, rows, caption, [False, *[True] * 9], classes)


def _failures(s: dict[str, Any]) -> str:
    if not s["failures"]:
        return '<p class="note">No failed requests.</p>'
    rows = [[escape(f["endpoint"]), _num(f["count"]), f"<code>{escape(f['error'][:400])}</code>"]
            for f in s["failures"]]  # fmt: skip
    caption = "Failed requests grouped by endpoint and error message (the first 400 characters shown)."
    return _table(["endpoint", "count", "error"], rows, caption, [False, True, False])


def _thresholds(s: dict[str, Any]) -> str:
    verdict = s["verdict"]
    if not verdict["results"]:
        return f'<p class="note">{escape(verdict["note"])}.</p>'
    rows = []
    for r in verdict["results"]:
        status = str(r.get("status"))
        unit = r.get("unit") or ""
        rows.append([f'<span class="status-{escape(status)}">{escape(status.upper())}</span>',
                     f"<code>{escape(str(r.get('threshold')))}</code>", _measure(r.get("measured"), unit),
                     _measure(r.get("limit"), unit), escape(str(r.get("detail") or ""))])  # fmt: skip
    caption = "Evaluated at the end of the run (thresholds.json); an error (not measurable) is not a pass."
    return _table(["status", "threshold", "measured", "limit", "detail"], rows, caption)


def _findings(s: dict[str, Any]) -> str:
    unevaluated = s["analysis"]["unevaluated"]
    skipped = ""
    if unevaluated:
        items = "".join(f"<li>{escape(k)}: {escape(v)}</li>" for k, v in unevaluated.items())
        skipped = f'<p class="note">Rules not evaluated:</p><ul class="note">{items}</ul>'
    if not s["findings"]:
        return f'<p id="no-findings">No findings: no rule fired on this run\'s data.</p>{skipped}'
    blocks = []
    for f in s["findings"]:
        evidence = json.dumps(f["evidence"], indent=None)
        blocks.append(
            f'<div class="finding {escape(f["severity"])}" data-kind="{escape(f["kind"])}">'
            f'<span class="sev">{escape(f["severity"])}</span><h3>{escape(f["title"])}</h3>'
            f"<p>{escape(f['message'])}</p><p><b>Suggestion:</b> {escape(f['suggestion'])}</p>"
            f"<pre>evidence: {escape(evidence)}</pre></div>"
        )
    return "".join(blocks) + skipped


def _resources(s: dict[str, Any]) -> str:
    res = s["resources"]
    rows = []
    for scope in ("service", "generator", "host"):
        data = res.get(scope)
        if data is None:
            rows.append([scope, "not recorded"])
            continue
        shown = {k: v for k, v in data.items() if not isinstance(v, list | dict)}
        rows.append([scope, escape(", ".join(f"{k} {_num(v)}" for k, v in shown.items()))])
    gpu = res.get("gpu")
    gpu_text = "; ".join(", ".join(f"{k} {_num(v)}" for k, v in g.items()) for g in gpu) if gpu else res["gpu_note"]
    rows.append(["gpu", escape(str(gpu_text))])
    return _table(["scope", "figures over the run (CPU in % of one core, memory in MB)"], rows)


def _environment(s: dict[str, Any]) -> str:
    env = s["environment"]
    packages = ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items() if v)
    git = env.get("git_commit")
    rows = [
        ("command line", env.get("command_line")), ("locustfile", env.get("locustfile")),
        ("profile", json.dumps(env.get("profile")) if env.get("profile") else None),
        ("thresholds", "; ".join(env.get("thresholds") or []) or None), ("options", json.dumps(env.get("options"))),
        ("runner", env.get("runner")), ("Locust workers", env.get("workers")),
        ("workers lost", ", ".join(env.get("workers_lost") or []) or "none"),
        ("service workers", env.get("service_workers")), ("python", env.get("python")),
        ("packages", packages or None), ("platform", env.get("platform")), ("hostname", env.get("hostname")),
        ("CPU", f"{env.get('cpu_model')} ({env.get('cpu_count_logical')} logical, {env.get('cpu_count_physical')} "
                "physical)"),
        ("memory", f"{env.get('memory_total_gb')} GB"),
        ("git commit", f"{git}{' (dirty)' if env.get('git_dirty') else ''}" if git else None),
        ("environment variables", ", ".join(f"{k}={v}" for k, v in (env.get("env") or {}).items()) or None),
    ]  # fmt: skip
    return _table(["field", "value"], [[escape(k), _num(v)] for k, v in rows])


def render_page(summary: dict[str, Any], figures: dict[str, dict[str, Any] | None], notes: Sequence[str]) -> str:
    """The whole page: ``figures`` maps chart names (timeline, percentiles) to plotly figure dicts (None: not
    recorded)."""
    s = summary
    title = f"{s['scenario']}: {s['verdict']['status']}"
    not_recorded = ""
    if notes:
        not_recorded = f'<p class="note">Not recorded: {escape("; ".join(notes))}.</p>'
    sections = [
        ("findings", "Findings", _findings(s)),
        ("timeline", "Timeline",
         not_recorded + _chart("timeline", figures.get("timeline"), "Nothing on the time axis was recorded.")),
        ("endpoints", "Endpoints", _endpoints(s)
         + _chart("percentiles", figures.get("percentiles"), "Latency percentiles not recorded (no requests.arrows).")),
        ("failures", "Failures", _failures(s)),
        ("thresholds", "Thresholds", _thresholds(s)),
        ("resources", "Resources", _resources(s)),
        ("environment", "Environment", _environment(s)),
    ]  # fmt: skip
    nav = "".join(f'<a href="#{key}">{escape(name)}</a>' for key, name, _ in sections)
    body = "".join(f'<section id="{key}"><h2>{escape(name)}</h2>{html}</section>' for key, name, html in sections)
    problems = "".join(f"<li>{escape(p)}</li>" for p in s.get("problems", []))
    footer = (f'<footer class="note"><p>Built by harness.report from the files of {escape(str(s["run_dir"]))} at '
              f'{escape(s["generated_at"])}.</p>{f"<ul>{problems}</ul>" if problems else ""}</footer>')  # fmt: skip
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
        f"{_header(s)}<nav>{nav}</nav>{body}{footer}</body></html>\n"
    )
