"""The report's charts: the timeline (every series on one shared time axis) and the latency percentile spectrum
per endpoint, as plotly figure dicts ({"data": [...], "layout": {...}}) that ``harness._report_html`` hands to
plotly.js. Built as plain dicts (arrays as base64 typed arrays) because plotly.py's validation of ~70 traces costs
most of a second; the tests validate them with ``plotly.graph_objects.Figure``."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from plotly.colors import qualitative

from harness._report_resources import ProcessSeries, bucket_mean, total
from harness._report_view import MAX_POINTS, RunView

__all__ = [
    "MAX_PROCESS_TRACES", "WEBGL_MIN_POINTS", "percentile_figure", "timeline_figure", "typed_array",
]  # fmt: skip

# Beyond this many points in a figure, traces are drawn with WebGL (go.Scattergl) instead of SVG.
WEBGL_MIN_POINTS = 50_000
# Per-process lines per chart; further processes are summed into one "other processes" line.
MAX_PROCESS_TRACES = 8
_ROWS = (
    ("users", "Users (Locust)", "users", 1.0),
    ("throughput", "Throughput", "req/s", 1.0),
    ("latency", "Latency per endpoint (nearest rank per bucket): p50 dotted, p95 solid, p99 dashed", "ms", 1.8),
    ("service_cpu", "Service CPU", "% of one core", 1.2),
    ("service_rss", "Service RSS", "MB", 1.0),
    ("service_threads", "Service threads", "threads", 0.8),
    ("service_io", "Service IO", "MB/s", 0.8),
    ("generator_cpu", "Load generator CPU (Locust processes)", "% of one core", 1.0),
    ("host_cpu", "Host CPU", "% of all cores", 0.8),
    ("host_memory", "Host memory", "GB", 0.8),
    ("gpu_util", "GPU utilisation", "%", 0.8),
    ("gpu_memory", "GPU memory", "MB", 0.8),
)
_ROW_PX = 190
_ROW_GAP = 0.014  # paper fraction between rows, room for each row's title
_DASH = {"p50": "dot", "p95": "solid", "p99": "dash"}


def _base_layout() -> dict[str, Any]:
    return {"hovermode": "closest", "margin": {"l": 70, "r": 260, "t": 40, "b": 60}, "plot_bgcolor": "#fff",
            "paper_bgcolor": "#fff", "font": {"family": "system-ui, sans-serif", "size": 12}}  # fmt: skip


def _palette(n: int) -> list[str]:
    colors = qualitative.Plotly if n <= 10 else qualitative.Dark24 + qualitative.Light24
    return [colors[i % len(colors)] for i in range(max(n, 1))]


def typed_array(values: np.ndarray) -> dict[str, str]:
    """A float array in plotly.js' typed-array form (base64 little-endian float64; NaN stays NaN, a gap)."""
    data = np.ascontiguousarray(values, dtype="<f8")
    return {"dtype": "f8", "bdata": base64.b64encode(data.tobytes()).decode("ascii")}


def _domains(heights: Sequence[float], gap: float) -> list[tuple[float, float]]:
    """Vertical (bottom, top) paper fractions of stacked rows, the first row on top."""
    usable = 1.0 - gap * (len(heights) - 1)
    total_height = sum(heights)
    domains, top = [], 1.0
    for h in heights:
        bottom = max(top - usable * h / total_height, 0.0)
        domains.append((bottom, top))
        top = bottom - gap
    return domains


class _Timeline:
    def __init__(self, view: RunView) -> None:
        self.view = view
        self.rows = {key: i + 1 for i, (key, *_rest) in enumerate(_ROWS)}
        self.domains = _domains([h for *_rest, h in _ROWS], _ROW_GAP)
        self.traces: list[tuple[str, dict[str, Any]]] = []
        self.empty: dict[str, str] = {}

    def line(self, row: str, x: np.ndarray, y: np.ndarray, name: str, **style: Any) -> None:
        self.traces.append((row, {"x": x, "y": y, "name": name, "mode": "lines", **style}))

    def flat(self, row: str, y: float, name: str) -> None:
        span = np.array([self.view.start_s, self.view.end_s])
        self.line(row, span, np.array([y, y]), name, line={"dash": "dash", "color": "#888", "width": 1},
                  hoverinfo="name+y")  # fmt: skip

    def sampler(self, ticks: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sampler series thinned to the chart bucket when they have more than MAX_POINTS ticks."""
        if ticks.size <= MAX_POINTS:
            return ticks, values
        return bucket_mean(ticks, values, self.view.bucket_s)

    def build(self) -> dict[str, Any]:
        view = self.view
        self._users_and_throughput()
        self._latency()
        self._processes(view.service, "service_cpu", "service", "samples.arrows")
        self._processes(view.generator, "generator_cpu", "generator", "samples.arrows")
        self._host()
        self._gpu()
        points = sum(np.size(t["x"]) for _, t in self.traces)
        kind = "scattergl" if points > WEBGL_MIN_POINTS else "scatter"
        data, layout = [], _base_layout()
        n = len(_ROWS)
        for row_key, trace in self.traces:
            row = self.rows[row_key]
            suffix = "" if row == 1 else str(row)
            data.append({**trace, "type": kind, "x": typed_array(trace["x"]), "y": typed_array(trace["y"]),
                         "xaxis": f"x{suffix}", "yaxis": f"y{suffix}", "legend": f"legend{suffix}"})  # fmt: skip
        start = datetime.fromtimestamp(view.t0_s, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        annotations = []
        for (key, title, unit, _), row, (bottom, top) in zip(_ROWS, range(1, n + 1), self.domains, strict=True):
            suffix = "" if row == 1 else str(row)
            layout[f"xaxis{suffix}"] = {
                "anchor": f"y{suffix}", "domain": [0.0, 1.0], "range": [view.start_s, view.end_s],
                "showticklabels": row == n, "showspikes": True, "spikemode": "across", "spikethickness": 1,
                "spikedash": "dot", "showgrid": True, "gridcolor": "#eee", **({"matches": f"x{n}"} if row < n else {}),
            }  # fmt: skip
            if key in ("throughput", "latency"):
                unit = f"{unit}, per {view.bucket_s:g} s"
            layout[f"yaxis{suffix}"] = {"anchor": f"x{suffix}", "domain": [bottom, top], "rangemode": "tozero",
                                        "title": {"text": unit, "font": {"size": 10}}, "gridcolor": "#eee",
                                        "zerolinecolor": "#ccc"}  # fmt: skip
            layout[f"legend{suffix}"] = {"y": top, "yanchor": "top", "x": 1.01, "xanchor": "left",
                                         "font": {"size": 10}, "tracegroupgap": 0}  # fmt: skip
            annotations.append({"text": f"<b>{title}</b>", "x": 0.0, "y": top, "xref": "paper", "yref": "paper",
                                "xanchor": "left", "yanchor": "bottom", "showarrow": False})  # fmt: skip
            if key in self.empty:
                # Paper coordinates: an axis without traces does not resolve "y12 domain" references reliably.
                annotations.append({"text": self.empty[key], "x": 0.5, "y": (bottom + top) / 2, "xref": "paper",
                                    "yref": "paper", "showarrow": False,
                                    "font": {"color": "#777", "size": 12}})  # fmt: skip
        layout[f"xaxis{n}"]["title"] = {
            "text": f"seconds since start ({start}); requests per {view.bucket_s:g} s bucket; sampler series "
            f"averaged per {view.bucket_s:g} s where it ticked faster"
        }
        layout.update(annotations=annotations, height=int(_ROW_PX * sum(h for *_r, h in _ROWS)))
        return {"data": data, "layout": layout}

    def _users_and_throughput(self) -> None:
        view, users = self.view, self.view.run.users
        if users is not None and len(users):
            ticks = users["ts_s"].to_numpy() - view.t0_s
            self.line("users", *self.sampler(ticks, users["users"].to_numpy()), "users", line={"shape": "hv"})
        else:
            self.empty["users"] = "not recorded (locust_stats_history.csv absent)"
        buckets = view.buckets
        if buckets is not None:
            self.line("throughput", buckets.centers_s, buckets.requests, "requests/s", line={"color": "#1f77b4"})
            self.line("throughput", buckets.centers_s, buckets.failures, "failures/s", line={"color": "#d62728"})
        elif users is not None and len(users):
            ticks = users["ts_s"].to_numpy() - view.t0_s
            self.line("throughput", ticks, users["rps"].to_numpy(), "requests/s (Locust)")
            self.line("throughput", ticks, users["failures_s"].to_numpy(), "failures/s (Locust)")
        else:
            self.empty["throughput"] = "not recorded (requests.arrows absent)"

    def _latency(self) -> None:
        buckets, requests = self.view.buckets, self.view.requests
        if buckets is None or requests is None or requests.size == 0:
            self.empty["latency"] = "not recorded (requests.arrows absent or empty)"
            return
        colors = _palette(len(requests.endpoints))
        for e, endpoint in enumerate(requests.endpoints):
            for p in ("p50", "p95", "p99"):
                style = {"color": colors[e], "dash": _DASH[p], "width": 1.5 if p == "p95" else 1}
                self.line(
                    "latency", buckets.centers_s, buckets.latency_ms[p][e], endpoint, legendgroup=endpoint,
                    showlegend=p == "p95", line=style, hovertemplate=f"%{{y:.1f}} ms<extra>{p} {endpoint}</extra>",
                )  # fmt: skip

    def _processes(self, series: ProcessSeries | None, row: str, scope: str, source: str) -> None:
        view = self.view
        rows = (row,) if scope == "generator" else ("service_cpu", "service_rss", "service_threads", "service_io")
        if series is None or not series.pids:
            for key in rows:
                self.empty[key] = f"not recorded (no {scope} processes in {source})"
            return
        cpu = series.cpu_percent
        order = np.argsort(-np.nan_to_num(cpu).mean(axis=1), kind="stable")
        shown, rest = order[:MAX_PROCESS_TRACES], order[MAX_PROCESS_TRACES:]
        colors = _palette(len(shown))
        charts = [(row, cpu, "%")]
        if scope == "service":
            charts += [("service_rss", series.rss_mb, "MB"), ("service_threads", series.threads, "threads")]
        for key, matrix, unit in charts:
            ticks, values = self.sampler(series.ticks_s, matrix)
            tmpl = f"%{{y:.1f}} {unit}<extra>%{{fullData.name}}</extra>"
            for color, i in zip(colors, shown, strict=False):
                self.line(key, ticks, values[i], series.labels[i], legendgroup=series.labels[i],
                          line={"color": color, "width": 1}, hovertemplate=tmpl)  # fmt: skip
            if rest.size:
                self.line(key, ticks, _sum(values[rest]), f"{rest.size} other processes", hovertemplate=tmpl)
            if len(series.pids) > 1 and scope == "service":
                self.line(key, ticks, _sum(values), "total", line={"color": "#000", "width": 2}, hovertemplate=tmpl)
        if scope == "service":
            cores = view.logical_cores
            if cores:
                self.flat(row, 100.0 * cores, f"100% x {cores} cores")
            capacity = view.service_capacity_cores
            if capacity and capacity != cores:
                self.flat(row, 100.0 * capacity, f"100% x {capacity} worker(s)")
            ticks, read = self.sampler(series.ticks_s, series.read_mb_s)
            _, write = self.sampler(series.ticks_s, series.write_mb_s)
            if np.isfinite(read).any() or np.isfinite(write).any():
                self.line("service_io", ticks, _sum(read), "read MB/s", line={"color": "#2ca02c"})
                self.line("service_io", ticks, _sum(write), "write MB/s", line={"color": "#9467bd"})
            else:
                self.empty["service_io"] = "not recorded (no read_bytes/write_bytes counters)"
        else:
            self.flat(row, 100.0, "100% (one core)")

    def _host(self) -> None:
        host = self.view.host
        if host is None:
            self.empty["host_cpu"] = self.empty["host_memory"] = "not recorded (host.arrows absent)"
            return
        ticks, cpu = self.sampler(host.ticks_s, host.cpu_percent)
        self.line("host_cpu", ticks, cpu, "host CPU %", line={"color": "#ff7f0e"})
        ticks, used = self.sampler(host.ticks_s, host.mem_used_mb / 1024.0)
        self.line("host_memory", ticks, used, "used GB", line={"color": "#17becf"})
        if host.mem_total_mb:
            self.flat("host_memory", host.mem_total_mb / 1024.0, "total GB")

    def _gpu(self) -> None:
        view = self.view
        if not view.gpus:
            self.empty["gpu_util"] = self.empty["gpu_memory"] = view.gpu_note()
            return
        colors = _palette(len(view.gpus))
        for color, gpu in zip(colors, view.gpus, strict=True):
            label = f"GPU {gpu.index} {gpu.name}"
            ticks, util = self.sampler(gpu.ticks_s, gpu.util_percent)
            self.line("gpu_util", ticks, util, label, line={"color": color})
            ticks, mem = self.sampler(gpu.ticks_s, gpu.mem_used_mb)
            self.line("gpu_memory", ticks, mem, label, line={"color": color})
            if gpu.mem_total_mb:
                self.flat("gpu_memory", gpu.mem_total_mb, f"GPU {gpu.index} total MB")


def _sum(matrix: np.ndarray) -> np.ndarray:
    return total(np.atleast_2d(matrix))


def timeline_figure(view: RunView) -> dict[str, Any]:
    """Every series of the run on one shared time axis (seconds since the run start), one row per quantity, as a
    plotly figure dict; a row without data says why ("not recorded: ...")."""
    return _Timeline(view).build()


_SPECTRUM_Q = np.unique(np.r_[1 - np.logspace(np.log10(0.5), -4, 60), [0.5, 0.9, 0.95, 0.99, 0.999, 0.9999]])


def percentile_figure(view: RunView, quantiles: Sequence[float] = tuple(_SPECTRUM_Q)) -> dict[str, Any] | None:
    """Latency by percentile (nearest rank, 50% to 99.99%) per endpoint and over all requests, as a plotly
    figure dict; None without requests. The x axis is log(1 / (1 - q)): each added nine gets the same width."""
    requests = view.requests
    if requests is None or requests.size == 0:
        return None
    q = np.asarray(quantiles, dtype=float)
    curves = requests.percentile_curves(q)
    x = typed_array(1.0 / (1.0 - q))
    labels = [*requests.endpoints, "all requests"]
    colors = [*_palette(len(requests.endpoints)), "#000"]
    percent = typed_array(q * 100)
    data = [
        {"type": "scatter", "mode": "lines", "x": x, "y": typed_array(values), "name": label, "customdata": percent,
         "line": {"color": color, "width": 2.5 if label == "all requests" else 1.5},
         "hovertemplate": f"p%{{customdata:.2f}}: %{{y:.1f}} ms<extra>{label}</extra>"}
        for label, color, values in zip(labels, colors, curves, strict=True)
    ]  # fmt: skip
    layout = {
        **_base_layout(), "height": 420, "legend": {"x": 1.01, "xanchor": "left", "font": {"size": 10}},
        "xaxis": {"type": "log", "tickvals": [2, 10, 20, 100, 1000, 10000], "gridcolor": "#eee",
                  "ticktext": ["50%", "90%", "95%", "99%", "99.9%", "99.99%"],
                  "title": {"text": "percentile (nearest rank over the whole run)"}},
        "yaxis": {"type": "log", "title": {"text": "latency (ms)"}, "gridcolor": "#eee"},
    }  # fmt: skip
    return {"data": data, "layout": layout}
