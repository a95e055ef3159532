"""One run seen on one time axis: the files of a run directory plus the derived series the report and the
analysis share (computed once). Times are seconds since the run start ``t0_s`` (epoch seconds)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from harness.report.rundata.hdr_requests import hdr_bucket_series, log_completeness
from harness.report.rundata.load import AgentTables, RunData, load_run
from harness.report.rundata.prometheus import PromSeries, prometheus_series
from harness.report.rundata.requests import BucketSeries, RequestIndex
from harness.report.rundata.resources import GpuSeries, HostSeries, ProcessSeries, gpu_series, host_series, scopes

__all__ = [
    "MAX_POINTS", "NICE_BUCKETS_S", "AgentView", "RunView", "bucket_range", "build_view", "choose_bucket_s",
    "load_view",
]  # fmt: skip

# At most this many points per chart trace: the bucket grows (1 s, 2 s, 5 s, ...) until the run fits.
MAX_POINTS = 2_000
NICE_BUCKETS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)


def choose_bucket_s(span_s: float, max_points: int = MAX_POINTS) -> float:
    """The smallest of NICE_BUCKETS_S that splits ``span_s`` seconds into at most ``max_points`` buckets."""
    for bucket in NICE_BUCKETS_S:
        if span_s / bucket <= max_points:
            return float(bucket)
    return float(math.ceil(span_s / max_points))


@dataclass(frozen=True)
class AgentView:
    """One agent's host on the run's time axis: every process scope it sampled, its host, its GPUs, and its entry
    in metadata.json's ``agents`` (clock offset, lost windows)."""

    name: str
    agent: dict[str, Any]
    processes: dict[str, ProcessSeries]
    host: HostSeries | None
    gpus: list[GpuSeries]

    @property
    def logical_cores(self) -> int | None:
        """The agent host's logical CPUs: the length of its host rows' per-core list (None when unknown)."""
        return self.host.cores if self.host is not None else None


@dataclass
class RunView:
    """A run directory's data on one time axis: [``start_s``, ``end_s``] around the run [0, ``duration_s``]."""

    run: RunData
    t0_s: float
    duration_s: float
    start_s: float
    end_s: float
    bucket_s: float
    requests: RequestIndex | None
    processes: dict[str, ProcessSeries] = field(default_factory=dict)
    host: HostSeries | None = None
    gpus: list[GpuSeries] = field(default_factory=list)
    prometheus: dict[str, list[PromSeries]] = field(default_factory=dict)  # by query name (prometheus.arrows)
    agents: dict[str, AgentView] = field(default_factory=dict)  # other hosts, by name (sorted)

    @property
    def logical_cores(self) -> int | None:
        return self.run.logical_cores()

    @property
    def service(self) -> ProcessSeries | None:
        return self.processes.get("service")

    @property
    def generator(self) -> ProcessSeries | None:
        return self.processes.get("generator")

    @property
    def service_capacity_cores(self) -> int | None:
        """Cores the service can use: the logical cores, or its worker processes if fewer (a process runs
        Python on one core at a time); None when neither is known."""
        workers = self.service.workers if self.service is not None and self.service.workers else None
        cores = self.logical_cores
        if workers and cores:
            return min(workers, cores)
        return workers or cores

    def gpu_note(self) -> str:
        """Why no GPU is shown: 'no GPU recorded: <the sampler's reason>'."""
        sampler = self.run.sampler
        if sampler is None:
            return "no GPU recorded: sampler.json not recorded"
        gpu = sampler.get("gpu") or {}
        reason = gpu.get("reason") or f"backend {gpu.get('backend', 'none')}, {gpu.get('devices', 0)} device(s)"
        return f"no GPU recorded: {reason}"

    @cached_property
    def endpoint_stats(self) -> list[dict[str, Any]]:
        """Per-endpoint request statistics, the Aggregated row last (computed once); [] without requests.arrows."""
        return self.requests.endpoint_stats(self.duration_s) if self.requests is not None else []

    @cached_property
    def buckets(self) -> BucketSeries | None:
        """Per-bucket request figures (computed once): from the request log when it holds every request, else
        from the HDR histograms, which count every request (a sampled log would chart the sample's throughput)."""
        if not log_completeness(self.run.metadata)["complete"]:
            first, count = bucket_range(self.start_s, self.end_s, self.bucket_s)
            endpoints = self.requests.endpoint_parts if self.requests is not None else []
            series = hdr_bucket_series(self.run.path, self.t0_s, self.bucket_s, first, count, endpoints)
            if series is not None:
                return series
        return self.requests.bucket_series() if self.requests is not None else None

    def in_run(self, ticks_s: np.ndarray) -> np.ndarray:
        """A mask of the times inside the run [0, duration_s] (sampler ticks before the start are left out)."""
        return (ticks_s >= 0.0) & (ticks_s <= self.duration_s)

    def rss_in_run(self, series: ProcessSeries) -> tuple[np.ndarray, np.ndarray]:
        """(ticks in s, total RSS in MB) of ``series`` inside the run, where the RSS was measured."""
        rss = series.rss_total_mb()
        keep = self.in_run(series.ticks_s) & np.isfinite(rss)
        return series.ticks_s[keep], rss[keep]


def bucket_range(start_s: float, end_s: float, bucket_s: float) -> tuple[int, int]:
    """(index of the first chart bucket, number of buckets) covering [start_s, end_s]: the request log's and the
    histograms' series share it, so their buckets line up."""
    first = math.floor(start_s / bucket_s)
    return first, math.floor(end_s / bucket_s) - first + 1


def _first_last(values: list[np.ndarray]) -> tuple[float, float] | None:
    finite = [v[np.isfinite(v)] for v in values if v.size]
    finite = [v for v in finite if v.size]
    if not finite:
        return None
    return min(float(v.min()) for v in finite), max(float(v.max()) for v in finite)


def build_view(run: RunData) -> RunView:
    """Derive the shared series of ``run``: the run start and duration (metadata.json, else the request log's
    span, else the sampler's), the chart bucket, the request index, the sampler series."""
    request_ts = []
    if run.requests is not None and run.requests.num_rows:
        request_ts.append(run.requests.column("ts_s").to_numpy())
    epoch_columns = list(request_ts)
    agent_tables = [t for a in run.agents.values() for t in (a.samples, a.host, a.gpu)]
    for table in (run.samples, run.host, run.gpu, *agent_tables):
        if table is not None and table.num_rows:
            epoch_columns.append(table.column("ts_s").cast("float64").to_numpy())
    if run.users is not None and len(run.users):
        epoch_columns.append(run.users["ts_s"].to_numpy())
    data_span = _first_last(epoch_columns)
    # without metadata.json the run is the request log's span (the sampler starts before and ends after it)
    run_span = _first_last(request_ts) or data_span
    t0_s = run.started_s()
    if t0_s is None:
        t0_s = run_span[0] if run_span else 0.0
    duration_s = run.duration_s()
    if duration_s is None:
        duration_s = max((run_span[1] - t0_s) if run_span else 0.0, 1e-3)
    start_s, end_s = 0.0, duration_s
    if data_span:
        start_s, end_s = min(start_s, data_span[0] - t0_s), max(end_s, data_span[1] - t0_s)
    bucket_s = choose_bucket_s(end_s - start_s)
    requests = None
    if run.requests is not None:
        requests = RequestIndex(run.requests, t0_s, bucket_s, *bucket_range(start_s, end_s, bucket_s))
    return RunView(
        run=run, t0_s=t0_s, duration_s=duration_s, start_s=start_s, end_s=end_s, bucket_s=bucket_s,
        requests=requests, processes=scopes(run.samples, t0_s) if run.samples is not None else {},
        host=host_series(run.host, run.samples, t0_s, run.logical_cores()), gpus=gpu_series(run.gpu, t0_s),
        prometheus=prometheus_series(run.prometheus, t0_s),
        agents={name: _agent_view(run.agents[name], t0_s) for name in sorted(run.agents)},
    )  # fmt: skip


def _agent_view(tables: AgentTables, t0_s: float) -> AgentView:
    return AgentView(
        name=tables.name, agent=tables.agent,
        processes=scopes(tables.samples, t0_s) if tables.samples is not None else {},
        host=host_series(tables.host, None, t0_s, None), gpus=gpu_series(tables.gpu, t0_s),
    )  # fmt: skip


def load_view(path: Path) -> RunView:
    """``build_view(load_run(path))``; raises NotARunDirectoryError for a path that is not a run directory."""
    return build_view(load_run(path))
