"""Campaigns: one scenario run N times under recorded conditions, the unit a baseline and a comparison are made of.

``python -m harness campaign --repeat 10 --warmup 5 --name nightly -- -f locustfiles/concurrent_users.py -u 50
-r 10 -t 60s`` runs ``python -m locust <arguments> --headless --runs-dir <campaign>/runs`` N times, one after the
other, each a full run directory, and writes::

    campaigns/<stamp>-<name>/
        campaign.json          scenario, arguments, machine fingerprint, per-run conditions (quiet check, cores,
                               CPU frequency, injected faults), per-run exit code and wall time, overhead
        metrics.parquet        per run, endpoint and metric: value (harness.gate.metrics_table), warm-up excluded
        percentiles.parquet    per run and endpoint: the latency percentile curve
        resources.parquet      per run: service CPU and RSS, generator CPU over time
        campaign.md, campaign.html   the campaign report (harness.report.comparison)
        runs/<stamp>-<scenario>/     the run directories; logs/run-NN.log   each Locust process's output

Before each run the machine must be quiet (``harness.gate.conditions``); the service and the generator get separate
cores where there are two or more. A campaign whose service injects a fault (``--inject-delay-ms``, or
``FEATURESTORE_INJECT_DELAY_MS`` in the environment) records it and its report says so in a banner.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.gate.campaign_data import CURVES_SCHEMA, METRICS_SCHEMA, RESOURCES_SCHEMA, load_campaign
from harness.gate.conditions import CorePinner, QuietCheck, measure_busy, split_cores, wait_until_quiet
from harness.gate.fingerprint import cpu_frequency, machine_fingerprint
from harness.gate.metrics_table import (
    BadInputError,
    RunMetrics,
    extract_run_metrics,
    write_json,
    write_parquet,
)
from harness.target.faults import faults_from_metadata, fetch_service_faults

__all__ = ["Campaign", "CampaignConfig", "parse_scenario", "run_campaign"]

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_RUN_SLACK_S = 180.0  # beyond the run time: start-up, catalog load, report


@dataclass
class CampaignConfig:
    """What to run and how; ``locust_args`` are Locust's own arguments (after ``--`` on the command line)."""

    locust_args: list[str]
    repeat: int = 10
    warmup_s: float = 0.0
    name: str = "campaign"
    campaigns_dir: Path = Path("campaigns")
    quiet_cpu_percent: float = 25.0
    quiet_timeout_s: float = 30.0
    pin: bool = True
    inject_delay_ms: float | None = None
    inject_delay_route: str | None = None
    sample_interval_s: float = 0.25  # used unless the Locust arguments set --sample-interval


def _scenario_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("-f", "--locustfile")
    parser.add_argument("-u", "--users")
    parser.add_argument("-r", "--spawn-rate")
    parser.add_argument("-t", "--run-time")
    parser.add_argument("--profile")
    parser.add_argument("-H", "--host")
    parser.add_argument("--runs-dir")
    parser.add_argument("--sample-interval")
    parser.add_argument("--processes")
    return parser


def parse_scenario(locust_args: Sequence[str]) -> dict[str, Any]:
    """What makes two campaigns comparable, from their Locust arguments: the locustfile, users, spawn rate, run
    time, profile, processes and whether the service was embedded. Raises BadInputError for arguments a campaign
    cannot use (no locustfile, no run time or profile, its own ``--runs-dir``)."""
    known, _ = _scenario_parser().parse_known_args(list(locust_args))
    if not known.locustfile:
        raise BadInputError("the Locust arguments after -- need a locustfile: -f locustfiles/<scenario>.py")
    if known.runs_dir:
        raise BadInputError("leave --runs-dir out of the Locust arguments: the campaign puts runs in its own runs/")
    if not known.run_time and not known.profile:
        raise BadInputError("a campaign's runs must end by themselves: give -t/--run-time or a --profile")
    return {
        "locustfile": Path(known.locustfile).name,
        "users": known.users,
        "spawn_rate": known.spawn_rate,
        "run_time": known.run_time,
        "profile": known.profile,
        "processes": known.processes,
        "service": "embedded" if not known.host else "external",
        "host": known.host,
        "sample_interval": known.sample_interval,
    }


def _locust_argv(config: CampaignConfig, runs_dir: Path) -> list[str]:
    args = list(config.locust_args)
    if "--headless" not in args:
        args.append("--headless")
    if not any(a == "--sample-interval" or a.startswith("--sample-interval=") for a in args):
        args += ["--sample-interval", f"{config.sample_interval_s:g}"]
    return [sys.executable, "-m", "locust", *args, "--runs-dir", str(runs_dir)]


def _run_env(config: CampaignConfig, environ: Mapping[str, str]) -> dict[str, str]:
    env = dict(environ)
    if config.inject_delay_ms is not None:
        env["FEATURESTORE_INJECT_DELAY_MS"] = f"{config.inject_delay_ms:g}"
    if config.inject_delay_route is not None:
        env["FEATURESTORE_INJECT_DELAY_ROUTE"] = config.inject_delay_route
    return env


def _timeout_s(scenario: dict[str, Any]) -> float | None:
    text = str(scenario.get("run_time") or "")
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?", text)
    if not text or not match:
        return None  # a profile's own length: no bound
    hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds + _RUN_SLACK_S


def _execute(
    argv: list[str], env: dict[str, str], log_path: Path, pinner: CorePinner | None, timeout_s: float | None
) -> tuple[int, dict[str, Any] | None]:
    """Run one Locust process; returns (exit code, pinning record). Kills its process group on timeout or
    interruption."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    pinning = None
    try:
        if pinner is not None:
            pinner.start(process.pid)
        try:
            code = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            code = process.wait(timeout=30)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    finally:
        if pinner is not None:
            pinning = pinner.stop()
    return code, pinning


def _new_run_dir(runs_dir: Path, before: set[str]) -> Path | None:
    if not runs_dir.is_dir():
        return None
    # not the reports' shared _assets/ (harness.report.assets), which the first run creates
    fresh = sorted(p for p in runs_dir.iterdir() if p.is_dir() and p.name not in before and not p.name.startswith("_"))
    return fresh[-1] if fresh else None


def _stamp_dir(root: Path, name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    for suffix in ("", *(f"-{i}" for i in range(2, 100))):
        path = root / f"{stamp}-{name}{suffix}"
        with contextlib.suppress(FileExistsError):
            path.mkdir()
            return path
    raise BadInputError(f"cannot create a campaign directory under {root}")


class Campaign:
    """One campaign in progress: ``Campaign(config, environ, cwd)`` creates its directory, ``run_one()`` runs the
    next run, ``finish()`` writes the tables, campaign.json and the report. ``run_campaign`` runs them in a row;
    several campaigns can alternate their runs (A, B, A, B...) so that a drift of the machine hits every campaign
    alike (``tests/harness/gate/test_campaign.py`` does).

    Raises BadInputError for unusable arguments (constructor) and when fewer than two runs produced metrics
    (``finish``; the directory is kept, with every run's log).
    """

    def __init__(
        self,
        config: CampaignConfig,
        environ: Mapping[str, str],
        cwd: Path,
        out: Callable[[str], None] = print,
        measure: Callable[[], QuietCheck] | None = None,
    ) -> None:
        if not _NAME.match(config.name):
            raise BadInputError(f"campaign name {config.name!r} is invalid: use [A-Za-z0-9_.-], 1-64 characters")
        if config.repeat < 1 or config.warmup_s < 0:
            raise BadInputError(
                f"--repeat {config.repeat} --warmup {config.warmup_s:g}: need 1 run or more, warm-up >= 0"
            )
        started = time.monotonic()
        self.config = config
        self.scenario = parse_scenario(config.locust_args)
        self.out = out
        self.path = _stamp_dir(config.campaigns_dir, config.name)
        self.runs_dir, self.logs_dir = self.path / "runs", self.path / "logs"
        self.runs_dir.mkdir()
        self.logs_dir.mkdir()
        self.fingerprint = machine_fingerprint(environ, cwd)
        self.cores = split_cores() if config.pin else None
        self.env = _run_env(config, environ)
        self.argv = _locust_argv(config, self.runs_dir)
        self.probe = measure or (lambda: measure_busy(exclude={os.getpid()}))
        self.runs: list[dict[str, Any]] = []
        self.metrics_rows: list[dict[str, Any]] = []
        self.curve_rows: list[dict[str, Any]] = []
        self.resource_rows: list[dict[str, Any]] = []
        self.run_wall_s = self.quiet_wait_s = 0.0
        self.own_s = time.monotonic() - started  # the campaign's own work, whatever else runs between its runs
        out(f"campaign {self.path}: {config.repeat} runs of {' '.join(config.locust_args)}")

    @property
    def done(self) -> bool:
        return len(self.runs) >= self.config.repeat

    def run_one(self) -> dict[str, Any]:
        """Wait for a quiet machine, run the next Locust process, extract its metrics; returns its record."""
        config, index = self.config, len(self.runs) + 1
        quiet = wait_until_quiet(config.quiet_cpu_percent, config.quiet_timeout_s, self.probe)
        self.quiet_wait_s += quiet.waited_s
        started = time.monotonic()
        if not quiet.quiet:
            self.out(
                f"warning: the machine is busy before run {index} ({quiet.cpu_percent:.0f}% CPU after waiting "
                f"{quiet.waited_s:.0f} s; busiest: {quiet.busy_processes[:2]}); running anyway, recorded"
            )
        host = self.scenario["host"]
        faults_before = fetch_service_faults(host) if host else None
        before = {p.name for p in self.runs_dir.iterdir()}
        pinner = CorePinner(*self.cores) if self.cores else None
        log = self.logs_dir / f"run-{index:02d}.log"
        run_started = time.monotonic()
        code, pinning = _execute(self.argv, self.env, log, pinner, _timeout_s(self.scenario))
        wall = time.monotonic() - run_started
        self.run_wall_s += wall
        run_dir = _new_run_dir(self.runs_dir, before)
        record: dict[str, Any] = {
            "run": index,
            "run_dir": str(run_dir.relative_to(self.path)) if run_dir else None,
            "exit_code": code,
            "wall_s": round(wall, 3),
            "quiet": quiet.to_dict(),
            "cpu_frequency": cpu_frequency(),
            "cores": pinning or {"pinned": False, "reason": "fewer than 2 CPUs" if config.pin else "--no-pin"},
        }
        try:
            if run_dir is None:
                raise BadInputError(f"Locust exited with {code} and left no run directory (see {log})")
            metrics = extract_run_metrics(run_dir, config.warmup_s)
            metadata = json.loads((run_dir / "metadata.json").read_text(encoding="utf-8"))
            record["faults"] = faults_from_metadata(metadata) if faults_before is None else faults_before
            _collect(
                index, run_dir.relative_to(self.path), metrics, self.metrics_rows, self.curve_rows, self.resource_rows
            )
        except BadInputError as error:
            record["error"] = str(error)
            self.out(f"warning: run {index} gave no metrics: {error}")
        self.runs.append(record)
        self.own_s += time.monotonic() - started - wall
        per_run = (self.own_s + self.run_wall_s + self.quiet_wait_s) / index
        left = per_run * (config.repeat - index)
        self.out(
            f"run {index}/{config.repeat}: exit {code}, {wall:.1f} s" + (f", about {left:.0f} s left" if left else "")
        )
        return record

    def finish(self) -> Path:
        """Write metrics.parquet, percentiles.parquet, resources.parquet, campaign.json and the report."""
        started = time.monotonic()
        path, config = self.path, self.config
        good = [r for r in self.runs if "error" not in r]
        write_parquet(path / "metrics.parquet", self.metrics_rows, METRICS_SCHEMA)
        write_parquet(path / "percentiles.parquet", self.curve_rows, CURVES_SCHEMA)
        write_parquet(path / "resources.parquet", self.resource_rows, RESOURCES_SCHEMA)
        info = {
            "name": config.name,
            "created_at": datetime.now(UTC).isoformat(),
            "scenario": self.scenario,
            "locust_args": config.locust_args,
            "command": [*self.argv[:1], "-m", "locust", *self.argv[3:]],
            "repeat": config.repeat,
            "warmup_s": config.warmup_s,
            "fingerprint": self.fingerprint,
            "faults": next((r["faults"] for r in good if r.get("faults")), {}),
            "quiet_threshold_cpu_percent": config.quiet_cpu_percent,
            "runs": self.runs,
            "runs_with_metrics": len(good),
            "timing": _timing(self.own_s, self.run_wall_s, self.quiet_wait_s),
        }
        write_json(path / "campaign.json", info)
        from harness.report.comparison import write_campaign_report  # plotly only once the runs are done

        write_campaign_report(load_campaign(path))
        self.own_s += time.monotonic() - started
        info["timing"] = _timing(self.own_s, self.run_wall_s, self.quiet_wait_s)  # the report counts too
        write_json(path / "campaign.json", info)
        if len(good) < 2:
            raise BadInputError(f"only {len(good)} of {config.repeat} runs produced metrics; see {path}/logs")
        return path


def run_campaign(
    config: CampaignConfig,
    environ: Mapping[str, str],
    cwd: Path,
    out: Callable[[str], None] = print,
    measure: Callable[[], QuietCheck] | None = None,
) -> Path:
    """Run the campaign of ``config``, its runs one after the other; returns its directory (see ``Campaign``)."""
    campaign = Campaign(config, environ, cwd, out, measure)
    while not campaign.done:
        campaign.run_one()
    return campaign.finish()


def _timing(own_s: float, runs_s: float, quiet_wait_s: float) -> dict[str, Any]:
    """The campaign's cost beyond the Locust processes' wall time: its own work (fingerprint, pinning, extraction,
    report) and the wait for a quiet machine (which depends on the machine's other tenants), each absolute and as a
    ratio of the runs' time."""
    overhead = own_s + quiet_wait_s
    return {
        "total_s": round(own_s + quiet_wait_s + runs_s, 2),
        "runs_s": round(runs_s, 2),
        "quiet_wait_s": round(quiet_wait_s, 2),
        "overhead_s": round(overhead, 2),
        "overhead_ratio": round(overhead / runs_s, 4) if runs_s else None,
        "own_overhead_s": round(own_s, 2),
        "own_overhead_ratio": round(own_s / runs_s, 4) if runs_s else None,
    }


def _collect(
    index: int,
    run_dir: Path,
    metrics: RunMetrics,
    rows: list[dict[str, Any]],
    curves: list[dict[str, Any]],
    resources: list[dict[str, Any]],
) -> None:
    rows += [{"run": index, "run_dir": str(run_dir), **row, "value": float(row["value"])} for row in metrics.rows]
    curves += [{"run": index, **row} for row in metrics.curves]
    resources += [{"run": index, **row} for row in metrics.resources]
