"""``python -m harness ab``: "did this build get slower?" answered in one job: two builds measured on one
machine in the same runs (a duet) or interleaved, and compared pair by pair (issue 16; the statistics are
``harness.gate.paired``).

    python -m harness ab --baseline main --candidate my-branch [--pairs 10] [--seed 0] [-- LOCUST ARGS]
    python -m harness ab --baseline ../old-checkout --candidate . --pairs 10
    python -m harness ab --baseline main --candidate-cmd 'my-server --listen 127.0.0.1:{port}'
    python -m harness noise --pairs 10                     # A/A of one build: each metric's minimum detectable effect

**Sides.** ``--baseline`` / ``--candidate`` is a DIRECTORY holding a checkout of this project (its service is started
with cwd and PYTHONPATH that directory), or a git ref (checked out with ``git worktree add --detach`` under the ab
directory, removed at the end on every path); or ``--baseline-cmd`` / ``--candidate-cmd``, a shell command with
``{port}`` (and optionally ``{store}``, a fresh empty directory, and ``{python}``, this venv's python) for a
service that is not ours. A checkout side runs on this venv when its dependency lock (``dependency_lock``: its
pyproject's dependencies and constraints.txt) is this checkout's, else on a venv built for its lock
(``side_venv``, kept under ``~/.cache/featureload/ab-venvs/<hash>`` for the next comparison; ``--side-venvs
shared`` keeps every side on this venv). The load generator is always this checkout's harness and locustfile:
the instrument stays the same, only the service differs. Bad input (an unknown ref, a missing directory, a command
without ``{port}``, ``--pairs`` < 1, ``-H``/``--runs-dir`` among the Locust arguments) exits with 2 and one line,
before anything starts.

**Services.** Both start, each on a free loopback port with its own temporary store, the same random write
token in their environment (``FEATURESTORE_WRITE_TOKEN``; Locust gets it as ``FEATURELOAD_WRITE_TOKEN``), both
loaded with the same synthetic catalog (``--catalog-size`` movies, seed 42,
``harness.target.embedded.ensure_catalog``). Before every N-th pair (``--restart-every N``, default 1: every pair)
both are stopped and fresh instances started (in a random order, on the same stores), each restart followed by one
uncounted ``REWARM_SECONDS`` duet run, so that what sets two instances of one build apart is drawn anew and varies
between pairs instead of biasing every pair alike (each run's record names its ``instance``). Measured here over 20
A/As each: with restarts every pair 20 passed, without them 19 (the one failure: batch p50 +3.8% between two
instances that stayed up); ``--restart-every 0`` keeps the same instances throughout. Every path out (an error,
Ctrl-C, SIGTERM) stops both process trees (``service.launcher.start_process``). Both are laid out alike:
address-space randomization off (``setarch -R``, where it works) and one ``PYTHONHASHSEED`` (0 unless set), since an
instance's memory layout and hash seed can move its speed by a few percent, a bias between the two instances that
no pairing cancels. Our own services get the caller's environment without any ``FEATURESTORE_*`` variable (both
sides alike); a command side gets the environment as it is (so ``FEATURESTORE_INJECT_DELAY_MS=2 python -m service
...`` works).

**Cores** (``ab_cores``, unless ``--no-pin``): with 3 or more usable CPUs the baseline's service gets the first,
the candidate's the second and the generator the rest. With 2, both services share the first CPU and the generator
gets the second (sharing the core also keeps a difference between cores out of the comparison). With 1 CPU
nothing is pinned. The services' trees are pinned again before every run, the Locust process right after it starts.

**Modes.** ``--mode duet`` (the default): each pair is ONE Locust run against both services at once, ``-H`` one
side and ``--duet-host`` the other (which is which alternates with the pair order AB/BA), each request sent to
one or the other, alternating per request name from a random first side (``harness.users.DuetSplit``, so both get
the same mix of requests; the other side's requests are named with ``DUET_SUFFIX``). Both sides then see the
same moments of the machine and of the generator, so the swings that dominate a noisy machine cancel within the
pair. ``--mode interleaved``: one run per side per pair, in the order AB or BA drawn from
``random.Random(--seed)``. Measured here (2 cores, busy with other work, 6-8 A/A pairs): the lookup p50's MDE at
10 pairs was 13-25% interleaved, 106% with two simultaneous Locust processes (dropped), 3.6-4.9% in the duet.

**Runs.** One warm-up run per side (``--warmup-seconds``, default 10; not counted), then N pairs (``--pairs``,
default 10) of ``--run-seconds`` (default 30: at 20 the p99's MDE was 11.1% and the CPU's 2.1%, at 30 6.7% and
1.5%, 6 minutes per comparison; 7.5 with a restart every pair). Each run is a real headless Locust process: ``-f
locustfiles/concurrent_users.py --headless --only-summary -u 1 --arrival-rate R -t Ss`` (the open model), then the
user's LOCUST ARGS (they override these), then ``-H`` and ``--runs-dir ab/<stamp>-<name>/<side or duet>/``. The
rate R is ``--arrival-rate``, or the rate probe's: the warm-ups run at ``PROBE_RATE`` and measure each service's
CPU per request; R keeps the busier service at ``PROBE_UTILIZATION`` of its core (``probe_rate``), below the knee
where queueing would amplify the noise with the change. Before each run the machine must be quiet
(``harness.gate.conditions.wait_until_quiet``, ``--quiet-cpu`` / ``--quiet-timeout``); a busy machine is
recorded, never hidden.

**Metrics per run and side**: per endpoint ``p50 p95 p99`` (ms, exact nearest rank over the run's requests,
``harness.gate.metrics_table.extract_run_metrics``; a percentile without 5 requests above it is NaN and its pair
is left out of that metric), ``Aggregated`` percentiles (interleaved only, informational) and ``failure_ratio``;
the service's ``cpu_ms_per_request``: the CPU time of the service's whole process tree within the run's own
window (``CpuTrace``, sampled every 0.1 s and read at the run's ``started_at`` and ``ended_at``: the Locust
process's start-up and catalog fetch are left out), divided by the side's requests; the service's ``rss_mb`` (the
tree's total) at the end of the run; and each route's ``server_mean_ms``, the service's own view: the mean of its
``featurestore_request_duration_seconds`` histogram between ``/metrics`` read before and after the run
(``server_totals``, ``server_means``; routes with at least 20 requests; nothing for a service without it).

**Statistics**: one ``PairedSeries`` per (endpoint, metric), ``compare_paired`` (signed-rank, Hodges-Lehmann effect
with a bootstrap CI, Benjamini-Hochberg, three-way verdict, minimum detectable effect). Exit code
``PairedComparison.exit_code``: 0 no regression, 4 a regression, 5 inconclusive: the pairs cannot reach significance
at all (fewer than 6 pairs at alpha 0.05), or a gated metric is worse than the threshold without being significant
(``suspected_regressions``: worse than the threshold and than its own finite MDE, a change these pairs could see;
a significant change must also exceed ``--noise-floor``, 2%, and 5% for RSS: two instances of one build differ by
that much, an A/A measured;
0 with ``--allow-inconclusive``), 2 bad input or no pair with metrics, 130 interrupted.

**On disk**::

    ab/<stamp>-<name>/
        ab.json        state ("done"; else "failed", "interrupted" or "no metrics", with the sides and runs only),
                       options, load (rate, probe, mode), layout, sides (kind, ref, commit, directory or command,
                       python and why, port, pid, faults), cores, pair order, every run's record (side, pair,
                       position, run dir, exit code, wall time, quiet check, service CPU and RSS, server-side
                       means, metrics), the comparison (``PairedComparison.to_dict``) and each metric's MDE
        ab.md          verdict lines first (one per endpoint and metric), then MDEs, sides, pair order and runs
        ab.html        the same with the effects and their CIs drawn against the no-change band, and each gated
                       metric's per-pair values (``harness.report.ab_page``)
        baseline/, candidate/, duet/   the Locust run directories (warm-ups under their side)
        logs/          each Locust process's output and each service's log
        worktrees/     git-ref sides' worktrees, removed at the end

``noise`` runs the same ab with one build on both sides (two instances of it, as ab runs them) and prints each
metric's minimum detectable effect at these settings: at the pairs it ran, and from the same spread of the log
ratios at ``--for-pairs`` pairs (default 10), so that a short A/A of 4 pairs can still state what 10 would see.

Tails: each run's p95/p99 is exact over all of that run's requests (one Locust process: the run's whole pool, no
histogram's rounding), and the bootstrap over pairs carries their within-run sampling error (``harness.gate.paired``).
(The pull-request workflow, .github/workflows/performance.yml, runs ab.)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
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
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from harness.gate.conditions import QuietCheck, measure_busy, wait_until_quiet
from harness.gate.metrics_table import (
    AGGREGATED,
    METRICS,
    BadInputError,
    extract_run_metrics,
    run_window,
    write_json,
)
from harness.gate.paired import (
    PairedComparison,
    PairedOptions,
    PairedSeries,
    compare_paired,
    minimum_detectable_effect,
    suspected_regressions,
    too_noisy,
)
from harness.locust_side.options import DUET_SUFFIX
from service.launcher import ServiceProcess, ServiceStartError, start_process

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
MODES = ("interleaved", "duet")
# The rate probe: each side's warm-up runs at PROBE_RATE; the comparison's rate keeps the busier service at
# PROBE_UTILIZATION of one core, below the knee where queueing would amplify the noise along with the change.
PROBE_RATE = 100.0
PROBE_SECONDS = 3
REWARM_SECONDS = 5  # the warm-up after a restart (--restart-every): the catalog is on disk already
PROBE_UTILIZATION = 0.25
RATE_BOUNDS = (20.0, 2000.0)
SERVER_DURATION = "featurestore_request_duration_seconds"
SERVER_METRIC = "server_mean_ms"
_MIN_SERVER_COUNT = 20
# Two instances of one build differ by a few percent that pairing cannot cancel, being the instances' own: A/As at 10
# pairs of 30 s measured RSS +2.8% [+2.6%, +3.0%] and the lookup's p50 -1.6% [-2.2%, -1.1%], both "significant".
# A regression must exceed these floors as well as be significant.
NOISE_FLOOR_PERCENT = 2.0
RSS_NOISE_FLOOR_PERCENT = 5.0  # fewer requests of a route in a run: no server-side mean for it
_MB = 2**20
_MAX_METRICS_BYTES = 8 * _MB


@dataclass
class AbConfig:
    """What to compare and how (see the module docstring); ``locust_args`` come after ``--``."""

    baseline: str | None = None
    candidate: str | None = None
    baseline_cmd: str | None = None
    candidate_cmd: str | None = None
    pairs: int = 10
    seed: int = 0
    run_seconds: int = 30
    warmup_seconds: int | None = None  # None: 10, or run_seconds when shorter
    arrival_rate: float | None = None  # None: the rate probe chooses it
    mode: str = "duet"  # or "interleaved": one side's run after the other's
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
    suspect_max_mde_percent: float = 12.0
    noise_floor_percent: float = NOISE_FLOOR_PERCENT
    side_venvs: str = "auto"  # or "shared": every side on this venv whatever its lock says
    restart_every: int = 1  # fresh instances of both services every N pairs (0: the same instances throughout)


@dataclass
class Side:
    """One side of the comparison: where its service comes from, and once started, where it listens."""

    role: str  # "baseline" or "candidate"
    kind: str  # "directory", "git" or "command"
    spec: str  # what the user gave
    directory: Path | None = None  # the checkout the service starts from (a git side: its worktree)
    python: str | None = None  # the interpreter of its service: this venv's, or one built for its lock
    venv: str | None = None  # why that interpreter
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
    arrival_rate: float = 0.0


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
    if config.arrival_rate is not None and not config.arrival_rate > 0:
        raise BadInputError(f"--arrival-rate {config.arrival_rate:g}: need a rate > 0 (requests/s)")
    if config.mode not in MODES:
        raise BadInputError(f"--mode {config.mode!r}: choose one of {', '.join(MODES)}")
    if config.restart_every < 0:
        raise BadInputError(f"--restart-every {config.restart_every}: need 0 (never) or a number of pairs >= 1")
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
    env.setdefault("PYTHONHASHSEED", "0")  # one hash seed for both sides: no instance has luckier dicts
    return env


def _fixed_layout() -> list[str]:
    """``setarch -R``: the services' address space without randomization, so that two instances of one build lay
    out their memory alike (an instance's layout can move its speed by a few percent, a bias pairing cannot
    cancel); nothing where setarch is missing."""
    setarch = shutil.which("setarch")
    if setarch is None or subprocess.run([setarch, os.uname().machine, "-R", "true"], check=False,
                                         capture_output=True).returncode != 0:  # fmt: skip
        return []
    return [setarch, os.uname().machine, "-R"]


def _service_argv(side: Side, port: int, store: Path) -> list[str]:
    if side.command is not None:
        command = side.command.replace("{port}", str(port)).replace("{store}", shlex.quote(str(store)))
        command = command.replace("{python}", shlex.quote(sys.executable))
        return [*_fixed_layout(), "/bin/sh", "-c", command]
    python = side.python or sys.executable
    return [*_fixed_layout(), python, "-m", "service", "--host", "127.0.0.1", "--port", str(port),
            "--store-path", str(store)]  # fmt: skip


def dependency_lock(directory: Path) -> dict[str, Any]:
    """What a checkout's service needs installed: its pyproject's runtime dependencies and its constraints.txt
    (the pinned versions), as data that compares equal when two checkouts need the same environment."""
    import tomllib

    try:
        project = tomllib.loads((directory / "pyproject.toml").read_text(encoding="utf-8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        project = {}
    try:
        pins = sorted(line.strip() for line in (directory / "constraints.txt").read_text(encoding="utf-8").splitlines()
                      if line.strip() and not line.lstrip().startswith("#"))  # fmt: skip
    except OSError:
        pins = []
    return {"dependencies": sorted(project.get("dependencies", [])), "constraints": pins}


def side_venv(directory: Path, cache: Path, out: Callable[[str], None] = print,
              pip_timeout_s: float = 1800.0) -> Path:  # fmt: skip
    """The python of a venv holding ``directory``'s locked dependencies (``dependency_lock``), built under
    ``cache/<hash of the lock>/`` with ``pip install -c constraints.txt`` (the code itself comes from the checkout
    through PYTHONPATH) or reused when a complete one is there. BadInputError naming pip's last line when the
    build fails; a failed build leaves nothing behind."""
    lock = dependency_lock(directory)
    key = hashlib.sha256(json.dumps(lock, sort_keys=True).encode()).hexdigest()[:16]
    target = cache / key
    python = target / "bin" / "python"
    if (target / ".complete").is_file() and python.is_file():
        return python
    shutil.rmtree(target, ignore_errors=True)
    out(f"building a venv for {directory} (its dependency lock differs from this checkout's): {target}")
    try:
        no_pip = [] if lock["dependencies"] else ["--without-pip"]  # nothing to install: no pip to bootstrap
        subprocess.run([sys.executable, "-m", "venv", *no_pip, str(target)], check=True, capture_output=True,
                       timeout=300)  # fmt: skip
        argv = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        if (directory / "constraints.txt").is_file():
            argv += ["-c", str(directory / "constraints.txt")]
        if lock["dependencies"]:
            subprocess.run([*argv, *lock["dependencies"]], check=True, capture_output=True, text=True,
                           timeout=pip_timeout_s)  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as error:
        shutil.rmtree(target, ignore_errors=True)
        detail = (getattr(error, "stderr", "") or str(error)).strip().splitlines()
        raise BadInputError(f"could not build a venv for {directory}: {detail[-1] if detail else error}") from None
    (target / ".complete").write_text(json.dumps(lock, sort_keys=True), encoding="utf-8")
    return python


def _venv_cache(environ: Mapping[str, str]) -> Path:
    """Where side venvs are kept between comparisons, one per dependency lock."""
    base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME", tempfile.gettempdir())) / ".cache")
    return Path(base) / "featureload" / "ab-venvs"


def start_side_service(side: Side, environ: Mapping[str, str], token: str, store: Path, log_path: Path,
                       cwd: Path) -> ServiceProcess:  # fmt: skip
    """Start the side's service on a free port and return once ``GET /ready`` answers 200 (404 from a service
    that is not ours: it has no such route, but it answers). BadInputError (naming the log) when it exits or is
    not ready within a minute."""
    store.mkdir(parents=True, exist_ok=True)
    ours = side.kind != "command"
    try:
        return start_process(
            lambda port: _service_argv(side, port, store), _service_env(side, environ, token),
            cwd=side.directory or cwd, ready_timeout_s=_READY_TIMEOUT_S, log_path=log_path,
            ready_statuses=(200,) if ours else (200, 404), check_owner=ours,
        )  # fmt: skip
    except ServiceStartError as error:
        first = str(error).splitlines()[0]
        raise BadInputError(f"the {side.role}'s service {first.removeprefix('the service ')}; see {log_path}") from None


# ------------------------------------------------------------------------------------------------------ runs


def _locust_argv(config: AbConfig, rate: float, seconds: int, url: str, runs_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "locust", "-f", str(DEFAULT_LOCUSTFILE), "--headless", "--only-summary", "-u", "1",
        "--arrival-rate", f"{rate:g}", "-t", f"{seconds}s", *config.locust_args,
        "-H", url, "--runs-dir", str(runs_dir),
    ]  # fmt: skip


def _launch(argv: list[str], env: dict[str, str], log_path: Path, cores: list[int] | None) -> subprocess.Popen[bytes]:
    """One Locust process in its own process group, pinned to ``cores`` right after it starts."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    if cores:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(process.pid, cores)
    return process


def _wait_all(processes: Sequence[subprocess.Popen[bytes]], timeout_s: float) -> list[int]:
    """Every process's exit code; a process still running at ``timeout_s`` gets SIGTERM (its group), and every
    group SIGKILL when this wait is interrupted."""
    deadline = time.monotonic() + timeout_s
    try:
        codes = []
        for process in processes:
            try:
                codes.append(process.wait(timeout=max(0.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                codes.append(process.wait(timeout=30))
        return codes
    except BaseException:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        raise


def server_totals(base_url: str, token: str | None = None) -> dict[str, tuple[float, float]]:
    """``{"METHOD /route": (seconds, requests)}`` from the service's own duration histogram on ``/metrics``
    (its ``_sum`` and ``_count``); empty when the service has none (a service that is not ours)."""
    from prometheus_client.parser import text_string_to_metric_families

    url = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=5.0)
    try:
        connection.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"} if token else {})
        response = connection.getresponse()
        body = response.read(_MAX_METRICS_BYTES + 1)
        if response.status != 200 or len(body) > _MAX_METRICS_BYTES:
            return {}
    except (OSError, http.client.HTTPException):
        return {}
    finally:
        connection.close()
    totals: dict[str, list[float]] = {}
    try:
        for family in text_string_to_metric_families(body.decode("utf-8", errors="replace")):
            if family.name != SERVER_DURATION:
                continue
            for sample in family.samples:
                field_index = {f"{SERVER_DURATION}_sum": 0, f"{SERVER_DURATION}_count": 1}.get(sample.name)
                if field_index is not None and "route" in sample.labels:
                    key = f"{sample.labels.get('method', 'GET')} {sample.labels['route']}"
                    totals.setdefault(key, [0.0, 0.0])[field_index] += float(sample.value)
    except ValueError:  # not the exposition format
        return {}
    return {key: (value[0], value[1]) for key, value in totals.items()}


Totals = Mapping[str, tuple[float, float]]


def server_means(before: Totals, after: Totals) -> dict[str, float]:
    """Each route's mean server-side duration (ms) between two ``server_totals``, where it served enough requests."""
    means = {}
    for key, (seconds, count) in after.items():
        seconds0, count0 = before.get(key, (0.0, 0.0))
        if count - count0 >= _MIN_SERVER_COUNT:
            means[key] = (seconds - seconds0) * 1000.0 / (count - count0)
    return means


class CpuTrace:
    """Each service tree's CPU seconds, sampled every ``interval_s`` by a thread while a run goes on, so that the
    CPU of the run's own window (its ``started_at`` to ``ended_at``) can be read without the Locust process's
    start-up (its catalog fetch from ``-H``, its preflight) and shut-down."""

    def __init__(self, services: Mapping[str, ServiceProcess], interval_s: float = 0.1) -> None:
        self.services, self.interval_s = dict(services), interval_s
        self.samples: dict[str, list[tuple[float, float]]] = {role: [] for role in self.services}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ab-cpu-trace", daemon=True)

    def _sample(self) -> None:
        for role, service in self.services.items():
            self.samples[role].append((time.time(), service.cpu_seconds()))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> CpuTrace:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def between(self, role: str, start_s: float, end_s: float) -> float:
        """CPU seconds of ``role``'s service from ``start_s`` to ``end_s`` (epoch), linearly interpolated between
        samples; NaN when the window is not inside the trace."""
        times, cpu = zip(*self.samples[role], strict=True) if self.samples[role] else ((), ())
        if not times or start_s < times[0] or end_s > times[-1] or end_s <= start_s:
            return math.nan
        return float(np.interp(end_s, times, cpu) - np.interp(start_s, times, cpu))


def _run_window(run_dir: Path) -> tuple[float, float] | None:
    """The run's test window (epoch seconds) from its metadata.json, or None."""
    try:
        return run_window(run_dir, 0.0)
    except BadInputError:
        return None


def duet_side(metrics: Mapping[str, Mapping[str, float]], duet: bool) -> dict[str, dict[str, float]]:
    """One side's metrics of a duet run: the ``--duet-host`` side's endpoints are those named with DUET_SUFFIX
    (returned without it), the other side's the rest. Its ``Aggregated`` holds its requests and failure ratio only
    (the run's own Aggregated percentiles mix both sides)."""
    side: dict[str, dict[str, float]] = {}
    for endpoint, values in metrics.items():
        if endpoint == AGGREGATED or endpoint.endswith(DUET_SUFFIX) != duet:
            continue
        side[endpoint.removesuffix(DUET_SUFFIX)] = dict(values)
    requests = sum(v.get("requests", 0.0) for v in side.values())
    failed = sum(v.get("requests", 0.0) * v.get("failure_ratio", 0.0) for v in side.values())
    side[AGGREGATED] = {"requests": requests, "failure_ratio": failed / requests if requests else math.nan}
    return side


def probe_rate(cpu_ms_per_request: Sequence[float], split: bool = False) -> float:
    """The comparison's arrival rate from each side's service CPU per request at PROBE_RATE: the busier service at
    PROBE_UTILIZATION of its core (``split``: a duet whose services have a core each, so each gets half the rate),
    rounded to 10/s, within RATE_BOUNDS; PROBE_RATE when nothing was measured."""
    usable = [c for c in cpu_ms_per_request if _finite(c) and c > 0]
    if not usable:
        return PROBE_RATE
    rate = PROBE_UTILIZATION * 1000.0 / max(usable) * (2.0 if split else 1.0)
    return float(min(max(round(rate / 10.0) * 10.0, RATE_BOUNDS[0]), RATE_BOUNDS[1]))


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
    routes = sorted({route for i in good for side in ("baseline", "candidate")
                     for route in runs[(i, side)].get("server_mean_ms", {})})  # fmt: skip
    ordered += [(route, SERVER_METRIC) for route in routes]
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
            noise_floor_percent=RSS_NOISE_FLOOR_PERCENT if (endpoint, metric) == (SERVICE, "rss_mb") else None,
        ))  # fmt: skip
    return series, skipped


def _value(record: dict[str, Any], endpoint: str, metric: str) -> float | None:
    if metric == SERVER_METRIC:
        return record.get(SERVER_METRIC, {}).get(endpoint)
    if endpoint == SERVICE:
        return record.get(f"service_{metric}")
    return record["metrics"].get(endpoint, {}).get(metric)


def _spec(endpoint: str, metric: str) -> tuple[str, float, bool]:
    """(unit, floor, gated): percentiles as compare.py's specs; Aggregated percentiles informational; the
    server-side mean duration of a route gated (the service's own view, without the generator's noise)."""
    if metric == SERVER_METRIC:
        return "ms", 0.001, True
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
        self.services: dict[str, ServiceProcess] = {}
        self.worktrees: list[Path] = []
        self.records: list[dict[str, Any]] = []
        self.path = Path()
        self.temp: Path | None = None
        self.rate = 0.0
        self.probe: dict[str, Any] | None = None
        self.done_groups = self.total_groups = 0
        self.instance = 0  # how many times the services were restarted (--restart-every)
        self.rewarm_seconds = 0

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
        for role, side in self.sides.items():
            if side.kind == "git":
                worktree = self.path / "worktrees" / role
                worktree.parent.mkdir(exist_ok=True)
                added = _git(["worktree", "add", "--detach", str(worktree), side.commit or side.spec], self.cwd)
                if added.returncode != 0:
                    raise BadInputError(f"git worktree add for --{role} {side.spec} failed: {added.stderr.strip()}")
                self.worktrees.append(worktree)
                side.directory = worktree
        ours = dependency_lock(ROOT)
        for side in self.sides.values():
            if side.directory is None:
                continue
            if dependency_lock(side.directory) == ours:
                side.python, side.venv = sys.executable, "shared: its dependency lock is this checkout's"
            elif self.config.side_venvs == "shared":
                side.python, side.venv = sys.executable, "shared (--side-venvs shared) although its lock differs"
            else:
                side.python = str(side_venv(side.directory, _venv_cache(self.environ), self.out))
                side.venv = f"its own: its dependency lock differs from this checkout's ({side.python})"
        self._start_services(list(self.sides))

    def _start_services(self, roles: list[str]) -> None:
        """Start each side's service (in the order of ``roles``) on its store, and load or check the catalog."""
        from harness.target.embedded import ensure_catalog
        from harness.target.faults import fetch_service_faults

        for role in roles:
            side = self.sides[role]
            assert self.temp is not None
            log = self.path / "logs" / f"{role}-service{f'-{self.instance}' if self.instance else ''}.log"
            service = start_side_service(side, self.environ, self.token, self.temp / f"{role}-store", log, self.cwd)
            self.services[role] = service
            side.port, side.pid = service.port, service.process.pid
            try:
                catalog = ensure_catalog(service.base_url, self.config.catalog_size, write_token=self.token)
            except (RuntimeError, OSError) as error:
                raise BadInputError(f"the {role}'s service did not take the catalog: {error}") from None
            if side.catalog is None:  # the first instance loads it; a restarted one finds it in its store
                side.catalog = {k: v for k, v in catalog.items() if k in ("already_loaded", "movies", "elapsed_ms")}
            side.faults = fetch_service_faults(service.base_url, token=self.token)
            self.out(
                f"{role}: {side.kind} {side.spec} at {service.base_url} (pid {side.pid}, instance {self.instance})"
            )

    def _restart(self, pair: int) -> None:
        """Fresh instances of both services (started in a random order), then one uncounted warm-up duet run."""
        self._stop_services()
        self.instance += 1
        roles = list(self.sides)
        random.Random(f"{self.config.seed}-{pair}").shuffle(roles)
        self._start_services(roles)
        self._run_group(roles, -pair, self.rewarm_seconds)

    def _runs(self) -> None:
        config = self.config
        warmup = min(config.run_seconds, 10) if config.warmup_seconds is None else config.warmup_seconds
        probing = config.arrival_rate is None
        if probing:  # the warm-ups double as the probe; without warm-ups, a short probe run per side
            warmup = warmup or PROBE_SECONDS
        restarts = (config.pairs - 1) // config.restart_every if config.restart_every else 0
        self.rewarm_seconds = min(warmup or PROBE_SECONDS, REWARM_SECONDS)
        self.total_groups = (2 if warmup else 0) + (2 if config.mode == "interleaved" else 1) * config.pairs + restarts
        self.rate = PROBE_RATE if probing else float(config.arrival_rate or 0.0)
        if warmup:
            for role in ("baseline", "candidate"):  # one side at a time even in duet: the probe measures each alone
                self._run_group([role], 0, warmup)
        if probing:
            cpu = [r.get("service_cpu_ms_per_request", math.nan) for r in self.records if r["pair"] == 0]
            split = config.mode == "duet" and bool(self.cores) and self.cores["baseline"] != self.cores["candidate"]
            self.rate = probe_rate(cpu, split=split)
            self.probe = {
                "probe_rate": PROBE_RATE, "target_utilization": PROBE_UTILIZATION, "bounds": list(RATE_BOUNDS),
                "cpu_ms_per_request": {r["side"]: r.get("service_cpu_ms_per_request") for r in self.records},
                "chosen_rate": self.rate,
            }  # fmt: skip
            self.out(f"rate probe: {self.rate:g} req/s (service CPU per request at {PROBE_RATE:g}/s: "
                     + ", ".join(f"{k} {v:.3f} ms" for k, v in self.probe["cpu_ms_per_request"].items()
                                 if _finite(v)) + ")")  # fmt: skip
        for index, order in enumerate(self.order, start=1):
            if config.restart_every and index > 1 and (index - 1) % config.restart_every == 0:
                self._restart(index)
            roles = ["baseline", "candidate"] if order == "AB" else ["candidate", "baseline"]
            if config.mode == "duet":
                self._run_group(roles, index, config.run_seconds)
            else:
                for role in roles:
                    self._run_group([role], index, config.run_seconds)

    def _run_group(self, roles: list[str], pair: int, seconds: int) -> None:
        """One Locust run: against one side (interleaved, warm-ups), or against both (duet: ``-H`` the first of
        ``roles``, ``--duet-host`` the second, alternating per request name); a record per side with its metrics and its
        service's CPU, RSS and server-side durations over the run."""
        config = self.config
        quiet: QuietCheck = wait_until_quiet(
            config.quiet_cpu_percent, config.quiet_timeout_s, lambda: measure_busy(exclude={os.getpid()})
        )
        rate = PROBE_RATE if (pair == 0 and config.arrival_rate is None) else self.rate
        env = {**self.environ, "FEATURELOAD_WRITE_TOKEN": self.token}
        runs_dir = self.path / (roles[0] if len(roles) == 1 else "duet")
        runs_dir.mkdir(exist_ok=True)
        before = {p.name for p in runs_dir.iterdir()}
        label = (f"pair-{pair:02d}-{roles[0]}" if len(roles) == 1 else f"pair-{pair:02d}-duet") if pair > 0 else (
            f"warmup-{roles[0]}" if pair == 0 else f"rewarm-{-pair:02d}")  # fmt: skip
        argv = _locust_argv(config, rate, seconds, self.services[roles[0]].base_url, runs_dir)
        if len(roles) == 2:
            argv += ["--duet-host", self.services[roles[1]].base_url]
        servers = {}
        for role in roles:
            service = self.services[role]
            if self.cores:
                service.pin(self.cores[role])
            servers[role] = server_totals(service.base_url)
        t0 = time.monotonic()
        generator = self.cores["generator"] if self.cores else None
        with CpuTrace({role: self.services[role] for role in roles}) as trace:
            process = _launch(argv, env, self.path / "logs" / f"{label}.log", generator)
            (code,) = _wait_all([process], seconds + _RUN_SLACK_S)
        wall = time.monotonic() - t0
        run_dir = _new_run_dir(runs_dir, before)
        window = _run_window(run_dir) if run_dir is not None else None
        metrics: dict[str, dict[str, float]] = {}
        error = None
        try:
            if run_dir is None:
                raise BadInputError(f"Locust exited with {code} and left no run directory (see logs/{label}.log)")
            metrics = _run_metrics(run_dir)
        except BadInputError as failure:
            error = str(failure)
            self.out(f"warning: {label} gave no metrics: {error}")
        for position, role in enumerate(roles, start=1):
            service = self.services[role]
            # the run's own window; the whole process's when the run recorded none
            cpu_s = trace.between(role, *window) if window else math.nan
            if not _finite(cpu_s):
                cpu_s = trace.samples[role][-1][1] - trace.samples[role][0][1]
            record: dict[str, Any] = {
                "pair": pair, "side": role, "position": position, "label": label, "exit_code": code,
                "instance": self.instance, "service_pid": service.process.pid,
                "arrival_rate": rate, "wall_s": round(wall, 3), "quiet": quiet.to_dict(),
                "service_cpu_s": round(cpu_s, 4), "service_rss_mb": round(service.rss_bytes() / _MB, 2),
                "server_mean_ms": server_means(servers[role], server_totals(service.base_url)),
            }  # fmt: skip
            if run_dir is not None:
                record["run_dir"] = str(run_dir.relative_to(self.path))
            if error is not None:
                record["error"] = error
            else:
                mine = metrics if len(roles) == 1 else duet_side(metrics, duet=position == 2)
                requests = mine.get(AGGREGATED, {}).get("requests", 0.0)
                record["metrics"], record["requests"] = mine, int(requests)
                record["service_cpu_ms_per_request"] = cpu_s * 1000.0 / requests if requests else math.nan
            self.records.append(record)
            if service.process.poll() is not None:
                raise BadInputError(f"the {role}'s service exited with {service.process.returncode} during {label}")
        self.done_groups += 1
        self.out(f"run {self.done_groups}/{self.total_groups} {label} at {rate:g} req/s: exit {code}, {wall:.1f} s")

    def _stop_services(self) -> None:
        for service in self.services.values():
            service.stop()
        self.services.clear()

    def _cleanup(self) -> None:
        self._stop_services()
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
                                allow_inconclusive=config.allow_inconclusive,
                                suspect_max_mde_percent=config.suspect_max_mde_percent,
                                noise_floor_percent=config.noise_floor_percent)  # fmt: skip
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
                "arrival_rate": self.rate,
                "rate_probe": self.probe or "off: --arrival-rate given",
                "mode": config.mode,
            },
            "sides": {role: side.describe() for role, side in self.sides.items()},
            "layout": {
                "aslr": "off (setarch -R)" if _fixed_layout() else "on (no setarch)",
                "PYTHONHASHSEED": self.environ.get("PYTHONHASHSEED", "0"),
            },
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
        from harness.report.ab_page import write_ab_page  # plotly: only once there is a page to draw

        write_ab_page(self.path, info, comparison, lines)
        return AbResult(self.path, comparison, comparison.exit_code, lines, self.rate)


def verdict_lines(comparison: PairedComparison) -> list[str]:
    """The overall verdict, then one line per metric: gated first, informational last."""
    head = f"ab: {comparison.verdict}"
    if comparison.unreachable:
        head += f" ({comparison.unreachable})"
    elif suspects := suspected_regressions(comparison.results, comparison.options.suspect_max_mde_percent):
        names = ", ".join(r.name for r in suspects)
        head += f" (worse than the threshold but not significant at {suspects[0].pairs} pairs: {names}; run more pairs)"
    elif comparison.verdict == "no regression":  # not "no change": say how much of it is undecided
        gated = [r for r in comparison.results if r.gated]
        if undecided := sum(r.verdict == "inconclusive" for r in gated):
            head += f" found ({undecided} of {len(gated)} gated metrics inconclusive"
            if noisy := too_noisy(comparison.results, comparison.options.suspect_max_mde_percent):
                head += (f"; too noisy to judge below a significant change, MDE over "
                         f"{comparison.options.suspect_max_mde_percent:g}%: "
                         + ", ".join(f"{r.name} ({r.mde_percent:.0f}%)" for r in noisy))  # fmt: skip
            head += ")"
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
    out.append("")
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
        warmup_seconds=args.warmup_seconds, arrival_rate=args.arrival_rate, mode=args.mode,
        catalog_size=args.catalog_size, name=args.name, ab_dir=args.ab_dir, locust_args=locust_args, pin=args.pin,
        quiet_cpu_percent=args.quiet_cpu, quiet_timeout_s=args.quiet_timeout, threshold_percent=args.threshold,
        alpha=args.alpha, allow_inconclusive=args.allow_inconclusive,
        suspect_max_mde_percent=args.suspect_max_mde, side_venvs=args.side_venvs, noise_floor_percent=args.noise_floor,
        restart_every=args.restart_every,
    )  # fmt: skip


def noise_lines(comparison: PairedComparison, config: AbConfig, for_pairs: int, rate: float) -> list[str]:
    """The A/A's minimum detectable effect of each metric: at the pairs it ran (inf below 6 at alpha 0.05) and,
    from the same spread of its log ratios, at ``for_pairs`` pairs."""
    lines = [
        f"noise: minimum detectable effect of an ab with {config.run_seconds} s {config.mode} runs at {rate:g} "
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
        for line in noise_lines(result.comparison, config, for_pairs, result.arrival_rate):
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
    add("--run-seconds", type=int, default=30, metavar="S", help="each pair's run, -t (default: 30)")
    add("--warmup-seconds", type=int, default=None, metavar="S",
        help="the uncounted warm-up run of each side, which doubles as the rate probe (default: 10, or "
             "--run-seconds when shorter; 0: none, and a 3 s probe when the rate is not given)")  # fmt: skip
    add(
        "--arrival-rate",
        type=float,
        default=None,
        metavar="PER_S",
        help="open model: requests/s of every run (default: the rate probe's choice, the busier service at "
        f"{PROBE_UTILIZATION:.0%} of a core)",
    )
    add("--mode", choices=MODES, default="duet",
        help="duet (default): one run per pair, each request sent to one side or the other (alternating per request "
             "name), so both "
             "see the same moments of the machine; interleaved: one side's run after the other's, in random "
             "pair order")  # fmt: skip
    add("--catalog-size", type=int, default=20_000, metavar="MOVIES", help="synthetic catalog (default: 20000)")
    add("--ab-dir", type=Path, default=Path("ab"), metavar="DIR", help="where ab directories go (default: ab)")
    add("--pin", action=argparse.BooleanOptionalAction, default=True, help="pin services and generator to cores")
    add("--quiet-cpu", type=float, default=25.0, metavar="PERCENT", help="quiet machine: CPU below this (default 25)")
    add("--quiet-timeout", type=float, default=30.0, metavar="S",
        help="wait at most this long for a quiet machine before each run (default: 30)")  # fmt: skip
    add("--threshold", type=float, default=3.0, metavar="PERCENT", help="'no change' threshold (default: 3)")
    add("--alpha", type=float, default=0.05, help="significance level (default: 0.05)")
    add("--allow-inconclusive", action="store_true", help="exit 0, not 5, when the pairs cannot reach alpha")
    add("--side-venvs", choices=("auto", "shared"), default="auto",
        help="auto (default): a side whose dependency lock (pyproject dependencies, constraints.txt) differs from "
             "this checkout's gets its own venv, built once per lock under ~/.cache/featureload/ab-venvs; "
             "shared: every side on this venv")  # fmt: skip
    add("--noise-floor", type=float, default=NOISE_FLOOR_PERCENT, metavar="PERCENT",
        help=f"a significant change smaller than this is no regression (default: {NOISE_FLOOR_PERCENT:g}; RSS: "
             f"{RSS_NOISE_FLOOR_PERCENT:g}): two instances of one build differ by that much")  # fmt: skip
    add("--restart-every", type=int, default=1, metavar="N",
        help="stop both services and start fresh instances every N pairs, each followed by an uncounted warm-up, "
             "so that what sets two instances of one build apart varies between pairs instead of biasing all of "
             "them (default: 1, every pair; 0: the same instances throughout)")  # fmt: skip
    add("--suspect-max-mde", type=float, default=12.0, metavar="PERCENT",
        help="the headline names gated metrics whose MDE is over this as too noisy to judge below a significant "
             "change (default: 12)")  # fmt: skip
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
