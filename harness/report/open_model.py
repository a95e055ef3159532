"""The report's part read from the HDR histograms (``latency.hdr.arrows``, ``harness.timing.hdr``): latency per endpoint
for every run, and for open-model runs (``harness.timing.arrivals``) offered vs achieved rate, dropped arrivals,
response time beside service time, and the generator's scheduling lag as a health figure.

One streaming pass over the histograms per figure group (``harness.timing.hdr_log.merge_windows``): memory is one
histogram per endpoint and open second, whatever the run's length.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from harness.timing.hdr import HDR_FILE, PERCENTILE_METHOD, HdrRow, percentile_ms
from harness.timing.hdr_log import Bucket, merge_windows, read_hdr, summarize_histogram

__all__ = ["LAG_P99_LIMIT_MS", "open_model_figure", "open_model_html", "open_model_summary"]

LAG_P99_LIMIT_MS = 5.0  # a generator whose scheduling lag p99 exceeds this did not send on time: the run is invalid
_PERCENTILES = (50, 90, 99, 99.9)


def _offered(plan: list[dict[str, Any]], start_s: float, end_s: float) -> float:
    """Arrivals the plan offered between epoch start_s and end_s (integral of the planned rate)."""
    total = 0.0
    for i, step in enumerate(plan):
        until = plan[i + 1]["at_s"] if i + 1 < len(plan) else end_s
        lo, hi = max(step["at_s"], start_s), min(until, end_s)
        if hi > lo:
            total += step["rate_per_s"] * (hi - lo)
    return total


def open_model_summary(run_dir: Path, metadata: dict[str, Any] | None, t0_s: float) -> dict[str, Any] | None:
    """The HDR figures of the run (None when it recorded no histograms): per endpoint and kind the count,
    failures and percentiles (ms); for an open-model run also the arrivals (offered, scheduled, sent, dropped,
    never scheduled), the lag and the generator's health verdict, and per-second series for the chart."""
    table = read_hdr(Path(run_dir) / HDR_FILE)
    if table is None or table.num_rows == 0:
        return None
    endpoints: dict[tuple[str, str], dict[str, Any]] = {}

    def whole(row: HdrRow) -> tuple[str, str, str]:
        return row.kind, row.request_type, row.name

    def keep_whole(key: Any, bucket: Bucket) -> None:
        kind, rtype, name = key
        entry = endpoints.setdefault((rtype, name), {"endpoint": f"{rtype} {name}".strip()})
        entry[kind] = {**summarize_histogram(bucket.histogram, _PERCENTILES), "failures": bucket.failures,
                       "requests": bucket.count}  # fmt: skip

    merge_windows(table, 1e12, 0.0, whole, keep_whole)
    lag = endpoints.pop(("", ""), {}).get("lag")
    series: dict[str, dict[int, float]] = {"achieved": {}, "scheduled": {}, "dropped": {}, "response_p99": {},
                                            "service_p99": {}, "lag_p99": {}}  # fmt: skip

    def per_second(row: HdrRow) -> str:
        return row.kind

    def keep_second(kind: Any, bucket: Bucket) -> None:
        second = int(bucket.start_s)
        if kind == "lag":
            series["scheduled"][second] = bucket.count + bucket.failures
            series["dropped"][second] = bucket.failures
            series["lag_p99"][second] = percentile_ms(bucket.histogram, 99) or 0.0
            return
        series[f"{kind}_p99"][second] = percentile_ms(bucket.histogram, 99) or 0.0
        if kind == "response":
            series["achieved"][second] = bucket.count

    merge_windows(table, 1.0, 0.0, per_second, keep_second)
    open_model = (metadata or {}).get("open_model") or None
    out: dict[str, Any] = {
        "method": PERCENTILE_METHOD,
        "endpoints": sorted(endpoints.values(), key=lambda e: e["endpoint"]),
        "open_model": open_model is not None,
        "series": {
            k: {"t_s": [s - t0_s for s in sorted(v)], "values": [v[s] for s in sorted(v)]}
            for k, v in series.items()
            if v
        },
    }
    if open_model is None or lag is None:
        return out
    plan = list(open_model.get("plan") or [])
    end_s = max((p["at_s"] for p in plan), default=t0_s)
    offered = _offered(plan, plan[0]["at_s"], end_s) if plan else None
    sent, dropped = lag["requests"], lag["failures"]
    achieved = sum((e.get("response") or {}).get("requests", 0) for e in endpoints.values())
    duration_s = (plan[-1]["at_s"] - plan[0]["at_s"]) if len(plan) > 1 else None
    out["arrivals"] = {
        "offered": None if offered is None else round(offered),
        "scheduled": sent + dropped,
        "sent": sent,
        "dropped": dropped,
        "never_scheduled": None if offered is None else max(0, round(offered) - sent - dropped),
        "achieved": achieved,
        "offered_rate_per_s": round(offered / duration_s, 2) if offered and duration_s else None,
        "achieved_rate_per_s": round(achieved / duration_s, 2) if duration_s else None,
        "workers": open_model.get("workers") or {},
        "lost_workers": open_model.get("lost_workers") or [],
        "process": open_model.get("arrival_process"),
        "max_in_flight_per_process": open_model.get("max_in_flight_per_process"),
        "plan": plan,
    }
    lag_p99 = lag.get("p99_ms")
    out["lag"] = lag
    out["generator_valid"] = lag_p99 is not None and lag_p99 <= LAG_P99_LIMIT_MS
    out["generator_note"] = (
        f"scheduling lag (actual send minus intended start) p99 {lag_p99:.3f} ms, max {lag.get('max_ms') or 0:.1f} ms"
        f" over {sent:,} arrivals: "
        + ("the generator sent on time" if out["generator_valid"] else
           f"above {LAG_P99_LIMIT_MS:g} ms: the generator fell behind its schedule, the run is INVALID "
           "(add Locust workers or lower --arrival-rate)")
    )  # fmt: skip
    return out


def open_model_figure(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    """Offered (scheduled) vs achieved requests/s and dropped arrivals per second, above response vs service
    p99 per second; None without an open model."""
    if not summary or not summary.get("open_model"):
        return None
    series = summary["series"]
    traces = []
    for key, label, axis, dash in (("scheduled", "offered (scheduled) req/s", "y", "solid"),
                                   ("achieved", "achieved (completed) req/s", "y", "dot"),
                                   ("dropped", "dropped arrivals/s", "y", "dash"),
                                   ("response_p99", "response time p99 (from intended start)", "y2", "solid"),
                                   ("service_p99", "service time p99 (from actual send)", "y2", "dot"),
                                   ("lag_p99", "scheduling lag p99", "y2", "dash")):  # fmt: skip
        if key in series:
            traces.append({"type": "scatter", "mode": "lines", "name": label, "x": series[key]["t_s"],
                           "y": series[key]["values"], "yaxis": axis, "line": {"dash": dash}})  # fmt: skip
    layout = {
        "height": 560, "legend": {"orientation": "h"}, "xaxis": {"title": {"text": "seconds since start"}},
        "yaxis": {"title": {"text": "per second"}, "domain": [0.55, 1.0]},
        "yaxis2": {"title": {"text": "ms (log)"}, "type": "log", "domain": [0.0, 0.45]},
    }  # fmt: skip
    return {"data": traces, "layout": layout}


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.3g}" if value < 100 else f"{value:,.0f}"


def _workers_html(arrivals: dict[str, Any]) -> str:
    """Distributed: each worker's share (arrivals offered while it was counted, arrivals it scheduled), and a
    warning naming each lost worker with the share it never scheduled."""
    workers = arrivals.get("workers") or {}
    if not workers:
        return ""
    rows = "".join(
        f"<tr><td>{escape(w)}</td><td>{round(e.get('offered') or 0):,}</td><td>{e.get('scheduled', 0):,}</td>"
        f"<td>{'lost' if e.get('lost_at_s') else 'to the end'}</td></tr>"
        for w, e in sorted(workers.items())
    )
    lost = "".join(
        f'<p class="warn lost-worker">Worker <b>{escape(str(w["worker"]))}</b> was lost: offered {w["offered"]:,} '
        f"arrivals while it was counted, it scheduled (and reported) {w['scheduled']:,}; "
        f"<b>{w['never_scheduled']:,} arrivals of its share were never sent or never reported</b> (what it sent "
        "after its last report, workers report every 3 s, and its share until the master noticed the loss, 4-5 s "
        "without heartbeat); from then on the other workers took over its share."
        "</p>"
        for w in arrivals.get("lost_workers") or []
    )
    rate = ""
    if arrivals.get("offered_rate_per_s") and arrivals.get("achieved_rate_per_s") is not None:
        rate = (f"<p>Offered {arrivals['offered_rate_per_s']:,} req/s, achieved {arrivals['achieved_rate_per_s']:,} "
                "req/s (completed requests over the plan's duration).</p>")  # fmt: skip
    table = ("<table id=\"open-model-workers\"><tr><th>worker</th><th>offered (its share)</th><th>scheduled</th>"
             f"<th>status</th></tr>{rows}</table>")  # fmt: skip
    return lost + rate + table


def open_model_html(summary: dict[str, Any] | None, chart: str) -> str:
    """The section's HTML: the generator's health and arrivals (open model), then per endpoint the response and
    service time percentiles side by side; ``chart`` is the rendered figure."""
    if not summary:
        return '<p class="note">No HDR histograms recorded (latency.hdr.arrows).</p>'
    parts = []
    if summary.get("open_model") and "arrivals" in summary:
        a = summary["arrivals"]
        cls = "note" if summary["generator_valid"] else "warn"
        parts.append(f'<p class="{cls}"><b>Generator health:</b> {escape(summary["generator_note"])}.</p>')
        parts.append(
            "<table><tr><th>offered</th><th>scheduled</th><th>sent</th><th>dropped (in-flight bound)</th>"
            "<th>never scheduled (generator lost or late)</th><th>arrivals</th></tr>"
            f"<tr><td>{a['offered'] or 0:,}</td><td>{a['scheduled']:,}</td><td>{a['sent']:,}</td>"
            f"<td>{a['dropped']:,}</td><td>{a['never_scheduled'] or 0:,}</td><td>{escape(str(a['process']))}, "
            f"at most {a['max_in_flight_per_process']} in flight per process</td></tr></table>"
        )
        parts.append(_workers_html(a))
        parts.append(chart)
    head = "".join(f"<th>{k} p{q:g}</th>" for k in ("response", "service") for q in _PERCENTILES)
    rows = []
    for e in summary["endpoints"]:
        cells = "".join(f"<td>{_ms((e.get(k) or {}).get(f'p{q:g}_ms'))}</td>" for k in ("response", "service")
                        for q in _PERCENTILES)  # fmt: skip
        response = e.get("response") or {}
        rows.append(f"<tr><td>{escape(e['endpoint'])}</td><td>{response.get('requests', 0):,}</td>"
                    f"<td>{response.get('failures', 0):,}</td>{cells}</tr>")  # fmt: skip
    parts.append(f"<table><tr><th>endpoint</th><th>requests</th><th>failures</th>{head}</tr>{''.join(rows)}</table>")
    parts.append(f'<p class="note">Latency in ms. Response time: what a user saw (from the intended start in the '
                 f"open model); service time: from the actual send (open model only). {escape(summary['method'])}."
                 "</p>")  # fmt: skip
    return "".join(parts)
