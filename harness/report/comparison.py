"""The gate's reports: comparison.json/.md/.html for a comparison, campaign.md/.html for a campaign.

HTML pages open offline, with no network request: comparison.html and campaign.html share plotly.js
(``<out>/../_assets/``, ``campaigns/_assets/`` for a comparison in a campaign's directory; ``harness.report.assets``),
as the run report does; ``--self-contained`` puts it inline in comparison.html. The verdict table fits the page
(one column per figure a decision rests on, the reason wrapped) and lists the largest change first. They show, for each
endpoint, every metric's per-run values side by side (as a ratio to the baseline's median, so one axis fits them
all), the latency percentile curves of every run overlaid, the service's CPU and RSS of every run overlaid, and the
verdict table with how each figure was computed. The Markdown is shaped for a pull-request comment or a CI job summary:
the verdict first, then only what changed or could not be decided, the rest folded.
An injected fault (``harness.target.faults``) puts a red banner at the top of every page and summary.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from harness.gate.campaign_data import CampaignData
from harness.gate.compare import Comparison, MetricResult, Side, method_text
from harness.gate.metrics_table import METRICS, write_json
from harness.report.assets import plotly_script
from harness.target.faults import describe_faults

__all__ = ["render_markdown", "write_campaign_report", "write_comparison"]

_COLORS = {"baseline": "#1f77b4", "candidate": "#ff7f0e", "campaign": "#1f77b4"}
_CSS = """body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
table{display:block;max-width:100%;overflow-x:auto;font-size:12px}td:first-child{min-width:14em;max-width:22em;overflow-wrap:anywhere}
td:last-child{min-width:20em}
.banner{background:#b00020;color:#fff;padding:.6em 1em;font-weight:bold;margin:.5em 0}
.warn{background:#fff3cd;padding:.4em 1em;margin:.3em 0}.regression{background:#fdd}.improvement{background:#dfd}
.inconclusive{background:#eee}.chart{height:380px}h2{margin-top:1.5em}
table.verdicts{display:table;width:100%;table-layout:fixed}table.verdicts td{overflow-wrap:anywhere;min-width:0}
table.verdicts td:first-child{width:22%}table.verdicts td:last-child{width:30%}"""


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _ci(result: MetricResult) -> str:
    low, high = result.ratio_ci
    return "-" if not (math.isfinite(low) and math.isfinite(high)) else f"{low:.3f} - {high:.3f}"


def _label(result: MetricResult) -> str:
    return f"{result.endpoint or 'service'}: {result.metric}"


# ---- Markdown ---------------------------------------------------------------------------------------------------


def render_markdown(comparison: Comparison) -> str:
    """comparison.md: verdict, banners and warnings, the regressions, improvements and inconclusive metrics, the
    rest folded in a <details> block."""
    counts = comparison.counts()
    head = comparison.verdict.upper() if comparison.verdict != "no regression" else comparison.verdict
    lines = [f"### Performance gate: {head}", ""]
    if comparison.unreachable:
        lines += [f"> **{comparison.unreachable}**", ""]
    for name, side in (("baseline", comparison.baseline), ("candidate", comparison.candidate)):
        lines.append(f"- {name}: `{side.label}` ({side.kind}, {side.runs} run{'s' if side.runs != 1 else ''})")
    lines.append(
        f"- gated metrics: {counts['regression']} regression, {counts['improvement']} improvement, "
        f"{counts['no change']} no change, {counts['inconclusive']} inconclusive; exit code {comparison.exit_code}"
    )
    lines.append("")
    for side in (comparison.baseline, comparison.candidate):
        if banner := describe_faults(side.faults):
            lines += [f"> **{side.label}: {banner.upper()}**", ""]
    lines += [f"> warning: {w}" for w in comparison.warnings if "injected fault" not in w]
    header = "| endpoint | metric | baseline | candidate | change | ratio 95% CI | p (adj.) | verdict | note |"
    rule = "|---|---|---:|---:|---:|---|---:|---|---|"

    def row(r: MetricResult) -> str:
        unit = r.unit if r.unit not in ("ratio", "requests") else ""
        change = "-" if not math.isfinite(r.change_percent) else f"{r.change_percent:+.1f}%"
        return (
            f"| {r.endpoint or 'service'} | {r.metric} | {_fmt(r.baseline_median)} {unit} | "
            f"{_fmt(r.candidate_median)} {unit} | {change} | {_ci(r)} | {_fmt(r.p_adjusted, 2)} | "
            f"**{r.verdict}** | {r.reason} |"
        )

    notable = [r for r in comparison.results if r.gated and (r.verdict != "no change" or comparison.unreachable)]
    rest = [r for r in comparison.results if r not in notable]
    if notable:
        lines += ["", header, rule, *(row(r) for r in notable)]
    lines += ["", f"<details><summary>all {len(rest)} other metrics</summary>", "", header, rule]
    lines += [row(r) for r in rest]
    lines += ["", "</details>", "", "<details><summary>method</summary>", ""]
    single = comparison.baseline.kind == "run"
    lines += [f"- **{k}**: {v}" for k, v in method_text(comparison.options, single_runs=single).items()]
    lines += ["", "</details>", ""]
    return "\n".join(lines)


# ---- figures (plain plotly dicts: no validation cost) ----------------------------------------------------------


def _layout(title: str, **extra: Any) -> dict[str, Any]:
    return {
        "title": {"text": title},
        "margin": {"l": 60, "r": 20, "t": 40, "b": 80},
        "hovermode": "closest",
        "legend": {"orientation": "h"},
        **extra,
    }


def _strip_figure(endpoint: str, rows: Sequence[MetricResult], sides: Sequence[str]) -> dict[str, Any] | None:
    """Each metric's per-run values as a ratio to the baseline's median, one box with its points per side."""
    traces = []
    for side in sides:
        xs, ys, texts = [], [], []
        for r in rows:
            reference = r.baseline_median if math.isfinite(r.baseline_median) and r.baseline_median else None
            values = r.baseline_values if side in ("baseline", "campaign") else r.candidate_values
            for v in values:
                if reference is not None and math.isfinite(v):
                    xs.append(r.metric)
                    ys.append(v / reference)
                    texts.append(f"{v:.4g} {r.unit}")
        if xs:
            traces.append(
                {
                    "type": "box",
                    "name": side,
                    "x": xs,
                    "y": ys,
                    "text": texts,
                    "boxpoints": "all",
                    "jitter": 0.4,
                    "pointpos": 0,
                    "marker": {"color": _COLORS[side]},
                    "hovertemplate": "%{x}: %{text} (%{y:.3f} x baseline median)<extra>" + side + "</extra>",
                }
            )
    if not traces:
        return None
    title = f"{endpoint or 'service'}: per-run values / baseline median"
    return {"data": traces, "layout": _layout(title, boxmode="group", yaxis={"title": {"text": "ratio"}})}


def _run_trace(side: str, run: Any, x: list[float], y: list[float], **extra: Any) -> dict[str, Any]:
    """One run's line, coloured and grouped in the legend by its side (baseline or candidate)."""
    return {
        "type": "scatter",
        "mode": "lines",
        "name": f"{side} run {run}",
        "legendgroup": side,
        "line": {"color": _COLORS[side], "width": 1},
        "x": x,
        "y": y,
        **extra,
    }


def _curve_figure(endpoint: str, curves: Sequence[tuple[str, Any]]) -> dict[str, Any] | None:
    """Latency percentile curves of every run, overlaid; x is -log10(1 - q), so the tail gets room."""
    traces = []
    for side, table in curves:
        if table is None or table.num_rows == 0:
            continue
        rows = [r for r in table.to_pylist() if r["endpoint"] == endpoint]
        for run in sorted({r["run"] for r in rows}):
            points = sorted((r["quantile"], r["latency_ms"]) for r in rows if r["run"] == run)
            traces.append(
                _run_trace(
                    side,
                    run,
                    [-math.log10(1 - q) for q, _ in points],
                    [v for _, v in points],
                    customdata=[q * 100 for q, _ in points],
                    hovertemplate="p%{customdata:.1f}: %{y:.3f} ms<extra>%{fullData.name}</extra>",
                )
            )
    if not traces:
        return None
    ticks = [0.5, 0.9, 0.95, 0.99, 0.999]
    xaxis = {
        "title": {"text": "percentile"},
        "tickvals": [-math.log10(1 - q) for q in ticks],
        "ticktext": [f"p{q * 100:g}" for q in ticks],
    }
    layout = _layout(
        f"{endpoint}: latency percentiles, every run", xaxis=xaxis, yaxis={"title": {"text": "ms"}, "type": "log"}
    )
    return {"data": traces, "layout": layout}


def _resource_figure(column: str, unit: str, resources: Sequence[tuple[str, Any]]) -> dict[str, Any] | None:
    traces = []
    for side, table in resources:
        if table is None or column not in table.column_names or table.num_rows == 0:
            continue
        rows = table.to_pylist()
        for run in sorted({r["run"] for r in rows}):
            points = [(r["t_s"], r[column]) for r in rows if r["run"] == run and r[column] is not None]
            traces.append(_run_trace(side, run, [t for t, _ in points], [v for _, v in points]))
    if not traces:
        return None
    axis = {"title": {"text": "seconds since the measured window's start"}}
    return {"data": traces, "layout": _layout(f"{column} ({unit}), every run", xaxis=axis)}


# ---- HTML -------------------------------------------------------------------------------------------------------


def _table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], classes: Sequence[str] = (), table_class: str = ""
) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if i < len(classes) and classes[i] else ""
        cells = "".join(f"<td>{html.escape(str(c))}</td>" for c in row)
        body.append(f"<tr{cls}>{cells}</tr>")
    cls = f' class="{table_class}"' if table_class else ""
    return f"<table{cls}><tr>{head}</tr>{''.join(body)}</table>"


def _page(title: str, sections: list[str], figures: dict[str, dict[str, Any]], script: str) -> str:
    """The page; ``script`` is the tag loading plotly.js (``harness.report.assets.plotly_script``)."""
    charts = "".join(
        f"(function(f){{Plotly.newPlot('{name}', f.data, f.layout, {{responsive: true}});}})({json.dumps(fig)});"
        for name, fig in figures.items()
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style>{script}</head><body>"
        f"<h1>{html.escape(title)}</h1>{''.join(sections)}<script>{charts}</script></body></html>"
    )


def _chart_div(name: str) -> str:
    return f'<div class="chart" id="{name}"></div>'


def _banners(sides: Iterable[tuple[str, dict[str, Any]]]) -> list[str]:
    return [
        f'<div class="banner">{html.escape(label)}: {html.escape(b.upper())}</div>'
        for label, faults in sides
        if (b := describe_faults(faults))
    ]


def _charts(
    results: Sequence[MetricResult],
    sides: Sequence[str],
    curves: Sequence[tuple[str, Any]],
    resources: Sequence[tuple[str, Any]],
) -> tuple[list[str], dict[str, dict[str, Any]]]:
    sections: list[str] = []
    figures: dict[str, dict[str, Any]] = {}
    endpoints = sorted({r.endpoint for r in results}, key=lambda e: (e == "", e))
    for i, endpoint in enumerate(endpoints):
        rows = [r for r in results if r.endpoint == endpoint]
        rows.sort(key=lambda r: list(METRICS).index(r.metric) if r.metric in METRICS else 99)
        sections.append(f"<h3>{html.escape(endpoint or 'service-wide')}</h3>")
        for kind, fig in (("strip", _strip_figure(endpoint, rows, sides)), ("curve", _curve_figure(endpoint, curves))):
            if fig is not None and (endpoint or kind == "strip"):
                figures[f"{kind}-{i}"] = fig
                sections.append(_chart_div(f"{kind}-{i}"))
    sections.append("<h3>resources over time</h3>")
    for column, unit in (
        ("service_cpu_percent", "% of one core"),
        ("service_rss_mb", "MB"),
        ("generator_cpu_percent", "% of one core"),
    ):
        if (fig := _resource_figure(column, unit, resources)) is not None:
            figures[f"res-{column}"] = fig
            sections.append(_chart_div(f"res-{column}"))
    return sections, figures


def _verdict_table(results: Sequence[MetricResult]) -> str:
    """One row per metric in the comparison's order (largest change first), eight columns that fit the page: the
    unit beside each median, p raw/adjusted in one cell, the threshold and runs needed in the reason."""
    headers = ["metric", "baseline", "candidate", "change", "ratio 95% CI", "p / p adj.", "verdict", "reason"]
    rows = []
    for r in results:
        unit = f" {r.unit}" if r.unit not in ("", "ratio", "requests") else ""
        change = "-" if not math.isfinite(r.change_percent) else f"{r.change_percent:+.1f}%"
        extra = [f"threshold {_fmt(r.threshold)}{unit}"] if math.isfinite(r.threshold) else []
        extra += [f"runs needed {r.runs_needed}"] if r.runs_needed is not None else []
        extra += [] if r.gated else ["informational, not gated"]
        reason = r.reason + (f" ({'; '.join(extra)})" if extra else "")
        rows.append([_label(r), f"{_fmt(r.baseline_median)}{unit}", f"{_fmt(r.candidate_median)}{unit}", change,
                     _ci(r), f"{_fmt(r.p_value, 2)} / {_fmt(r.p_adjusted, 2)}", r.verdict, reason])  # fmt: skip
    return _table(headers, rows, [r.verdict.replace(" ", "-") for r in results], table_class="verdicts")


def write_comparison(comparison: Comparison, out_dir: Path, *, self_contained: bool = False) -> dict[str, Path]:
    """Write comparison.json, comparison.md and comparison.html into ``out_dir``; returns their paths. plotly.js
    is shared in ``out_dir/../_assets/`` unless ``self_contained`` (or the shared copy cannot be written)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "comparison.json", "md": out_dir / "comparison.md", "html": out_dir / "comparison.html"}
    write_json(paths["json"], comparison.to_dict())
    paths["md"].write_text(render_markdown(comparison), encoding="utf-8")
    base, cand = comparison.baseline, comparison.candidate
    sections = _banners([(base.label, base.faults), (cand.label, cand.faults)])
    verdict = comparison.verdict.upper() if comparison.verdict != "no regression" else comparison.verdict
    if comparison.unreachable:
        sections.append(f'<div class="banner" id="inconclusive">{html.escape(comparison.unreachable)}</div>')
    sections.append(
        f"<p><b>{verdict}</b> (exit code {comparison.exit_code}): baseline <code>{html.escape(str(base.path))}"
        f"</code> ({base.runs} runs), candidate <code>{html.escape(str(cand.path))}</code> ({cand.runs} runs)</p>"
    )
    sections += [f'<div class="warn">{html.escape(w)}</div>' for w in comparison.warnings]
    sections += ["<h2>Verdicts</h2>", _verdict_table(comparison.results)]
    method = method_text(comparison.options, single_runs=base.kind == "run")
    sections += ["<h2>Method</h2>", _table(["what", "how"], method.items())]
    curves = [
        ("baseline", base.campaign.curves if base.campaign else None),
        ("candidate", cand.campaign.curves if cand.campaign else None),
    ]
    resources = [
        ("baseline", base.campaign.resources if base.campaign else None),
        ("candidate", cand.campaign.resources if cand.campaign else None),
    ]
    chart_sections, figures = _charts(comparison.results, ("baseline", "candidate"), curves, resources)
    sections += ["<h2>Per endpoint</h2>", *chart_sections]
    plotly = plotly_script(out_dir, self_contained=self_contained)
    if plotly.note:
        sections.append(f'<p class="warn">{html.escape(plotly.note)}</p>')
    page = _page(f"Comparison: {base.label} vs {cand.label}", sections, figures, script=plotly.tag)
    paths["html"].write_text(page, encoding="utf-8")
    return paths


def write_campaign_report(data: CampaignData) -> dict[str, Path]:
    """Write campaign.md and campaign.html into the campaign's directory; returns their paths."""
    info = data.info
    side = Side(
        label=data.path.name,
        kind="campaign",
        path=data.path,
        scenario=info.get("scenario") or {},
        fingerprint=info.get("fingerprint"),
        faults=info.get("faults") or {},
        campaign=data,
    )
    values = side.values()
    results = []
    for (endpoint, metric), vals in sorted(values.items()):
        spec = METRICS.get(metric)
        finite = [v for v in vals.tolist() if math.isfinite(v)]
        median = sorted(finite)[len(finite) // 2] if finite else math.nan
        results.append(
            MetricResult(
                endpoint,
                metric,
                spec.unit if spec else "",
                True,
                False,
                vals.tolist(),
                [],
                baseline_median=float(median),
            )
        )
    runs = info.get("runs") or []
    run_rows = [
        [
            r.get("run"),
            r.get("run_dir") or "-",
            r.get("exit_code"),
            r.get("wall_s"),
            "yes" if (r.get("quiet") or {}).get("quiet") else "NO",
            (r.get("quiet") or {}).get("cpu_percent"),
            (r.get("cores") or {}).get("service_cores", "-"),
            (r.get("cores") or {}).get("generator_cores", "-"),
            ", ".join((r.get("cpu_frequency") or {}).get("governors", [])) or "unavailable",
            describe_faults(r.get("faults")) or "none",
            r.get("error", ""),
        ]
        for r in runs
    ]
    md = [f"### Campaign {data.path.name}", ""]
    if banner := describe_faults(info.get("faults")):
        md += [f"> **{banner.upper()}**", ""]
    timing = info.get("timing") or {}
    md += [
        f"- scenario: `{' '.join(info.get('locust_args') or [])}`, {len(runs)} runs, warm-up {info.get('warmup_s')} s",
        f"- machine: `{(info.get('fingerprint') or {}).get('key')}`; campaign overhead beyond the runs: "
        f"{_fmt(timing.get('overhead_s'))} s ({_fmt((timing.get('overhead_ratio') or 0) * 100)}%)",
        "",
        "| endpoint | metric | median | per run |",
        "|---|---|---:|---|",
    ]
    md += [
        f"| {r.endpoint or 'service'} | {r.metric} | {_fmt(r.baseline_median)} {r.unit} | "
        f"{', '.join(_fmt(v) for v in r.baseline_values)} |"
        for r in results
    ]
    (data.path / "campaign.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    sections = _banners([(data.path.name, info.get("faults") or {})])
    sections += [
        f"<p>{html.escape(' '.join(info.get('locust_args') or []))}: {len(runs)} runs, warm-up "
        f"{info.get('warmup_s')} s, machine {html.escape(str((info.get('fingerprint') or {}).get('key')))}</p>",
        "<h2>Runs and their conditions</h2>",
        _table(
            [
                "run",
                "directory",
                "exit",
                "wall s",
                "quiet",
                "CPU % before",
                "service cores",
                "generator cores",
                "governor",
                "faults",
                "error",
            ],
            run_rows,
        ),
    ]
    curves = [("campaign", data.curves)]
    resources = [("campaign", data.resources)]
    chart_sections, figures = _charts(results, ("campaign",), curves, resources)
    sections += ["<h2>Per endpoint</h2>", *chart_sections]
    html_path = data.path / "campaign.html"
    plotly = plotly_script(data.path, self_contained=False)  # shared by the campaigns: campaigns/_assets/
    page = _page(f"Campaign {data.path.name}", sections, figures, script=plotly.tag)
    html_path.write_text(page, encoding="utf-8")
    return {"md": data.path / "campaign.md", "html": html_path}
