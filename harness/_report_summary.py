"""The machine-readable summary of a run (summary.json): every figure the report's tables show.

Schema (version 1; absent inputs give null or [] and are listed in ``not_recorded``)::

    schema_version, run_dir, generated_at, scenario, host, started_at, ended_at, duration_s, profile,
    time_axis: {t0_s, bucket_s, unit}
    verdict: {status PASSED|FAILED|NO THRESHOLDS|NOT RECORDED, passed, evaluated, note, failed: [line], results: [...]}
    requests: {source, percentile_method, total: {endpoint stats}, endpoints: [{endpoint, request_type, name,
               requests, failures, failure_ratio, rps, mean_ms, p50_ms, p90_ms, p95_ms, p99_ms, max_ms}]}
    failures: [{endpoint, error, count}]
    findings: [{kind, severity, title, evidence, message, suggestion}], analysis: {limits, unevaluated}
    resources: {service, generator, host, gpu, gpu_note, sampler}
    environment: {python, platform, cpu_model, cpu_count_logical, memory_total_gb, git_commit, ...}
    not_recorded: [str], problems: [str]
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import numpy as np

from harness._report_requests import TOTAL
from harness._report_resources import ProcessSeries, linear_trend, total
from harness._report_view import RunView
from harness.analysis import AnalysisLimits, Finding, unevaluated
from harness.thresholds import PERCENTILE_METHOD

__all__ = ["OPTIONAL_FILES", "SCHEMA_VERSION", "summarize"]

SCHEMA_VERSION = 1
OPTIONAL_FILES = (
    "metadata.json", "requests.arrows", "locust_stats_history.csv", "locust_stats.csv", "locust_failures.csv",
    "thresholds.json", "samples.arrows", "host.arrows", "gpu.arrows", "sampler.json", "cache_stats.json",
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


def verdict(view: RunView) -> dict[str, Any]:
    """The thresholds verdict: PASSED, FAILED, NO THRESHOLDS (none was set: nothing to pass) or NOT RECORDED
    (no thresholds.json)."""
    data = view.run.thresholds
    if data is None:
        return {"status": "NOT RECORDED", "passed": None, "evaluated": None, "failed": [], "results": [],
                "note": "thresholds.json not recorded"}  # fmt: skip
    results = [r for r in data.get("results", []) if isinstance(r, dict)]
    passed = bool(data.get("passed", all(r.get("status") == "pass" for r in results)))
    evaluated = bool(data.get("evaluated", bool(results)))
    failed = [f"{str(r.get('status', '')).upper()} {r.get('threshold')}: {r.get('detail')}" for r in results
              if r.get("status") != "pass"]  # fmt: skip
    note = f"{len(results)} threshold(s) checked" if evaluated else "no thresholds were set: nothing was checked"
    status = ("PASSED" if passed else "FAILED") if evaluated else "NO THRESHOLDS"
    return {"status": status, "passed": passed, "evaluated": evaluated, "note": note,
            "failed": failed, "results": results}  # fmt: skip


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
        })  # fmt: skip
    rows.sort(key=lambda r: r["name"] == TOTAL)
    return rows


def requests_summary(view: RunView) -> dict[str, Any]:
    """Per-endpoint statistics, nearest rank from requests.arrows, else Locust's from locust_stats.csv."""
    if view.requests is not None:
        rows, source, method = view.endpoint_stats, "requests.arrows", PERCENTILE_METHOD
    elif view.run.locust_stats is not None:
        rows, source, method = _locust_endpoints(view), "locust_stats.csv", LOCUST_METHOD
    else:
        return {"source": None, "percentile_method": None, "total": None, "endpoints": []}
    totals = [r for r in rows if r["name"] == TOTAL]
    return {"source": source, "percentile_method": method, "total": totals[0] if totals else None,
            "endpoints": [r for r in rows if r["name"] != TOTAL]}  # fmt: skip


def failures_summary(view: RunView) -> list[dict[str, Any]]:
    """Failures grouped by endpoint and error message, most frequent first."""
    if view.requests is not None:
        return view.requests.failures_by_error()
    frame = view.run.locust_failures
    if frame is None:
        return []
    columns = (frame["Method"], frame["Name"], frame["Error"], frame["Occurrences"])
    rows = [{"endpoint": f"{m or ''} {n}".strip(), "error": str(e), "count": int(c)}
            for m, n, e, c in zip(*columns, strict=True)]  # fmt: skip
    return sorted(rows, key=lambda r: -r["count"])


def _window(view: RunView, series: ProcessSeries) -> np.ndarray:
    return view.in_run(series.ticks_s)


def _stat(values: np.ndarray, how: str) -> float | None:
    finite = values[np.isfinite(values)]
    if not finite.size:
        return None
    return float({"mean": np.mean, "max": np.max, "first": lambda v: v[0], "last": lambda v: v[-1]}[how](finite))


def resources_summary(view: RunView) -> dict[str, Any]:
    """Service, generator, host and GPU figures over the run [0, duration_s] (CPU in percent of one core)."""
    out: dict[str, Any] = {"service": None, "generator": None, "host": None, "gpu": None, "gpu_note": None,
                           "sampler": None}  # fmt: skip
    if (service := view.service) is not None:
        inside = _window(view, service)
        ticks, cpu, rss = service.ticks_s[inside], service.cpu_total()[inside], service.rss_total_mb()[inside]
        finite = np.isfinite(rss)
        slope = None
        if finite.sum() >= 2 and np.ptp(ticks[finite]) > 0:
            slope = linear_trend(ticks[finite], rss[finite])[0] * 60.0
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


def summarize(view: RunView, findings: list[Finding], limits: AnalysisLimits) -> dict[str, Any]:
    """The summary.json content for ``view`` and its ``findings`` (see the module docstring for the schema)."""
    meta = view.run.metadata or {}
    absent = [name for name in OPTIONAL_FILES if not (view.run.path / name).is_file()]
    return _clean({
        "schema_version": SCHEMA_VERSION, "run_dir": str(view.run.path),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "scenario": meta.get("scenario") or view.run.path.name, "host": meta.get("host"),
        "started_at": meta.get("started_at") or datetime.fromtimestamp(view.t0_s, UTC).isoformat(),
        "ended_at": meta.get("ended_at"), "duration_s": round(view.duration_s, 3), "profile": meta.get("profile"),
        "time_axis": {"t0_s": view.t0_s, "bucket_s": view.bucket_s, "unit": "seconds since started_at"},
        "verdict": verdict(view), "requests": requests_summary(view), "failures": failures_summary(view),
        "findings": [f.to_dict() for f in findings],
        "analysis": {"limits": limits.to_dict(), "unevaluated": unevaluated(view)},
        "resources": resources_summary(view), "environment": environment_summary(view),
        "not_recorded": absent, "problems": list(view.run.problems),
    })  # fmt: skip
