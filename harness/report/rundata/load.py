"""Reading a run directory for the report: every file is optional except that one of the run's own must be there.

A file that is absent is recorded as absent (the report says "not recorded"); a file that is present but cannot be
read is recorded in ``RunData.problems`` with the reason, and treated as absent. Nothing here computes figures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from harness.recording._columns import LOCAL_HOST
from harness.recording.recorder import read_stream

__all__ = ["LOCAL_HOST", "RUN_MARKERS", "AgentTables", "NotARunDirectoryError", "RunData", "load_run"]

# A directory holding none of these is not a run directory.
RUN_MARKERS = ("metadata.json", "requests.arrows", "locust_stats.csv")
_REQUEST_COLUMNS = ("ts_s", "request_type", "name", "latency_ms", "ok")
_SAMPLE_COLUMNS = ("ts_s", "scope", "pid", "cpu_percent", "rss_bytes")


@dataclass
class AgentTables:
    """One other host's rows (its name in their ``host`` column, already on the master's clock) and what
    metadata.json says of it: its ``agents`` entry (``kind`` "agent"), or for a Locust worker's host its
    ``worker_hosts`` entry (``kind`` "Locust worker host")."""

    name: str
    agent: dict[str, Any] = field(default_factory=dict)
    samples: pa.Table | None = None
    host: pa.Table | None = None
    gpu: pa.Table | None = None


class NotARunDirectoryError(ValueError):
    """The path is missing, not a directory, or holds none of ``RUN_MARKERS``."""


@dataclass
class RunData:
    """The files of one run directory, as read; None where a file is absent or unreadable."""

    path: Path
    metadata: dict[str, Any] | None = None
    requests: pa.Table | None = None
    users: pd.DataFrame | None = None  # locust_stats_history.csv, Aggregated rows: ts_s, users, rps, failures_s
    locust_stats: pd.DataFrame | None = None
    locust_failures: pd.DataFrame | None = None
    locust_exceptions: pd.DataFrame | None = None  # Count, Message, Traceback, Nodes
    thresholds: dict[str, Any] | None = None
    samples: pa.Table | None = None
    host: pa.Table | None = None
    gpu: pa.Table | None = None
    prometheus: pa.Table | None = None  # --prometheus: ts_s, name, labels, value (harness.recording.prometheus)
    sampler: dict[str, Any] | None = None
    cache_stats: dict[str, Any] | list[Any] | None = None
    agents: dict[str, AgentTables] = field(default_factory=dict)  # other hosts; samples/host/gpu keep local rows
    problems: list[str] = field(default_factory=list)

    def started_s(self) -> float | None:
        """The run's start as epoch seconds, from metadata.json's started_at; None when unknown."""
        return _epoch((self.metadata or {}).get("started_at"))

    def duration_s(self) -> float | None:
        """The run's measured duration in seconds from metadata.json; None when unknown."""
        value = (self.metadata or {}).get("duration_s")
        return float(value) if isinstance(value, int | float) and value > 0 else None

    def logical_cores(self) -> int | None:
        """Logical CPUs of the machine that ran the test: metadata.json's environment, else sampler.json."""
        value = ((self.metadata or {}).get("environment") or {}).get("cpu_count_logical")
        if not isinstance(value, int):
            value = (self.sampler or {}).get("logical_cores")
        return int(value) if isinstance(value, int) and value > 0 else None


def _epoch(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def load_run(path: Path) -> RunData:
    """Read every known file of the run directory ``path``.

    Raises NotARunDirectoryError when ``path`` does not exist, is not a directory, or holds none of RUN_MARKERS.
    """
    path = Path(path)
    if not path.is_dir():
        problem = "does not exist" if not path.exists() else "is not a directory"
        raise NotARunDirectoryError(f"{str(path)!r} {problem}: give the run directory (e.g. runs/<stamp>-<scenario>)")
    if not any((path / marker).is_file() for marker in RUN_MARKERS):
        raise NotARunDirectoryError(
            f"{str(path)!r} is not a run directory: it holds none of {', '.join(RUN_MARKERS)} "
            "(a run directory is what a harness run writes under runs/, e.g. runs/20250101-120000-concurrent_users)"
        )
    run = RunData(path=path)
    run.metadata = _json(run, "metadata.json", dict)
    run.thresholds = _json(run, "thresholds.json", dict)
    run.sampler = _json(run, "sampler.json", dict)
    run.cache_stats = _json(run, "cache_stats.json", (dict, list))
    run.requests = _arrow(run, "requests.arrows", _REQUEST_COLUMNS)
    run.samples = _arrow(run, "samples.arrows", _SAMPLE_COLUMNS)
    run.host = _arrow(run, "host.arrows", ("ts_s", "cpu_percent", "mem_used_bytes"))
    run.gpu = _arrow(run, "gpu.arrows", ("ts_s", "index", "util_percent", "mem_used_bytes"))
    run.prometheus = _arrow(run, "prometheus.arrows", ("ts_s", "name", "labels", "value"))
    _split_agents(run)
    run.users = _users(run)
    run.locust_stats = _csv(run, "locust_stats.csv", ("Type", "Name", "Request Count", "Failure Count"))
    run.locust_failures = _csv(run, "locust_failures.csv", ("Method", "Name", "Error", "Occurrences"))
    run.locust_exceptions = _csv(run, "locust_exceptions.csv", ("Count", "Message", "Traceback"))
    return run


def _split_agents(run: RunData) -> None:
    """Move the agents' rows out of samples/host/gpu into ``run.agents`` (one per host name); rows without a host
    column (files from before agents) or with "local" stay where they are."""
    for entry in (run.metadata or {}).get("agents") or []:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            run.agents[entry["name"]] = AgentTables(entry["name"], {**entry, "kind": "agent"})
    workers = (run.metadata or {}).get("worker_hosts") or {}  # Locust workers on other hosts (their clocks)
    for kind in ("samples", "host", "gpu"):
        table = getattr(run, kind)
        if table is None or "host" not in table.column_names:
            continue
        hosts = table.column("host")
        names = {h for h in pc.unique(hosts).to_pylist() if h not in (None, LOCAL_HOST)}
        if not names:
            continue
        for name in sorted(names):
            worker = workers.get(name) if isinstance(workers, dict) else None
            meta = {"name": name, "kind": "Locust worker host", **(worker if isinstance(worker, dict) else {})}
            agent = run.agents.setdefault(name, AgentTables(name, meta))
            setattr(agent, kind, table.filter(pc.fill_null(pc.equal(hosts, name), False)))
        setattr(run, kind, table.filter(pc.fill_null(pc.equal(hosts, LOCAL_HOST), True)))


def _json(run: RunData, name: str, kind: type | tuple[type, ...]) -> Any:
    file = run.path / name
    if not file.is_file():
        return None
    try:
        content = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        run.problems.append(f"{name} could not be read: {error}")
        return None
    if not isinstance(content, kind):
        run.problems.append(f"{name} holds a {type(content).__name__}, expected a JSON object")
        return None
    return content


def _arrow(run: RunData, name: str, required: tuple[str, ...]) -> pa.Table | None:
    file = run.path / name
    if not file.is_file():
        return None
    try:
        table = read_stream(file)
    except (OSError, ValueError, pa.ArrowException):
        try:  # the random-access file format, in case a writer chose it
            with pa.memory_map(str(file)) as source:
                table = pa.ipc.open_file(source).read_all()
        except (OSError, ValueError, pa.ArrowException) as error:
            run.problems.append(f"{name} is not an Arrow IPC stream or file: {error}")
            return None
    if missing := [c for c in required if c not in table.column_names]:
        run.problems.append(f"{name} lacks columns {missing} (it has {table.column_names}); ignored")
        return None
    return table


def _csv(run: RunData, name: str, required: tuple[str, ...]) -> pd.DataFrame | None:
    file = run.path / name
    if not file.is_file():
        return None
    try:
        frame = pd.read_csv(file, keep_default_na=False, na_values=["N/A", ""])
    except (OSError, ValueError, pd.errors.ParserError) as error:
        run.problems.append(f"{name} could not be read: {error}")
        return None
    if missing := [c for c in required if c not in frame.columns]:
        run.problems.append(f"{name} lacks columns {missing}; ignored")
        return None
    return frame


def _users(run: RunData) -> pd.DataFrame | None:
    """The Aggregated rows of locust_stats_history.csv: ts_s, users, rps, failures_s (one row per second)."""
    file = run.path / "locust_stats_history.csv"
    if not file.is_file():
        return None
    columns = ["Timestamp", "User Count", "Name", "Requests/s", "Failures/s"]
    try:
        frame = pd.read_csv(file, usecols=columns, keep_default_na=False, na_values=["N/A", ""])
    except (OSError, ValueError, pd.errors.ParserError) as error:
        run.problems.append(f"locust_stats_history.csv could not be read: {error}")
        return None
    frame = frame[frame["Name"] == "Aggregated"]
    return pd.DataFrame(
        {
            "ts_s": frame["Timestamp"].to_numpy(dtype=float),
            "users": frame["User Count"].to_numpy(dtype=float),
            "rps": pd.to_numeric(frame["Requests/s"], errors="coerce").to_numpy(dtype=float),
            "failures_s": pd.to_numeric(frame["Failures/s"], errors="coerce").to_numpy(dtype=float),
        }
    )
