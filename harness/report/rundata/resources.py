"""The sampler's tables as matrices on its ticks: per process (service, generator), the host, and GPUs.

``samples.arrows`` holds one row per process per tick (scope service|generator|sampler|host); here each scope
becomes a ``ProcessSeries``: one row per process (pid), one column per tick, NaN where the process was not
sampled (not yet started, gone, or its first sample for cpu_percent). Times are seconds since the run start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "MB", "GpuSeries", "HostSeries", "ProcessSeries", "bucket_mean", "gpu_series", "host_series", "linear_trend",
    "scopes", "total",
]  # fmt: skip

MB = 2**20  # bytes per MB (MiB), as the thresholds and psutil count them


def total(matrix: np.ndarray) -> np.ndarray:
    """The column sums of a (processes x ticks) matrix, NaN where every process is NaN."""
    if matrix.size == 0:
        return np.full(matrix.shape[-1] if matrix.ndim == 2 else 0, np.nan)
    sums = np.nansum(matrix, axis=0)
    return np.where(np.isnan(matrix).all(axis=0), np.nan, sums)


@dataclass(frozen=True)
class ProcessSeries:
    """The processes of one scope. Matrices are (processes x ticks); cpu in percent of one core, memory in MB,
    io in MB/s (rates from the cumulative counters; NaN across a counter reset)."""

    scope: str
    ticks_s: np.ndarray
    pids: list[int]
    labels: list[str]
    cpu_percent: np.ndarray
    rss_mb: np.ndarray
    threads: np.ndarray
    read_mb_s: np.ndarray
    write_mb_s: np.ndarray
    workers: int

    def cpu_total(self) -> np.ndarray:
        return total(self.cpu_percent)

    def rss_total_mb(self) -> np.ndarray:
        return total(self.rss_mb)


@dataclass(frozen=True)
class HostSeries:
    """The machine: cpu_percent of all cores (0..100), memory used and total in MB."""

    ticks_s: np.ndarray
    cpu_percent: np.ndarray
    mem_used_mb: np.ndarray
    mem_total_mb: float | None
    source: str
    cores: int | None = None  # logical CPUs, from the per-core list of host.arrows (None when unknown)


@dataclass(frozen=True)
class GpuSeries:
    """One GPU: utilisation percent, memory used in MB."""

    index: int
    name: str
    ticks_s: np.ndarray
    util_percent: np.ndarray
    mem_used_mb: np.ndarray
    mem_total_mb: float | None


def _column(table: pa.Table, name: str) -> np.ndarray:
    """A numeric column as float64 with NaN for nulls (or all NaN when the column is absent)."""
    if name not in table.column_names:
        return np.full(table.num_rows, np.nan)
    return table.column(name).cast(pa.float64()).to_numpy()


@dataclass(frozen=True)
class _Pivot:
    """Columns of one scope's rows as (processes x ticks) matrices, NaN where a process has no row."""

    part: pa.Table
    p_index: np.ndarray
    t_index: np.ndarray
    shape: tuple[int, int]

    def __call__(self, name: str, scale: float = 1.0) -> np.ndarray:
        matrix = np.full(self.shape, np.nan)
        matrix[self.p_index, self.t_index] = _column(self.part, name) / scale
        return matrix


def _rate_mb_s(counter: np.ndarray, ticks_s: np.ndarray) -> np.ndarray:
    """Per-tick rates (MB/s) of cumulative byte counters; NaN at the first sample, gaps and counter resets."""
    rates = np.full(counter.shape, np.nan)
    if counter.shape[1] > 1:
        dt = np.diff(ticks_s)
        delta = np.diff(counter, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            rates[:, 1:] = np.where((delta >= 0) & (dt > 0), delta / dt / MB, np.nan)
    return rates


def scopes(samples: pa.Table, t0_s: float) -> dict[str, ProcessSeries]:
    """One ProcessSeries per process scope in ``samples`` (the host rows are left to ``host_series``)."""
    scope_col = samples.column("scope").to_pylist()
    scope_arr = np.array([s or "" for s in scope_col], dtype=object)
    result = {}
    for scope in sorted(set(scope_arr) - {"host", ""}):
        part = samples.filter(pa.array(scope_arr == scope))
        pid = _column(part, "pid")
        keep = ~np.isnan(pid)
        part, pid = part.filter(pa.array(keep)), pid[keep].astype(np.int64)
        ticks, t_index = np.unique(_column(part, "ts_s"), return_inverse=True)
        pids, p_index = np.unique(pid, return_inverse=True)
        shape = (pids.size, ticks.size)
        names = part.column("name").to_pylist() if "name" in part.column_names else [None] * part.num_rows
        last = np.zeros(pids.size, dtype=np.int64)
        last[p_index] = np.arange(p_index.size)  # each process's latest row names it
        labels = [f"{names[last[p]] or scope} {pids[p]}" for p in range(pids.size)]
        parents = _column(part, "ppid")[last]

        matrix = _Pivot(part, p_index, t_index, shape)
        rss = matrix("rss_bytes", MB)
        supervisors = np.isin(pids, parents[~np.isnan(parents)])  # e.g. uvicorn's parent of its --workers
        present = ~np.isnan(rss[~supervisors]) if pids.size else np.zeros((0, ticks.size), bool)
        workers = int(present.sum(axis=0).max()) if present.size else 0
        result[scope] = ProcessSeries(
            scope=scope, ticks_s=ticks - t0_s, pids=[int(p) for p in pids], labels=labels,
            cpu_percent=matrix("cpu_percent"), rss_mb=rss, threads=matrix("threads"),
            read_mb_s=_rate_mb_s(matrix("read_bytes"), ticks), write_mb_s=_rate_mb_s(matrix("write_bytes"), ticks),
            workers=workers,
        )  # fmt: skip
    return result


def host_series(host: pa.Table | None, samples: pa.Table | None, t0_s: float, cores: int | None) -> HostSeries | None:
    """The host from host.arrows, else from the sampler's host rows (cpu_percent / cores, rss_bytes = used)."""
    if host is not None and host.num_rows:
        total_mb = _column(host, "mem_total_bytes")
        return HostSeries(
            ticks_s=_column(host, "ts_s") - t0_s, cpu_percent=_column(host, "cpu_percent"),
            mem_used_mb=_column(host, "mem_used_bytes") / MB,
            mem_total_mb=float(np.nanmax(total_mb)) / MB if np.isfinite(total_mb).any() else None,
            source="host.arrows", cores=_cores(host),
        )  # fmt: skip
    if samples is None:
        return None
    rows = samples.filter(pc.equal(samples.column("scope"), "host"))
    if rows.num_rows == 0 or not cores:
        return None
    return HostSeries(
        ticks_s=_column(rows, "ts_s") - t0_s, cpu_percent=_column(rows, "cpu_percent") / cores,
        mem_used_mb=_column(rows, "rss_bytes") / MB, mem_total_mb=None, source="samples.arrows (host rows)",
    )  # fmt: skip


def _cores(host: pa.Table) -> int | None:
    if "cpu_per_core" not in host.column_names:
        return None
    lengths = pc.list_value_length(host.column("cpu_per_core")).to_numpy(zero_copy_only=False)
    lengths = lengths[np.isfinite(lengths.astype(float))] if lengths.size else lengths
    return int(np.max(lengths)) if lengths.size and np.max(lengths) > 0 else None


def gpu_series(gpu: pa.Table | None, t0_s: float) -> list[GpuSeries]:
    """One GpuSeries per device index in gpu.arrows (empty when absent)."""
    if gpu is None or gpu.num_rows == 0:
        return []
    index = _column(gpu, "index")
    names = gpu.column("name").to_pylist() if "name" in gpu.column_names else [None] * gpu.num_rows
    series = []
    for i in np.unique(index[~np.isnan(index)]):
        rows = np.flatnonzero(index == i)
        part = gpu.take(pa.array(rows))
        total_mb = _column(part, "mem_total_bytes")
        series.append(
            GpuSeries(
                index=int(i), name=str(names[rows[0]] or f"GPU {int(i)}"), ticks_s=_column(part, "ts_s") - t0_s,
                util_percent=_column(part, "util_percent"), mem_used_mb=_column(part, "mem_used_bytes") / MB,
                mem_total_mb=float(np.nanmax(total_mb)) / MB if np.isfinite(total_mb).any() else None,
            )
        )  # fmt: skip
    return series


def bucket_mean(ticks_s: np.ndarray, values: np.ndarray, bucket_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``values`` (1-D, or 2-D with ticks on the last axis) per ``bucket_s`` bucket, NaN ignored; returns
    (bucket centers, means). Used to thin sampler series to the chart's bucket when it ticked faster."""
    bucket = np.floor(ticks_s / bucket_s).astype(np.int64)
    first = int(bucket.min()) if bucket.size else 0
    bucket -= first
    nb = int(bucket.max()) + 1 if bucket.size else 0
    centers = (first + np.arange(nb) + 0.5) * bucket_s
    rows = np.atleast_2d(values)
    means = np.full((rows.shape[0], nb), np.nan)
    for r, row in enumerate(rows):
        finite = np.isfinite(row)
        counts = np.bincount(bucket[finite], minlength=nb)
        sums = np.bincount(bucket[finite], weights=row[finite], minlength=nb)
        with np.errstate(invalid="ignore", divide="ignore"):
            means[r] = np.where(counts > 0, sums / counts, np.nan)
    return centers, (means if values.ndim == 2 else means[0])


def linear_trend(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares line through (x, y): (slope, intercept, R²); R² is 0 when y does not vary.
    Needs at least two distinct x."""
    slope, intercept = np.polyfit(x, y, 1)
    variance = float(np.var(y))
    r2 = 1.0 - float(np.var(y - (slope * x + intercept))) / variance if variance > 0 else 0.0
    return float(slope), float(intercept), r2
