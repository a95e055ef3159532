"""Bottleneck findings from a run's data: each rule looks at the numbers, and reports them as its evidence.

A rule fires only when its numbers say so; a rule whose inputs were not recorded (no sampler data, no
cache_stats.json) does not fire, and ``unevaluated`` says why. "No findings" is a valid outcome.

The limits below are the defaults of ``AnalysisLimits``; pass your own to tighten or loosen a rule:

- cpu_bound: the service's total CPU (sum over its processes, percent of one core) >= CPU_BOUND_FRACTION of its
  capacity (100% x min(logical cores, service worker processes)) for a stretch >= CPU_BOUND_MIN_STRETCH_S or
  >= CPU_BOUND_MIN_SHARE of the run's samples, while latency rises: the nearest-rank p95 of the requests in
  saturated buckets >= LATENCY_RISE_RATIO x the p95 of the others, or the per-bucket p95 correlates with the
  service CPU (Pearson r >= LATENCY_CPU_CORRELATION); buckets the sampler did not cover are in neither group.
- generator_saturated: one Locust process (scope generator) >= GENERATOR_CPU_PERCENT of one core for a stretch
  >= GENERATOR_MIN_STRETCH_S or >= GENERATOR_MIN_SHARE of its samples. In an open-model run (open_model in
  metadata.json) the CPU says nothing (the arrival scheduler spins near each arrival for sub-millisecond timing,
  so it shows a busy core at any rate above a few hundred requests/s): the rule fires when the HDR summary says
  the generator sent late (scheduling lag p99 above harness.report.open_model.LAG_P99_LIMIT_MS).
- generator_memory_growing: the load generators' total RSS (scope generator, summed over the Locust processes) rose
  >= GENERATOR_RSS_GROWTH_MB from the run's first sample to its highest.
- memory_leak: the least-squares slope of the service's total RSS over the run >= RSS_SLOPE_MB_PER_MIN, from
  >= RSS_MIN_SAMPLES samples over >= RSS_MIN_DURATION_S, the line explaining >= RSS_MIN_R2 of the variance.
- service_unreachable: >= UNREACHABLE_MIN_FAILURES requests got no answer (a connection-level error, see
  harness.report.rundata.outage): the service was unreachable from the first to the last of them, on every endpoint
  requested.
- failures_concentrated: >= FAILURE_CONCENTRATION of all failures on one endpoint (of several), with
  >= FAILURE_MIN_COUNT failures in all; an outage's failures are left out (they are service_unreachable's).
- cache_hit_rate_low: the feature cache's hit rate (cache_stats.json, summed over workers) < CACHE_HIT_RATE_MIN
  with >= CACHE_MIN_LOOKUPS lookups.
- latency_rising_idle: p95 of the last third of the run >= IDLE_LATENCY_RISE_RATIO x p95 of the first third
  (each with >= IDLE_MIN_REQUESTS requests) while the service's mean CPU in the last third
  < IDLE_CPU_FRACTION of its capacity, and the load the run planned (the open model's planned rate, else the
  users Locust ran) did not rise >= LOAD_RISE_RATIO between the two thirds.
- latency_follows_load (info): the same rise while the planned load did rise that much (a rate the profile
  tripled): the latency followed the load the harness chose, which says nothing of the service waiting.
- workers_lost: Locust workers went missing during the run (metadata.json workers_lost).
- coordinated_omission: a closed-model run (no open_model in metadata.json) where, in >= CO_MIN_BUCKETS chart
  buckets outside the ramp (the first bucket, and any bucket in which or in the bucket before which the users
  changed: new users' first requests are slow and few, which is the spawn, not a stall), throughput per user fell
  below CO_THROUGHPUT_DROP x its typical value while the bucket's p99 (or the next bucket's) rose >= CO_LATENCY_RISE
  x the typical per-bucket p99: users waited instead of sending, so the latency that arrivals at the planned rate
  would have seen was never recorded. "Typical" is the upper quartile of throughput and the lower quartile of p99,
  not the median: a stall touches two buckets (the one it starts in, and the next, where its requests complete),
  so in a short run with a stall every 5 s half the buckets after the ramp are stalled ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import numpy as np

from harness.report.rundata.outage import find_outage
from harness.report.rundata.resources import linear_trend
from harness.report.rundata.view import RunView

__all__ = ["RULES", "AnalysisLimits", "Finding", "analyze", "unevaluated"]

CPU_BOUND_FRACTION = 0.90  # of the service's capacity (100% x cores it can use)
CPU_BOUND_MIN_STRETCH_S = 10.0  # seconds of uninterrupted saturation ...
CPU_BOUND_MIN_SHARE = 0.20  # ... or this share of the run's sampler ticks saturated
LATENCY_RISE_RATIO = 1.5  # p95 while saturated / p95 otherwise
LATENCY_CPU_CORRELATION = 0.5  # Pearson r of per-bucket p95 against service CPU
GENERATOR_CPU_PERCENT = 90.0  # percent of one core, per Locust process
GENERATOR_MIN_STRETCH_S = 10.0
GENERATOR_MIN_SHARE = 0.20
GENERATOR_RSS_GROWTH_MB = 200.0  # the generators' RSS rise over the run (e.g. a copy of shared data per user)
RSS_SLOPE_MB_PER_MIN = 10.0  # least-squares slope of the service's total RSS
RSS_MIN_SAMPLES = 30
RSS_MIN_DURATION_S = 120.0
RSS_MIN_R2 = 0.5  # share of RSS variance the line explains: a steady climb, not noise
UNREACHABLE_MIN_FAILURES = 5
FAILURE_CONCENTRATION = 0.80  # share of all failures on one endpoint
FAILURE_MIN_COUNT = 20
CACHE_HIT_RATE_MIN = 0.80
CACHE_MIN_LOOKUPS = 1_000
IDLE_LATENCY_RISE_RATIO = 2.0  # p95 last third / p95 first third
IDLE_CPU_FRACTION = 0.50  # of the service's capacity, mean over the last third
IDLE_MIN_REQUESTS = 100  # in each third
LOAD_RISE_RATIO = 1.5  # planned load of the last third / of the first third: the latency rise is the load's
# a bucket's requests per user / the typical bucket's. Above 0.5: a stall of one bucket's length split across two
# buckets leaves each about half its requests (the second also gets the stalled requests' completions); at 0.5 a
# split of 40/60 went unseen.
CO_THROUGHPUT_DROP = 0.6
CO_LATENCY_RISE = 5.0  # a bucket's p99 / the typical (lower-quartile) bucket p99
CO_MIN_BUCKETS = 1

Severity = Literal["critical", "warning", "info"]
RULES: dict[str, str] = {
    "service_unreachable": "service unreachable (requests got no answer)",
    "cpu_bound": "service CPU-bound while latency rises",
    "generator_saturated": "load generator saturated",
    "generator_memory_growing": "load generator memory growing",
    "memory_leak": "service RSS growing (leak suspected)",
    "failures_concentrated": "failures concentrated on one endpoint",
    "cache_hit_rate_low": "feature-cache hit rate low",
    "latency_rising_idle": "latency rising while the service CPU idles",
    "latency_follows_load": "latency rose with the load the run planned (not a service problem by itself)",
    "workers_lost": "Locust workers lost",
    "coordinated_omission": "closed-model throughput and latency collapsed together (coordinated omission)",
}
_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class AnalysisLimits:
    """The rules' limits (see the module docstring); the defaults are the module constants."""

    cpu_bound_fraction: float = CPU_BOUND_FRACTION
    cpu_bound_min_stretch_s: float = CPU_BOUND_MIN_STRETCH_S
    cpu_bound_min_share: float = CPU_BOUND_MIN_SHARE
    latency_rise_ratio: float = LATENCY_RISE_RATIO
    latency_cpu_correlation: float = LATENCY_CPU_CORRELATION
    generator_cpu_percent: float = GENERATOR_CPU_PERCENT
    generator_min_stretch_s: float = GENERATOR_MIN_STRETCH_S
    generator_min_share: float = GENERATOR_MIN_SHARE
    generator_rss_growth_mb: float = GENERATOR_RSS_GROWTH_MB
    rss_slope_mb_per_min: float = RSS_SLOPE_MB_PER_MIN
    rss_min_samples: int = RSS_MIN_SAMPLES
    rss_min_duration_s: float = RSS_MIN_DURATION_S
    rss_min_r2: float = RSS_MIN_R2
    unreachable_min_failures: int = UNREACHABLE_MIN_FAILURES
    failure_concentration: float = FAILURE_CONCENTRATION
    failure_min_count: int = FAILURE_MIN_COUNT
    cache_hit_rate_min: float = CACHE_HIT_RATE_MIN
    cache_min_lookups: int = CACHE_MIN_LOOKUPS
    idle_latency_rise_ratio: float = IDLE_LATENCY_RISE_RATIO
    idle_cpu_fraction: float = IDLE_CPU_FRACTION
    idle_min_requests: int = IDLE_MIN_REQUESTS

    def to_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Finding:
    """One finding: ``kind`` (a key of RULES), ``severity``, a one-line ``title``, the ``evidence`` numbers
    (units in the keys: _ms, _mb, _percent, _s), a ``message`` quoting them, and a ``suggestion``."""

    kind: str
    severity: Severity
    title: str
    evidence: dict[str, Any]
    message: str
    suggestion: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


def _interval_s(ticks_s: np.ndarray) -> float:
    return float(np.median(np.diff(ticks_s))) if ticks_s.size > 1 else 1.0


def _stretches(hot: np.ndarray, interval_s: float) -> tuple[float, float]:
    """(seconds hot in all, longest uninterrupted hot stretch in seconds) of a per-tick boolean series."""
    if not hot.any():
        return 0.0, 0.0
    edges = np.diff(np.r_[0, hot.astype(np.int8), 0])
    lengths = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    return float(hot.sum()) * interval_s, float(lengths.max()) * interval_s


def analyze(
    view: RunView, limits: AnalysisLimits | None = None, latency_hdr: dict[str, Any] | None = None
) -> list[Finding]:
    """All findings for the run in ``view``, most severe first; an empty list when no rule fired.
    ``latency_hdr`` is the run's HDR summary (``harness.report.open_model``): an open-model generator is judged
    by its scheduling lag there, not by its CPU."""
    limits = limits or AnalysisLimits()
    rules = (
        _unreachable,
        _cpu_bound,
        lambda view, limits: _generator(view, limits, latency_hdr),
        _generator_memory,
        _memory_leak,
        _failures,
        _cache,
        _latency_idle,
        _workers_lost,
        _coordinated_omission,
    )
    found = [f for rule in rules if (f := rule(view, limits)) is not None]
    return sorted(found, key=lambda f: _SEVERITY_ORDER[f.severity])


def unevaluated(view: RunView) -> dict[str, str]:
    """The rules that could not look at their data, each with the reason (e.g. 'samples.arrows not recorded')."""
    reasons: dict[str, str] = {}
    no_requests = "requests.arrows not recorded" if view.requests is None else None
    if view.service is None:
        reasons["cpu_bound"] = reasons["memory_leak"] = "no service processes in samples.arrows (not recorded)"
        reasons["latency_rising_idle"] = reasons["cpu_bound"]
    elif no_requests:
        reasons["cpu_bound"] = reasons["latency_rising_idle"] = no_requests
    if view.generator is None:
        reasons["generator_saturated"] = "no generator processes in samples.arrows (not recorded)"
        reasons["generator_memory_growing"] = reasons["generator_saturated"]
    if no_requests and view.run.locust_stats is None:
        reasons["failures_concentrated"] = "neither requests.arrows nor locust_stats.csv recorded"
    if not _cache_entries(view.run.cache_stats):
        reasons["cache_hit_rate_low"] = "cache_stats.json not recorded (or the cache was disabled)"
    if view.run.metadata is None:
        reasons["workers_lost"] = "metadata.json not recorded"
    return reasons


def _cpu_bound(view: RunView, limits: AnalysisLimits) -> Finding | None:
    service, requests, capacity = view.service, view.requests, view.service_capacity_cores
    if service is None or requests is None or requests.size == 0 or not capacity:
        return None
    ticks, cpu = service.ticks_s, service.cpu_total()
    inside = view.in_run(ticks) & np.isfinite(cpu)
    ticks, cpu = ticks[inside], cpu[inside]
    if ticks.size < 2:
        return None
    capacity_percent = 100.0 * capacity
    limit_percent = limits.cpu_bound_fraction * capacity_percent
    hot = cpu >= limit_percent
    hot_s, longest_s = _stretches(hot, _interval_s(ticks))
    share = float(hot.mean())
    if longest_s < limits.cpu_bound_min_stretch_s and share < limits.cpu_bound_min_share:
        return None
    buckets = view.buckets
    assert buckets is not None
    cpu_b = np.interp(buckets.centers_s, ticks, cpu, left=np.nan, right=np.nan)
    # A bucket outside the sampled span (before the first tick, after the last) is neither hot nor cool: counted
    # as cool, a saturated run's last second made "the unsaturated p95" as high as the saturated one.
    known = np.isfinite(cpu_b)
    hot_bucket = known & (np.nan_to_num(cpu_b, nan=-1.0) >= limit_percent)
    hot_rows = hot_bucket[requests.bucket]
    p95_hot = requests.percentile("p95", hot_rows)
    p95_cool = requests.percentile("p95", (known & ~hot_bucket)[requests.bucket])
    ratio = p95_hot / p95_cool if p95_hot is not None and p95_cool else None
    p95_b = buckets.total_ms["p95"]
    both = known & np.isfinite(p95_b)
    corr = None
    if both.sum() >= 3 and np.ptp(cpu_b[both]) > 0 and np.ptp(p95_b[both]) > 0:
        corr = float(np.corrcoef(cpu_b[both], p95_b[both])[0, 1])
    rising = (ratio is not None and ratio >= limits.latency_rise_ratio) or (
        corr is not None and corr >= limits.latency_cpu_correlation
    )
    if not rising and p95_cool is not None:
        return None
    evidence = {
        "service_cpu_max_percent": _r(cpu.max(), 1), "service_cpu_mean_saturated_percent": _r(cpu[hot].mean(), 1),
        "capacity_percent": capacity_percent, "capacity_cores": capacity, "service_workers": service.workers,
        "logical_cores": view.logical_cores, "saturation_limit_percent": _r(limit_percent, 1),
        "saturated_s": _r(hot_s, 1), "saturated_share": _r(share, 3), "longest_saturated_stretch_s": _r(longest_s, 1),
        "p95_saturated_ms": _r(p95_hot), "p95_unsaturated_ms": _r(p95_cool), "p95_ratio": _r(ratio),
        "cpu_p95_correlation": _r(corr, 3),
    }  # fmt: skip
    if ratio is not None:
        latency = f"p95 {p95_hot:.1f} ms while saturated vs {p95_cool:.1f} ms otherwise ({ratio:.1f}x)"
    elif p95_cool is None:
        latency = f"p95 {p95_hot:.1f} ms; saturated the whole run, no unsaturated period to compare with"
    else:
        latency = f"p95 {p95_cool:.1f} ms outside the saturated periods, no requests inside them"
    if corr is not None:
        latency += f"; per-{view.bucket_s:g}s p95 vs CPU r = {corr:.2f}"
    message = (
        f"The service used >= {limit_percent:.0f}% of one core ({limits.cpu_bound_fraction:.0%} of its capacity: "
        f"{capacity} core(s) = {capacity_percent:.0f}%) for {hot_s:.0f} s ({share:.0%} of the run, longest stretch "
        f"{longest_s:.0f} s), peaking at {cpu.max():.0f}%; {latency}."
    )
    cores = view.logical_cores
    if cores and service.workers and service.workers < cores:
        more = f"add uvicorn workers (--service-workers {cores}: {service.workers} of {cores} cores are used)"
    else:
        more = "the cores are exhausted: make the hot path cheaper or scale out"
    suggestion = f"Service CPU-bound: {more}; find where the time goes with py-spy (py-spy top --pid <pid>)."
    return Finding("cpu_bound", "critical", "Service CPU-bound while latency rises", evidence, message, suggestion)


def _generator(view: RunView, limits: AnalysisLimits, latency_hdr: dict[str, Any] | None = None) -> Finding | None:
    if (view.run.metadata or {}).get("open_model"):
        return _open_model_generator(latency_hdr)
    generator = view.generator
    if generator is None:
        return None
    inside = view.in_run(generator.ticks_s)
    ticks = generator.ticks_s[inside]
    if ticks.size < 2:
        return None
    interval = _interval_s(ticks)
    worst, saturated = None, 0
    for i, label in enumerate(generator.labels):
        cpu = generator.cpu_percent[i, inside]
        sampled = np.isfinite(cpu)
        if not sampled.any():
            continue
        hot = np.nan_to_num(cpu, nan=0.0) >= limits.generator_cpu_percent
        hot_s, longest_s = _stretches(hot, interval)
        share = float(hot.sum() / sampled.sum())
        if longest_s >= limits.generator_min_stretch_s or share >= limits.generator_min_share:
            saturated += 1
            if worst is None or hot_s > worst["saturated_s"]:
                worst = {
                    "process": label, "pid": generator.pids[i], "cpu_max_percent": _r(np.nanmax(cpu), 1),
                    "cpu_mean_percent": _r(np.nanmean(cpu), 1), "saturated_s": _r(hot_s, 1),
                    "saturated_share": _r(share, 3), "longest_saturated_stretch_s": _r(longest_s, 1),
                }  # fmt: skip
    if worst is None:
        return None
    evidence = {**worst, "saturated_processes": saturated, "generator_processes": len(generator.pids),
                "limit_percent": limits.generator_cpu_percent}  # fmt: skip
    message = (
        f"Load generator {worst['process']} ran at >= {limits.generator_cpu_percent:.0f}% of one core for "
        f"{worst['saturated_s']:.0f} s ({worst['saturated_share']:.0%} of its samples; longest stretch "
        f"{worst['longest_saturated_stretch_s']:.0f} s; mean {worst['cpu_mean_percent']:.0f}%, max "
        f"{worst['cpu_max_percent']:.0f}%); {saturated} of {len(generator.pids)} generator process(es) saturated."
    )
    suggestion = (
        "Results are not trustworthy: a saturated generator sends less load than asked and adds its own delay to "
        "the latencies. Add Locust workers (make distributed WORKERS=N) or lower the users per process."
    )
    return Finding("generator_saturated", "critical", "Load generator saturated", evidence, message, suggestion)


def _open_model_generator(latency_hdr: dict[str, Any] | None) -> Finding | None:
    """An open-model generator fell behind when its scheduling lag says so (``generator_valid`` false)."""
    if not latency_hdr or latency_hdr.get("generator_valid") is not False:
        return None
    lag = latency_hdr.get("lag") or {}
    evidence = {"lag_p99_ms": lag.get("p99_ms"), "lag_max_ms": lag.get("max_ms"), "arrivals": lag.get("count"),
                "dropped": (latency_hdr.get("arrivals") or {}).get("dropped")}  # fmt: skip
    message = f"Open model: {latency_hdr.get('generator_note') or 'the scheduling lag p99 is unknown'}"
    suggestion = (
        "Results are not trustworthy: late arrivals are load the service never got on time. Add Locust workers "
        "(--processes N) or lower --arrival-rate. An open-model generator's CPU is no guide: its scheduler spins "
        "near each arrival to send it on time."
    )
    return Finding("generator_saturated", "critical", "Load generator fell behind", evidence, message, suggestion)


def _generator_memory(view: RunView, limits: AnalysisLimits) -> Finding | None:
    generator = view.generator
    if generator is None:
        return None
    _, rss = view.rss_in_run(generator)
    if rss.size < 2:
        return None
    growth = float(rss.max() - rss[0])
    if growth < limits.generator_rss_growth_mb:
        return None
    users = ((view.run.metadata or {}).get("options") or {}).get("users")
    per_user = growth / users if users else None
    evidence = {"rss_start_mb": _r(rss[0], 1), "rss_peak_mb": _r(rss.max(), 1), "rss_growth_mb": _r(growth, 1),
                "generator_processes": len(generator.pids), "users": users, "growth_mb_per_user": _r(per_user, 2),
                "limit_mb": limits.generator_rss_growth_mb}  # fmt: skip
    message = (
        f"The load generator's memory grew {growth:.0f} MB during the run ({rss[0]:.0f} MB at the start, "
        f"{rss.max():.0f} MB at its peak, over {len(generator.pids)} Locust process(es))"
        + (f": {per_user:.1f} MB per user at {users} users." if per_user is not None else ".")
    )
    suggestion = (
        "A generator short of memory swaps or is killed, and sends less load than asked. Look for what each user "
        "builds for itself that users could share per process (a copy of the catalog or an id pool), or spread the "
        "users over more processes (--processes N)."
    )
    return Finding("generator_memory_growing", "warning", f"Load generator memory grew {growth:.0f} MB", evidence,
                   message, suggestion)  # fmt: skip


def _memory_leak(view: RunView, limits: AnalysisLimits) -> Finding | None:
    service = view.service
    if service is None:
        return None
    ticks, rss = view.rss_in_run(service)
    span_s = float(ticks[-1] - ticks[0]) if ticks.size else 0.0
    if ticks.size < limits.rss_min_samples or span_s < limits.rss_min_duration_s:
        return None
    slope_mb_s, _, r2 = linear_trend(ticks, rss)
    slope = slope_mb_s * 60.0
    if slope < limits.rss_slope_mb_per_min or r2 < limits.rss_min_r2:
        return None
    evidence = {
        "rss_slope_mb_per_min": _r(slope), "r2": _r(r2, 3), "rss_start_mb": _r(rss[0], 1), "rss_end_mb": _r(rss[-1], 1),
        "rss_growth_mb": _r(rss[-1] - rss[0], 1), "samples": int(ticks.size), "duration_s": _r(span_s, 1),
        "limit_mb_per_min": limits.rss_slope_mb_per_min,
    }  # fmt: skip
    message = (
        f"Service RSS grew {slope:.1f} MB/min (least squares over {ticks.size} samples in {span_s:.0f} s, "
        f"R² {r2:.2f}): {rss[0]:.0f} MB at the start, {rss[-1]:.0f} MB at the end."
    )
    suggestion = (
        f"Leak suspected: {slope:.1f} MB/min. Check caches without bounds (FEATURESTORE_CACHE_MAX_BYTES), objects "
        "held per request, and compare tracemalloc snapshots (or memray) over a longer run."
    )
    title = f"Service memory growing {slope:.1f} MB/min"
    return Finding("memory_leak", "warning", title, evidence, message, suggestion)


def _endpoint_failures(view: RunView, limits: AnalysisLimits) -> list[tuple[str, int, int]]:
    """(endpoint, failures, requests) per endpoint, from requests.arrows, else from locust_stats.csv."""
    if view.requests is not None:
        stats = view.endpoint_stats[:-1]
        outage = find_outage(view, limits.unreachable_min_failures)
        rows = outage.rows if outage is not None else np.zeros(0, dtype=np.int64)
        unanswered = np.bincount(view.requests.endpoint[rows], minlength=len(stats))
        return [(s["endpoint"], s["failures"] - int(unanswered[i]), s["requests"]) for i, s in enumerate(stats)]
    frame = view.run.locust_stats
    if frame is None:
        return []
    frame = frame[frame["Name"] != "Aggregated"]
    return [
        (f"{t} {n}".strip(), int(f), int(r))
        for t, n, f, r in zip(frame["Type"], frame["Name"], frame["Failure Count"], frame["Request Count"], strict=True)
    ]


def _failures(view: RunView, limits: AnalysisLimits) -> Finding | None:
    per_endpoint = [row for row in _endpoint_failures(view, limits) if row[2] > 0]
    total = sum(f for _, f, _ in per_endpoint)
    if len(per_endpoint) < 2 or total < limits.failure_min_count:
        return None
    endpoint, failures, requests = max(per_endpoint, key=lambda row: row[1])
    share = failures / total
    if share < limits.failure_concentration:
        return None
    evidence = {
        "endpoint": endpoint, "failures": failures, "total_failures": total, "share": _r(share, 3),
        "endpoint_requests": requests, "endpoint_failure_ratio": _r(failures / requests, 4),
        "endpoints": len(per_endpoint),
    }  # fmt: skip
    top = ""
    if view.requests is not None:
        errors = [row for row in view.requests.failures_by_error() if row["endpoint"] == endpoint]
        if errors:
            evidence["top_error_count"] = errors[0]["count"]
            top = f" Most frequent error ({errors[0]['count']:,}x): {errors[0]['error'][:160]}"
    message = (
        f"{failures:,} of {total:,} failures ({share:.0%}) came from {endpoint}, which failed "
        f"{failures / requests:.1%} of its {requests:,} requests.{top}"
    )
    suggestion = f"Look at {endpoint} alone: its error messages (table below) and the service log for its route."
    return Finding("failures_concentrated", "warning", f"Failures concentrated on {endpoint}", evidence, message,
                   suggestion)  # fmt: skip


def _unreachable(view: RunView, limits: AnalysisLimits) -> Finding | None:
    outage = find_outage(view, limits.unreachable_min_failures)
    if outage is None:
        return None
    until = "the end of the run" if not outage.answered_after else f"{outage.to_s:.1f} s"
    failed, requested = len(outage.endpoints_failed), len(outage.endpoints_requested)
    which = f"all {requested} endpoints requested" if failed >= requested else f"{failed} of {requested} endpoints"
    causes = "; ".join(f"{error} ({count:,}x)" for error, count in list(outage.errors.items())[:3])
    message = (
        f"The service was unreachable from {outage.from_s:.1f} s to {outage.to_s:.1f} s after the start (until "
        f"{until}): {outage.failures:,} requests to {which} got no answer: {causes}."
    )
    exit_info = outage.service_exit
    if exit_info:
        at = f" at {exit_info['at_rel_s']:.1f} s" if "at_rel_s" in exit_info else ""
        message += f" The embedded service ended{at} ({exit_info.get('how') or exit_info.get('returncode')})."
    suggestion = (
        "Every endpoint failed at once: the service (or the way to it) went down, not one route. Read the service's "
        f"log (service.log for the embedded one) around {outage.from_s:.0f} s for a crash, an OOM kill (dmesg) or a "
        "restart; the failures after it are its consequences, not separate problems."
    )
    title = f"Service unreachable from {outage.from_s:.1f} s to {outage.to_s:.1f} s"
    return Finding("service_unreachable", "critical", title, outage.evidence(view.duration_s), message, suggestion)


def _cache_entries(stats: Any) -> list[dict[str, Any]]:
    """The per-worker cache statistics in cache_stats.json (one object, a list, or an object per worker)."""
    if isinstance(stats, dict) and "hits" not in stats and "enabled" not in stats:
        stats = list(stats.values())
    entries = stats if isinstance(stats, list) else [stats]
    return [
        e for e in entries
        if isinstance(e, dict) and e.get("enabled", True) and isinstance(e.get("hits"), int | float)
        and isinstance(e.get("misses"), int | float)
    ]  # fmt: skip


def _cache(view: RunView, limits: AnalysisLimits) -> Finding | None:
    entries = _cache_entries(view.run.cache_stats)
    hits, misses = sum(e["hits"] for e in entries), sum(e["misses"] for e in entries)
    lookups = hits + misses
    if not entries or lookups < limits.cache_min_lookups:
        return None
    rate = hits / lookups
    if rate >= limits.cache_hit_rate_min:
        return None
    evictions = sum(e.get("evictions") or 0 for e in entries)
    evidence = {"hit_rate": _r(rate, 4), "hits": int(hits), "misses": int(misses), "lookups": int(lookups),
                "evictions": int(evictions), "workers": len(entries), "limit": limits.cache_hit_rate_min}  # fmt: skip
    message = (
        f"The feature cache hit {rate:.1%} of {lookups:,} lookups ({hits:,} hits, {misses:,} misses, "
        f"{evictions:,} evictions) across {len(entries)} worker(s)."
    )
    suggestion = (
        "Raise the cache size or TTL (FEATURESTORE_CACHE_MAX_ENTRIES, FEATURESTORE_CACHE_TTL_S) if evictions are "
        "high; check that the load's key distribution can hit (uniform ids over a large catalog will not); with "
        "several uvicorn workers each keeps its own cache."
    )
    return Finding("cache_hit_rate_low", "warning", f"Cache hit rate {rate:.0%}", evidence, message, suggestion)


def _latency_idle(view: RunView, limits: AnalysisLimits) -> Finding | None:
    service, requests, capacity = view.service, view.requests, view.service_capacity_cores
    if service is None or requests is None or not capacity:
        return None
    third = view.duration_s / 3.0
    first = requests.ts_rel_s < third
    last = requests.ts_rel_s >= 2 * third
    n_first, n_last = int(first.sum()), int(last.sum())
    if min(n_first, n_last) < limits.idle_min_requests:
        return None
    p95_first, p95_last = requests.percentile("p95", first), requests.percentile("p95", last)
    if not p95_first or p95_last is None or p95_last < limits.idle_latency_rise_ratio * p95_first:
        return None
    cpu = service.cpu_total()
    window = (service.ticks_s >= 2 * third) & (service.ticks_s <= view.duration_s) & np.isfinite(cpu)
    if not window.any():
        return None
    cpu_last = float(cpu[window].mean())
    capacity_percent = 100.0 * capacity
    if cpu_last >= limits.idle_cpu_fraction * capacity_percent:
        return None
    ratio = p95_last / p95_first
    evidence = {
        "p95_first_third_ms": _r(p95_first), "p95_last_third_ms": _r(p95_last), "p95_ratio": _r(ratio),
        "requests_first_third": n_first, "requests_last_third": n_last,
        "service_cpu_mean_last_third_percent": _r(cpu_last, 1), "capacity_percent": capacity_percent,
    }  # fmt: skip
    planned = _planned_load(view, [(0.0, third), (2 * third, view.duration_s)])
    if planned is not None:
        (load_first, load_last), unit = planned
        load_ratio = load_last / load_first if load_first > 0 else (np.inf if load_last > 0 else 1.0)
        evidence.update(planned_load_unit=unit, planned_load_first_third=_r(load_first, 1),
                        planned_load_last_third=_r(load_last, 1), planned_load_ratio=_r(load_ratio))  # fmt: skip
        if load_ratio >= LOAD_RISE_RATIO:
            return _latency_follows_load(evidence, ratio, cpu_last, load_first, load_last, unit)
    message = (
        f"p95 rose from {p95_first:.1f} ms in the first third of the run to {p95_last:.1f} ms in the last third "
        f"({ratio:.1f}x) while the service averaged {cpu_last:.0f}% CPU, {cpu_last / capacity_percent:.0%} of its "
        f"{capacity_percent:.0f}% capacity."
    )
    suggestion = (
        "The service is waiting, not computing: on IO (disk, the store's file locks, a downstream call) or on locks "
        "and queues (a blocking call in an async route, the thread pool). Look at the service threads and IO "
        "charts, then py-spy dump --pid <pid> during the slow phase."
    )
    return Finding("latency_rising_idle", "warning", "Latency rising while the service CPU idles", evidence,
                   message, suggestion)  # fmt: skip


def _planned_load(view: RunView, windows: list[tuple[float, float]]) -> tuple[list[float], str] | None:
    """The mean load the run planned over each (start, end) window, seconds since the start, and its unit: the open
    model's planned rate (metadata.json's open_model plan) in req/s, else the users Locust ran; None when neither
    was recorded."""
    plan = ((view.run.metadata or {}).get("open_model") or {}).get("plan") or []
    if plan:
        at = np.asarray([float(step["at_s"]) for step in plan]) - view.t0_s
        rate = np.asarray([float(step["rate_per_s"]) for step in plan])

        def level(t: np.ndarray) -> np.ndarray:
            index = np.searchsorted(at, t, side="right") - 1
            return np.where(index >= 0, rate[np.clip(index, 0, None)], 0.0)

        unit = "req/s planned"
    elif view.run.users is not None and len(view.run.users):

        def level(t: np.ndarray) -> np.ndarray:
            return np.nan_to_num(_users_at(view, t), nan=0.0)  # type: ignore[arg-type]

        unit = "users"
    else:
        return None
    means = [float(level(np.linspace(start, end, 200, endpoint=False)).mean()) for start, end in windows]
    return means, unit


def _latency_follows_load(evidence: dict[str, Any], ratio: float, cpu_last: float, load_first: float,
                          load_last: float, unit: str) -> Finding:  # fmt: skip
    """latency_rising_idle's rise when the run itself raised the load: information, not a fault of the service."""
    grew = f"{load_last / load_first:.1f}x" if load_first > 0 else "from nothing"
    message = (
        f"p95 rose from {evidence['p95_first_third_ms']:.1f} ms in the first third of the run to "
        f"{evidence['p95_last_third_ms']:.1f} ms in the last third ({ratio:.1f}x) while the load the run planned "
        f"rose from {load_first:,.1f} to {load_last:,.1f} {unit} ({grew}; the service averaged {cpu_last:.0f}% CPU "
        "in the last third)."
    )
    suggestion = (
        "The latency followed the load the profile chose: compare latencies at equal load (each step of a step or "
        "stress profile), or find the highest load held within the SLO with the stress or stress_rate profile."
    )
    title = f"Latency rose with the planned load ({grew})"
    return Finding("latency_follows_load", "info", title, evidence, message, suggestion)


def _ramping(view: RunView, starts_s: np.ndarray, bucket_s: float) -> np.ndarray:
    """Per bucket starting at ``starts_s``: True when the users Locust ran changed within it or the bucket before
    (the spawn of a ramp or a step; new users' first requests are few and slow). False without a users record."""
    users = view.run.users
    if users is None or not len(users):
        return np.zeros(starts_s.size, dtype=bool)
    ticks = users["ts_s"].to_numpy() - view.t0_s
    counts = users["users"].to_numpy().astype(float)
    lo = np.searchsorted(ticks, starts_s - bucket_s, side="left")
    hi = np.searchsorted(ticks, starts_s + bucket_s, side="right")
    before = counts[np.clip(lo - 1, 0, None)]  # the count in force when the previous bucket began
    changed = np.zeros(starts_s.size, dtype=bool)
    for i, (a, b) in enumerate(zip(lo, hi, strict=True)):
        window = counts[a:b]
        changed[i] = bool(window.size and (np.ptp(window) > 0 or (a > 0 and window[0] != before[i])))
    return changed


def _workers_lost(view: RunView, limits: AnalysisLimits) -> Finding | None:
    metadata = view.run.metadata or {}
    lost = list(metadata.get("workers_lost") or [])
    if not lost:
        return None
    workers = metadata.get("workers") or {}
    evidence = {"workers_lost": len(lost), "workers": len(workers)}
    message = f"{len(lost)} of {len(workers)} Locust worker(s) went missing during the run: {', '.join(lost[:5])}."
    suggestion = "The load after the loss was lower than planned: check the workers' logs (memory, network)."
    return Finding("workers_lost", "warning", "Locust workers lost", evidence, message, suggestion)


def _users_at(view: RunView, centers_s: np.ndarray) -> np.ndarray | None:
    """Users running at each bucket centre (the last count Locust recorded before it), NaN where none ran."""
    users = view.run.users
    if users is None or not len(users):
        return None
    ticks = users["ts_s"].to_numpy() - view.t0_s
    counts = users["users"].to_numpy().astype(float)
    index = np.searchsorted(ticks, centers_s, side="right") - 1
    at = np.where(index >= 0, counts[np.clip(index, 0, None)], np.nan)
    return np.where(at > 0, at, np.nan)


def _coordinated_omission(view: RunView, limits: AnalysisLimits) -> Finding | None:
    if (view.run.metadata or {}).get("open_model") or view.buckets is None:
        return None
    buckets = view.buckets
    # The first bucket and the ramp are skipped: users are still being spawned and their first requests are cold.
    inside = (buckets.centers_s >= view.bucket_s) & (buckets.centers_s <= view.duration_s)
    ramp = _ramping(view, buckets.centers_s - view.bucket_s / 2.0, view.bucket_s) & inside
    inside &= ~ramp
    requests, p99 = buckets.requests[inside].astype(float), buckets.total_ms["p99"][inside]
    if requests.size < 5 or not np.isfinite(p99).any():
        return None
    users = _users_at(view, buckets.centers_s[inside])
    # Requests per user: a ramp or a step of users changes how many requests are sent without any stall.
    per_user = requests / users if users is not None else requests
    # typical values from the quartiles away from the stalls (module docstring): in a 10 s run with a stall every
    # 5 s, half the buckets are stalled ones and the medians of throughput and p99 are theirs
    typical_requests, typical_p99 = float(np.percentile(requests, 75)), float(np.nanpercentile(p99, 25))
    typical_per_user = float(np.nanpercentile(per_user, 75))
    if typical_requests <= 0 or not typical_p99 > 0 or not typical_per_user > 0:
        return None
    worst_after = np.fmax(p99, np.r_[p99[1:], np.nan])  # the waiting requests complete in the bucket or the next
    collapsed = (per_user < CO_THROUGHPUT_DROP * typical_per_user) & (worst_after >= CO_LATENCY_RISE * typical_p99)
    if int(collapsed.sum()) < CO_MIN_BUCKETS:
        return None
    missing = float(np.sum(np.maximum(typical_requests - requests[collapsed], 0.0)))
    evidence = {
        "collapsed_buckets": int(collapsed.sum()), "bucket_s": view.bucket_s,
        "typical_requests_per_bucket": _r(typical_requests, 1),
        "min_requests_in_collapse": int(requests[collapsed].min()),
        "typical_bucket_p99_ms": _r(typical_p99),
        "max_p99_in_collapse_ms": _r(float(np.nanmax(worst_after[collapsed]))),
        "requests_not_sent_estimate": int(missing), "ramp_buckets_excluded": int(ramp.sum()),
    }  # fmt: skip
    message = (
        f"In {int(collapsed.sum())} interval(s) of {view.bucket_s:g} s the users sent at most "
        f"{int(requests[collapsed].max())} requests (typically {typical_requests:,.0f}) while p99 rose to "
        f"{float(np.nanmax(worst_after[collapsed])):,.0f} ms (typically {typical_p99:.1f} ms): about {int(missing):,} "
        "requests were never sent, so the latency they would have seen is missing from every percentile above "
        "(coordinated omission; the figure is an estimate at the typical rate)."
    )
    suggestion = (
        "Measure at a planned rate with the open model (--arrival-rate R or a rate profile): arrivals keep coming "
        "during a stall and their latency counts from the intended start."
    )
    return Finding("coordinated_omission", "warning", "Coordinated omission: the closed model hid a stall",
                   evidence, message, suggestion)  # fmt: skip
