"""Agents on other hosts (harness.sampling.agent) streaming to the hub (harness.sampling.hub), as real processes on
loopback: a real Locust run with two agents (one killed mid-run), the backlog across a hub that starts late and
restarts, the token, and the clock offset of an agent whose clock faketime shifts by five seconds."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from harness.locust_side.live import agents_now
from harness.recording.recorder import read_stream
from harness.sampling.monitoring import merge_agent_rows
from harness.target.embedded import ensure_catalog
from service.launcher import free_port
from tests.locust_runs import LOCUST, ROOT, collect, start_locust

TOKEN = "agent-secret-7f3a9c"  # a test token: it must appear in no file


def _env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FEATURELOAD_")}
    return {**base, "PYTHONPATH": str(ROOT), **extra}


class Processes:
    """Starts processes for one test and kills whatever is still running at its end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def __call__(
        self, argv: list[str], env: dict[str, str] | None = None, log: str = "proc"
    ) -> subprocess.Popen[bytes]:
        handle = open(self.logs / f"{log}-{len(self.started)}.log", "wb")  # noqa: SIM115  (closed with the test)
        process = subprocess.Popen(argv, cwd=ROOT, env=env or _env(), stdout=handle, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
        self.started.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 15) -> int:
        if process.poll() is None:
            process.send_signal(sig)
        return process.wait(timeout=timeout_s)

    def kill_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    logs = tmp_path / "logs"
    logs.mkdir()
    processes = Processes(logs)
    yield processes
    processes.kill_all()


def wait_for(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll ``check`` every 50 ms until it returns something truthy; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def agents_json(out: Path) -> dict[str, Any]:
    try:
        return json.loads((out / "agents.json").read_text())
    except (OSError, ValueError):
        return {}


def agent_entry(out: Path, name: str) -> dict[str, Any] | None:
    return next((a for a in agents_json(out).get("agents", []) if a["name"] == name), None)


def hub_argv(bind: str, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "harness.sampling.hub", "--bind", bind, "--out", str(out), *extra]


def agent_argv(master: str, name: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "harness.sampling.agent", "--master", master, "--name", name, "--no-gpu", *extra]


def host_ticks(out: Path, name: str) -> np.ndarray:
    table = read_stream(out / "agent_host.arrows")
    return np.sort(table.filter(pc.equal(table.column("host"), name)).column("ts_s").to_numpy())


def test_a_real_run_shows_each_agent_and_names_the_one_killed(tmp_path: Path, procs: Processes) -> None:
    port = free_port()
    master = f"127.0.0.1:{port}"
    steady = procs(agent_argv(master, "svc-host", "--interval", "0.5", "--role", "service", "--match",
                              r"-m service --host"), log="steady")  # fmt: skip
    doomed = procs(agent_argv(master, "doomed-host", "--interval", "0.5", "--heartbeat", "0.25", "--silence", "1"),
                   log="doomed")  # fmt: skip
    runs = tmp_path / "runs"
    locust = start_locust(runs, "-u", "2", "-r", "2", "-t", "8s", "--sample-interval", "0.5", "--agents-bind", master)
    try:
        # the hub is up and both agents are in: kill one mid-run
        def hub_dir() -> Path | None:
            dirs = [d for d in runs.glob("*") if (d / "agents.json").exists()] if runs.exists() else []
            return dirs[0] if dirs else None

        run_dir = wait_for(hub_dir, 60, "the hub's agents.json")
        wait_for(lambda: (e := agent_entry(run_dir, "doomed-host")) and e["rows"] > 0, 20, "doomed-host's rows")
        wait_for(lambda: (e := agent_entry(run_dir, "svc-host")) and e["rows"] > 0, 20, "svc-host's rows")
        killed_at = time.time()
        os.kill(doomed.pid, signal.SIGKILL)
        _, stderr = locust.communicate(timeout=120)
    finally:
        if locust.poll() is None:
            locust.kill()
            locust.wait()
    run = collect(runs, locust.returncode, stderr)
    assert run.code == 0, stderr[-3000:]
    agents = {a["name"]: a for a in run.metadata["agents"]}
    assert set(agents) == {"svc-host", "doomed-host"}
    for agent in agents.values():
        assert {"name", "host", "clock_offset_ms", "clock_uncertainty_ms", "rows", "first_seen", "last_seen",
                "lost"} <= set(agent)  # fmt: skip
        assert abs(agent["clock_offset_ms"]) < 20, agent  # one machine, one clock
    assert agents["svc-host"]["lost"] == []
    [window] = agents["doomed-host"]["lost"]
    assert window["to"] is None  # lost to the end of the run
    assert killed_at - 1.0 <= window["from_s"] <= killed_at + 0.1  # its last message, just before the kill
    # rows carry the host column: local ones "local", the agents' their names, service processes of svc-host
    samples = read_stream(run.run_dir / "samples.arrows")
    hosts = set(samples.column("host").to_pylist())
    assert {"local", "svc-host", "doomed-host"} <= hosts
    svc = samples.filter(pc.and_(pc.equal(samples.column("host"), "svc-host"), pc.equal(samples.column("scope"),
                                                                                        "service")))  # fmt: skip
    assert svc.num_rows > 0 and "service" in " ".join(svc.column("cmdline").to_pylist())
    assert set(read_stream(run.run_dir / "host.arrows").column("host").to_pylist()) >= {"local", "svc-host"}
    assert not list(run.run_dir.glob("agent_*.arrows"))  # merged
    html = run.report_html
    assert "svc-host" in html and "doomed-host" in html
    assert "lost" in html.split("doomed-host", 1)[1][:2000]
    assert [a["name"] for a in run.summary["resources"]["hosts"]] == ["doomed-host", "svc-host"]
    procs.stop(steady)


def test_the_backlog_bridges_a_hub_that_starts_late_and_restarts(tmp_path: Path, procs: Processes) -> None:
    master = f"127.0.0.1:{free_port()}"
    first, second = tmp_path / "first", tmp_path / "second"
    agent = procs(agent_argv(master, "a1", "--interval", "0.2", "--heartbeat", "0.2", "--silence", "0.6"),
                  log="agent")  # fmt: skip
    wait_for(lambda: agent.poll() is None and (tmp_path / "logs" / "agent-0.log").stat().st_size > 0, 20,
             "the agent's start")  # fmt: skip
    started_s = time.time()
    time.sleep(1.5)  # the scenario, not a synchronisation: the hub starts 1.5 s after the agent
    hub = procs(hub_argv(master, str(first)), log="hub")
    wait_for(lambda: (e := agent_entry(first, "a1")) and e["rows"] > 10, 20, "rows in the first hub")
    procs.stop(hub, signal.SIGKILL)  # a crash: nothing flushed, nothing acknowledged after this
    gone_s = time.time()
    time.sleep(2.0)  # the scenario: 2 s without a hub
    hub = procs(hub_argv(master, str(second)), log="hub")
    wait_for(lambda: (e := agent_entry(second, "a1")) and e["last_seen_s"] > gone_s + 3.0, 20, "the agent back")
    assert procs.stop(agent) == 0
    assert procs.stop(hub) == 0
    ticks = np.sort(np.concatenate([host_ticks(first, "a1"), host_ticks(second, "a1")]))
    assert ticks[0] < started_s + 1.0  # the ticks from before the first hub were kept and sent
    gaps = np.diff(ticks)
    assert gaps.max() < 0.5, f"a gap of {gaps.max():.2f} s: the backlog lost ticks"  # 0.2 s ticks, nothing lost
    assert np.unique(ticks).size >= ticks.size - 5  # a batch written but not acknowledged before the crash repeats
    second_ticks = host_ticks(second, "a1")
    assert second_ticks[0] < gone_s + 1.0  # the second hub got the ticks of the outage (batches leave every 1 s)


def test_a_hub_beyond_loopback_needs_a_token_and_drops_wrong_ones(tmp_path: Path, procs: Processes) -> None:
    port = free_port()
    refused = subprocess.run(hub_argv(f"0.0.0.0:{port}", str(tmp_path / "x")), cwd=ROOT, env=_env(),
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert refused.returncode == 2
    assert "FEATURELOAD_AGENT_TOKEN" in refused.stderr.strip().splitlines()[-1]
    out = tmp_path / "hub"
    hub = procs(hub_argv(f"0.0.0.0:{port}", str(out)), env=_env(FEATURELOAD_AGENT_TOKEN=TOKEN), log="hub")
    master = f"127.0.0.1:{port}"
    procs(agent_argv(master, "intruder", "--heartbeat", "0.2"), env=_env(FEATURELOAD_AGENT_TOKEN="wrong"),
          log="intruder")  # fmt: skip
    procs(agent_argv(master, "friend", "--interval", "0.2"), env=_env(FEATURELOAD_AGENT_TOKEN=TOKEN), log="friend")
    wait_for(lambda: (e := agent_entry(out, "friend")) and e["rows"] > 0, 20, "the friend's rows")
    wait_for(lambda: agents_json(out).get("messages_rejected_token", 0) > 3, 20, "the intruder's messages dropped")
    [live] = agents_now(out)  # what the web UI's Harness tab shows of it
    assert live["name"] == "friend" and live["lost_since"] is None and live["rows"] > 0
    assert [p["scope"] for p in live["processes"]][-1] == "host"
    assert procs.stop(hub) == 0
    assert [a["name"] for a in agents_json(out)["agents"]] == ["friend"]
    for path in [*out.iterdir(), *(tmp_path / "logs").iterdir()]:
        assert TOKEN.encode() not in path.read_bytes(), path


def test_locust_refuses_an_open_agents_bind_without_a_token(tmp_path: Path) -> None:
    locust = start_locust(tmp_path / "runs", "-u", "1", "-t", "1s", "--agents-bind", f"0.0.0.0:{free_port()}")
    _, stderr = locust.communicate(timeout=120)
    assert locust.returncode == 2
    lines = [line for line in stderr.splitlines() if "--agents-bind" in line]
    assert len(lines) == 1 and "FEATURELOAD_AGENT_TOKEN" in lines[0]


def _libfaketime() -> str | None:
    """libfaketime's multi-threaded library (the agent has ZeroMQ's threads), found beside the faketime command."""
    found = sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1")) + sorted(
        Path("/usr/lib/faketime").glob("libfaketimeMT.so.1")
    )
    return str(found[0]) if found and shutil.which("faketime") else None


@pytest.mark.skipif(_libfaketime() is None, reason="libfaketime is not installed (apt-get install faketime)")
def test_a_shifted_agent_clock_is_estimated_and_its_rows_put_on_the_master_clock(
    tmp_path: Path, procs: Processes
) -> None:
    master = f"127.0.0.1:{free_port()}"
    out = tmp_path / "hub"
    hub = procs(hub_argv(master, str(out)), log="hub")
    # libfaketime, preloaded into the agent itself (the faketime command would stand between it and our signals),
    # shifts its wall clock (time.time) by +5 s, not its monotonic clock (its tick pacing)
    env = _env(LD_PRELOAD=str(_libfaketime()), FAKETIME="+5s", FAKETIME_DONT_FAKE_MONOTONIC="1")
    agent = procs(agent_argv(master, "skewed", "--interval", "0.2"), env=env, log="agent")
    entry = wait_for(lambda: (e := agent_entry(out, "skewed")) and e["clock_exchanges"] >= 16 and e["rows"] > 5 and e,
                     30, "16 clock exchanges")  # fmt: skip
    assert abs(entry["clock_offset_ms"] - 5000.0) < 20.0, entry
    assert entry["clock_uncertainty_ms"] < 20.0
    assert procs.stop(agent) == 0 and procs.stop(hub) == 0
    raw = host_ticks(out, "skewed")
    merge_agent_rows(out)  # onto the hub's clock: the rows fall inside the hub's lifetime, not 5 s ahead
    final = agents_json(out)["agents"][0]
    moved = np.sort(read_stream(out / "host.arrows").column("ts_s").to_numpy())
    assert np.allclose(raw - moved, final["clock_offset_ms"] / 1000.0)
    assert moved[-1] <= final["last_seen_s"] + 0.05


def _rise_s(samples: Any, host: str, threshold_percent: float) -> float:
    """The first tick at which the service processes sampled for ``host`` use ``threshold_percent`` of a core."""
    rows = samples.filter(pc.and_(pc.equal(samples.column("host"), host), pc.equal(samples.column("scope"), "service")))
    ts, cpu = rows.column("ts_s").to_numpy(), rows.column("cpu_percent").fill_null(0.0).to_numpy()
    ticks = np.unique(ts)
    totals = np.array([cpu[ts == t].sum() for t in ticks])
    assert (totals >= threshold_percent).any(), f"{host}: the service never reached {threshold_percent}% of a core"
    return float(ticks[np.argmax(totals >= threshold_percent)])


@pytest.mark.skipif(_libfaketime() is None, reason="libfaketime is not installed (apt-get install faketime)")
def test_a_skewed_agent_sees_the_service_rise_with_the_load(
    tmp_path: Path, procs: Processes, service_factory: Any
) -> None:
    service = service_factory()  # started, loaded and idle before the load, unlike the embedded one
    ensure_catalog(service.base_url, 300)
    master = f"127.0.0.1:{free_port()}"
    env = _env(LD_PRELOAD=str(_libfaketime()), FAKETIME="+5s", FAKETIME_DONT_FAKE_MONOTONIC="1")
    procs(agent_argv(master, "skewed", "--interval", "0.25", "--role", "service", "--pid", str(service.pid)),
          env=env, log="agent")  # fmt: skip
    runs = tmp_path / "runs"
    # an open-model load of 300 requests/s: the service rises from idle
    locust = start_locust(runs, "-H", service.base_url, "-u", "1", "-r", "1", "-t", "4s", "--arrival-rate", "300",
                          "--agents-bind", master)  # fmt: skip
    _, stderr = locust.communicate(timeout=120)
    run = collect(runs, locust.returncode, stderr)
    [agent] = run.metadata["agents"]
    assert abs(agent["clock_offset_ms"] - 5000.0) < 20.0, agent
    samples = read_stream(run.run_dir / "samples.arrows")
    requests = read_stream(run.run_dir / "requests.arrows")
    first_request_s = float(pc.min(requests.column("ts_s")).as_py())
    rise_s = _rise_s(samples, "skewed", 10.0)  # idle: 0-4 %; under this load: 15-30 %
    # uncorrected, the rise would show 5 s late; on this clock it comes within a second of the load (either side: the
    # users' start-up requests, which fetch the catalog's ids, precede the first recorded request). Quiet, it comes
    # within one tick (0.25 s); in a full suite the first ticks under load stayed below 10% for 0.53 s once.
    assert abs(rise_s - first_request_s) <= 1.0, rise_s - first_request_s


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="installed by `make system-deps` (Debian docker-compose)"
)
def test_compose_runs_an_agent_beside_the_service() -> None:
    env = {**_env(), "FEATURELOAD_WRITE_TOKEN": "w", "FEATURELOAD_AGENT_TOKEN": "planted-agent-token",
           "FEATURELOAD_AGENTS_BIND": "0.0.0.0:5570"}  # fmt: skip
    done = subprocess.run(["docker-compose", "-f", "docker-compose.yml", "--profile", "agents", "config"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    agent = done.stdout.split("\n  agent:\n", 1)[1].split("\n  master:\n", 1)[0]
    assert "pid: service:service" in agent  # it sees the service's processes
    assert "- master:5570" in agent and "FEATURELOAD_AGENT_TOKEN: planted-agent-token" in agent
    assert "FEATURELOAD_AGENTS_BIND: 0.0.0.0:5570" in done.stdout  # the master's hub


def test_clock_estimate_prefers_the_quickest_round_trips() -> None:
    from harness.sampling.clock import ClockEstimator

    estimator = ClockEstimator()
    offset = 3.0  # the agent's clock is 3 s ahead
    rng = np.random.default_rng(1)
    for i in range(60):
        t0 = 100.0 + i
        forward, back = 0.001, 0.001 + (0.4 if i % 3 else 0.0)  # two thirds of the pongs wait 400 ms in a queue
        t1 = t0 + forward + offset
        t2 = t1 + rng.uniform(0, 0.0005)
        estimator.add(t0, t1, t2, t2 - offset + back)
    estimator.add(1.0, 5.0, 5.1, 1.05)  # a negative round trip (a clock stepped): ignored
    estimate = estimator.estimate()
    assert estimate is not None and abs(estimate.offset_s - offset) < 0.001
    assert estimate.uncertainty_s < 0.0011 and estimate.samples == 60
    # a short-lived agent on a busy machine: 11 exchanges, one quick, the others' pongs queued 20-60 ms at the hub
    few = ClockEstimator()
    for i in range(11):
        back = 0.0005 if i == 4 else 0.02 + 0.004 * i
        few.add(10.0 + i, 10.0 + i + 0.0005, 10.0 + i + 0.0006, 10.0 + i + 0.0006 + back)
    estimate = few.estimate()
    assert estimate is not None and abs(estimate.offset_s) < 0.001 and estimate.uncertainty_s < 0.001, estimate


def _agent_rows(run_dir: Path, name: str, offset_s: float, lost: list[dict[str, Any]]) -> None:
    """Rows an agent named ``name`` would have sent (its clock ``offset_s`` ahead) and the hub's agents.json."""
    from harness.recording._columns import record_batch
    from harness.recording.recorder import ArrowStreamWriter
    from harness.sampling.sampler import STREAM_SCHEMAS as SCHEMAS

    meta = json.loads((run_dir / "metadata.json").read_text())
    t0 = datetime.fromisoformat(meta["started_at"]).timestamp()
    ticks = t0 + np.arange(0.0, 60.0, 1.0)
    samples = [(t + offset_s, "service", 77, 1, "python", "python -m service", 40.0, 20.0, 100 << 20, None, 4, 9, 1,
                1, 0, 0, "junk") for t in ticks]  # fmt: skip
    hosts = [(t + offset_s, 25.0, [25.0] * 4, 8 << 30, 3 << 30, 5 << 30, 0, 1.0, 1.0, 1.0, 0, 0, 0, 0, "junk")
             for t in ticks]  # fmt: skip
    for stream, rows in (("samples", samples), ("host", hosts)):
        writer = ArrowStreamWriter(run_dir / f"agent_{stream}.arrows", SCHEMAS[stream])
        table = record_batch(rows, SCHEMAS[stream])
        writer.write(table.set_column(16 if stream == "samples" else 14, "host", pa.array([name] * len(rows))))
        writer.close()
    agent = {"name": name, "host": "far.example", "clock_offset_ms": offset_s * 1000, "clock_uncertainty_ms": 0.4,
             "rows": len(samples), "first_seen": meta["started_at"], "last_seen": meta["ended_at"],
             "lost": lost}  # fmt: skip
    (run_dir / "agents.json").write_text(json.dumps({"agents": [agent]}))


def test_the_report_adds_a_host_and_leaves_the_local_one_as_it_was(tmp_path: Path) -> None:
    from harness.report import build_report
    from tests.run_fixtures import make_run_dir

    plain = build_report(make_run_dir(tmp_path / "plain", duration_s=60.0)).summary["resources"]
    run_dir = make_run_dir(tmp_path / "agents", duration_s=60.0)
    meta = json.loads((run_dir / "metadata.json").read_text())
    t0 = datetime.fromisoformat(meta["started_at"]).timestamp()
    lost = [{"from": "a", "to": None, "from_s": t0 + 50.0, "to_s": None}]
    _agent_rows(run_dir, "far", 2.5, lost)
    agents = merge_agent_rows(run_dir)
    (run_dir / "metadata.json").write_text(json.dumps({**meta, "agents": agents}))
    result = build_report(run_dir)
    resources = result.summary["resources"]
    assert resources["table"] == plain["table"]  # this host's table is untouched by the agent's rows
    assert plain["hosts"] == []
    [far] = resources["hosts"]
    assert far["name"] == "far" and far["lost"] == [{"from": "a", "to": None}]
    service = next(r for r in far["table"] if r["scope"] == "service")
    assert service["cpu_mean_percent"] == 40.0
    host_row = next(r for r in far["table"] if r["scope"] == "host")
    assert host_row["cpu_mean_percent"] == 100.0  # 25% of 4 cores, in percent of one core
    html = result.html_path.read_text()
    assert "far: host CPU (agent)" in html and "was lost from a to the end of the run" in html
    # the rows were moved 2.5 s back onto the master's clock: they start at the run's start
    samples = read_stream(run_dir / "samples.arrows")
    far_ts = samples.filter(pc.equal(samples.column("host"), "far")).column("ts_s").to_numpy()
    assert abs(far_ts.min() - t0) < 1e-6


@pytest.mark.skipif(
    _libfaketime() is None or shutil.which("unshare") is None or os.geteuid() != 0,
    reason="needs libfaketime, unshare and root (a worker with its own hostname and clock)",
)
def test_a_worker_on_another_host_ships_its_rows_on_the_master_clock(tmp_path: Path, procs: Processes) -> None:
    port = free_port()
    runs = tmp_path / "runs"
    master = start_locust(runs, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                          "--expect-workers", "1", "-u", "2", "-r", "2", "-t", "5s",
                          "--sample-interval", "0.5")  # fmt: skip
    # another host, as far as the master can tell: its own hostname (a UTS namespace) and a clock 3 s ahead
    env = _env(LD_PRELOAD=str(_libfaketime()), FAKETIME="+3s", FAKETIME_DONT_FAKE_MONOTONIC="1")
    procs(["unshare", "--uts", "sh", "-c", 'hostname far-worker && exec "$@"', "sh", LOCUST, "-f",
           str(ROOT / "locustfiles" / "concurrent_users.py"), "--worker", "--master-host", "127.0.0.1",
           "--master-port", str(port), "--sample-interval", "0.5"], env=env, log="worker")  # fmt: skip
    _, stderr = master.communicate(timeout=120)
    run = collect(runs, master.returncode, stderr)
    assert run.code == 0, stderr[-3000:]
    far = run.metadata["worker_hosts"]["far-worker"]
    assert abs(far["clock_offset_ms"] - 3000.0) < 20.0, far
    samples = read_stream(run.run_dir / "samples.arrows")
    rows = samples.filter(pc.equal(samples.column("host"), "far-worker"))
    assert rows.num_rows > 0 and set(rows.column("scope").to_pylist()) == {"generator"}
    # Its requests keep the worker's clock (README, "Left out"); its rows moved onto the master's. The worker's last
    # report carries both its last requests (its users wait 0.05-0.2 s) and its last ticks (every 0.5 s), so on one
    # clock they end together; moved, the ticks end about 3 s before the requests. (Anchoring on the run's end
    # instead failed on a busy machine: the last report shipped can be one report interval, 3 s, before the end.)
    [seen] = run.metadata["workers"].values()
    ticks = rows.column("ts_s").to_numpy()
    last_request = pc.max(read_stream(run.run_dir / "requests.arrows").column("ts_s")).as_py()
    assert 2.0 <= last_request - float(ticks.max()) <= 4.0, last_request - float(ticks.max())
    ended = datetime.fromisoformat(run.metadata["ended_at"]).timestamp()
    assert float(ticks.max()) <= ended + 1.0, float(ticks.max()) - ended  # unshifted: up to 3 s after the end
    assert float(ticks.min()) <= seen["first_seen_s"] + 0.5, float(ticks.min()) - seen["first_seen_s"]
    assert "far-worker" in run.report_html


def test_a_taken_agents_port_is_named_and_the_run_goes_on(tmp_path: Path) -> None:
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        locust = start_locust(tmp_path / "runs", "-u", "1", "-r", "1", "-t", "2s", "--agents-bind", f"127.0.0.1:{port}")
        _, stderr = locust.communicate(timeout=120)
    run = collect(tmp_path / "runs", locust.returncode, stderr)
    assert run.code == 0, stderr[-3000:]
    assert "the agents' hub ended with exit status 2" in stderr
    assert "cannot listen on --bind" in (run.run_dir / "hub.log").read_text()
    assert run.metadata["agents"] == []


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["--master", "nowhere"], "--master 'nowhere' is invalid"),
        (["--master", "h:1", "--name", "local"], "--name 'local' is invalid"),
        (["--master", "h:1", "--interval", "0"], "--interval 0 is out of range"),
        (["--master", "h:1", "--backlog", "0"], "--backlog 0 is out of range"),
        (["--master", "h:1", "--heartbeat", "2", "--silence", "1"], "--silence 1 is invalid"),
        (["--master", "h:1", "--role", "sampler", "--pid", "1"], "role 'sampler' is invalid"),
        (["--master", "h:1", "--match", "("], "is not a regex"),
    ],
)
def test_bad_agent_arguments_are_refused_in_one_line(argv: list[str], names: str, capsys: Any) -> None:
    from harness.sampling.agent import parse_args

    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert names in last, last


def test_a_second_agent_with_a_taken_name_is_refused_and_a_restarted_one_resumes(
    tmp_path: Path, procs: Processes
) -> None:
    master = f"127.0.0.1:{free_port()}"
    out = tmp_path / "hub"
    hub = procs(hub_argv(master, str(out)), log="hub")
    first = procs(agent_argv(master, "same", "--interval", "0.2", "--heartbeat", "0.2"), log="first")
    wait_for(lambda: (e := agent_entry(out, "same")) and e["rows"] > 0, 20, "the first agent's rows")
    second = procs(agent_argv(master, "same", "--interval", "0.2"), log="second")
    assert second.wait(timeout=30) == 2
    last = (tmp_path / "logs" / "second-2.log").read_text().strip().splitlines()[-1]
    assert "--name same is taken by a running agent" in last, last
    assert procs.stop(first) == 0
    rows_before = wait_for(lambda: (e := agent_entry(out, "same")) and e["lost"] and e["rows"], 20, "the first lost")
    procs(agent_argv(master, "same", "--interval", "0.2"), log="restarted")  # a new process: batches from 0 again
    wait_for(lambda: agent_entry(out, "same")["rows"] > rows_before + 10, 20, "the restarted agent's rows counted")
    assert procs.stop(hub) == 0
