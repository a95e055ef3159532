"""Synthetic but realistic run directories, for the report and analysis tests (and anyone else who needs one).

``make_run_dir(root, ...)`` writes every file ``harness.plugin`` and the sampler leave in a run directory,
generated with numpy from a seeded model of a run: a service whose CPU, latency and RSS follow the chosen
pathologies, a load generator, the host, optionally a GPU. Each pathology is one keyword argument, so a test says
what it is about::

    make_run_dir(tmp_path, cpu_bound=True)             service CPU climbs to saturation while p95 rises
    make_run_dir(tmp_path, rss_leak_mb_per_min=40)     service RSS grows 40 MB per minute
    make_run_dir(tmp_path, generator_cpu_percent=95)   the Locust process is at 95% of one core
    make_run_dir(tmp_path, failing_endpoint="POST /v1/online/batch")
    make_run_dir(tmp_path, idle_latency_rise=True)     p95 rises 5x over the run while the service CPU idles
    make_run_dir(tmp_path, cache_hit_rate=0.4)
    make_run_dir(tmp_path, sampler=False, thresholds=None, locust_csvs=False)   the minimal run directory

``write_requests(path, rows)`` writes a hand-built request log.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from harness.recording.recorder import REQUEST_SCHEMA, ArrowStreamWriter
from harness.verdict.thresholds import evaluate

__all__ = ["DEFAULT_ENDPOINTS", "make_run_dir", "write_requests"]

MB = 2**20
STARTED_S = 1_767_000_000.0  # 2025-12-29, a fixed epoch so runs are reproducible
# (request type, name, median latency ms, share of the traffic)
DEFAULT_ENDPOINTS: tuple[tuple[str, str, float, float], ...] = (
    ("GET", "/v1/online/{group}/{feature}/{entity_id}", 6.0, 0.55),
    ("POST", "/v1/online/batch", 18.0, 0.2),
    ("GET", "/v1/features/{group}", 9.0, 0.15),
    ("POST", "/v1/pipeline/run", 45.0, 0.05),
    ("GET", "/health", 1.5, 0.05),
)
SAMPLE_SCHEMA = pa.schema(
    [
        ("ts_s", pa.float64()), ("scope", pa.string()), ("pid", pa.int64()), ("ppid", pa.int64()),
        ("name", pa.string()), ("cmdline", pa.string()), ("cpu_percent", pa.float64()),
        ("cpu_machine_percent", pa.float64()), ("rss_bytes", pa.int64()), ("uss_bytes", pa.int64()),
        ("threads", pa.int64()), ("fds", pa.int64()), ("ctx_voluntary", pa.int64()),
        ("ctx_involuntary", pa.int64()), ("read_bytes", pa.int64()), ("write_bytes", pa.int64()),
    ]
)  # fmt: skip


def write_requests(path: Path, rows: Sequence[dict[str, Any]] | pa.Table, batch_rows: int = 1_000) -> Path:
    """Write request rows (dicts with REQUEST_SCHEMA's keys, or a table) as ``requests.arrows`` in batches."""
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(list(rows), schema=REQUEST_SCHEMA)
    writer = ArrowStreamWriter(path, REQUEST_SCHEMA)
    for batch in table.to_batches(max_chunksize=batch_rows):
        writer.write(batch)
    writer.close()
    return path


def _endpoints(endpoints: int | Sequence[tuple[str, str, float, float]]) -> list[tuple[str, str, float, float]]:
    if isinstance(endpoints, int):
        share = 1.0 / endpoints
        return [("GET" if i % 3 else "POST", f"/v1/endpoint-{i}", 2.0 + 3.0 * i, share) for i in range(endpoints)]
    return list(endpoints)


def make_run_dir(
    root: Path,
    *,
    name: str = "20251229-092000-concurrent_users",
    duration_s: float = 300.0,
    rps: float = 100.0,
    users: int = 50,
    spawn_rate: float = 5.0,
    endpoints: int | Sequence[tuple[str, str, float, float]] = DEFAULT_ENDPOINTS,
    logical_cores: int = 2,
    service_workers: int = 1,
    generator_processes: int = 1,
    interval_s: float = 1.0,
    cpu_bound: bool = False,
    rss_leak_mb_per_min: float = 0.0,
    generator_cpu_percent: float = 35.0,
    failing_endpoint: str | None = None,
    failing_ratio: float = 0.3,
    background_failures: int = 0,
    idle_latency_rise: bool = False,
    cache_hit_rate: float | None = None,
    gpu: bool = False,
    sampler: bool = True,
    thresholds: Sequence[str] | None = ("p95 < 250ms", "failure_ratio < 1%"),
    locust_csvs: bool = True,
    batch_s: float = 1.0,
    seed: int = 0,
) -> Path:
    """Write a run directory ``root / name`` and return its path.

    The healthy defaults: 100 req/s over 5 endpoints for 300 s, a one-worker service at about 30% of one core
    with flat RSS, a generator at 35% of one core, no failures. ``thresholds=None`` writes no thresholds.json,
    ``()`` an unevaluated one; ``sampler=False`` leaves out samples/host/gpu/sampler files.
    """
    rng = np.random.default_rng(seed)
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    eps = _endpoints(endpoints)
    labels = [f"{t} {n}" for t, n, _, _ in eps]
    t0 = STARTED_S
    seconds = int(np.ceil(duration_s))
    frac = (np.arange(seconds) + 0.5) / seconds  # run fraction at each second

    # the shape of the run: users ramp, service CPU as a fraction of its capacity, a latency factor
    users_t = np.minimum(users, np.floor(spawn_rate * (np.arange(seconds) + 1))).astype(int)
    capacity_cores = min(logical_cores, service_workers)
    if cpu_bound:
        cpu_frac = np.minimum(0.97, 0.25 + frac)
        latency_factor = 1.0 + 8.0 * np.clip((cpu_frac - 0.85) / 0.12, 0.0, 1.0)
    else:
        cpu_frac = np.full(seconds, 0.3 if not idle_latency_rise else 0.15)
        latency_factor = np.exp(np.log(5.0) * frac) if idle_latency_rise else np.ones(seconds)

    # requests: Poisson counts per second, following the users ramp
    counts = rng.poisson(rps * users_t / users)
    second = np.repeat(np.arange(seconds), counts)
    ts = t0 + second + rng.random(second.size)
    ts.sort(kind="stable")
    second = (ts - t0).astype(np.int64)
    shares = np.array([e[3] for e in eps])
    code = rng.choice(len(eps), size=ts.size, p=shares / shares.sum())
    base = np.array([e[2] for e in eps])[code]
    latency = base * latency_factor[second] * rng.lognormal(0.0, 0.35, ts.size)
    failed = np.zeros(ts.size, dtype=bool)
    if failing_endpoint is not None:
        failed |= (code == labels.index(failing_endpoint)) & (rng.random(ts.size) < failing_ratio)
    if background_failures:
        failed[rng.choice(ts.size, size=background_failures, replace=False)] = True
    _write_request_log(path, rng, eps, labels, ts, code, latency, failed, generator_processes, batch_s)

    duration = float(duration_s)
    ended_s = t0 + duration
    if locust_csvs:
        _write_locust_csvs(path, eps, labels, ts, code, latency, failed, users_t, t0)
    if thresholds is not None:
        table = _read_table(path / "requests.arrows")
        verdict = evaluate(list(thresholds), table, duration_s=duration, start_s=t0) if thresholds else None
        content = {"evaluated": bool(thresholds), **(verdict.to_dict() if verdict else {"passed": True})}
        (path / "thresholds.json").write_text(json.dumps(content, indent=2))
    if sampler:
        _write_sampler_files(
            path, rng, t0, duration, interval_s, logical_cores, service_workers, generator_processes,
            cpu_frac * capacity_cores * 100.0, rss_leak_mb_per_min, generator_cpu_percent, gpu,
        )  # fmt: skip
    if cache_hit_rate is not None:
        lookups = int(ts.size * 0.6)
        hits = round(lookups * cache_hit_rate)
        stats = {"enabled": True, "pid": 4242, "size": 5000, "max_size": 10000, "hits": hits, "misses": lookups - hits,
                 "hit_rate": hits / lookups if lookups else 0.0, "evictions": 120, "expirations": 3}  # fmt: skip
        (path / "cache_stats.json").write_text(json.dumps(stats, indent=2))
    metadata = _metadata(
        path.name, t0, ended_s, duration, ts.size, int(failed.sum()), thresholds or [], logical_cores,
        service_workers, generator_processes, users, spawn_rate,
    )  # fmt: skip
    (path / "metadata.json").write_text(json.dumps(metadata, indent=2))
    return path


def _read_table(path: Path) -> pa.Table:
    with pa.OSFile(str(path), "rb") as source:
        return pa.ipc.open_stream(source).read_all()


def _write_request_log(
    path: Path, rng: np.random.Generator, eps: list[tuple[str, str, float, float]], labels: list[str],
    ts: np.ndarray, code: np.ndarray, latency: np.ndarray, failed: np.ndarray, generators: int, batch_s: float,
) -> None:  # fmt: skip
    types = pa.DictionaryArray.from_arrays(pa.array(code.astype(np.int32)), pa.array([e[0] for e in eps]))
    names = pa.DictionaryArray.from_arrays(pa.array(code.astype(np.int32)), pa.array([e[1] for e in eps]))
    messages = [f"HTTPError: 500 Server Error: Internal Server Error for url: {e[1]}" for e in eps]
    messages += ["ConnectionResetError: [Errno 104] Connection reset by peer"]
    error_code = np.where(rng.random(ts.size) < 0.9, code, len(eps)).astype(np.int32)
    errors = pa.DictionaryArray.from_arrays(pa.array(error_code, mask=~failed), pa.array(messages))
    worker_names = ["local"] if generators == 1 else [f"worker-{i}" for i in range(1, generators)]
    workers = pa.DictionaryArray.from_arrays(
        pa.array(rng.integers(0, len(worker_names), ts.size).astype(np.int32)), pa.array(worker_names)
    )
    sizes = (200 + 50 * code + rng.integers(0, 100, ts.size)).astype(np.int64)
    sizes[failed] = 0
    table = pa.table(
        [pa.array(ts), types.cast(pa.string()), names.cast(pa.string()), pa.array(latency), pa.array(~failed),
         pa.array(sizes), errors.cast(pa.string()), workers.cast(pa.string())],
        schema=REQUEST_SCHEMA,
    )  # fmt: skip
    writer = ArrowStreamWriter(path / "requests.arrows", REQUEST_SCHEMA)
    if ts.size:
        cuts = np.searchsorted(ts, np.arange(ts[0] + batch_s, ts[-1] + batch_s, batch_s))
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, ts.size], strict=True):
            if hi > lo:
                writer.write(table.slice(int(lo), int(hi - lo)).combine_chunks().to_batches()[0])
    writer.close()


def _write_locust_csvs(
    path: Path, eps: list[tuple[str, str, float, float]], labels: list[str], ts: np.ndarray, code: np.ndarray,
    latency: np.ndarray, failed: np.ndarray, users_t: np.ndarray, t0: float,
) -> None:  # fmt: skip
    percentiles = ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]
    second = np.clip((ts - t0).astype(np.int64), 0, users_t.size - 1)
    with open(path / "locust_stats_history.csv", "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", *percentiles,
                      "Total Request Count", "Total Failure Count", "Total Median Response Time",
                      "Total Average Response Time", "Total Min Response Time", "Total Max Response Time",
                      "Total Average Content Size"])  # fmt: skip
        per_second = np.bincount(second * (len(eps) + 1) + code, minlength=users_t.size * (len(eps) + 1))
        per_second = per_second.reshape(users_t.size, len(eps) + 1)
        fails = np.bincount(second[failed], minlength=users_t.size)
        cumulative = np.cumsum(per_second.sum(axis=1))
        for s in range(users_t.size):
            for i, (rtype, rname, base, _) in enumerate(eps):
                out.writerow([int(t0) + s, users_t[s], rtype, rname, f"{per_second[s, i]:.2f}", "0.00",
                              *[int(base)] * len(percentiles), 0, 0, int(base), base, 0, 0, 0])  # fmt: skip
            out.writerow([int(t0) + s, users_t[s], "", "Aggregated", f"{per_second[s].sum():.2f}",
                          f"{fails[s]:.2f}", *["N/A"] * len(percentiles), cumulative[s], 0, 0, 0, 0, 0, 0])  # fmt: skip
    with open(path / "locust_stats.csv", "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["Type", "Name", "Request Count", "Failure Count", "Median Response Time",
                      "Average Response Time", "Min Response Time", "Max Response Time", "Average Content Size",
                      "Requests/s", "Failures/s", *percentiles])  # fmt: skip
        span = max(float(ts[-1] - ts[0]), 1.0) if ts.size else 1.0
        for i, (rtype, rname, _, _) in enumerate([*eps, ("", "Aggregated", 0.0, 0.0)]):
            rows = code == i if i < len(eps) else np.ones(ts.size, dtype=bool)
            lat = latency[rows]
            qs = [round(float(np.quantile(lat, q / 100))) if lat.size else 0 for q in (50, 66, 75, 80, 90, 95, 98, 99)]
            top = [round(float(lat.max())) if lat.size else 0] * 3
            out.writerow([rtype, rname, lat.size, int(failed[rows].sum()), qs[0], float(lat.mean()) if lat.size else 0,
                          float(lat.min()) if lat.size else 0, float(lat.max()) if lat.size else 0, 250,
                          lat.size / span, failed[rows].sum() / span, *qs, *top])  # fmt: skip
    with open(path / "locust_failures.csv", "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["Method", "Name", "Error", "Occurrences"])
        for i, (rtype, rname, _, _) in enumerate(eps):
            n = int((failed & (code == i)).sum())
            if n:
                out.writerow([rtype, rname, f"HTTPError('500 Server Error for url: {rname}')", n])


def _write_sampler_files(
    path: Path, rng: np.random.Generator, t0: float, duration_s: float, interval_s: float, cores: int,
    service_workers: int, generators: int, service_cpu_per_s: np.ndarray, leak_mb_per_min: float,
    generator_cpu: float, gpu: bool,
) -> None:  # fmt: skip
    ticks = t0 - 2 * interval_s + interval_s * np.arange(int((duration_s + 3 * interval_s) / interval_s) + 1)
    n = ticks.size
    elapsed = np.clip(ticks - t0, 0.0, duration_s)
    load = np.interp(elapsed, np.arange(service_cpu_per_s.size) + 0.5, service_cpu_per_s)
    procs: list[tuple[str, int, int, str, np.ndarray, np.ndarray, int]] = []  # scope pid ppid name cpu rss threads
    supervisor = 4000
    if service_workers > 1:
        procs.append(("service", supervisor, 1, "python", 0.3 + rng.random(n) * 0.4, np.full(n, 42.0 * MB), 2))
    for w in range(service_workers):
        cpu = np.clip(load / service_workers + rng.normal(0, 2, n), 0, 100)
        rss = (150 + leak_mb_per_min * elapsed / 60.0 / service_workers + rng.normal(0, 1.5, n)) * MB
        procs.append(("service", supervisor + 1 + w if service_workers > 1 else supervisor,
                      supervisor if service_workers > 1 else 1, "python", cpu, rss, 4))  # fmt: skip
    for g in range(generators):
        level = generator_cpu if generators == 1 or g > 0 else 6.0
        cpu = np.clip(level + rng.normal(0, 2.5, n), 0, 100)
        procs.append(("generator", 3000 + g, 3000 if g else 2999, "locust", cpu, (90 + 0.0 * cpu) * MB, 3))
    sampler_cpu = np.clip(0.8 + rng.normal(0, 0.2, n), 0, None)
    procs.append(("sampler", 3500, 3000, "python", sampler_cpu, np.full(n, 38.0 * MB), 2))

    columns: dict[str, list[np.ndarray]] = {f.name: [] for f in SAMPLE_SCHEMA}
    total_cpu, total_rss = np.zeros(n), np.zeros(n)
    for scope, pid, ppid, pname, cpu, rss, threads in procs:
        cpu_null = cpu.astype(float).copy()
        cpu_null[0] = np.nan  # no cpu_percent on a pid's first sample
        total_cpu += cpu
        total_rss += rss
        cumulative_read = np.cumsum(rng.integers(0, 2 * MB, n)) if scope == "service" else np.zeros(n, np.int64)
        _append(columns, ticks, scope, pid, ppid, pname, cpu_null, cores, rss, threads, cumulative_read, rng)
    host_cpu = np.clip(total_cpu + 5.0, 0, 100.0 * cores)
    host_used = 2.0 * 2**30 + total_rss
    _append(columns, ticks, "host", None, None, "host", host_cpu, cores, host_used, 0, None, rng)
    order = np.argsort(np.concatenate(columns["ts_s"]), kind="stable")
    arrays = []
    for f in SAMPLE_SCHEMA:
        values = np.concatenate(columns[f.name])[order]
        mask = None
        if values.dtype == object:
            mask = np.array([v is None for v in values])
        elif values.dtype.kind == "f" and f.type != pa.float64():
            mask = np.isnan(values)
            values = np.nan_to_num(values).astype(np.int64)
        elif f.type == pa.float64():
            mask = np.isnan(values)
        arrays.append(pa.array(values, type=f.type, mask=mask))
    _write_ipc(path / "samples.arrows", pa.table(arrays, schema=SAMPLE_SCHEMA))

    mem_total = 8 * 2**30
    per_core = [list(np.clip(host_cpu[i] / cores + rng.normal(0, 3, cores), 0, 100)) for i in range(n)]
    host = pa.table({
        "ts_s": ticks, "cpu_percent": host_cpu / cores,
        "cpu_per_core": pa.array(per_core, type=pa.list_(pa.float64())),
        "mem_total_bytes": np.full(n, mem_total, np.int64), "mem_used_bytes": host_used.astype(np.int64),
        "mem_available_bytes": (mem_total - host_used).astype(np.int64), "swap_used_bytes": np.zeros(n, np.int64),
        "load1": host_cpu / 100, "load5": host_cpu / 110, "load15": host_cpu / 120,
        "disk_read_bytes": np.cumsum(rng.integers(0, MB, n)), "disk_write_bytes": np.cumsum(rng.integers(0, MB, n)),
        "net_sent_bytes": np.cumsum(rng.integers(0, 4 * MB, n)), "net_recv_bytes": np.cumsum(rng.integers(0, MB, n)),
    })  # fmt: skip
    _write_ipc(path / "host.arrows", host)
    reason = "NVML: libnvidia-ml.so.1 not found; GPUtil: nvidia-smi absent"
    gpu_info: dict[str, Any] = {"backend": "none", "devices": 0, "reason": reason}
    if gpu:
        gpu_info = {"backend": "fake", "devices": 1, "reason": None}
        util = np.clip(load / max(1, service_workers) * 0.8 + rng.normal(0, 3, n), 0, 100)
        _write_ipc(path / "gpu.arrows", pa.table({
            "ts_s": ticks, "index": np.zeros(n, np.int64), "name": ["NVIDIA T4"] * n, "uuid": ["GPU-0f1e"] * n,
            "util_percent": util, "mem_used_bytes": np.full(n, 1200 * MB, np.int64),
            "mem_total_bytes": np.full(n, 15360 * MB, np.int64), "temperature_c": 45 + util / 4,
            "power_w": 30 + util / 2,
        }))  # fmt: skip
        _write_ipc(path / "gpu_processes.arrows", pa.table({
            "ts_s": ticks, "index": np.zeros(n, np.int64), "pid": np.full(n, supervisor, np.int64),
            "used_memory_bytes": np.full(n, 1100 * MB, np.int64),
        }))  # fmt: skip
    seen = {str(pid): {"name": pname, "role": scope, "first_ts_s": ticks[0], "last_ts_s": ticks[-1], "exited": False}
            for scope, pid, _, pname, *_ in procs}  # fmt: skip
    info = {"interval_s": interval_s, "started_at": _iso(ticks[0]), "stopped_at": _iso(ticks[-1]),
            "logical_cores": cores, "gpu": gpu_info, "ticks": n, "ticks_missed": 0, "processes_seen": seen,
            "sampler_cpu_s": 0.8 * duration_s / 100}  # fmt: skip
    (path / "sampler.json").write_text(json.dumps(info, indent=2))


def _append(
    columns: dict[str, list[np.ndarray]], ticks: np.ndarray, scope: str, pid: int | None, ppid: int | None,
    name: str, cpu: np.ndarray, cores: int, rss: np.ndarray, threads: int, reads: np.ndarray | None,
    rng: np.random.Generator,
) -> None:  # fmt: skip
    n = ticks.size
    none = np.full(n, np.nan)
    columns["ts_s"].append(ticks)
    columns["scope"].append(np.full(n, scope, dtype=object))
    columns["pid"].append(none if pid is None else np.full(n, float(pid)))
    columns["ppid"].append(none if ppid is None else np.full(n, float(ppid)))
    columns["name"].append(np.full(n, name, dtype=object))
    columns["cmdline"].append(np.full(n, f"{name} -m {scope}" if pid else None, dtype=object))
    columns["cpu_percent"].append(np.asarray(cpu, dtype=float))
    columns["cpu_machine_percent"].append(np.asarray(cpu, dtype=float) / cores)
    columns["rss_bytes"].append(np.asarray(rss, dtype=float))
    columns["uss_bytes"].append(none if pid is None else np.asarray(rss, dtype=float) * 0.8)
    columns["threads"].append(np.full(n, float(threads)))
    columns["fds"].append(none if pid is None else np.full(n, 24.0))
    columns["ctx_voluntary"].append(none if pid is None else np.cumsum(rng.integers(0, 500, n)).astype(float))
    columns["ctx_involuntary"].append(none if pid is None else np.cumsum(rng.integers(0, 50, n)).astype(float))
    read = none if reads is None else reads.astype(float)
    columns["read_bytes"].append(read)
    columns["write_bytes"].append(read * 0.1 if reads is not None else none)


def _write_ipc(path: Path, table: pa.Table) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat()


def _metadata(
    run_name: str, started_s: float, ended_s: float, duration_s: float, requests: int, failures: int,
    thresholds: Sequence[str], cores: int, service_workers: int, generators: int, users: int, spawn_rate: float,
) -> dict[str, Any]:  # fmt: skip
    workers = {f"worker-{i}": {"first_seen_s": started_s, "lost_at_s": None, "state": "running"}
               for i in range(1, generators)}  # fmt: skip
    return {
        "scenario": run_name.split("-", 2)[-1],
        "locustfile": "locustfiles/concurrent_users.py",
        "host": "http://127.0.0.1:8765",
        "embedded_service": {
            "pid": 4000,
            "store_path": "/tmp/store",
            "workers": service_workers,
            "catalog": {"movies": 20000},
        },
        "external_catalog": None,
        "profile": {"name": "steady", "shape": "stages", "source": "profiles/steady.toml"},
        "shape_result": None,
        "thresholds": list(thresholds),
        "options": {
            "users": users,
            "spawn_rate": spawn_rate,
            "run_time_s": int(duration_s),
            "headless": True,
            "master": generators > 1,
            "expect_workers": generators - 1 or None,
            "exit_code_on_error": 1,
        },
        "runner": "MasterRunner" if generators > 1 else "LocalRunner",
        "workers": workers,
        "workers_lost": [],
        "started_at": _iso(started_s),
        "ended_at": _iso(ended_s),
        "duration_s": round(duration_s, 3),
        "requests_recorded": requests,
        "locust_totals": {"requests": requests, "failures": failures},
        "exit_code": 0,
        "environment": {
            "command_line": ["locust", "-f", "locustfiles/concurrent_users.py", "--headless", "--profile", "steady"],
            "python": "3.11.9",
            "python_executable": "/work/main/.venv/bin/python",
            "packages": {
                "locust": "2.47.0",
                "fastapi": "0.115.0",
                "pandas": "3.1.1",
                "pyarrow": "26.0.1",
                "numpy": "2.4.6",
                "psutil": "7.0.0",
                "featureload": "0.1.0",
            },
            "platform": "Linux-6.8.0-x86_64-with-glibc2.39",
            "cpu_model": "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz",
            "cpu_count_logical": cores,
            "cpu_count_physical": max(1, cores // 2),
            "memory_total_bytes": 8 * 2**30,
            "hostname": "loadbox",
            "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False},
            "env": {"LOCUST_HEADLESS": "true"},
            "collected_at": _iso(ended_s),
        },
    }
