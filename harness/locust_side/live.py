"""The harness's view of a run while it goes on, read from its run directory: the latest sampler tick (service,
generator and sampler processes, the host, the GPU), the thresholds' current status and the findings so far.

Every figure comes from the run directory's files as they are being written (the sampler's samples.arrows and
gpu.arrows, the request log), so what the web UI shows is what the report will show. Thresholds are judged on
the requests so far over the time elapsed; findings are harness.report.rundata.analysis's rules on the run so far. Both
cost time proportional to the run, so they are recomputed at most every ``REFRESH_S`` seconds (longer when a
computation took long: 20 times its cost).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from harness.recording.recorder import read_stream
from harness.verdict.thresholds import Threshold, evaluate

__all__ = ["LiveView", "agents_now", "gpu_now", "processes_now", "prometheus_now"]

logger = logging.getLogger("featureload")
REFRESH_S = 5.0
MB = 2**20


def _latest(path: Path) -> pa.Table | None:
    """The rows of the newest tick in an Arrow stream written by the sampler (None if nothing yet)."""
    if not path.exists():
        return None
    try:
        table = read_stream(path)
    except (ValueError, OSError):
        return None
    if table.num_rows == 0:
        return None
    newest = pc.max(table.column("ts_s")).as_py()
    return table.filter(pc.equal(table.column("ts_s"), newest))


def processes_now(run_dir: Path) -> list[dict[str, Any]]:
    """One row per sampled process at the sampler's newest tick: scope, pid, name, cmdline, cpu_percent (% of one
    core; None on a process's first sample), rss_mb, threads, ts_s; then the host (host.arrows: cpu_percent busy
    0-100 % of the machine, rss_mb = memory used). Empty before the sampler's first chunk."""
    latest = _latest(run_dir / "samples.arrows")
    if latest is None:
        return []
    rows = []
    for row in latest.to_pylist():
        rss = row.get("rss_bytes")
        rows.append({
            "scope": row["scope"], "pid": row.get("pid"), "name": row.get("name") or "",
            "cmdline": row.get("cmdline") or "", "cpu_percent": row.get("cpu_percent"),
            "rss_mb": None if rss is None else rss / MB, "threads": row.get("threads"), "ts_s": row["ts_s"],
        })  # fmt: skip
    rows = [r for r in rows if r["scope"] != "host"]
    host = _latest(run_dir / "host.arrows")
    if host is not None:  # the machine: CPU busy 0-100 % of all its cores, memory used
        h = host.to_pylist()[-1]
        rows.append({"scope": "host", "pid": None, "name": "host", "cmdline": "", "cpu_percent": h["cpu_percent"],
                     "rss_mb": (h["mem_used_bytes"] or 0) / MB, "threads": None, "ts_s": h["ts_s"]})  # fmt: skip
    order = {"service": 0, "generator": 1, "sampler": 2, "host": 3}
    return sorted(rows, key=lambda r: (order.get(r["scope"], 4), r["pid"] or 0))


def agents_now(run_dir: Path) -> list[dict[str, Any]]:
    """Each agent streaming into this run, by name, as the hub sees it (agents.json): clock_offset_ms,
    clock_uncertainty_ms, rows, lost_since (epoch s of an open lost window, else None), and its newest tick's
    ``processes`` (as ``processes_now``, the host last; times on the agent's clock until the run ends). Empty
    without --agents-bind."""
    try:
        agents = json.loads((run_dir / "agents.json").read_text(encoding="utf-8")).get("agents") or []
    except (OSError, ValueError):
        return []
    samples, hosts = _read(run_dir / "agent_samples.arrows"), _read(run_dir / "agent_host.arrows")
    out = []
    for agent in sorted(agents, key=lambda a: str(a.get("name"))):
        name = agent.get("name")
        rows = []
        for row in _newest_of(samples, name):
            rss = row.get("rss_bytes")
            if row["scope"] != "host":
                rows.append({"scope": row["scope"], "pid": row.get("pid"), "name": row.get("name") or "",
                             "cmdline": row.get("cmdline") or "", "cpu_percent": row.get("cpu_percent"),
                             "rss_mb": None if rss is None else rss / MB, "threads": row.get("threads")})  # fmt: skip
        for h in _newest_of(hosts, name)[-1:]:
            rows.append({"scope": "host", "pid": None, "name": "host", "cmdline": "", "cpu_percent": h["cpu_percent"],
                         "rss_mb": (h["mem_used_bytes"] or 0) / MB, "threads": None})  # fmt: skip
        lost = agent.get("lost") or []
        out.append({
            "name": name, "clock_offset_ms": agent.get("clock_offset_ms"),
            "clock_uncertainty_ms": agent.get("clock_uncertainty_ms"), "rows": agent.get("rows"),
            "lost_since": lost[-1].get("from_s") if lost and lost[-1].get("to_s") is None else None,
            "processes": rows,
        })  # fmt: skip
    return out


def _read(path: Path) -> pa.Table | None:
    try:
        return read_stream(path) if path.exists() else None
    except (ValueError, OSError):
        return None


def _newest_of(table: pa.Table | None, host: Any) -> list[dict[str, Any]]:
    """The rows of ``host``'s newest tick in ``table`` (an agent_*.arrows file)."""
    if table is None or not isinstance(host, str):
        return []
    mine = table.filter(pc.equal(table.column("host"), host))
    if mine.num_rows == 0:
        return []
    return mine.filter(pc.equal(mine.column("ts_s"), pc.max(mine.column("ts_s")))).to_pylist()


def gpu_now(run_dir: Path) -> list[dict[str, Any]] | str:
    """The GPUs at the sampler's newest tick (index, name, util_percent, mem_used_mb, mem_total_mb), or why
    there is none (sampler.json's reason)."""
    latest = _latest(run_dir / "gpu.arrows")
    if latest is not None:
        return [{"index": r["index"], "name": r["name"], "util_percent": r["util_percent"],
                 "mem_used_mb": (r["mem_used_bytes"] or 0) / MB, "mem_total_mb": (r["mem_total_bytes"] or 0) / MB}
                for r in latest.to_pylist()]  # fmt: skip
    try:
        info = json.loads((run_dir / "sampler.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "no sampler data yet"
    gpu = info.get("gpu") or {}
    return f"none recorded: {gpu.get('reason') or 'no GPU found'}"


def prometheus_now(run_dir: Path, max_series: int = 3) -> list[dict[str, Any]]:
    """Per query of prometheus.arrows (--prometheus; refreshed every few seconds of a web UI run): its name, the
    time of its newest step (ts_s), and the values of up to ``max_series`` series there ({labels: value}), with
    how many series it has. Empty before the first pull."""
    path = run_dir / "prometheus.arrows"
    if not path.exists():
        return []
    try:
        table = read_stream(path)
    except (ValueError, OSError):
        return []
    newest: dict[str, dict[str, Any]] = {}
    for row in table.to_pylist():  # a web UI run's window: at most a few thousand rows per query
        name, labels = row["name"], row["labels"]
        entry = newest.setdefault(name, {"name": name, "ts_s": row["ts_s"], "values": {}, "series": set()})
        entry["series"].add(labels)
        if row["ts_s"] > entry["ts_s"]:
            entry["ts_s"], entry["values"] = row["ts_s"], {}
        if row["ts_s"] == entry["ts_s"]:  # NaN (a quantile of no requests) as None: /harness/status is JSON
            entry["values"][labels] = row["value"] if row["value"] == row["value"] else None
    result = []
    for entry in newest.values():
        shown = dict(sorted(entry["values"].items())[:max_series])
        result.append({"name": entry["name"], "ts_s": entry["ts_s"], "values": shown, "series": len(entry["series"])})
    return result


class LiveView:
    """Thresholds and findings of one live run directory, recomputed at most every REFRESH_S seconds."""

    def __init__(self, run_dir: Path, thresholds: list[Threshold], started_s: float) -> None:
        self.run_dir = run_dir
        self.thresholds = thresholds
        self.started_s = started_s
        self._next_s = 0.0
        self._thresholds: list[dict[str, Any]] = []
        self._findings: list[dict[str, Any]] = []

    def status(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(thresholds: [{threshold, status, measured, detail}], findings: [{severity, title, message}])."""
        now = time.monotonic()
        if now >= self._next_s:
            began = time.perf_counter()
            if self._refresh():  # else (no request log chunk yet) try again at the next call
                self._next_s = now + max(REFRESH_S, 20 * (time.perf_counter() - began))
        return self._thresholds, self._findings

    def _refresh(self) -> bool:
        """Recompute; False when the request log holds no complete chunk yet (nothing was computed)."""
        try:
            requests = read_stream(self.run_dir / "requests.arrows")
        except (ValueError, OSError):
            requests = None
        if requests is None or requests.num_rows == 0:
            self._thresholds = [{"threshold": t.text, "status": "waiting", "detail": "no request yet"}
                                for t in self.thresholds]  # fmt: skip
            return False
        if self.thresholds:
            samples_path = self.run_dir / "samples.arrows"
            try:
                samples = read_stream(samples_path) if samples_path.exists() else None
            except ValueError:
                samples = None
            duration_s = max(time.time() - self.started_s, 1e-3)
            verdict = evaluate(self.thresholds, requests, duration_s, samples, start_s=self.started_s)
            self._thresholds = [{"threshold": r["threshold"], "status": r["status"], "detail": r.get("detail")}
                                for r in verdict.to_dict()["results"]]  # fmt: skip
        try:
            from harness.report.rundata.analysis import analyze
            from harness.report.rundata.load import load_run
            from harness.report.rundata.view import build_view

            findings = analyze(build_view(load_run(self.run_dir)))
        except Exception as error:  # a half-written file: the next refresh will do
            logger.debug("live findings not computed: %s", error)
            return True
        self._findings = [{"severity": f.severity, "title": f.title, "message": f.message} for f in findings]
        return True
