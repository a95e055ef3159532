"""ab.html: the page of ``python -m harness ab`` (``harness.gate.ab``), beside its ab.json and ab.md.

Top to bottom: the verdict lines; every metric's effect with its 95% CI against the "no change" band (a forest
plot: a CI inside the band is "no change", one clear of zero beyond the noise floor a change, the rest
inconclusive); each gated metric's per-pair values of both sides (the common swings of the machine show as lines
moving together, the difference as the gap between them); the verdict table with each minimum detectable effect;
how the load was chosen (rate probe, mode, cores); the runs. plotly.js is shared in ``<ab dir>/_assets/`` like the
run reports' (``harness.report.assets``), so the page opens offline.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from harness.gate.paired import PairedComparison, PairedResult
from harness.report.assets import plotly_script
from harness.report.comparison import _chart_div, _layout, _page, _table

__all__ = ["write_ab_page"]

_SIDE_COLORS = {"baseline": "#1f77b4", "candidate": "#ff7f0e"}
_VERDICT_COLORS = {"regression": "#b00020", "improvement": "#2e7d32", "no change": "#555", "inconclusive": "#999"}
_PAIR_FIGURES = 8  # per-pair figures for the gated metrics with the largest effect; the rest are in the table


def _fmt(value: float, digits: int = 1) -> str:
    return f"{value:+.{digits}f}%" if math.isfinite(value) else "-"


def _forest(results: list[PairedResult], threshold: float) -> dict[str, Any]:
    """Effect and 95% CI of every metric, one row each, against the +-threshold band."""
    names = [r.name + ("" if r.gated else " (info)") for r in results]
    effects = [r.effect_percent if math.isfinite(r.effect_percent) else None for r in results]
    upper = [r.ci_percent[1] - r.effect_percent if math.isfinite(r.effect_percent) else None for r in results]
    lower = [r.effect_percent - r.ci_percent[0] if math.isfinite(r.effect_percent) else None for r in results]
    colors = [_VERDICT_COLORS.get(r.verdict, "#999") for r in results]
    trace = {
        "type": "scatter", "mode": "markers", "x": effects, "y": names, "name": "effect (95% CI)",
        "marker": {"color": colors, "size": 9},
        "error_x": {"type": "data", "symmetric": False, "array": upper, "arrayminus": lower, "color": "#444"},
        "hovertext": [f"{r.verdict}; MDE {r.mde_percent:.1f}%, {r.pairs} pairs" for r in results],
    }  # fmt: skip
    band = {"type": "rect", "xref": "x", "yref": "paper", "x0": -threshold, "x1": threshold, "y0": 0, "y1": 1,
            "fillcolor": "#dfd", "opacity": 0.4, "line": {"width": 0}}  # fmt: skip
    height = max(300, 28 * len(results) + 120)
    return {
        "data": [trace],
        "layout": _layout("candidate vs baseline: effect and 95% CI (%), green band: no change",
                          shapes=[band], height=height, margin={"l": 420, "r": 20, "t": 40, "b": 40},
                          xaxis={"title": {"text": "% (candidate / baseline - 1)"}, "zeroline": True},
                          yaxis={"autorange": "reversed"}),
    }  # fmt: skip


def _pairs_figure(result: PairedResult) -> dict[str, Any]:
    pairs = list(range(1, result.pairs + 1))
    traces = [
        {"type": "scatter", "mode": "lines+markers", "x": pairs, "y": values, "name": side,
         "line": {"color": _SIDE_COLORS[side]}}
        for side, values in (("baseline", result.baseline_values), ("candidate", result.candidate_values))
    ]  # fmt: skip
    title = f"{result.name}: {_fmt(result.effect_percent)} ({result.verdict})"
    return {
        "data": traces,
        "layout": _layout(title, xaxis={"title": {"text": "pair"}, "dtick": 1},
                          yaxis={"title": {"text": result.unit}}),
    }  # fmt: skip


def _verdict_rows(results: list[PairedResult]) -> list[list[str]]:
    rows = []
    for r in results:
        ci = f"[{_fmt(r.ci_percent[0])}, {_fmt(r.ci_percent[1])}]"
        p = f"{r.p_value:.2g} / {r.p_adjusted:.2g}" if math.isfinite(r.p_adjusted) else "-"
        mde = f"{r.mde_percent:.1f}%" if math.isfinite(r.mde_percent) else "inf"
        need = f"; about {r.pairs_needed} pairs would decide" if r.pairs_needed else ""
        rows.append([r.name, _fmt(r.effect_percent), ci, p, r.verdict, mde, str(r.pairs),
                     ("gated" if r.gated else "informational") + need])  # fmt: skip
    return rows


def write_ab_page(path: Path, info: dict[str, Any], comparison: PairedComparison, lines: list[str]) -> Path:
    """Write ``path/ab.html`` for a finished ab (its ab.json data ``info``) and return its path."""
    results = comparison.results
    threshold = comparison.options.threshold_percent
    head, *rest = lines
    css_class = "regression" if comparison.exit_code == 4 else ("inconclusive" if comparison.exit_code else "")
    sections = [f'<p class="{css_class}"><b>{html.escape(head)}</b> (exit code {comparison.exit_code})</p>']
    sections.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in rest) + "</ul>")
    figures: dict[str, dict[str, Any]] = {"forest": _forest(results, threshold)}
    sections += ["<h2>Effects</h2>", _chart_div("forest")]
    gated = sorted((r for r in results if r.gated and r.pairs),
                   key=lambda r: -abs(r.effect_percent) if math.isfinite(r.effect_percent) else 0.0)  # fmt: skip
    sections.append("<h2>Per pair (the gated metrics with the largest effects)</h2>")
    for index, result in enumerate(gated[:_PAIR_FIGURES]):
        figures[f"pairs{index}"] = _pairs_figure(result)
        sections.append(_chart_div(f"pairs{index}"))
    sections += ["<h2>Verdicts</h2>", _table(
        ["metric", "effect", "95% CI", "p / p adj.", "verdict", "MDE", "pairs", "note"], _verdict_rows(results),
        [r.verdict.replace(" ", "-") for r in results], table_class="verdicts",
    )]  # fmt: skip
    load = info["load"]
    probe = load["rate_probe"]
    probe_text = probe if isinstance(probe, str) else (
        f"{probe['chosen_rate']:g} req/s: the busier service at {probe['target_utilization']:.0%} of a core, from "
        + ", ".join(f"{side} {cpu:.3f} ms" for side, cpu in probe["cpu_ms_per_request"].items()
                    if isinstance(cpu, float) and math.isfinite(cpu))
        + f" of service CPU per request at {probe['probe_rate']:g} req/s")  # fmt: skip
    sides = [[role, side["kind"], side["spec"], (side.get("commit") or "")[:12],
              str(side.get("command") or side.get("directory") or ""), str(side.get("port"))]
             for role, side in info["sides"].items()]  # fmt: skip
    sections += [
        "<h2>Load and sides</h2>",
        _table(
            ["what", "value"],
            [
                ["mode", load["mode"]],
                ["arrival rate", f"{load['arrival_rate']:g} req/s"],
                ["rate probe", probe_text],
                ["locustfile", load["locustfile"]],
                ["cores", str(info["cores"])],
                ["pair order", " ".join(info["pair_order"])],
                ["elapsed", f"{info['elapsed_s']} s"],
            ],
        ),
        _table(["side", "kind", "ref", "commit", "where", "port"], sides),
    ]
    run_rows = [[r["label"], r["side"], str(r["exit_code"]), str(r["wall_s"]), str(r.get("requests", "-")),
                 f"{r['service_cpu_ms_per_request']:.3f}" if isinstance(r.get("service_cpu_ms_per_request"), float)
                 and math.isfinite(r["service_cpu_ms_per_request"]) else "-",
                 str(r["service_rss_mb"]), str(r["quiet"]["quiet"]), r.get("run_dir", r.get("error", ""))]
                for r in info["runs"]]  # fmt: skip
    sections += [
        "<h2>Runs</h2>",
        _table(["run", "side", "exit", "wall s", "requests", "CPU ms/req", "RSS MB", "quiet", "run dir"], run_rows),
    ]
    plotly = plotly_script(path, self_contained=False)
    if plotly.note:
        sections.append(f'<p class="warn">{html.escape(plotly.note)}</p>')
    out = path / "ab.html"
    out.write_text(_page(f"ab: {info['name']}", sections, figures, script=plotly.tag), encoding="utf-8")
    return out
