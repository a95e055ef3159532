"""The machine-readable summary of a run (summary.json): every figure the report's tables show.

Schema (version 2; absent inputs give null or [] and are listed in ``not_recorded``)::

    schema_version, run_dir, generated_at, scenario, host, started_at, ended_at, duration_s, profile,
    time_axis: {t0_s, bucket_s, unit}
    verdict: {status NO REQUESTS|INTERRUPTED|FAILED|PASSED|NO THRESHOLDS|NOT RECORDED, reason, thresholds_status,
              failed_thresholds: [text], failed: [line], results: [{threshold, status, measured, unit, limit,
              metric, endpoint, window_s, detail, ...}], interrupted, stop_reason, exit_code, passed, evaluated, note}
    faults: {active: {inject_delay_ms, route, inject_stall, stall_s, every_s} or {}, banner: str | null, source}
    headline: {requests, rps, failure_ratio, p50_ms, p95_ms, p99_ms, bytes_total, service_cpu_max_percent,
               service_rss_max_mb, source, figure_sources}
    requests: {source (requests.arrows | latency.hdr.arrows | locust_stats.csv), percentile_method,
               source_note ("exact, every request" | "HDR, within 1%" | ...), figure_sources: {requests, failures,
               percentiles, bytes}, log: {complete, mode, recorded, total, why}, ok_ko_note,
               total: {endpoint stats}, endpoints: [{endpoint, request_type, name, requests, failures,
               failure_ratio, rps, min_ms, mean_ms, p50_ms, p90_ms, p95_ms, p99_ms, max_ms, bytes_total,
               bytes_mean}], ok_ko: [{outcome OK|KO|all, requests, min_ms, mean_ms, p50_ms, p95_ms, p99_ms, max_ms}]}
    failures: [{endpoint, error, count}], exceptions: [{count, message, traceback, nodes}]
    stress: {kind rate|users, highest_ok, highest_ok_rps, next_step, breach, stopped_because, steps, headline} or
            null (not a stress profile): what the step search found (``harness.report.stress``)
    findings: [{kind, severity, title, evidence, message, suggestion}] (most severe first),
    analysis: {limits, unevaluated}
    resources: {service, generator, host, gpu, gpu_note, sampler, table: [{scope, process, pid, cpu_mean_percent,
                cpu_max_percent, rss_start_mb, rss_end_mb, rss_max_mb, rss_slope_mb_per_min}],
                hosts: [{name, host, clock_offset_ms, clock_uncertainty_ms, rows, first_seen, last_seen,
                lost: [{from, to}], table: [rows as in table], gpu: [...]}] (one per agent, by name; [] without)}
    environment: {python, platform, cpu_model, cpu_count_logical, memory_total_gb, git_commit, ...}
    locust_report: "locust_report.html" (relative to the run directory) or null
    not_recorded: [str], problems: [str]
    prometheus: null (no --prometheus) or {url (credentials masked), queries: {name: promql}, step_s, window:
                [start_s, end_s], error: one line or null, notes: [str], pulled: {name: {series, points, max, last}}}
                (``harness.report.prometheus``; an added key, so still version 2)

Version 2 added verdict NO REQUESTS / INTERRUPTED and its reason fields, headline, min_ms and bytes per endpoint,
ok_ko, exceptions, resources.table and locust_report.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np

from harness.report.prometheus import prometheus_summary
from harness.report.rundata.analysis import AnalysisLimits, Finding, unevaluated
from harness.report.rundata.hdr_requests import EXACT, HDR, hdr_endpoint_stats, log_completeness
from harness.report.rundata.requests import TOTAL
from harness.report.rundata.resources import ProcessSeries, linear_trend, total
from harness.report.rundata.view import RunView
from harness.report.stress import stress_summary
from harness.report.verdict import verdict
from harness.target.faults import describe_faults, faults_from_metadata
from harness.timing.hdr import PERCENTILE_METHOD as HDR_PERCENTILE_METHOD
from harness.verdict.thresholds import PERCENTILE_METHOD

__all__ = ["OPTIONAL_FILES", "SCHEMA_VERSION", "summarize"]

SCHEMA_VERSION = 2
OPTIONAL_FILES = (
    "metadata.json", "requests.arrows", "locust_stats_history.csv", "locust_stats.csv", "locust_failures.csv",
    "locust_exceptions.csv", "locust_report.html", "thresholds.json",
    "samples.arrows", "host.arrows", "gpu.arrows", "sampler.json", "cache_stats.json",
)  # fmt: skip
LOCUST_METHOD = "Locust's own figures (locust_stats.csv: response times rounded into buckets), not nearest rank"


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to None, recursively."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


def _locust_endpoints(view: RunView) -> list[dict[str, Any]]:
    frame = view.run.locust_stats
    if frame is None:
        return []
    rows = []
    for record in frame.to_dict("records"):
        n, f = int(record.get("Request Count") or 0), int(record.get("Failure Count") or 0)
        name = str(record.get("Name"))
        rows.append({
            "endpoint": name if name == TOTAL else f"{record.get('Type') or ''} {name}".strip(),
            "request_type": str(record.get("Type") or ""), "name": name, "requests": n, "failures": f,
            "failure_ratio": f / n if n else None, "rps": record.get("Requests/s"),
            "mean_ms": record.get("Average Response Time"), "p50_ms": record.get("50%"), "p90_ms": record.get("90%"),
            "p95_ms": record.get("95%"), "p99_ms": record.get("99%"), "max_ms": record.get("Max Response Time"),
            "min_ms": record.get("Min Response Time"), "bytes_mean": record.get("Average Content Size"),
            "bytes_total": None,
        })  # fmt: skip
    rows.sort(key=lambda r: r["name"] == TOTAL)
    return rows


def requests_summary(view: RunView) -> dict[str, Any]:
    """Per-endpoint statistics: nearest rank from requests.arrows when it holds every request (``source_note``
    EXACT); from the HDR histograms when it does not (``--request-log sample:P|off``, ``auto`` after it switched
    to sampling; ``source_note`` HDR); else Locust's from locust_stats.csv. ``figure_sources`` says where each
    kind of figure came from; ``log`` how complete the request log is."""
    log = log_completeness(view.run.metadata)
    hdr_rows = None if log["complete"] else hdr_endpoint_stats(view.run.path, view.duration_s, view.run.locust_stats)
    if hdr_rows is not None:
        rows, source, method, note = hdr_rows, "latency.hdr.arrows", HDR_PERCENTILE_METHOD, HDR
        sources = {"requests": "latency.hdr.arrows (every request counted)", "failures": "latency.hdr.arrows",
                   "percentiles": f"latency.hdr.arrows ({HDR})",
                   "bytes": "locust_stats.csv (mean size per response x requests)"}  # fmt: skip
    elif view.requests is not None:
        rows, source, method, note = view.endpoint_stats, "requests.arrows", PERCENTILE_METHOD, EXACT
        if not log["complete"]:
            note = f"a sample ({log['why']}; no HDR histograms recorded)"
        sources = dict.fromkeys(("requests", "failures", "percentiles", "bytes"), f"requests.arrows ({note})")
    elif view.run.locust_stats is not None:
        rows, source, method, note = _locust_endpoints(view), "locust_stats.csv", LOCUST_METHOD, "Locust's buckets"
        sources = dict.fromkeys(("requests", "failures", "percentiles", "bytes"), "locust_stats.csv")
    else:
        return {"source": None, "percentile_method": None, "total": None, "endpoints": [], "ok_ko": []}
    totals = [r for r in rows if r["name"] == TOTAL]
    ok_ko = view.requests.ok_ko_stats() if view.requests is not None and view.requests.size else []
    ok_ko_note = EXACT if log["complete"] else f"a sample of the requests ({log['why']})"
    return {"source": source, "percentile_method": method, "source_note": note, "figure_sources": sources,
            "log": log, "total": totals[0] if totals else None, "endpoints": [r for r in rows if r["name"] != TOTAL],
            "ok_ko": ok_ko, "ok_ko_note": ok_ko_note if ok_ko else None}  # fmt: skip


def failures_summary(view: RunView) -> list[dict[str, Any]]:
    """Failures grouped by endpoint and error message, most frequent first: from requests.arrows when it holds
    every request, else from Locust's locust_failures.csv (which counts them all)."""
    frame = view.run.locust_failures
    if view.requests is not None and (log_completeness(view.run.metadata)["complete"] or frame is None):
        return view.requests.failures_by_error()
    if frame is None:
        return []
    columns = (frame["Method"], frame["Name"], frame["Error"], frame["Occurrences"])
    rows = [{"endpoint": f"{m or ''} {n}".strip(), "error": str(e), "count": int(c)}
            for m, n, e, c in zip(*columns, strict=True)]  # fmt: skip
    return sorted(rows, key=lambda r: -r["count"])


def exceptions_summary(view: RunView) -> list[dict[str, Any]]:
    """Locust's exceptions (locust_exceptions.csv: errors raised in user code), most frequent first."""
    frame = view.run.locust_exceptions
    if frame is None:
        return []
    nodes = frame["Nodes"] if "Nodes" in frame.columns else [""] * len(frame)
    rows = [
        {"count": int(c), "message": str(m), "traceback": str(t), "nodes": str(n or "")}
        for c, m, t, n in zip(frame["Count"], frame["Message"], frame["Traceback"], nodes, strict=True)
    ]
    return sorted(rows, key=lambda r: -r["count"])


def _window(view: RunView, series: ProcessSeries) -> np.ndarray:
    return view.in_run(series.ticks_s)


def _stat(values: np.ndarray, how: str) -> float | None:
    finite = values[np.isfinite(values)]
    if not finite.size:
        return None
    return float({"mean": np.mean, "max": np.max, "first": lambda v: v[0], "last": lambda v: v[-1]}[how](finite))


def _slope_per_min(ticks_s: np.ndarray, values: np.ndarray) -> float | None:
    finite = np.isfinite(values)
    if finite.sum() < 2 or np.ptp(ticks_s[finite]) <= 0:
        return None
    return linear_trend(ticks_s[finite], values[finite])[0] * 60.0


def _table_row(scope: str, process: str, pid: int | None, ticks: np.ndarray, cpu: np.ndarray,
               rss: np.ndarray) -> dict[str, Any]:  # fmt: skip
    return {
        "scope": scope, "process": process, "pid": pid, "cpu_mean_percent": _r(_stat(cpu, "mean"), 1),
        "cpu_max_percent": _r(_stat(cpu, "max"), 1), "rss_start_mb": _r(_stat(rss, "first"), 1),
        "rss_end_mb": _r(_stat(rss, "last"), 1), "rss_max_mb": _r(_stat(rss, "max"), 1),
        "rss_slope_mb_per_min": _r(_slope_per_min(ticks, rss)),
    }  # fmt: skip


def resources_table(view: RunView) -> list[dict[str, Any]]:
    """One row per sampled process (service, then generator), a service total when it has several, then the host
    (CPU converted to percent of one core, like the processes; memory used in place of RSS), over the run."""
    rows = []
    for series in (view.service, view.generator):
        if series is None:
            continue
        inside = _window(view, series)
        ticks = series.ticks_s[inside]
        for i, (pid, label) in enumerate(zip(series.pids, series.labels, strict=True)):
            rows.append(_table_row(series.scope, label, pid, ticks, series.cpu_percent[i, inside],
                                   series.rss_mb[i, inside]))  # fmt: skip
        if series.scope == "service" and len(series.pids) > 1:
            rows.append(_table_row("service", f"service total ({len(series.pids)} processes)", None, ticks,
                                   series.cpu_total()[inside], series.rss_total_mb()[inside]))  # fmt: skip
    if (host := view.host) is not None:
        inside = view.in_run(host.ticks_s)
        cores = view.logical_cores or 1
        label = f"host, all {cores} cores (memory used)" if view.logical_cores else "host (memory used)"
        rows.append(_table_row("host", label, None, host.ticks_s[inside], host.cpu_percent[inside] * cores,
                               host.mem_used_mb[inside]))  # fmt: skip
    return rows


def agent_resources(view: RunView) -> list[dict[str, Any]]:
    """Per agent host (by name): its metadata entry's figures and a table like ``resources_table``: every process
    scope it sampled (a total per scope of several processes), then its host (CPU in percent of one core)."""
    hosts = []
    for name, agent in view.agents.items():
        rows = []
        for scope in sorted(agent.processes):
            series = agent.processes[scope]
            inside = _window(view, series)
            ticks = series.ticks_s[inside]
            for i, (pid, label) in enumerate(zip(series.pids, series.labels, strict=True)):
                rows.append(_table_row(scope, label, pid, ticks, series.cpu_percent[i, inside],
                                       series.rss_mb[i, inside]))  # fmt: skip
            if len(series.pids) > 1:
                rows.append(_table_row(scope, f"{scope} total ({len(series.pids)} processes)", None, ticks,
                                       series.cpu_total()[inside], series.rss_total_mb()[inside]))  # fmt: skip
        if (host := agent.host) is not None:
            inside = view.in_run(host.ticks_s)
            cores = agent.logical_cores
            label = f"host, all {cores} cores (memory used)" if cores else "host (memory used, CPU of all cores)"
            rows.append(_table_row("host", label, None, host.ticks_s[inside], host.cpu_percent[inside] * (cores or 1),
                                   host.mem_used_mb[inside]))  # fmt: skip
        meta = agent.agent
        hosts.append({
            "name": name, "kind": meta.get("kind", "agent"), "host": meta.get("host"),
            "clock_offset_ms": meta.get("clock_offset_ms"),
            "clock_uncertainty_ms": meta.get("clock_uncertainty_ms"), "rows": meta.get("rows"),
            "first_seen": meta.get("first_seen"), "last_seen": meta.get("last_seen"),
            "lost": [{"from": w.get("from"), "to": w.get("to")} for w in meta.get("lost") or []],
            "table": rows,
            "gpu": [{"index": g.index, "name": g.name, "util_mean_percent": _r(_stat(g.util_percent, "mean"), 1),
                     "util_max_percent": _r(_stat(g.util_percent, "max"), 1),
                     "mem_used_max_mb": _r(_stat(g.mem_used_mb, "max"), 0), "mem_total_mb": _r(g.mem_total_mb, 0)}
                    for g in agent.gpus],
        })  # fmt: skip
    return hosts


def resources_summary(view: RunView) -> dict[str, Any]:
    """Service, generator, host and GPU figures over the run [0, duration_s] (CPU in percent of one core)."""
    out: dict[str, Any] = {"service": None, "generator": None, "host": None, "gpu": None, "gpu_note": None,
                           "sampler": None, "table": resources_table(view),
                           "hosts": agent_resources(view)}  # fmt: skip
    if (service := view.service) is not None:
        inside = _window(view, service)
        ticks, cpu, rss = service.ticks_s[inside], service.cpu_total()[inside], service.rss_total_mb()[inside]
        slope = _slope_per_min(ticks, rss)
        out["service"] = {
            "processes": len(service.pids), "workers": service.workers, "capacity_cores": view.service_capacity_cores,
            "cpu_mean_percent": _r(_stat(cpu, "mean"), 1), "cpu_max_percent": _r(_stat(cpu, "max"), 1),
            "rss_start_mb": _r(_stat(rss, "first"), 1), "rss_end_mb": _r(_stat(rss, "last"), 1),
            "rss_max_mb": _r(_stat(rss, "max"), 1), "rss_slope_mb_per_min": _r(slope),
            "threads_max": _r(_stat(total(service.threads[:, inside]), "max"), 0),
            "read_mb_s_mean": _r(_stat(total(service.read_mb_s[:, inside]), "mean"), 3),
            "write_mb_s_mean": _r(_stat(total(service.write_mb_s[:, inside]), "mean"), 3),
        }  # fmt: skip
    if (generator := view.generator) is not None:
        inside = _window(view, generator)
        per = [{"process": label, "cpu_mean_percent": _r(_stat(generator.cpu_percent[i, inside], "mean"), 1),
                "cpu_max_percent": _r(_stat(generator.cpu_percent[i, inside], "max"), 1)}
               for i, label in enumerate(generator.labels)]  # fmt: skip
        maxima = [p["cpu_max_percent"] for p in per if p["cpu_max_percent"] is not None]
        out["generator"] = {"processes": len(per), "cpu_max_percent": max(maxima) if maxima else None,
                            "per_process": per}  # fmt: skip
    if (host := view.host) is not None:
        inside = view.in_run(host.ticks_s)
        out["host"] = {
            "cpu_mean_percent": _r(_stat(host.cpu_percent[inside], "mean"), 1),
            "cpu_max_percent": _r(_stat(host.cpu_percent[inside], "max"), 1),
            "mem_used_max_mb": _r(_stat(host.mem_used_mb[inside], "max"), 0),
            "mem_total_mb": _r(host.mem_total_mb, 0), "source": host.source,
        }  # fmt: skip
    if view.gpus:
        out["gpu"] = [{"index": g.index, "name": g.name, "util_mean_percent": _r(_stat(g.util_percent, "mean"), 1),
                       "util_max_percent": _r(_stat(g.util_percent, "max"), 1),
                       "mem_used_max_mb": _r(_stat(g.mem_used_mb, "max"), 0), "mem_total_mb": _r(g.mem_total_mb, 0)}
                      for g in view.gpus]  # fmt: skip
    else:
        out["gpu_note"] = view.gpu_note()
    if (sampler := view.run.sampler) is not None:
        out["sampler"] = {k: sampler.get(k) for k in ("interval_s", "ticks", "ticks_missed", "sampler_cpu_s", "gpu")}
        seen = sampler.get("processes_seen")
        out["sampler"]["processes_seen"] = len(seen) if isinstance(seen, dict | list) else seen
    return out


def environment_summary(view: RunView) -> dict[str, Any]:
    """Versions, machine, git commit, command line, profile and workers, from metadata.json."""
    meta = view.run.metadata or {}
    env = meta.get("environment") or {}
    git = env.get("git") or {}
    memory = env.get("memory_total_bytes")
    command = env.get("command_line")
    embedded = meta.get("embedded_service") or {}
    return {
        "python": env.get("python"), "platform": env.get("platform"), "hostname": env.get("hostname"),
        "cpu_model": env.get("cpu_model"), "cpu_count_logical": env.get("cpu_count_logical"),
        "cpu_count_physical": env.get("cpu_count_physical"),
        "memory_total_gb": round(memory / 2**30, 2) if isinstance(memory, int | float) else None,
        "git_commit": git.get("commit"), "git_dirty": git.get("dirty"), "packages": env.get("packages") or {},
        "command_line": " ".join(map(str, command)) if isinstance(command, list) else command,
        "env": env.get("env") or {}, "locustfile": meta.get("locustfile"), "profile": meta.get("profile"),
        "options": meta.get("options"), "runner": meta.get("runner"), "workers": len(meta.get("workers") or {}),
        "workers_lost": list(meta.get("workers_lost") or []), "service_workers": embedded.get("workers"),
        "thresholds": meta.get("thresholds") or [], "locust_totals": meta.get("locust_totals"),
        "requests_recorded": meta.get("requests_recorded"), "exit_code": meta.get("exit_code"),
    }  # fmt: skip


def faults_summary(meta: dict[str, Any]) -> dict[str, Any]:
    """The faults the service injected on purpose (``harness.target.faults``): what the run asked the service at its
    start (metadata.json's ``service_faults``), else what the FEATURESTORE_INJECT_* variables it recorded turn on; the
    banner the report shows (None: no fault), and where the answer came from."""
    asked = isinstance(meta.get("service_faults"), dict)
    active = faults_from_metadata(meta)
    if asked:
        source = "the service's GET /health at the run start"
    elif "service_faults" in meta:
        source = "the service did not say (GET /health); the FEATURESTORE_INJECT_* variables metadata.json recorded"
    else:
        source = "the FEATURESTORE_INJECT_* variables metadata.json recorded (the run did not ask the service)"
    return {"active": active, "banner": describe_faults(active), "source": source}


def headline(requests: dict[str, Any], resources: dict[str, Any]) -> dict[str, Any]:
    """The figures at the top of the report: requests, RPS, failure ratio, p50/p95/p99 (ms) over all requests,
    bytes received, and the service's peak CPU (percent of one core, summed over its processes) and RSS (MB)."""
    total = requests["total"] or {}
    service = resources["service"] or {}
    return {
        "requests": total.get("requests"), "rps": total.get("rps"), "failure_ratio": total.get("failure_ratio"),
        "p50_ms": total.get("p50_ms"), "p95_ms": total.get("p95_ms"), "p99_ms": total.get("p99_ms"),
        "bytes_total": total.get("bytes_total"), "service_cpu_max_percent": service.get("cpu_max_percent"),
        "service_rss_max_mb": service.get("rss_max_mb"), "source": requests.get("source_note"),
        "figure_sources": requests.get("figure_sources") or {},
    }  # fmt: skip


def summarize(view: RunView, findings: list[Finding], limits: AnalysisLimits) -> dict[str, Any]:
    """The summary.json content for ``view`` and its ``findings`` (see the module docstring for the schema)."""
    meta = view.run.metadata or {}
    absent = [name for name in OPTIONAL_FILES if not (view.run.path / name).is_file()]
    requests, resources = requests_summary(view), resources_summary(view)
    total = requests["total"]
    return _clean({
        "schema_version": SCHEMA_VERSION, "run_dir": str(view.run.path),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "scenario": meta.get("scenario") or view.run.path.name, "host": meta.get("host"),
        "started_at": meta.get("started_at") or datetime.fromtimestamp(view.t0_s, UTC).isoformat(),
        "ended_at": meta.get("ended_at"), "duration_s": round(view.duration_s, 3), "profile": meta.get("profile"),
        "time_axis": {"t0_s": view.t0_s, "bucket_s": view.bucket_s, "unit": "seconds since started_at"},
        "verdict": verdict(view, None if total is None else total["requests"]),
        "faults": faults_summary(meta), "stress": stress_summary(meta.get("shape_result")),
        "headline": headline(requests, resources), "requests": requests,
        "failures": failures_summary(view),
        "exceptions": exceptions_summary(view), "findings": [f.to_dict() for f in findings],
        "analysis": {"limits": limits.to_dict(), "unevaluated": unevaluated(view)},
        "resources": resources, "environment": environment_summary(view),
        "locust_report": "locust_report.html" if (view.run.path / "locust_report.html").is_file() else None,
        "not_recorded": absent, "problems": list(view.run.problems), "prometheus": prometheus_summary(view),
    })  # fmt: skip
