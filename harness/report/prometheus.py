"""The report's Prometheus part: the source as metadata.json records it, and the timeline panels drawn from the
series of prometheus.arrows (``harness.recording.prometheus``), which ``harness.report.rundata.prometheus`` reads.

Panels (only when the run pulled series with ``--prometheus``; a failed pull is the one line under the timeline,
and a row without series is collapsed with the reason): client-side (Locust, per chart bucket) and server-side
(Prometheus, per step) p50/p95/p99 in one latency panel; requests/s sent by Locust and served according to
Prometheus; the service's CPU and RSS from its process collector; every other query in one panel. Times are
seconds since the run start.
"""

from __future__ import annotations

from html import escape
from typing import Any

import numpy as np

from harness.recording.prometheus import DEFAULT_QUERIES
from harness.report.rundata.prometheus import PromSeries

__all__ = ["PROMETHEUS_ROWS", "add_panels", "prometheus_html", "prometheus_summary"]

MB = 2**20
MAX_OTHER_TRACES = 24  # lines in the "other queries" panel; prometheus.arrows keeps every series
# (key, title, unit, height) of the timeline rows drawn here, in charts.py's _ROWS form.
PROMETHEUS_ROWS = (
    ("client_server_latency", "Latency: client (Locust) and server (Prometheus)", "ms, log", 1.4),
    ("served_rate", "Requests/s: sent (Locust) and served (Prometheus)", "req/s", 0.9),
    ("prometheus_cpu", "Service CPU (Prometheus)", "% of one core", 0.8),
    ("prometheus_rss", "Service RSS (Prometheus)", "MB", 0.8),
    ("prometheus_other", "Other Prometheus queries", "value", 0.9),
)
_DASH = {"p50": "dot", "p95": "solid", "p99": "dash"}


def prometheus_summary(view: Any) -> dict[str, Any] | None:
    """summary.json's ``prometheus``: the source (URL without credentials, queries, step), the pull (window,
    error: one line or None, notes) and per query its series count and last / max value; None when the run had
    no Prometheus source."""
    meta = (view.run.metadata or {}).get("prometheus")
    if not meta and not view.prometheus:
        return None
    meta = meta or {}
    queries = {}
    for name, series in view.prometheus.items():
        finite = [s.values[np.isfinite(s.values)] for s in series]
        finite = [f for f in finite if f.size]
        queries[name] = {"series": len(series), "points": int(sum(s.values.size for s in series)),
                         "max": float(max(f.max() for f in finite)) if finite else None,
                         "last": float(finite[0][-1]) if len(finite) == 1 else None}  # fmt: skip
    return {"url": meta.get("url"), "queries": meta.get("queries"), "step_s": meta.get("step_used_s"),
            "window": meta.get("window"), "error": meta.get("error"), "notes": meta.get("notes") or [],
            "pulled": queries}  # fmt: skip


def prometheus_html(summary: dict[str, Any] | None) -> str:
    """One paragraph under the timeline: the source and its queries, or what failed (one line)."""
    if summary is None:
        return ""
    url = escape(str(summary.get("url") or "an unknown URL"))
    if summary.get("error"):
        return (f'<p class="warn" id="prometheus-source">Prometheus ({url}) failed: '
                f"{escape(str(summary['error']))}. Its panels are left out; the run's verdict does not depend "
                "on it.</p>")  # fmt: skip
    pulled = summary.get("pulled") or {}
    names = ", ".join(f"{escape(n)} ({p.get('series') if isinstance(p, dict) else '?'} series)"
                      for n, p in pulled.items()) or "no series"  # fmt: skip
    notes = "".join(f" {escape(n)}." for n in summary.get("notes") or [])
    return (f'<p class="note" id="prometheus-source">Server side from Prometheus at {url}, step '
            f"{summary.get('step_s') or '?'} s (query_range over the run; rates and quantiles over a trailing "
            f"window of 4 steps, so they lag Locust's per-bucket figures): {names}. The queries are in "
            f"metadata.json's prometheus.queries.{notes}</p>")  # fmt: skip


def add_panels(timeline: Any) -> None:
    """Draw the Prometheus rows on ``timeline`` (charts.py's _Timeline: ``line``, ``view``, ``empty``, ``absent``):
    absent when nothing was pulled (``prometheus_html`` says why), a row without series collapsed with the
    reason."""
    view = timeline.view
    meta = (view.run.metadata or {}).get("prometheus")
    keys = [row[0] for row in PROMETHEUS_ROWS]
    if not view.prometheus:  # no source, or nothing pulled: the line under the timeline says why, once
        timeline.absent.update(keys)
        return
    series = view.prometheus
    reason = f"Prometheus failed: {meta.get('error')}" if meta and meta.get("error") else "no series from Prometheus"
    _latency(timeline, series)
    _rate(timeline, series)
    _single(timeline, "prometheus_cpu", series.get("cpu_percent", []), 1.0, "%")
    _single(timeline, "prometheus_rss", series.get("rss_bytes", []), float(MB), "MB")
    others = [s for name, group in series.items() if name not in DEFAULT_QUERIES for s in group]
    if meta and not any(q not in DEFAULT_QUERIES for q in meta.get("queries") or {}):
        timeline.absent.add("prometheus_other")  # no query of the user's: no panel for it
    else:
        for s in others[:MAX_OTHER_TRACES]:
            timeline.line("prometheus_other", s.ticks_s, s.values, s.label(), line={"width": 1.5},
                          hovertemplate=f"%{{y:.4g}}<extra>{escape(s.label())}</extra>")  # fmt: skip
    drawn = {row for row, _ in timeline.traces}
    for key in keys:
        if key not in drawn and key not in timeline.absent:
            timeline.empty[key] = reason


def _latency(timeline: Any, series: dict[str, list[PromSeries]]) -> None:
    buckets = timeline.view.buckets
    server = {p: series.get(f"server_{p}_ms", []) for p in _DASH}
    if not any(server.values()):
        return  # collapsed: the client's side alone is the latency panel's
    if buckets is not None:
        for p, dash in _DASH.items():
            timeline.line("client_server_latency", buckets.centers_s, buckets.total_ms[p], f"client {p} (Locust)",
                          line={"color": "#1f77b4", "dash": dash, "width": 2 if p == "p95" else 1.3},
                          hovertemplate=f"%{{y:.2f}} ms<extra>client {p}</extra>")  # fmt: skip
    for p, dash in _DASH.items():
        for s in server[p]:
            name = f"server {p} (Prometheus)" if len(server[p]) == 1 else f"server {p} {s.label()}"
            timeline.line("client_server_latency", s.ticks_s, s.values, name,
                          line={"color": "#d62728", "dash": dash, "width": 2 if p == "p95" else 1.3},
                          hovertemplate=f"%{{y:.2f}} ms<extra>server {p}</extra>")  # fmt: skip


def _rate(timeline: Any, series: dict[str, list[PromSeries]]) -> None:
    served = series.get("request_rate_per_s", [])
    if not served:
        return
    buckets = timeline.view.buckets
    if buckets is not None:
        timeline.line("served_rate", buckets.centers_s, buckets.requests, "sent req/s (Locust)",
                      line={"color": "#1f77b4"})  # fmt: skip
    for s in served:
        name = "served req/s (Prometheus)" if len(served) == 1 else f"served req/s {s.label()}"
        timeline.line("served_rate", s.ticks_s, s.values, name, line={"color": "#d62728", "width": 1.5})


def _single(timeline: Any, row: str, group: list[PromSeries], scale: float, unit: str) -> None:
    for s in group:  # one series per scraped service process: named by its instance
        timeline.line(row, s.ticks_s, s.values / scale, f"{s.labels.get('instance') or s.label()} (Prometheus)",
                      hovertemplate=f"%{{y:.1f}} {unit}<extra>%{{fullData.name}}</extra>")  # fmt: skip
