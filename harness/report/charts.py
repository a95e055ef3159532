"""The report's timeline: every series of a run on one shared time axis, one panel per quantity, as a plotly
figure dict ({"data": [...], "layout": {...}}) that ``harness.report.html`` hands to plotly.js. Built as plain
dicts (arrays as base64 typed arrays) because plotly.py's validation of ~70 traces costs most of a second; the
tests validate them with ``plotly.graph_objects.Figure``.

Every panel has its own time axis, labelled with the seconds since the run start and the wall clock (UTC); the
latency panel is on a log scale (a 250 ms warm-up spike does not flatten a 5 ms steady state) and the ramp-up
(users rising to their maximum) is shaded; each threshold's limit is drawn on its panel; panels without data are
left out, and ``layout.meta.collapsed`` says which and why (the page shows it once). The distribution charts are in
``harness.report.distribution``."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from plotly.colors import qualitative

from harness.report.prometheus import PROMETHEUS_ROWS
from harness.report.prometheus import add_panels as add_prometheus_panels
from harness.report.rundata.resources import ProcessSeries, bucket_mean, total
from harness.report.rundata.view import MAX_POINTS, NICE_BUCKETS_S, AgentView, RunView
from harness.report.verdict import threshold_results

__all__ = [
    "MAX_PROCESS_TRACES", "THRESHOLD_COLORS", "WEBGL_MIN_POINTS", "base_layout", "palette", "time_ticks",
    "timeline_figure", "typed_array",
]  # fmt: skip

# Beyond this many points in a figure, traces are drawn with WebGL (go.Scattergl) instead of SVG.
WEBGL_MIN_POINTS = 50_000
# Per-process lines per chart; further processes are summed into one "other processes" line.
MAX_PROCESS_TRACES = 8
_ROWS = (
    ("users", "Users (Locust)", "users", 1.0),
    ("throughput", "Throughput", "req/s", 1.0),
    ("failure_ratio", "Failed requests", "% of requests", 0.7),
    ("latency", "Latency (nearest rank per bucket, log scale)", "ms, log", 1.8),
    *PROMETHEUS_ROWS,  # --prometheus: server-side series beside the client's (harness.report.prometheus)
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
_ROW_PX = 165
_GAP_PX = 84  # between panels: two lines of time ticks, the axis title, the next panel's title
_MARGIN = {"l": 70, "r": 300, "t": 34, "b": 64}
_DASH = {"p50": "dot", "p95": "solid", "p99": "dash"}
THRESHOLD_COLORS = {"pass": "#1a7f37", "fail": "#cf222e", "error": "#8250df"}
_TICK_STEPS_S = (0.1, 0.2, 0.5, *NICE_BUCKETS_S)
TIME_AXIS_TITLE = "elapsed s / wall clock UTC"
# The panel, and the factor from the threshold's unit to the panel's, of each threshold metric that has a panel.
_THRESHOLD_PANELS = {
    "rps": ("throughput", 1.0), "failure_ratio": ("failure_ratio", 100.0), "service.cpu_percent": ("service_cpu", 1.0),
    "service.rss_mb": ("service_rss", 1.0), "generator.cpu_percent": ("generator_cpu", 1.0),
    "host.rss_mb": ("host_memory", 1 / 1024),
}  # fmt: skip
_LATENCY_METRICS = ("p50", "p75", "p90", "p95", "p99", "p99.9", "max", "mean")
_LOG_ROWS = ("latency", "client_server_latency")


def base_layout() -> dict[str, Any]:
    """The layout every chart of the report starts from."""
    return {"hovermode": "closest", "margin": dict(_MARGIN), "plot_bgcolor": "#fff", "paper_bgcolor": "#fff",
            "font": {"family": "system-ui, sans-serif", "size": 12}}  # fmt: skip


def time_ticks(start_s: float, end_s: float, t0_s: float, target: int = 10) -> tuple[list[float], list[str]]:
    """Tick positions (seconds since the run start) at a round step giving at most about ``target`` ticks over
    [start_s, end_s], and their labels: the elapsed seconds over the wall clock (UTC) of ``t0_s + tick``.
    The page recomputes them in the browser on zoom (``harness.report.html``)."""
    span = max(end_s - start_s, 1e-3)
    step = next((s for s in _TICK_STEPS_S if span / s <= target), span / target)
    first = np.ceil(start_s / step) * step
    values = [round(float(v), 6) + 0.0 for v in np.arange(first, end_s + step * 1e-6, step)]  # + 0.0: no -0
    texts = [f"{v:g} s<br>{datetime.fromtimestamp(t0_s + v, UTC).strftime('%H:%M:%S')}" for v in values]
    return values, texts


def palette(n: int) -> list[str]:
    """``n`` distinguishable colors."""
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
        self.traces: list[tuple[str, dict[str, Any]]] = []
        self.empty: dict[str, str] = {}
        self.absent: set[str] = set()  # rows that do not apply to this run (no --prometheus): neither drawn nor listed

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

    def build(self) -> dict[str, Any] | None:
        view = self.view
        self._users_and_throughput()
        self._latency()
        add_prometheus_panels(self)
        self._processes(view.service, "service_cpu", "service", "samples.arrows")
        self._processes(view.generator, "generator_cpu", "generator", "samples.arrows")
        self._host()
        self._gpu()
        self._thresholds()
        agent_rows = [row for agent in view.agents.values() for row in self._agent(agent)]
        shapes = self._ramp_up()
        rows = [row for row in (*_ROWS, *agent_rows) if row[0] not in self.empty and row[0] not in self.absent]
        if not rows:
            return None
        number = {key: i + 1 for i, (key, *_rest) in enumerate(rows)}
        points = sum(np.size(t["x"]) for _, t in self.traces)
        kind = "scattergl" if points > WEBGL_MIN_POINTS else "scatter"
        data, layout = [], base_layout()
        for row_key, trace in self.traces:
            if row_key not in number:
                continue
            suffix = "" if number[row_key] == 1 else str(number[row_key])
            data.append({**trace, "type": kind, "x": typed_array(trace["x"]), "y": typed_array(trace["y"]),
                         "xaxis": f"x{suffix}", "yaxis": f"y{suffix}", "legend": f"legend{suffix}"})  # fmt: skip
        n = len(rows)
        plot_px = sum(_ROW_PX * h for *_r, h in rows) + _GAP_PX * (n - 1)
        domains = _domains([h for *_r, h in rows], _GAP_PX / plot_px)
        tickvals, ticktext = time_ticks(view.start_s, view.end_s, view.t0_s)
        annotations, axes = [], []
        for (key, title, unit, _), row, (bottom, top) in zip(rows, range(1, n + 1), domains, strict=True):
            suffix = "" if row == 1 else str(row)
            axes.append(f"xaxis{suffix}")
            layout[f"xaxis{suffix}"] = {
                "anchor": f"y{suffix}", "domain": [0.0, 1.0], "range": [view.start_s, view.end_s],
                "tickvals": tickvals, "ticktext": ticktext, "tickfont": {"size": 10}, "showspikes": True,
                "spikemode": "across", "spikethickness": 1, "spikedash": "dot", "showgrid": True, "gridcolor": "#eee",
                "title": {"text": TIME_AXIS_TITLE, "font": {"size": 10, "color": "#666"}, "standoff": 2},
                **({"matches": f"x{n}"} if row < n else {}),
            }  # fmt: skip
            if key in ("throughput", "latency", "failure_ratio"):  # Locust's side only: per chart bucket
                unit = f"{unit}, per {view.bucket_s:g} s"
            layout[f"yaxis{suffix}"] = {"anchor": f"x{suffix}", "domain": [bottom, top], "rangemode": "tozero",
                                        "title": {"text": unit, "font": {"size": 10}}, "gridcolor": "#eee",
                                        "zerolinecolor": "#ccc"}  # fmt: skip
            if key in _LOG_ROWS:
                layout[f"yaxis{suffix}"].update(type="log", rangemode="normal")
            layout[f"legend{suffix}"] = {"y": top, "yanchor": "top", "x": 1.01, "xanchor": "left",
                                         "font": {"size": 10}, "tracegroupgap": 0}  # fmt: skip
            if key in _LOG_ROWS:
                layout[f"legend{suffix}"]["title"] = {"text": "p95 solid, p99 dashed, p50 dotted", "font": {"size": 10}}
            annotations.append({"text": f"<b>{title}</b>", "x": 0.0, "y": top, "xref": "paper", "yref": "paper",
                                "xanchor": "left", "yanchor": "bottom", "showarrow": False})  # fmt: skip
        layout.update(annotations=annotations, height=int(plot_px + _MARGIN["t"] + _MARGIN["b"]), shapes=shapes)
        layout["meta"] = {"t0_s": view.t0_s, "time_axes": axes, "collapsed": self._collapsed()}
        return {"data": data, "layout": layout}

    def _agent(self, agent: AgentView) -> list[tuple[str, str, str, float]]:
        """An agent host's panels, below this host's on the same time axis: the CPU of each process it follows
        (all its scopes), its host CPU and memory; each window it was lost is shaded and named in its panels."""
        key, kind = f"agent:{agent.name}", agent.agent.get("kind", "agent")
        rows = [(f"{key}:cpu", f"{agent.name}: process CPU ({kind})", "% of one core", 1.0),
                (f"{key}:host_cpu", f"{agent.name}: host CPU ({kind})", "% of all cores", 0.8),
                (f"{key}:host_memory", f"{agent.name}: host memory ({kind})", "GB", 0.8)]  # fmt: skip
        series = [s for _, s in sorted(agent.processes.items()) if s.pids]
        if not series:
            self.empty[rows[0][0]] = f"no processes sampled by agent {agent.name}"
        colors = palette(sum(min(len(s.pids), MAX_PROCESS_TRACES) for s in series))
        tmpl = "%{y:.1f} %<extra>%{fullData.name}</extra>"
        for s in series:
            ticks, values = self.sampler(s.ticks_s, s.cpu_percent)
            for i in np.argsort(-np.nan_to_num(values).mean(axis=1), kind="stable")[:MAX_PROCESS_TRACES]:
                self.line(rows[0][0], ticks, values[i], f"{s.scope}: {s.labels[i]}", hovertemplate=tmpl,
                          line={"color": colors.pop(0), "width": 1})  # fmt: skip
        if agent.host is None:
            self.empty[rows[1][0]] = self.empty[rows[2][0]] = f"no host rows from agent {agent.name}"
        else:
            ticks, cpu = self.sampler(agent.host.ticks_s, agent.host.cpu_percent)
            self.line(rows[1][0], ticks, cpu, f"{agent.name} CPU %", line={"color": "#ff7f0e"})
            ticks, used = self.sampler(agent.host.ticks_s, agent.host.mem_used_mb / 1024.0)
            self.line(rows[2][0], ticks, used, f"{agent.name} used GB", line={"color": "#17becf"})
            if agent.host.mem_total_mb:
                self.flat(rows[2][0], agent.host.mem_total_mb / 1024.0, "total GB")
        for window in agent.agent.get("lost") or []:
            start = (window.get("from_s") or self.view.t0_s) - self.view.t0_s
            end = (window.get("to_s") or self.view.t0_s + self.view.end_s) - self.view.t0_s
            for row in rows:
                if row[0] not in self.empty:
                    top = 100.0 if row is not rows[2] else (agent.host.mem_total_mb or 1024.0) / 1024.0
                    self.line(row[0], np.array([start, start, end, end]), np.array([0.0, top, top, 0.0]),
                              f"lost {start:.1f}-{end:.1f} s", fill="toself", fillcolor="rgba(207,34,46,0.12)",
                              line={"width": 0}, hoverinfo="name")  # fmt: skip
        return rows

    def _collapsed(self) -> list[dict[str, Any]]:
        """The panels left out for want of data, grouped by the reason (each reason once)."""
        by_reason: dict[str, list[str]] = {}
        agent_rows = [(f"agent:{a.name}:cpu", f"{a.name}: process CPU ({a.agent.get('kind', 'agent')})")
                      for a in self.view.agents.values()]  # fmt: skip
        for key, title, *_rest in (*_ROWS, *agent_rows):
            if key in self.empty:
                by_reason.setdefault(self.empty[key], []).append(title)
        return [{"panels": panels, "reason": reason} for reason, panels in by_reason.items()]

    def _ramp_up(self) -> list[dict[str, Any]]:
        """A shaded band over every panel from the start until the users first reach their maximum, named in the
        users panel's legend."""
        users = self.view.run.users
        if users is None or not len(users) or not np.nanmax(users["users"].to_numpy(), initial=0) > 0:
            return []
        counts = users["users"].to_numpy()
        ticks = users["ts_s"].to_numpy() - self.view.t0_s
        end = float(ticks[int(np.argmax(counts >= np.nanmax(counts)))])
        if end <= max(self.view.start_s, 0.0):
            return []
        self.line(
            "users",
            np.array([0.0, end]),
            np.full(2, float(np.nanmax(counts))),
            f"ramp-up, 0-{end:.1f} s (shaded)",
            fill="tozeroy",
            fillcolor="rgba(0,0,0,0.06)",
            line={"width": 0},
            hoverinfo="name",
        )
        return [{"type": "rect", "xref": "x", "yref": "paper", "x0": 0.0, "x1": end, "y0": 0.0, "y1": 1.0,
                 "fillcolor": "#f1f1f1", "opacity": 0.6, "line": {"width": 0}, "layer": "below"}]  # fmt: skip

    def _thresholds(self) -> None:
        """Each threshold's limit as a line on its panel, named by the threshold and colored by its status."""
        cores = self.view.logical_cores
        for result in threshold_results(self.view):
            metric, limit = result.get("metric"), result.get("limit")
            if not isinstance(limit, int | float):
                continue
            if metric in _LATENCY_METRICS:
                row, factor = "latency", 1.0
            elif metric == "host.cpu_percent" and cores:
                row, factor = "host_cpu", 1.0 / cores  # percent of one core, the panel's is of all cores
            elif metric in _THRESHOLD_PANELS:
                row, factor = _THRESHOLD_PANELS[metric]
            else:
                continue
            if row in self.empty or (row == "latency" and limit <= 0):
                continue
            status = str(result.get("status"))
            color = THRESHOLD_COLORS.get(status, "#555")
            span = np.array([self.view.start_s, self.view.end_s])
            self.line(row, span, np.full(2, limit * factor), f"limit {result.get('threshold')} ({status.upper()})",
                      line={"dash": "dashdot", "color": color, "width": 1.5}, hoverinfo="name")  # fmt: skip

    def _users_and_throughput(self) -> None:
        view, users = self.view, self.view.run.users
        if users is not None and len(users):
            ticks = users["ts_s"].to_numpy() - view.t0_s
            self.line("users", *self.sampler(ticks, users["users"].to_numpy()), "users", line={"shape": "hv"})
        else:
            self.empty["users"] = "locust_stats_history.csv absent"
        buckets = view.buckets
        if buckets is not None:
            self.line("throughput", buckets.centers_s, buckets.requests, "requests/s", line={"color": "#1f77b4"})
            self.line("throughput", buckets.centers_s, buckets.failures, "failures/s", line={"color": "#d62728"})
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = np.where(buckets.requests > 0, 100.0 * buckets.failures / buckets.requests, np.nan)
            self.line("failure_ratio", buckets.centers_s, ratio, "failed %", line={"color": "#d62728"},
                      hovertemplate="%{y:.2f}% failed<extra></extra>")  # fmt: skip
        elif users is not None and len(users):
            ticks = users["ts_s"].to_numpy() - view.t0_s
            self.line("throughput", ticks, users["rps"].to_numpy(), "requests/s (Locust)")
            self.line("throughput", ticks, users["failures_s"].to_numpy(), "failures/s (Locust)")
            self.empty["failure_ratio"] = "requests.arrows absent (per-bucket failure ratio)"
        else:
            self.empty["throughput"] = self.empty["failure_ratio"] = "requests.arrows absent"

    def _latency(self) -> None:
        buckets, requests = self.view.buckets, self.view.requests
        if buckets is None or requests is None or requests.size == 0:
            self.empty["latency"] = "requests.arrows absent or empty"
            return
        colors = palette(len(requests.endpoints))
        for e, endpoint in enumerate(requests.endpoints):
            for p in ("p95", "p99"):
                style = {"color": colors[e], "dash": _DASH[p], "width": 1.5 if p == "p95" else 1}
                self.line(
                    "latency", buckets.centers_s, buckets.latency_ms[p][e], endpoint, legendgroup=endpoint,
                    showlegend=p == "p95", line=style, hovertemplate=f"%{{y:.2f}} ms<extra>{p} {endpoint}</extra>",
                )  # fmt: skip
        for p in ("p50", "p95", "p99"):
            self.line("latency", buckets.centers_s, buckets.total_ms[p], f"all requests {p}",
                      line={"color": "#000", "dash": _DASH[p], "width": 2.5 if p == "p95" else 1.5},
                      hovertemplate=f"%{{y:.2f}} ms<extra>{p} all requests</extra>")  # fmt: skip

    def _processes(self, series: ProcessSeries | None, row: str, scope: str, source: str) -> None:
        view = self.view
        rows = (row,) if scope == "generator" else ("service_cpu", "service_rss", "service_threads", "service_io")
        if series is None or not series.pids:
            for key in rows:
                self.empty[key] = f"no {scope} processes in {source}"
            return
        cpu = series.cpu_percent
        order = np.argsort(-np.nan_to_num(cpu).mean(axis=1), kind="stable")
        shown, rest = order[:MAX_PROCESS_TRACES], order[MAX_PROCESS_TRACES:]
        colors = palette(len(shown))
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
                self.empty["service_io"] = "no read_bytes/write_bytes counters in samples.arrows"
        else:
            self.flat(row, 100.0, "100% (one core)")

    def _host(self) -> None:
        host = self.view.host
        if host is None:
            self.empty["host_cpu"] = self.empty["host_memory"] = "host.arrows absent"
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
        colors = palette(len(view.gpus))
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


def timeline_figure(view: RunView) -> dict[str, Any] | None:
    """Every series of the run on one shared time axis (seconds since the run start), one panel per quantity, as
    a plotly figure dict; panels without data are left out and listed with the reason in
    ``layout.meta.collapsed``; None when no panel has data."""
    return _Timeline(view).build()
