"""The report's distribution charts, over the whole run: the response-time histogram (OK and KO requests apart)
and the latency percentile spectrum per endpoint, as plotly figure dicts. Latency thresholds over all requests are
drawn on both: a vertical line on the histogram, a marker at their percentile on the spectrum."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.report.charts import THRESHOLD_COLORS, base_layout, palette, typed_array
from harness.report.rundata.view import RunView
from harness.report.verdict import threshold_results

__all__ = ["histogram_figure", "percentile_figure"]

_PERCENT = {"p50": 50.0, "p75": 75.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99.9": 99.9}


def _latency_limits(view: RunView) -> list[dict[str, Any]]:
    """Thresholds on the latency of all requests (no endpoint) with a positive limit in ms."""
    return [r for r in threshold_results(view) if r.get("endpoint") is None and r.get("unit") == "ms"
            and isinstance(r.get("limit"), int | float) and r["limit"] > 0]  # fmt: skip


def histogram_figure(view: RunView) -> dict[str, Any] | None:
    """Requests per latency bin (log-spaced bins, 12 per factor of 10), successful (OK) and failed (KO) apart,
    with the latency thresholds as vertical lines; None without requests."""
    histogram = view.requests.histogram() if view.requests is not None else None
    if histogram is None:
        return None
    edges = histogram.edges_ms
    x = typed_array(edges)
    data = []
    for label, counts, color in (("OK", histogram.ok, "#2da44e"), ("KO (failed)", histogram.ko, "#cf222e")):
        if not counts.any() and label != "OK":
            continue
        y = np.r_[counts, counts[-1]].astype(float)  # a step per bin: the last edge repeats the last count
        data.append({"type": "scatter", "mode": "lines", "x": x, "y": typed_array(y), "name": label,
                     "line": {"shape": "hv", "color": color, "width": 1.5}, "fill": "tozeroy",
                     "hovertemplate": f"from %{{x:.3g}} ms: %{{y:,}} requests<extra>{label}</extra>"})  # fmt: skip
    shapes, annotations = [], []
    for r in _latency_limits(view):
        color = THRESHOLD_COLORS.get(str(r.get("status")), "#555")
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": r["limit"], "x1": r["limit"], "y0": 0,
                       "y1": 1, "line": {"color": color, "dash": "dashdot", "width": 1.5}})  # fmt: skip
        annotations.append({"text": f"limit {r['threshold']}", "x": np.log10(r["limit"]), "y": 1, "xref": "x",
                            "yref": "paper", "yanchor": "bottom", "showarrow": False,
                            "font": {"size": 10, "color": color}})  # fmt: skip
    layout = {
        **base_layout(), "height": 330, "shapes": shapes, "annotations": annotations,
        "legend": {"x": 1.01, "xanchor": "left", "font": {"size": 10}},
        "xaxis": {"type": "log", "title": {"text": "response time (ms, log scale; 12 bins per factor of 10)"},
                  "gridcolor": "#eee", **_ms_ticks(edges[0], edges[-1])},
        "yaxis": {"title": {"text": "requests per bin"}, "gridcolor": "#eee", "rangemode": "tozero"},
    }  # fmt: skip
    return {"data": data, "layout": layout}


def _ms_ticks(low_ms: float, high_ms: float) -> dict[str, Any]:
    """Ticks at 1, 2, 5 x 10^k ms between ``low_ms`` and ``high_ms``, labelled in ms (plotly's own log ticks
    label 2 and 5 without their decade)."""
    values = [m * 10.0**k for k in range(int(np.floor(np.log10(low_ms))), int(np.ceil(np.log10(high_ms))) + 1)
              for m in (1, 2, 5) if low_ms <= m * 10.0**k <= high_ms]  # fmt: skip
    return {"tickvals": values, "ticktext": [f"{v:g} ms" for v in values]}


_SPECTRUM_Q = np.unique(np.r_[1 - np.logspace(np.log10(0.5), -4, 60), [0.5, 0.9, 0.95, 0.99, 0.999, 0.9999]])


def percentile_figure(view: RunView, quantiles: Sequence[float] = tuple(_SPECTRUM_Q)) -> dict[str, Any] | None:
    """Latency by percentile (nearest rank, 50% to 99.99%) per endpoint and over all requests, as a plotly
    figure dict; None without requests. The x axis is log(1 / (1 - q)): each added nine gets the same width.
    Percentile thresholds over all requests are marked at their percentile."""
    requests = view.requests
    if requests is None or requests.size == 0:
        return None
    q = np.asarray(quantiles, dtype=float)
    curves = requests.percentile_curves(q)
    x = typed_array(1.0 / (1.0 - q))
    labels = [*requests.endpoints, "all requests"]
    colors = [*palette(len(requests.endpoints)), "#000"]
    percent = typed_array(q * 100)
    data = [
        {"type": "scatter", "mode": "lines", "x": x, "y": typed_array(values), "name": label, "customdata": percent,
         "line": {"color": color, "width": 2.5 if label == "all requests" else 1.5},
         "hovertemplate": f"p%{{customdata:.2f}}: %{{y:.2f}} ms<extra>{label}</extra>"}
        for label, color, values in zip(labels, colors, curves, strict=True)
    ]  # fmt: skip
    for r in _latency_limits(view):
        if (pct := _PERCENT.get(str(r.get("metric")))) is None:
            continue
        color = THRESHOLD_COLORS.get(str(r.get("status")), "#555")
        data.append({"type": "scatter", "mode": "markers", "x": [1.0 / (1.0 - pct / 100.0)], "y": [r["limit"]],
                     "name": f"limit {r['threshold']}", "marker": {"symbol": "x-thin-open", "size": 14,
                     "color": color, "line": {"width": 2, "color": color}}, "hoverinfo": "name"})  # fmt: skip
    layout = {
        **base_layout(), "height": 420, "legend": {"x": 1.01, "xanchor": "left", "font": {"size": 10}},
        "xaxis": {"type": "log", "tickvals": [2, 10, 20, 100, 1000, 10000], "gridcolor": "#eee",
                  "ticktext": ["50%", "90%", "95%", "99%", "99.9%", "99.99%"],
                  "title": {"text": "percentile (nearest rank over the whole run)"}},
        "yaxis": {"type": "log", "title": {"text": "latency (ms, log scale)"}, "gridcolor": "#eee"},
    }  # fmt: skip
    return {"data": data, "layout": layout}
