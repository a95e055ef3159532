"""The run directory: ``runs/<timestamp>-<scenario>/``, the one contract between measuring and reporting.

Files (all written by ``harness.locust_side.run.RunContext``, one directory per run: a headless process makes one, a web
UI session one per Start ... Stop)::

    metadata.json          command line, profile, git commit, versions, CPU, memory, env, times, host, workers,
                           stop_reason, interrupted, exit_code, run_time_cap_s (-t capping a profile)
    requests.arrows        every request (Arrow IPC stream, see harness.recording.recorder.REQUEST_SCHEMA)
    locust_stats.csv, locust_stats_history.csv, locust_failures.csv, locust_exceptions.csv   Locust's CSVs
    locust_report.html     Locust's own HTML report
    thresholds.json        the thresholds verdict
    service.log            the embedded service's log (a web UI run: its part of it)
    samples.arrows, host.arrows, gpu.arrows, sampler.json   the sampler's time series (harness.sampling.sampler);
                           each row's ``host`` column: "local", or the name of the agent that sent it
    agents.json, hub.log   with --agents-bind: the hub's view of each agent (harness.sampling.hub); metadata.json's
                           ``agents`` repeats it (clock offset, rows, first/last seen, lost windows)
    cache_stats.json       the service's cache counters at the end of the run
    prometheus.arrows      --prometheus: the run's window of each query (harness.recording.prometheus.PROMETHEUS_SCHEMA)
    report.html, summary.json, summary.md                   the combined report (harness.report)

No secret is written (harness.recording.redact): every JSON file goes through the run's Redactor, the command line and
the environment are redacted by the rule (URL passwords, secret-named variables and flag values masked as ***).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import psutil

from harness.recording.redact import Redactor, redact_argv, redact_env

__all__ = ["RunDirectory", "collect_environment"]

PACKAGES = ("locust", "gevent", "fastapi", "uvicorn", "pandas", "pyarrow", "numpy", "psutil", "featureload")
ENV_PREFIXES = ("LOCUST_", "FEATURESTORE_", "FEATURELOAD_", "PROMETHEUS_")
TEMP_SUFFIX = ".tmp"


class RunDirectory:
    """Creates a fresh run directory and writes its JSON files atomically."""

    def __init__(
        self, root: Path, scenario: str, now: datetime | None = None, redactor: Redactor | None = None
    ) -> None:
        self.redactor = redactor or Redactor()
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
        root.mkdir(parents=True, exist_ok=True)
        path = root / f"{stamp}-{scenario}"
        suffix = 1
        while True:
            try:
                path.mkdir()
                break
            except FileExistsError:
                suffix += 1
                path = root / f"{stamp}-{scenario}-{suffix}"
        self.path = path

    def file(self, name: str) -> Path:
        """The path of ``name`` inside the run directory."""
        return self.path / name

    def write_json(self, name: str, content: Mapping[str, Any]) -> Path:
        """Write ``content``, redacted, as ``name`` (temp file, then rename: readers never see half a file)."""
        target = self.path / name
        temp = target.with_name(f".{name}{TEMP_SUFFIX}")
        text = json.dumps(self.redactor.value(json.loads(json.dumps(content, default=str))), indent=2)
        try:
            temp.write_text(text + "\n", encoding="utf-8")
            os.replace(temp, target)
        except OSError:  # the disk full: no half-written temporary file is left behind
            temp.unlink(missing_ok=True)
            raise
        return target

    def discard_temporary_files(self) -> None:
        """Remove what an interrupted ``write_json`` may have left (a run that could not be recorded)."""
        for temp in self.path.glob(f".*{TEMP_SUFFIX}"):
            temp.unlink(missing_ok=True)


def _git_commit(cwd: Path) -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(dirty)}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = package_metadata.version(name)
        except package_metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def collect_environment(environ: Mapping[str, str], cwd: Path, argv: list[str] | None = None) -> dict[str, Any]:
    """What a reader needs to trust or reproduce a run: versions, machine, git state, relevant env vars.

    The command line (``argv``, default sys.argv) and the variables are redacted (harness.recording.redact's rule).
    """
    memory = psutil.virtual_memory()
    relevant = {k: v for k, v in sorted(environ.items()) if k.startswith(ENV_PREFIXES)}
    return {
        "command_line": redact_argv(sys.argv if argv is None else argv),
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "packages": _versions(),
        "platform": platform.platform(),
        "cpu_model": _cpu_model(),
        "cpu_count_logical": psutil.cpu_count(logical=True),
        "cpu_count_physical": psutil.cpu_count(logical=False),
        "memory_total_bytes": memory.total,
        "hostname": platform.node(),
        "git": _git_commit(cwd),
        "env": redact_env(relevant),
        "collected_at": datetime.now(UTC).isoformat(),
    }
