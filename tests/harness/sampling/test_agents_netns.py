"""An agent on "another host", made of network namespaces on this machine (root: ip netns + a veth pair).

Topology: the service and its agents in one namespace (10.77.<n>.1), the Locust master and its hub in another
(10.77.<n>.2, on a bridge), two Locust workers in a third and fourth (each with its own hostname, a UTS
namespace); the others reach the master's namespace only over their veth pairs. Faults: one agent is killed, and
the service host's link is taken down for 5 s in the middle of the run. The run completes; the killed agent is
named lost to the end, the other lost for the fault's window (from its last message before to its first after),
and its backlog fills the gap in its rows (on the master's clock, though the service host's clock runs 4 s
ahead where libfaketime is installed); the report shows the service host, both worker hosts and this one on
one axis; nothing is left running or configured.
Skipped, saying why, where namespaces cannot be made (not root, no ``ip``, a container without CAP_SYS_ADMIN).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pytest

from harness.recording.recorder import read_stream
from tests.locust_runs import LOCUST, ROOT, collect

TOKEN = "netns-agent-token-5d1e"
FAKETIME_LIB = next((str(p) for p in sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))), "")
WRITE_TOKEN = "netns-write-token-93ab"  # the service listens beyond loopback: its writes need a token
PORT = 5570


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


def _netns_refusal() -> str | None:
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"fl-probe-{os.getpid()}"
    done = _ip("netns", "add", probe, check=False)
    if done.returncode != 0:
        return f"ip netns add is refused here: {done.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


class Topology:
    """Network namespaces on one L2 segment: a bridge in the master's namespace ``mst`` (address ``ip["mst"]``)
    and a veth pair from each other namespace (``svc``, ``w1``, ``w2``) enslaved to it."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        subnet = int(tag, 16) % 200 + 20
        self.tag = tag
        self.ns = {role: f"fl-{role}-{tag}" for role in ("mst", "svc", "w1", "w2")}
        self.ip = {"svc": f"10.77.{subnet}.1", "mst": f"10.77.{subnet}.2", "w1": f"10.77.{subnet}.3",
                   "w2": f"10.77.{subnet}.4"}  # fmt: skip
        self.dev = {role: f"v{role}{tag}" for role in ("svc", "w1", "w2")}  # the end inside each namespace
        self.processes: list[subprocess.Popen[Any]] = []

    def create(self) -> None:
        for ns in self.ns.values():
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        mst = self.ns["mst"]
        _ip("-n", mst, "link", "add", "br0", "type", "bridge")
        _ip("-n", mst, "addr", "add", f"{self.ip['mst']}/24", "dev", "br0")
        _ip("-n", mst, "link", "set", "br0", "up")
        for role, dev in self.dev.items():
            peer = f"b{role}{self.tag}"
            _ip("link", "add", dev, "netns", self.ns[role], "type", "veth", "peer", "name", peer, "netns", mst)
            _ip("-n", self.ns[role], "addr", "add", f"{self.ip[role]}/24", "dev", dev)
            _ip("-n", self.ns[role], "link", "set", dev, "up")
            _ip("-n", mst, "link", "set", peer, "master", "br0")
            _ip("-n", mst, "link", "set", peer, "up")

    def link(self, role: str, up: bool) -> None:
        _ip("-n", self.ns[role], "link", "set", self.dev[role], "up" if up else "down")

    def start(self, role: str, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[Any]:
        handle = open(log, "wb")  # noqa: SIM115  (the process's own log, read after the test)
        process = subprocess.Popen(["ip", "netns", "exec", self.ns[role], *argv], cwd=ROOT, env=env, stdout=handle,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        self.processes.append(process)
        return process

    @staticmethod
    def _pids(ns: str) -> list[str]:
        return _ip("netns", "pids", ns, check=False).stdout.split()

    def destroy(self) -> list[str]:
        """Kill what is left, delete the namespaces (the veth pairs and the bridge go with them); returns what
        was still running."""
        leftovers = []
        for process in self.processes:
            if process.poll() is None:
                leftovers.append(" ".join(map(str, process.args))[:120])
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        # what a stopped process started (uvicorn's workers) may take a moment to follow it out: 10 s at most
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and any(self._pids(ns) for ns in self.ns.values()):
            time.sleep(0.1)
        for ns in self.ns.values():
            for pid in self._pids(ns):
                leftovers.append(f"pid {pid} in {ns}")
                os.kill(int(pid), signal.SIGKILL)
            _ip("netns", "del", ns, check=False)
        return leftovers


@pytest.fixture
def topology() -> Iterator[Topology]:
    if (refusal := _netns_refusal()) is not None:
        pytest.skip(refusal)
    net = Topology()
    try:
        net.create()
        yield net
    finally:
        leftovers = net.destroy()
    assert leftovers == [], f"left running after the test: {leftovers}"


def _env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FEATURELOAD_", "FEATURESTORE_"))}
    return {**base, "PYTHONPATH": str(ROOT), **extra}


def _wait(check: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def _agents(run_dir: Path) -> list[dict[str, Any]]:
    try:
        return json.loads((run_dir / "agents.json").read_text()).get("agents", [])
    except (OSError, ValueError):
        return []


def test_hosts_in_namespaces_on_one_axis_with_a_5s_link_fault_and_a_killed_agent(
    topology: Topology, tmp_path: Path
) -> None:
    net, logs = topology, tmp_path
    url = f"http://{net.ip['svc']}:8000"
    service = net.start("svc", [sys.executable, "-m", "service", "--host", net.ip["svc"], "--port", "8000",
                                "--workers", "2", "--store-path", str(tmp_path / "store")],
                        _env(FEATURESTORE_WRITE_TOKEN=WRITE_TOKEN), logs / "service.log")  # fmt: skip
    ready = [sys.executable, "-c", f"import urllib.request; urllib.request.urlopen('{url}/ready')"]

    def service_ready() -> bool:
        assert service.poll() is None, (logs / "service.log").read_text(errors="replace")[-2000:]
        return subprocess.run(["ip", "netns", "exec", net.ns["svc"], *ready], capture_output=True).returncode == 0

    _wait(service_ready, 60, "the service ready in its namespace")
    hub = f"{net.ip['mst']}:{PORT}"
    agent_env = _env(FEATURELOAD_AGENT_TOKEN=TOKEN)
    # the service host's clock 4 s ahead where libfaketime is installed (its agent only: the hub estimates it)
    skew = {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME": "+4s", "FAKETIME_DONT_FAKE_MONOTONIC": "1"} if FAKETIME_LIB else {}
    agent = net.start("svc", [sys.executable, "-m", "harness.sampling.agent", "--master", hub, "--name", "svc-ns",
                              "--no-gpu", "--interval", "0.5", "--heartbeat", "0.5", "--silence", "1.5", "--role",
                              "service", "--pid", str(service.pid)], {**agent_env, **skew},
                      logs / "agent.log")  # fmt: skip
    doomed = net.start("svc", [sys.executable, "-m", "harness.sampling.agent", "--master", hub, "--name",
                               "doomed-ns", "--no-gpu", "--interval", "0.5", "--heartbeat", "0.5"], agent_env,
                       logs / "doomed.log")  # fmt: skip
    runs = tmp_path / "runs"
    locustfile = str(ROOT / "locustfiles" / "concurrent_users.py")
    locust = net.start("mst", [LOCUST, "-f", locustfile, "--headless", "--master", "--master-bind-host",
                               net.ip["mst"], "--master-bind-port", "5557", "--expect-workers", "2", "--runs-dir",
                               str(runs), "--only-summary", "--no-progress", "-H", url, "--load-catalog",
                               "--catalog-size", "300", "-u", "4", "-r", "4", "-t", "16s", "--sample-interval", "0.5",
                               "--agents-bind", hub],
                       _env(FEATURELOAD_AGENT_TOKEN=TOKEN, FEATURELOAD_WRITE_TOKEN=WRITE_TOKEN),
                       logs / "locust.log")  # fmt: skip
    for role in ("w1", "w2"):  # each worker its own hostname too (a UTS namespace): another host to the master
        net.start(role, ["unshare", "--uts", "sh", "-c", f'hostname {role}-ns && exec "$@"', "sh", LOCUST, "-f",
                         locustfile, "--worker", "--master-host", net.ip["mst"], "--master-port", "5557",
                         "--sample-interval", "0.5"], _env(), logs / f"{role}.log")  # fmt: skip
    run_dir = _wait(lambda: next((d for d in runs.glob("*") if (d / "agents.json").exists()), None)
                    if runs.exists() else None, 60, "the hub's agents.json")  # fmt: skip
    _wait(lambda: {a["name"] for a in _agents(run_dir) if a["rows"] > 4} == {"svc-ns", "doomed-ns"}, 30,
          "both agents' rows across the bridge")  # fmt: skip
    _wait(lambda: (run_dir / "locust_stats_history.csv").exists(), 30, "the load started")
    doomed.send_signal(signal.SIGKILL)
    killed_s = time.time()
    down_s = time.time()
    net.link("svc", up=False)
    time.sleep(5.0)  # the fault itself: 5 s without the service host's link
    net.link("svc", up=True)
    up_s = time.time()
    code = locust.wait(timeout=120)
    stderr = (logs / "locust.log").read_text(errors="replace")
    run = collect(runs, code, stderr)
    assert code in (0, 1), stderr[-3000:]  # requests sent while the link was down fail
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(timeout=15) == 0
    service.send_signal(signal.SIGTERM)
    service.wait(timeout=30)

    agents = {a["name"]: a for a in run.metadata["agents"]}
    entry = agents["svc-ns"]
    assert abs(entry["clock_offset_ms"] - (4000.0 if skew else 0.0)) < 20, entry
    [window] = entry["lost"]
    assert down_s - 1.5 <= window["from_s"] <= down_s + 0.5, (window, down_s)
    assert window["to_s"] is not None and up_s <= window["to_s"] <= up_s + 6.0, (window, up_s)
    [gone] = agents["doomed-ns"]["lost"]
    assert gone["to"] is None and killed_s - 1.5 <= gone["from_s"] <= killed_s + 0.1, (gone, killed_s)
    # one axis: the service host's processes (its backlog filled the fault's gap) and both workers' hosts
    samples = read_stream(run.run_dir / "samples.arrows")
    mine = samples.filter(pc.and_(pc.equal(samples.column("host"), "svc-ns"), pc.equal(samples.column("scope"),
                                                                                    "service")))  # fmt: skip
    ticks = np.unique(mine.column("ts_s").to_numpy())
    assert ticks.size > 10 and ticks[0] < down_s and ticks[-1] > up_s
    # 0.5 s ticks, none lost across the 5 s: a lost backlog would leave a 5 s hole and no tick inside the fault.
    # The bounds leave room for a sampler delayed by a busy machine (a full suite: gaps of 2.2 s seen outside it).
    fault = ticks[(ticks >= down_s - 1.0) & (ticks <= up_s + 1.0)]
    assert np.diff(fault).max() < 3.0, np.diff(fault)
    assert int(((fault > down_s) & (fault < up_s)).sum()) >= 5, (fault, down_s, up_s)
    hosts = set(samples.column("host").to_pylist())
    assert {"local", "svc-ns", "doomed-ns", "w1-ns", "w2-ns"} <= hosts, hosts
    assert set(run.metadata["worker_hosts"]) == {"w1-ns", "w2-ns"}
    for path in run.run_dir.rglob("*"):  # the agents' token is never written
        assert not path.is_file() or TOKEN.encode() not in path.read_bytes(), path
    html = run.report_html
    assert "svc-ns" in html and "w1-ns" in html and "w2-ns" in html
    assert html.count("was lost from") == 2
