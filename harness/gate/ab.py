"""``python -m harness ab``: "did this build get slower?" answered in one job, two builds run interleaved on one
machine and compared pair by pair (issue 16; the statistics are ``harness.gate.paired``).

    python -m harness ab --baseline main --candidate my-branch [--pairs 10] [--seed 0] [-- LOCUST ARGS]
    python -m harness ab --baseline ../old-checkout --candidate . --pairs 10
    python -m harness ab --baseline main --candidate-cmd 'my-server --listen 127.0.0.1:{port}'
    python -m harness noise --pairs 10                     # A/A of one build: each metric's minimum detectable effect

**Sides.** ``--baseline`` / ``--candidate`` is a DIRECTORY holding a checkout of this project (its service is started
with this venv's python, ``python -m service`` with cwd and PYTHONPATH that directory), or a git ref (checked out
with ``git worktree add --detach`` under the ab directory, removed at the end on every path); or
``--baseline-cmd`` / ``--candidate-cmd``, a shell command with ``{port}`` (and optionally ``{store}``, a fresh
empty directory, and ``{python}``, this venv's python) for a service that is not ours. The load generator is
always this checkout's harness and locustfile: the instrument stays the same, only the service differs. Bad input
(an unknown ref, a missing directory, a command without ``{port}``, ``--pairs`` < 1, ``-H``/``--runs-dir`` among
the Locust arguments) exits with 2 and one line, before anything starts.

**Services.** Both start once, each on a free loopback port with its own temporary store, the same random write
token in their environment (``FEATURESTORE_WRITE_TOKEN``; Locust gets it as ``FEATURELOAD_WRITE_TOKEN``), both
loaded with the same synthetic catalog (``--catalog-size`` movies, seed 42, ``harness.embedded.ensure_catalog``),
and stay up for the whole comparison; every path out (an error, Ctrl-C, SIGTERM) stops both process trees. Our
own services get the caller's environment without any ``FEATURESTORE_*`` variable (both sides alike); a command
side gets the environment as it is (so ``FEATURESTORE_INJECT_DELAY_MS=2 python -m service ...`` works).

**Cores** (``ab_cores``, unless ``--no-pin``): with 3 or more usable CPUs the baseline's service gets the first,
the candidate's the second and the generator the rest. With 2, both services share the first CPU and the generator
gets the second: only one service is under load at a time (the other idles), and sharing the core also keeps a
difference between cores (interrupt affinity, a sibling hyper-thread) out of the comparison, which separate cores
would put in every pair alike, where pairing cannot cancel it. With 1 CPU nothing is pinned. The services' trees
are pinned again before every run (a worker started late is caught), the Locust process right after it starts.

**Runs.** One warm-up run per side (``--warmup-seconds``, default ``--run-seconds``; not counted), then N pairs
(``--pairs``, default 10), each in the order AB or BA drawn from ``random.Random(--seed)``. Each run is a real
headless Locust process: ``-f locustfiles/concurrent_users.py --headless --only-summary -u 1 --arrival-rate R
-t Ss`` (the open model at a fixed ``--arrival-rate``, default 200 req/s), then the user's LOCUST ARGS (they
override these), then ``-H http://127.0.0.1:PORT --runs-dir ab/<stamp>-<name>/<side>/``. Before each run the
machine must be quiet (``harness.gate.conditions.wait_until_quiet``, ``--quiet-cpu`` / ``--quiet-timeout``); a
busy machine is recorded, never hidden.

**Metrics per run**: per endpoint ``p50 p95 p99`` (ms, exact nearest rank over the run's requests,
``harness.gate.metrics_table.extract_run_metrics``; a percentile without 5 requests above it is NaN and its pair
is left out of that metric), ``Aggregated`` percentiles (informational) and ``failure_ratio``; the service's
``cpu_ms_per_request``: the CPU time (user + system) of the service's whole process tree, read with psutil right
before and right after the Locust process, divided by the requests the run recorded (the Locust process's start-up
and shut-down are inside that span, alike for both sides); the service's ``rss_mb`` (the tree's total) at the end
of the run.

**Statistics**: one ``PairedSeries`` per (endpoint, metric), ``compare_paired`` (signed-rank, Hodges-Lehmann effect
with a bootstrap CI, Benjamini-Hochberg, three-way verdict, minimum detectable effect). Exit code
``PairedComparison.exit_code``: 0 no regression, 4 a regression, 5 inconclusive: the pairs cannot reach significance
at all (fewer than 6 pairs at alpha 0.05), or a gated metric is worse than the threshold without being significant
(``suspected_regressions``; 0 with ``--allow-inconclusive``), 2 bad input or no pair with metrics, 130 interrupted.

**On disk**::

    ab/<stamp>-<name>/
        ab.json        state ("done"; else "failed", "interrupted" or "no metrics", with the sides and runs only),
                       options, sides (kind, ref, commit, directory or command, port, pid, faults, cores),
                       pair order, every run's record (side, pair, position, run dir, exit code, wall time, quiet
                       check, service CPU and RSS, metrics), the comparison (``PairedComparison.to_dict``) and each
                       metric's minimum detectable effect
        ab.md          verdict lines first (one per endpoint and metric), then MDEs, sides, pair order and runs
        baseline/, candidate/   each side's Locust run directories (warm-up included, marked in ab.json)
        logs/          each Locust process's output (warmup-<side>.log, pair-NN-<side>.log) and each service's log
        worktrees/     git-ref sides' worktrees, removed at the end

``noise`` runs the same ab with one build on both sides (two instances of it, as ab runs them) and prints each
metric's minimum detectable effect at these settings: at the pairs it ran, and from the same spread of the log
ratios at ``--for-pairs`` pairs (default 10), so that a short A/A of 4 pairs can still state what 10 would see.

Not yet: the rate probe (the fixed ``--arrival-rate`` is the user's to choose below the knee), html report, duet
mode, shared/per-side venvs (every side runs on this venv, whatever its dependency lock says), the server-side
duration from the service's own histogram. (The pull-request workflow, .github/workflows/performance.yml, runs it.)
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import math
import os
import random
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from harness.gate.conditions import QuietCheck, measure_busy, wait_until_quiet
from harness.gate.metrics_table import AGGREGATED, METRICS, BadInputError, extract_run_metrics, write_json
from harness.gate.paired import (
    PairedComparison,
    PairedOptions,
    PairedSeries,
    compare_paired,
    minimum_detectable_effect,
    suspected_regressions,
)

__all__ = [
    "AbConfig",
    "AbResult",
    "Side",
    "ab_cores",
    "add_ab_commands",
    "build_series",
    "noise_lines",
    "pair_order",
    "resolve_side",
    "run_ab",
    "verdict_lines",
]

ROOT = Path(__file__).resolve().parents[2]  # this checkout: its harness and locustfiles generate the load
DEFAULT_LOCUSTFILE = ROOT / "locustfiles" / "concurrent_users.py"
ENDPOINT_METRICS = ("p50", "p95", "p99")
SERVICE = "service"
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
_READY_TIMEOUT_S = 60.0
_RUN_SLACK_S = 120.0
_MB = 2**20


@dataclass
class AbConfig:
    """What to compare and how (see the module docstring); ``locust_args`` come after ``--``."""

    baseline: str | None = None
    candidate: str | None = None
    baseline_cmd: str | None = None
    candidate_cmd: str | None = None
    pairs: int = 10
    seed: int = 0
    run_seconds: int = 10
    warmup_seconds: int | None = None  # None: run_seconds
    arrival_rate: float = 200.0
    catalog_size: int = 20_000
    name: str = "ab"
    ab_dir: Path = Path("ab")
    locust_args: list[str] = field(default_factory=list)
    pin: bool = True
    quiet_cpu_percent: float = 25.0
    quiet_timeout_s: float = 30.0
    threshold_percent: float = 3.0
    alpha: float = 0.05
    allow_inconclusive: bool = False


@dataclass
class Side:
    """One side of the comparison: where its service comes from, and once started, where it listens."""

    role: str  # "baseline" or "candidate"
    kind: str  # "directory", "git" or "command"
    spec: str  # what the user gave
    directory: Path | None = None  # the checkout the service starts from (a git side: its worktree)
    commit: str | None = None
    command: str | None = None
    port: int | None = None
    pid: int | None = None
    faults: dict[str, Any] | None = None
    catalog: dict[str, Any] | None = None

    def describe(self) -> dict[str, Any]:
        data = asdict(self)
        data["directory"] = str(self.directory) if self.directory else None
        return data


@dataclass
class AbResult:
    """A finished comparison: its directory, the comparison and the exit code."""

    path: Path
    comparison: PairedComparison
    exit_code: int
    lines: list[str]


# ----------------------------------------------------------------------------------------------------- input


def _git(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)


def resolve_side(role: str, ref: str | None, command: str | None, cwd: Path) -> Side:
    """The side ``--<role>`` / ``--<role>-cmd`` names; BadInputError (one line) when it names nothing usable."""
    if (ref is None) == (command is None):
        raise BadInputError(f"give exactly one of --{role} REF and --{role}-cmd COMMAND")
    if command is not None:
        if "{port}" not in command:
            raise BadInputError(f"--{role}-cmd needs {{port}} where the service's port goes: {command!r}")
        return Side(role, "command", command, command=command)
    assert ref is not None
    path = (cwd / ref).resolve()
    if path.is_dir():
        if not (path / "service" / "__main__.py").is_file():
            raise BadInputError(f"--{role} {ref}: {path} is not a checkout of this project (no service/__main__.py)")
        return Side(role, "directory", ref, directory=path)
    top = _git(["rev-parse", "--show-toplevel"], cwd)
    if top.returncode != 0:
        raise BadInputError(f"--{role} {ref}: no such directory, and {cwd} is not in a git repository")
    commit = _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd)
    if commit.returncode != 0:
        raise BadInputError(f"--{role} {ref}: neither a directory nor a git ref of {top.stdout.strip()}")
    return Side(role, "git", ref, commit=commit.stdout.strip())


def _check_config(config: AbConfig) -> None:
    if config.pairs < 1:
        raise BadInputError(f"--pairs {config.pairs}: need 1 pair or more (6 or more to reach significance)")
    if config.run_seconds < 1 or (config.warmup_seconds is not None and config.warmup_seconds < 0):
        raise BadInputError("--run-seconds must be >= 1 and --warmup-seconds >= 0")
    if not config.arrival_rate > 0:
        raise BadInputError(f"--arrival-rate {config.arrival_rate:g}: need a rate > 0 (requests/s)")
    if config.catalog_size < 1:
        raise BadInputError(f"--catalog-size {config.catalog_size}: need 1 movie or more")
    if not config.name or any(not (c.isalnum() or c in "_.-") for c in config.name) or len(config.name) > 64:
        raise BadInputError(f"--name {config.name!r} is invalid: use [A-Za-z0-9_.-], 1-64 characters")
    for arg in config.locust_args:
        flag = arg.split("=", 1)[0]
        if flag in ("-H", "--host", "--runs-dir"):
            raise BadInputError(f"leave {flag} out of the Locust arguments: ab sets the host and runs dir of each run")


def pair_order(pairs: int, seed: int) -> list[str]:
    """Each pair's order, "AB" (baseline first) or "BA", drawn with ``random.Random(seed)``."""
    rng = random.Random(seed)
    return [rng.choice(("AB", "BA")) for _ in range(pairs)]


def ab_cores(available: Sequence[int] | None = None) -> dict[str, Any] | None:
    """The cores of the baseline's service, the candidate's and the generator (see the module docstring); None
    with fewer than 2 usable CPUs."""
    cores = sorted(available if available is not None else os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    if len(cores) == 2:
        note = "2 CPUs: both services share the first (one is loaded at a time), the generator the second"
        return {"baseline": cores[:1], "candidate": cores[:1], "generator": cores[1:], "note": note}
    return {"baseline": cores[:1], "candidate": cores[1:2], "generator": cores[2:], "note": "each service its own CPU"}


# -------------------------------------------------------------------------------------------------- services


class RunningService:
    """A side's service process (its own process group): its tree's CPU time and RSS, pinning, stopping."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.log_path = log_path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tree(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        return []

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self.tree():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def rss_mb(self) -> float:
        total = 0
        for proc in self.tree():
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total / _MB

    def pin(self, cores: list[int]) -> list[int]:
        pinned = []
        for proc in self.tree():
            with contextlib.suppress(psutil.Error, OSError):
                proc.cpu_affinity(cores)
                pinned.append(proc.pid)
        return pinned

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM to the process group, SIGKILL after ``timeout_s``; then whatever of the tree is left."""
        tree = self.tree()
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        _, alive = psutil.wait_procs(tree, timeout=2.0)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(alive, timeout=5.0)


def _service_env(side: Side, environ: Mapping[str, str], token: str) -> dict[str, str]:
    if side.kind == "command":
        env = dict(environ)
    else:
        env = {
            k: v for k, v in environ.items() if not k.startswith("FEATURESTORE_") and k != "PROMETHEUS_MULTIPROC_DIR"
        }
        env["PYTHONPATH"] = str(side.directory)
    env["FEATURESTORE_WRITE_TOKEN"] = token
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _service_argv(side: Side, port: int, store: Path) -> list[str]:
    if side.command is not None:
        command = side.command.replace("{port}", str(port)).replace("{store}", shlex.quote(str(store)))
        command = command.replace("{python}", shlex.quote(sys.executable))
        return ["/bin/sh", "-c", command]
    return [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port), "--store-path", str(store)]


def _get_status(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2.0)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _wait_ready(service: RunningService) -> str:
    """An empty string once the service answers ``GET /ready`` with 200 (or 404), else why it never will."""
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while True:
        with contextlib.suppress(OSError, http.client.HTTPException):
            if _get_status(service.port, "/ready") in (200, 404):
                return ""
        try:
            code = service.process.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None:
            return f"exited with {code}"
        if time.monotonic() > deadline:
            return f"was not ready after {_READY_TIMEOUT_S:g} s"


def start_side_service(side: Side, environ: Mapping[str, str], token: str, store: Path, log_path: Path,
                       cwd: Path) -> RunningService:  # fmt: skip
    """Start the side's service on a free port and return once ``GET /ready`` answers 200 (404 from a service
    that is not ours: it has no such route, but it answers). BadInputError (naming the log) when it exits or is
    not ready within a minute; a port taken meanwhile is retried with another."""
    from service.launcher import free_port
    from service.lifeline import preexec_die_with_parent

    failure = ""
    for _ in range(3):
        port = free_port()
        store.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                _service_argv(side, port, store), cwd=side.directory or cwd, env=_service_env(side, environ, token),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=preexec_die_with_parent(),
            )  # fmt: skip
        service = RunningService(process, port, log_path)
        try:
            failure = _wait_ready(service)
        except BaseException:  # Ctrl-C meanwhile: this service is nobody else's to stop yet
            service.stop(timeout_s=5.0)
            raise
        if not failure:
            return service
        service.stop(timeout_s=5.0)
        if "address already in use" not in log_path.read_text(errors="replace").lower():
            break
    raise BadInputError(f"the {side.role}'s service {failure}; see {log_path}")


# ------------------------------------------------------------------------------------------------------ runs


def _locust_argv(config: AbConfig, seconds: int, url: str, runs_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "locust", "-f", str(DEFAULT_LOCUSTFILE), "--headless", "--only-summary", "-u", "1",
        "--arrival-rate", f"{config.arrival_rate:g}", "-t", f"{seconds}s", *config.locust_args,
        "-H", url, "--runs-dir", str(runs_dir),
    ]  # fmt: skip


def _execute(argv: list[str], env: dict[str, str], log_path: Path, cores: list[int] | None,
             timeout_s: float) -> int:  # fmt: skip
    """One Locust process, pinned to ``cores``; its process group killed on timeout or interruption."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        if cores:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(process.pid, cores)
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            return process.wait(timeout=30)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise


def _new_run_dir(runs_dir: Path, before: set[str]) -> Path | None:
    fresh = sorted(p for p in runs_dir.iterdir() if p.is_dir() and p.name not in before and not p.name.startswith("_"))
    return fresh[-1] if fresh else None


def _run_metrics(run_dir: Path) -> dict[str, dict[str, float]]:
    """``{endpoint: {metric: value}}`` of one run directory (warm-up 0: the services were warmed beforehand)."""
    metrics: dict[str, dict[str, float]] = {}
    for row in extract_run_metrics(run_dir).rows:
        if row["endpoint"] and row["metric"] in (*ENDPOINT_METRICS, "failure_ratio", "requests", "throughput_rps"):
            metrics.setdefault(row["endpoint"], {})[row["metric"]] = float(row["value"])
    return metrics


# ------------------------------------------------------------------------------------------------ statistics


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def build_series(records: Sequence[dict[str, Any]], pairs: int) -> tuple[list[PairedSeries], list[str]]:
    """The paired series of every (endpoint, metric) from the runs' records (warm-ups have pair 0), and the
    metrics left out (fewer than 2 pairs where both runs have a value). A pair whose runs gave no metrics counts in
    no series."""
    runs = {(r["pair"], r["side"]): r for r in records if r["pair"] > 0 and "error" not in r}
    good = [i for i in range(1, pairs + 1) if (i, "baseline") in runs and (i, "candidate") in runs]
    keys: list[tuple[str, str]] = []
    for index in good:
        for side in ("baseline", "candidate"):
            for endpoint, values in runs[(index, side)]["metrics"].items():
                for metric in values:
                    if (endpoint, metric) not in keys:
                        keys.append((endpoint, metric))
    wanted = (*ENDPOINT_METRICS, "failure_ratio")
    ordered = sorted(
        (k for k in keys if k[1] in (wanted if k[0] == AGGREGATED else ENDPOINT_METRICS)),
        key=lambda k: (k[0] == AGGREGATED, k[0], k[1]),
    )
    ordered += [(SERVICE, "cpu_ms_per_request"), (SERVICE, "rss_mb")]
    series, skipped = [], []
    for endpoint, metric in ordered:
        values = []
        for index in good:
            a, b = (_value(runs[(index, side)], endpoint, metric) for side in ("baseline", "candidate"))
            if _finite(a) and _finite(b):
                values.append((a, b))
        if len(values) < 2:
            skipped.append(f"{endpoint} {metric}")
            continue
        spec = _spec(endpoint, metric)
        series.append(PairedSeries(
            endpoint, metric, [v[0] for v in values], [v[1] for v in values], higher_is_worse=True,
            unit=spec[0], floor=spec[1], gated=spec[2],
        ))  # fmt: skip
    return series, skipped


def _value(record: dict[str, Any], endpoint: str, metric: str) -> float | None:
    if endpoint == SERVICE:
        return record.get(f"service_{metric}")
    return record["metrics"].get(endpoint, {}).get(metric)


def _spec(endpoint: str, metric: str) -> tuple[str, float, bool]:
    """(unit, floor, gated): percentiles as compare.py's specs; Aggregated percentiles informational."""
    if endpoint == SERVICE:
        return ("ms", METRICS["service_cpu_ms_per_request"].abs_floor, True) if metric == "cpu_ms_per_request" else (
            "MB", METRICS["service_peak_rss_mb"].abs_floor, True)  # fmt: skip
    spec = METRICS[metric]
    return spec.unit, spec.abs_floor, spec.gated and (endpoint != AGGREGATED or metric == "failure_ratio")


# ----------------------------------------------------------------------------------------------------- ab run


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt in the main thread, so that the cleanup runs as on Ctrl-C."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stamp_dir(root: Path, name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    for suffix in ("", *(f"-{i}" for i in range(2, 100))):
        with contextlib.suppress(FileExistsError):
            (path := root / f"{stamp}-{name}{suffix}").mkdir()
            return path
    raise BadInputError(f"cannot create an ab directory under {root}")


class _Ab:
    """One comparison in progress; ``run()`` does all of it and cleans up on every path."""

    def __init__(self, config: AbConfig, environ: Mapping[str, str], cwd: Path, out: Callable[[str], None]) -> None:
        _check_config(config)
        self.config, self.environ, self.cwd, self.out = config, environ, cwd, out
        self.sides = {
            "baseline": resolve_side("baseline", config.baseline, config.baseline_cmd, cwd),
            "candidate": resolve_side("candidate", config.candidate, config.candidate_cmd, cwd),
        }
        self.order = pair_order(config.pairs, config.seed)
        self.cores = ab_cores() if config.pin else None
        self.token = secrets.token_urlsafe(24)
        self.services: dict[str, RunningService] = {}
        self.worktrees: list[Path] = []
        self.records: list[dict[str, Any]] = []
        self.path = Path()
        self.temp: Path | None = None

    def run(self) -> AbResult:
        started = time.monotonic()
        self.path = _stamp_dir(self.cwd / self.config.ab_dir, self.config.name)
        (self.path / "logs").mkdir()
        self.temp = Path(tempfile.mkdtemp(prefix="featureload-ab-"))
        state = "failed"
        try:
            with _sigterm_interrupts():
                self._start()
                self._runs()
            state = "done"
        except KeyboardInterrupt:
            state = "interrupted"
            raise
        finally:
            self._cleanup()
            if state != "done":  # what ran, and the sides' ports and pids, for whoever looks into it
                sides = {role: side.describe() for role, side in self.sides.items()}
                write_json(self.path / "ab.json", {"state": state, "sides": sides, "runs": self.records})
        return self._finish(time.monotonic() - started)

    def _start(self) -> None:
        from harness.embedded import ensure_catalog
        from harness.faults import fetch_service_faults

        for role, side in self.sides.items():
            if side.kind == "git":
                worktree = self.path / "worktrees" / role
                worktree.parent.mkdir(exist_ok=True)
                added = _git(["worktree", "add", "--detach", str(worktree), side.commit or side.spec], self.cwd)
                if added.returncode != 0:
                    raise BadInputError(f"git worktree add for --{role} {side.spec} failed: {added.stderr.strip()}")
                self.worktrees.append(worktree)
                side.directory = worktree
        for role, side in self.sides.items():
            assert self.temp is not None
            service = start_side_service(side, self.environ, self.token, self.temp / f"{role}-store",
                                         self.path / "logs" / f"{role}-service.log", self.cwd)  # fmt: skip
            self.services[role] = service
            side.port, side.pid = service.port, service.process.pid
            try:
                side.catalog = ensure_catalog(service.base_url, self.config.catalog_size, write_token=self.token)
            except (RuntimeError, OSError) as error:
                raise BadInputError(f"the {role}'s service did not take the catalog: {error}") from None
            side.catalog = {k: v for k, v in side.catalog.items() if k in ("already_loaded", "movies", "elapsed_ms")}
            side.faults = fetch_service_faults(service.base_url, token=self.token)
            self.out(f"{role}: {side.kind} {side.spec} at {service.base_url} (pid {side.pid})")

    def _runs(self) -> None:
        config = self.config
        warmup = config.run_seconds if config.warmup_seconds is None else config.warmup_seconds
        total = (2 if warmup else 0) + 2 * config.pairs
        if warmup:
            for role in ("baseline", "candidate"):
                self._run_one(role, 0, 0, warmup, total)
        for index, order in enumerate(self.order, start=1):
            roles = ("baseline", "candidate") if order == "AB" else ("candidate", "baseline")
            for position, role in enumerate(roles, start=1):
                self._run_one(role, index, position, config.run_seconds, total)

    def _run_one(self, role: str, pair: int, position: int, seconds: int, total: int) -> None:
        config, service = self.config, self.services[role]
        quiet: QuietCheck = wait_until_quiet(
            config.quiet_cpu_percent, config.quiet_timeout_s, lambda: measure_busy(exclude={os.getpid()})
        )
        runs_dir = self.path / role
        runs_dir.mkdir(exist_ok=True)
        before = {p.name for p in runs_dir.iterdir()}
        if self.cores:
            service.pin(self.cores[role])
        label = f"pair-{pair:02d}-{role}" if pair else f"warmup-{role}"
        env = {**self.environ, "FEATURELOAD_WRITE_TOKEN": self.token}
        argv = _locust_argv(config, seconds, service.base_url, runs_dir)
        cpu_before = service.cpu_seconds()
        t0 = time.monotonic()
        code = _execute(argv, env, self.path / "logs" / f"{label}.log",
                        self.cores["generator"] if self.cores else None, seconds + _RUN_SLACK_S)  # fmt: skip
        wall = time.monotonic() - t0
        cpu_s = service.cpu_seconds() - cpu_before
        record: dict[str, Any] = {
            "pair": pair, "side": role, "position": position, "label": label, "exit_code": code,
            "wall_s": round(wall, 3), "quiet": quiet.to_dict(), "service_cpu_s": round(cpu_s, 4),
            "service_rss_mb": round(service.rss_mb(), 2),
        }  # fmt: skip
        run_dir = _new_run_dir(runs_dir, before)
        try:
            if run_dir is None:
                raise BadInputError(f"Locust exited with {code} and left no run directory (see logs/{label}.log)")
            record["run_dir"] = str(run_dir.relative_to(self.path))
            record["metrics"] = _run_metrics(run_dir)
            requests = record["metrics"].get(AGGREGATED, {}).get("requests", 0.0)
            record["requests"] = int(requests)
            record["service_cpu_ms_per_request"] = cpu_s * 1000.0 / requests if requests else math.nan
        except BadInputError as error:
            record["error"] = str(error)
            self.out(f"warning: {label} gave no metrics: {error}")
        self.records.append(record)
        if service.process.poll() is not None:
            raise BadInputError(f"the {role}'s service exited with {service.process.returncode} during {label}")
        self.out(f"run {len(self.records)}/{total} {label}: exit {code}, {wall:.1f} s")

    def _cleanup(self) -> None:
        for service in self.services.values():
            service.stop()
        for worktree in self.worktrees:
            _git(["worktree", "remove", "--force", str(worktree)], self.cwd)
        if self.worktrees:
            _git(["worktree", "prune"], self.cwd)
            with contextlib.suppress(OSError):
                (self.path / "worktrees").rmdir()
        if self.temp is not None:
            shutil.rmtree(self.temp, ignore_errors=True)

    def _finish(self, elapsed_s: float) -> AbResult:
        config = self.config
        series, skipped = build_series(self.records, config.pairs)
        good = {r["pair"] for r in self.records if r["pair"] > 0 and "error" not in r}
        options = PairedOptions(alpha=config.alpha, threshold_percent=config.threshold_percent, seed=config.seed,
                                allow_inconclusive=config.allow_inconclusive)  # fmt: skip
        if not series:
            sides = {role: side.describe() for role, side in self.sides.items()}
            write_json(self.path / "ab.json", {"state": "no metrics", "sides": sides, "runs": self.records})
            raise BadInputError(f"no pair produced metrics on both sides; see {self.path}/logs")
        comparison = compare_paired(series, options)
        info = {
            "state": "done",
            "created_at": datetime.now(UTC).isoformat(),
            "name": config.name,
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
            "load": {
                "locustfile": str(DEFAULT_LOCUSTFILE.relative_to(ROOT)),
                "arrival_rate": config.arrival_rate,
                "rate_probe": "not yet built: a fixed --arrival-rate",
            },
            "sides": {role: side.describe() for role, side in self.sides.items()},
            "cores": self.cores or {"pinned": False, "reason": "--no-pin" if not config.pin else "fewer than 2 CPUs"},
            "pair_order": self.order,
            "pairs_with_metrics": len(good),
            "skipped_metrics": skipped,
            "runs": self.records,
            "comparison": comparison.to_dict(),
            "minimum_detectable_effects": {r.name: r.to_dict()["mde_percent"] for r in comparison.results},
            "elapsed_s": round(elapsed_s, 1),
        }
        write_json(self.path / "ab.json", info)
        lines = verdict_lines(comparison)
        (self.path / "ab.md").write_text(_markdown(lines, comparison, info), encoding="utf-8")
        return AbResult(self.path, comparison, comparison.exit_code, lines)


def verdict_lines(comparison: PairedComparison) -> list[str]:
    """The overall verdict, then one line per metric: gated first, informational last."""
    head = f"ab: {comparison.verdict}"
    if comparison.unreachable:
        head += f" ({comparison.unreachable})"
    elif suspects := suspected_regressions(comparison.results):
        names = ", ".join(r.name for r in suspects)
        head += f" (worse than the threshold but not significant at {suspects[0].pairs} pairs: {names}; run more pairs)"
    elif comparison.verdict == "no regression":  # not "no change": say how much of it is undecided
        gated = [r for r in comparison.results if r.gated]
        if undecided := sum(r.verdict == "inconclusive" for r in gated):
            head += f" found ({undecided} of {len(gated)} gated metrics inconclusive)"
    gated = [r.line() for r in comparison.results if r.gated]
    return [head, *gated, *(r.line() for r in comparison.results if not r.gated)]


def _markdown(lines: list[str], comparison: PairedComparison, info: dict[str, Any]) -> str:
    out = ["# ab: baseline against candidate", "", *(f"- {line}" for line in lines), ""]
    out += ["## Minimum detectable effect", "", "| metric | MDE (%) | pairs |", "|---|---|---|"]
    out += [f"| {r.name} | {r.mde_percent:.1f} | {r.pairs} |" for r in comparison.results]
    out += ["", "## Sides", ""]
    for role, side in info["sides"].items():
        where = side["command"] or side["directory"]
        commit = f" ({side['commit'][:12]})" if side["commit"] else ""
        out.append(f"- {role}: {side['kind']} `{side['spec']}`{commit}, {where}, faults {side['faults'] or 'none'}")
    out += [
        "",
        f"Cores: {info['cores']}",
        "",
        f"Pair order (seed {info['options']['seed']}): {' '.join(info['pair_order'])}",
    ]
    if info["skipped_metrics"]:
        out += ["", f"Left out (fewer than 2 pairs with values): {', '.join(info['skipped_metrics'])}"]
    out += ["", "## Runs", "", "| run | exit | wall s | requests | service CPU ms/req | RSS MB | quiet |",
            "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in info["runs"]:
        cpu = r.get("service_cpu_ms_per_request")
        out.append(f"| {r['label']} | {r['exit_code']} | {r['wall_s']} | {r.get('requests', '-')} | "
                   f"{cpu:.3f} | {r['service_rss_mb']} | {r['quiet']['quiet']} |" if _finite(cpu) else
                   f"| {r['label']} | {r['exit_code']} | {r['wall_s']} | - | - | {r['service_rss_mb']} | "
                   f"{r['quiet']['quiet']} |")  # fmt: skip
    out += ["", "Not yet: rate probe, html report, duet mode, shared/per-side venvs, server-side duration.", ""]
    return "\n".join(out)


def run_ab(config: AbConfig, environ: Mapping[str, str], cwd: Path, out: Callable[[str], None] = print) -> AbResult:
    """Run the comparison of ``config`` (see the module docstring). BadInputError (one line) for bad input, before
    anything starts, or when no pair produced metrics; KeyboardInterrupt after cleaning up."""
    return _Ab(config, environ, cwd, out).run()


# ------------------------------------------------------------------------------------------------------- CLI


def _config(args: argparse.Namespace) -> AbConfig:
    locust_args = list(args.locust_args)
    if locust_args[:1] == ["--"]:
        locust_args = locust_args[1:]
    return AbConfig(
        baseline=args.baseline, candidate=args.candidate, baseline_cmd=args.baseline_cmd,
        candidate_cmd=args.candidate_cmd, pairs=args.pairs, seed=args.seed, run_seconds=args.run_seconds,
        warmup_seconds=args.warmup_seconds, arrival_rate=args.arrival_rate, catalog_size=args.catalog_size,
        name=args.name, ab_dir=args.ab_dir, locust_args=locust_args, pin=args.pin,
        quiet_cpu_percent=args.quiet_cpu, quiet_timeout_s=args.quiet_timeout, threshold_percent=args.threshold,
        alpha=args.alpha, allow_inconclusive=args.allow_inconclusive,
    )  # fmt: skip


def noise_lines(comparison: PairedComparison, config: AbConfig, for_pairs: int) -> list[str]:
    """The A/A's minimum detectable effect of each metric: at the pairs it ran (inf below 6 at alpha 0.05) and,
    from the same spread of its log ratios, at ``for_pairs`` pairs."""
    lines = [
        f"noise: minimum detectable effect of an ab with {config.run_seconds} s runs at {config.arrival_rate:g} "
        f"req/s (alpha {config.alpha:g}, power 0.8), from {config.pairs} A/A pairs:"
    ]
    for r in comparison.results:
        at = minimum_detectable_effect(r.log_ratios, pairs=for_pairs, alpha=config.alpha)
        lines.append(f"  {r.name}: {at:.1f}% at {for_pairs} pairs ({r.mde_percent:.1f}% at {r.pairs})"
                     + ("" if r.gated else " (informational)"))  # fmt: skip
    return lines


def _execute_ab(config: AbConfig, noise: bool, for_pairs: int = 10) -> int:
    command = "noise" if noise else "ab"
    try:
        result = run_ab(config, os.environ, Path.cwd(), out=lambda line: print(line, file=sys.stderr))
    except BadInputError as error:
        print(f"harness {command}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"harness {command}: interrupted; services stopped, worktrees removed", file=sys.stderr)
        return EXIT_INTERRUPTED
    if noise:
        for line in noise_lines(result.comparison, config, for_pairs):
            print(line)
        print(result.path)
        return 0
    for line in result.lines:
        print(line)
    print(result.path)
    return result.exit_code


def _ab(args: argparse.Namespace) -> int:
    return _execute_ab(_config(args), noise=False)


def _noise(args: argparse.Namespace) -> int:
    args.candidate, args.candidate_cmd = args.baseline, args.baseline_cmd
    if args.baseline is None and args.baseline_cmd is None:
        args.baseline = args.candidate = "."
    return _execute_ab(_config(args), noise=True, for_pairs=args.for_pairs)


def _add_common(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--pairs", type=int, default=10, metavar="N", help="pairs of runs (default: 10; >= 6 to reach alpha 0.05)")
    add("--seed", type=int, default=0, help="seed of the pair order (AB or BA) and of the bootstrap (default: 0)")
    add("--run-seconds", type=int, default=10, metavar="S", help="each run's -t (default: 10)")
    add("--warmup-seconds", type=int, default=None, metavar="S",
        help="the uncounted warm-up run of each side (default: --run-seconds; 0: none)")  # fmt: skip
    add("--arrival-rate", type=float, default=200.0, metavar="PER_S",
        help="open model: requests/s of every run (default: 200; no rate probe yet)")  # fmt: skip
    add("--catalog-size", type=int, default=20_000, metavar="MOVIES", help="synthetic catalog (default: 20000)")
    add("--ab-dir", type=Path, default=Path("ab"), metavar="DIR", help="where ab directories go (default: ab)")
    add("--pin", action=argparse.BooleanOptionalAction, default=True, help="pin services and generator to cores")
    add("--quiet-cpu", type=float, default=25.0, metavar="PERCENT", help="quiet machine: CPU below this (default 25)")
    add("--quiet-timeout", type=float, default=30.0, metavar="S",
        help="wait at most this long for a quiet machine before each run (default: 30)")  # fmt: skip
    add("--threshold", type=float, default=3.0, metavar="PERCENT", help="'no change' threshold (default: 3)")
    add("--alpha", type=float, default=0.05, help="significance level (default: 0.05)")
    add("--allow-inconclusive", action="store_true", help="exit 0, not 5, when the pairs cannot reach alpha")
    add("locust_args", nargs=argparse.REMAINDER, metavar="-- LOCUST_ARGS")


def add_ab_commands(commands: Any) -> None:
    """Register ``ab`` and ``noise`` on the harness's subcommand parser."""
    ab = commands.add_parser(
        "ab", help="A/B of two builds, interleaved in random pair order, paired statistics (exit 4: regression)",
        description="Compare two builds in one job: runs interleaved in randomized pair order, paired statistics.",
    )  # fmt: skip
    for role in ("baseline", "candidate"):
        ab.add_argument(f"--{role}", default=None, metavar="REF", help=f"the {role}: a directory or a git ref")
        ab.add_argument(f"--{role}-cmd", default=None, metavar="COMMAND",
                        help=f"the {role}: a shell command serving on {{port}} ({{store}}: a fresh dir)")  # fmt: skip
    ab.add_argument("--name", default="ab", help="suffix of the ab directory (default: ab)")
    _add_common(ab)
    ab.set_defaults(handler=_ab)
    noise = commands.add_parser(
        "noise", help="A/A of one build: each metric's minimum detectable effect on this machine",
        description="Run ab with one build on both sides and print each metric's minimum detectable effect.",
    )  # fmt: skip
    noise.add_argument("--baseline", default=None, metavar="REF", help="the build: a directory or git ref (default: .)")
    noise.add_argument("--baseline-cmd", default=None, metavar="COMMAND", help="or a service command with {port}")
    noise.add_argument("--name", default="noise", help="suffix of the directory (default: noise)")
    noise.add_argument("--for-pairs", type=int, default=10, metavar="N",
                       help="also state each MDE at N pairs, from the A/A's spread (default: 10)")  # fmt: skip
    _add_common(noise)
    noise.set_defaults(handler=_noise, candidate=None, candidate_cmd=None)
