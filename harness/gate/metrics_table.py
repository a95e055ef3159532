"""Per-run metrics for campaigns and comparisons, read from a run directory's own files (nothing re-measured).

From ``metadata.json`` (the test's start and end), ``requests.arrows`` and ``samples.arrows``, after dropping the
warm-up (requests completed, and samples taken, in the first ``warmup_s`` seconds of the test):

per endpoint (``"<type> <name>"``, and ``Aggregated`` for all requests)
    ``p50 p90 p95 p99`` ms, exact nearest rank over every request (ok and failed, as Locust counts them); a
    percentile q is left out (NaN) when fewer than 5 requests lie above it (n x (1 - q) < 5: p99 needs 500
    requests), because a rank that deep in a small sample is one request's luck;
    ``throughput_rps`` requests per second over the measured window; ``failure_ratio`` failed / all;
    ``requests`` the count (informational)
service-wide (endpoint ``""``), from the sampler's rows of role ``service`` and ``generator``
    ``service_cpu_ms_per_request`` the service's CPU time (every process of its tree, integrated tick to tick)
    over the window divided by the requests completed in it; ``service_peak_rss_mb`` the largest total RSS of the
    tree; ``service_rss_slope_mb_per_min`` the least-squares slope of that total; ``generator_cpu_percent`` the
    load generator's mean CPU (% of one core, informational: it is a condition of the measurement, not the build)

A campaign stores these as ``metrics.parquet`` in long form (run, run_dir, endpoint, metric, value, unit), plus
``percentiles.parquet`` (each endpoint's latency percentile curve per run) and ``resources.parquet`` (service CPU
and RSS, generator CPU over time per run). ``BadInputError`` is the one error every gate command reports as a
one-line message with exit code 2.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harness.recording._columns import local_rows
from harness.recording.recorder import read_stream

__all__ = [
    "AGGREGATED",
    "CURVE_QUANTILES",
    "METRICS",
    "PERCENTILES",
    "SERVICE",
    "BadInputError",
    "MetricSpec",
    "RunMetrics",
    "extract_run_metrics",
    "read_parquet",
    "request_latencies",
    "run_window",
    "write_json",
    "write_parquet",
]

AGGREGATED = "Aggregated"
SERVICE = ""  # the endpoint of service-wide metrics
PERCENTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}
MIN_REQUESTS_ABOVE = 5
CURVE_QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975, 0.99, 0.995, 0.999)
MB = 2**20


class BadInputError(ValueError):
    """A campaign, run directory, baseline or metrics file that cannot be used; the message says what and why."""


@dataclass(frozen=True)
class MetricSpec:
    """How a metric is judged: its unit, which way is worse, the smallest absolute change that matters, and
    whether it takes part in the gate (informational metrics are shown and tested, never gate)."""

    name: str
    unit: str
    higher_is_worse: bool
    abs_floor: float
    gated: bool = True


METRICS: dict[str, MetricSpec] = {
    **{name: MetricSpec(name, "ms", True, 0.2) for name in PERCENTILES},
    "throughput_rps": MetricSpec("throughput_rps", "req/s", False, 0.5),
    "failure_ratio": MetricSpec("failure_ratio", "ratio", True, 0.001),
    "requests": MetricSpec("requests", "requests", False, 0.0, gated=False),
    "service_cpu_ms_per_request": MetricSpec("service_cpu_ms_per_request", "ms", True, 0.01),
    "service_peak_rss_mb": MetricSpec("service_peak_rss_mb", "MB", True, 5.0),
    "service_rss_slope_mb_per_min": MetricSpec("service_rss_slope_mb_per_min", "MB/min", True, 5.0),
    "generator_cpu_percent": MetricSpec("generator_cpu_percent", "%", True, 2.0, gated=False),
}


@dataclass
class RunMetrics:
    """One run's metric rows, percentile curves and resource series (see the module docstring)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    curves: list[dict[str, Any]] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    window: dict[str, float] = field(default_factory=dict)


def _epoch(text: Any, what: str, path: Path) -> float:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        raise BadInputError(f"{path}: {what}={text!r} is not an ISO time") from None


def read_json_object(path: Path, missing: str, required: tuple[str, ...], lacking: str) -> dict[str, Any]:
    """The JSON object in ``path``. Raises BadInputError (one line): ``missing`` when there is no such file, that it
    is not readable JSON, or ``lacking`` when it is not an object holding every key of ``required``."""
    if not path.is_file():
        raise BadInputError(missing)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BadInputError(f"{path} is not readable JSON: {error}") from None
    if not isinstance(content, dict) or any(key not in content for key in required):
        raise BadInputError(lacking)
    return content


def _metadata(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "metadata.json"
    missing = f"{run_dir} is not a finished run directory: it has no metadata.json"
    lacking = f"{path} lacks started_at/ended_at: not written by the harness"
    return read_json_object(path, missing, ("started_at", "ended_at"), lacking)


def run_window(run_dir: Path, warmup_s: float) -> tuple[float, float]:
    """(start, end) in epoch seconds of the measured window: the test's start plus ``warmup_s``, to its end.

    Raises BadInputError when the run has no metadata or the warm-up leaves nothing to measure.
    """
    metadata = _metadata(run_dir)
    started = _epoch(metadata["started_at"], "started_at", run_dir / "metadata.json")
    ended = _epoch(metadata["ended_at"], "ended_at", run_dir / "metadata.json")
    if ended - started <= warmup_s:
        raise BadInputError(
            f"{run_dir}: the warm-up of {warmup_s:g} s covers the whole {ended - started:.1f} s run; "
            "use a shorter --warmup or longer runs"
        )
    return started + warmup_s, ended


def _requests(run_dir: Path) -> pa.Table:
    path = run_dir / "requests.arrows"
    if not path.is_file():
        raise BadInputError(f"{run_dir} has no requests.arrows: not a run directory, or the run never started")
    try:
        table = read_stream(path)
    except (OSError, ValueError, pa.ArrowException) as error:
        raise BadInputError(f"{path} is not a readable request log: {error}") from None
    missing = {"ts_s", "request_type", "name", "latency_ms", "ok"} - set(table.column_names)
    if missing:
        raise BadInputError(f"{path} lacks the columns {sorted(missing)}")
    return table


def request_latencies(run_dir: Path, warmup_s: float = 0.0) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Per endpoint (and Aggregated): the latencies (ms) of the requests in the measured window; and a dict with
    the window (``start_s``, ``end_s``) and per endpoint the failed count (``failures``)."""
    start, end = run_window(run_dir, warmup_s)
    table = _requests(run_dir)
    ts = table.column("ts_s").to_numpy().astype(float, copy=False)
    keep = (ts >= start) & (ts <= end)
    latency = table.column("latency_ms").to_numpy().astype(float, copy=False)[keep]
    failed = ~pc.fill_null(table.column("ok"), False).to_numpy(zero_copy_only=False).astype(bool)[keep]
    kinds = pc.fill_null(table.column("request_type").cast(pa.string()), "")
    names = pc.fill_null(table.column("name").cast(pa.string()), "")
    labels = pc.utf8_trim_whitespace(pc.binary_join_element_wise(kinds, names, " ")).filter(pa.array(keep))
    encoded = (labels.combine_chunks() if len(labels) else pa.array([], pa.string())).dictionary_encode()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    out: dict[str, np.ndarray] = {AGGREGATED: latency}
    failures: dict[str, int] = {AGGREGATED: int(failed.sum())}
    for code, label in sorted(enumerate(encoded.dictionary.to_pylist()), key=lambda item: item[1]):
        mask = codes == code
        out[label] = latency[mask]
        failures[label] = int(failed[mask].sum())
    return out, {"start_s": start, "end_s": end, "failures": failures}


def _percentile(values: np.ndarray, q: float) -> float:
    if values.size * (1.0 - q) < MIN_REQUESTS_ABOVE:
        return math.nan
    return float(np.quantile(values, q, method="inverted_cdf"))


def _samples(run_dir: Path) -> pa.Table | None:
    path = run_dir / "samples.arrows"
    if not path.is_file():
        return None
    try:
        table = read_stream(path)
    except (OSError, ValueError, pa.ArrowException) as error:
        raise BadInputError(f"{path} is not a readable sampler file: {error}") from None
    role = "scope" if "scope" in table.column_names else "role"
    if not {role, "ts_s", "pid", "cpu_percent", "rss_bytes"} <= set(table.column_names):
        raise BadInputError(f"{path} lacks the sampler's columns (ts_s, scope, pid, cpu_percent, rss_bytes)")
    # this machine's rows only: an agent's processes on another host (harness.sampling.agent) are not the campaign's
    return local_rows(table.rename_columns(["scope" if c == role else c for c in table.column_names]))


def _role_series(samples: pa.Table, role: str, start: float, end: float) -> dict[str, np.ndarray]:
    """Per tick of ``role``'s processes: time, summed CPU % (of one core), summed RSS, and the CPU seconds
    integrated per process from its previous tick (each tick's cpu_percent covers the time since the last)."""
    mask = pc.equal(samples.column("scope"), role)
    part = samples.filter(mask)
    if part.num_rows == 0:
        return {}
    ts = part.column("ts_s").to_numpy().astype(float)
    pid = part.column("pid").to_numpy(zero_copy_only=False).astype(np.int64)
    cpu = pc.fill_null(part.column("cpu_percent"), 0.0).to_numpy().astype(float)
    rss = pc.fill_null(part.column("rss_bytes"), 0).to_numpy().astype(float)
    order = np.lexsort((ts, pid))
    ts, pid, cpu, rss = ts[order], pid[order], cpu[order], rss[order]
    dt = np.diff(ts, prepend=np.nan)
    dt[np.r_[True, pid[1:] != pid[:-1]]] = 0.0  # a process's first tick has no interval
    cpu_s = cpu / 100.0 * np.nan_to_num(dt)
    inside = (ts > start) & (ts <= end + 0.5)
    ticks, index = np.unique(ts[inside], return_inverse=True)
    return {
        "ts_s": ticks,
        "cpu_percent": np.bincount(index, weights=cpu[inside], minlength=ticks.size),
        "rss_bytes": np.bincount(index, weights=rss[inside], minlength=ticks.size),
        "cpu_s": np.asarray([cpu_s[inside].sum()]),
    }


def _slope_mb_per_min(ts: np.ndarray, rss_bytes: np.ndarray) -> float:
    if ts.size < 3 or np.ptp(ts) <= 0:
        return math.nan
    return float(np.polyfit((ts - ts[0]) / 60.0, rss_bytes / MB, 1)[0])


def extract_run_metrics(run_dir: Path, warmup_s: float = 0.0) -> RunMetrics:
    """Every metric of the module docstring for one run directory. Raises BadInputError for a directory that is
    not a finished run (no metadata.json or requests.arrows, unreadable files, a warm-up longer than the run)."""
    latencies, info = request_latencies(run_dir, warmup_s)
    start, end = info["start_s"], info["end_s"]
    span = max(end - start, 1e-3)
    result = RunMetrics(window={"start_s": start, "end_s": end, "warmup_s": warmup_s})

    def add(endpoint: str, metric: str, value: float) -> None:
        result.rows.append({"endpoint": endpoint, "metric": metric, "value": value, "unit": METRICS[metric].unit})

    for endpoint, values in latencies.items():
        for name, q in PERCENTILES.items():
            add(endpoint, name, _percentile(values, q))
        add(endpoint, "throughput_rps", values.size / span)
        add(endpoint, "failure_ratio", info["failures"][endpoint] / values.size if values.size else math.nan)
        add(endpoint, "requests", float(values.size))
        for q in CURVE_QUANTILES:
            if values.size * (1.0 - q) >= 1:
                value = float(np.quantile(values, q, method="inverted_cdf"))
                result.curves.append({"endpoint": endpoint, "quantile": q, "latency_ms": value})

    samples = _samples(run_dir)
    service = _role_series(samples, "service", start, end) if samples is not None else {}
    generator = _role_series(samples, "generator", start, end) if samples is not None else {}
    total = latencies[AGGREGATED].size
    if service:
        add(SERVICE, "service_cpu_ms_per_request", float(service["cpu_s"][0]) * 1000.0 / total if total else math.nan)
        add(SERVICE, "service_peak_rss_mb", float(service["rss_bytes"].max()) / MB)
        add(SERVICE, "service_rss_slope_mb_per_min", _slope_mb_per_min(service["ts_s"], service["rss_bytes"]))
    else:
        for metric in ("service_cpu_ms_per_request", "service_peak_rss_mb", "service_rss_slope_mb_per_min"):
            add(SERVICE, metric, math.nan)
    add(SERVICE, "generator_cpu_percent", float(generator["cpu_percent"].mean()) if generator else math.nan)
    ticks = np.union1d(service.get("ts_s", np.empty(0)), generator.get("ts_s", np.empty(0)))
    for tick in ticks:
        row: dict[str, Any] = {"t_s": float(tick - start)}
        for prefix, series in (("service", service), ("generator", generator)):
            hit = np.flatnonzero(series.get("ts_s", np.empty(0)) == tick)
            row[f"{prefix}_cpu_percent"] = float(series["cpu_percent"][hit[0]]) if hit.size else math.nan
            row[f"{prefix}_rss_mb"] = float(series["rss_bytes"][hit[0]]) / MB if hit.size else math.nan
        result.resources.append(row)
    return result


def write_parquet(path: Path, rows: list[dict[str, Any]], schema: pa.Schema) -> Path:
    """Write ``rows`` (dicts with ``schema``'s keys) as one Parquet file, atomically (temp file, then rename)."""
    table = pa.Table.from_pylist(rows, schema=schema)
    temp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, temp)
    temp.replace(path)
    return path


def read_parquet(path: Path, required: tuple[str, ...]) -> pa.Table:
    """Read a Parquet file that must hold ``required`` columns; BadInputError (one line) when it is missing,
    corrupt or lacks them."""
    if not path.is_file():
        raise BadInputError(f"{path} does not exist")
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        raise BadInputError(f"{path} is not a readable Parquet file ({type(error).__name__}: {error})") from None
    if missing := [c for c in required if c not in table.column_names]:
        raise BadInputError(f"{path} lacks the columns {missing}: not a metrics table written by the harness")
    return table


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        return _finite(value.item())
    return value


def write_json(path: Path, content: Any) -> Path:
    """Write ``content`` as indented JSON, NaN and infinities as null, atomically (temp file, then rename)."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps(_finite(content), indent=2, default=str, allow_nan=False) + "\n", encoding="utf-8")
    temp.replace(path)
    return path
