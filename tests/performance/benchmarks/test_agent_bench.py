"""The cost of agents: printed, and checked against 5x the budget (an order-of-magnitude regression, not noise).

Budgets: an agent at 1 Hz following 10 processes <= 1% of one core; the hub ingesting 20 agents at 10 Hz <= 2%.

- ``test_agent_cpu_at_1hz``: ``python -m harness.sampling.agent`` at 1 Hz (10 idle processes by --match, the
  host) streaming to a real hub; the agent process's CPU time over ``WINDOW_S`` once it streams (start-up left out).
- ``test_hub_ingestion_20_agents_at_10hz``: a real hub process fed by 20 simulated agents (ZeroMQ DEALER sockets in
  this process replaying rows of 10 ticks of 12 processes + the host, built once with the agent's own encoding),
  each sending one batch per second as a 10 Hz agent does, plus heartbeats and pongs; the hub process's CPU time
  over ``WINDOW_S`` (start-up left out). ``per_tick`` sends one batch per tick instead (200 messages/s), printed
  only: agents group the ticks of a second into one batch because the hub's cost is per message.

Run: ``pytest tests/performance/benchmarks/test_agent_bench.py -s -p no:cacheprovider``
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import zmq

from harness.recording._columns import record_batch
from harness.recording.recorder import batch_to_bytes
from harness.sampling.sampler import HOST_SCHEMA, SAMPLE_SCHEMA
from harness.sampling.wire import decode, encode
from service.launcher import free_port

ROOT = Path(__file__).resolve().parents[3]
WINDOW_S = 10.0
AGENT_BUDGET_PERCENT = 1.0
HUB_BUDGET_PERCENT = 2.0
AGENTS, HZ, PROCESSES_PER_TICK = 20, 10, 12


def _env() -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("FEATURELOAD_")}, "PYTHONPATH": str(ROOT)}


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    bind, out = f"127.0.0.1:{free_port()}", tmp_path / "hub"
    process = subprocess.Popen([sys.executable, "-m", "harness.sampling.hub", "--bind", bind, "--out", str(out)],
                               env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    yield bind, process, out
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=15)


def _agents(out: Path) -> list[dict[str, object]]:
    try:
        return json.loads((out / "agents.json").read_text()).get("agents", [])
    except (OSError, ValueError):
        return []


def _wait(check: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def test_agent_cpu_at_1hz(hub: tuple[str, subprocess.Popen[bytes], Path]) -> None:
    bind, _, out = hub
    token = f"agent-bench-{uuid.uuid4().hex}"
    idle = [subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()", token], stdin=subprocess.PIPE)
            for _ in range(10)]  # fmt: skip
    agent = subprocess.Popen([sys.executable, "-m", "harness.sampling.agent", "--master", bind, "--name", "bench",
                              "--no-gpu", "--match", token], env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait(lambda: any(a["rows"] for a in _agents(out)), 30, "the agent's first rows")
        proc = psutil.Process(agent.pid)
        before, started = _cpu_s(proc), time.monotonic()
        time.sleep(WINDOW_S)  # the measurement window itself
        percent = (_cpu_s(proc) - before) / (time.monotonic() - started) * 100.0
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=15)
        for child in idle:
            child.kill()
            child.wait(timeout=10)
    print(f"\nagent at 1 Hz, 10 processes + host, streaming: {percent:.2f}% of one core over {WINDOW_S:g} s "
          f"(budget {AGENT_BUDGET_PERCENT}%)")  # fmt: skip
    assert percent < 5 * AGENT_BUDGET_PERCENT


def _frames(name: str, ticks: int) -> list[bytes]:
    """One batch of ``ticks`` ticks as an agent encodes it: samples and host streams."""
    now = time.time()
    samples = [(now + t / HZ, "service", 1000 + p, 1, "python", "python -m service", 3.0, 1.5, 50 << 20, None, 4,
                20, 100, 10, 0, 0, name) for t in range(ticks) for p in range(PROCESSES_PER_TICK)]  # fmt: skip
    hosts = [(now + t / HZ, 20.0, [20.0, 20.0], 8 << 30, 2 << 30, 6 << 30, 0, 0.5, 0.5, 0.5, 0, 0, 0, 0, name)
             for t in range(ticks)]  # fmt: skip
    return [batch_to_bytes(record_batch(samples, SAMPLE_SCHEMA)), batch_to_bytes(record_batch(hosts, HOST_SCHEMA))]


def _simulate(bind: str, stop: threading.Event, per_tick: bool) -> None:
    """20 agents in one thread: hello, a batch every second (every tick with ``per_tick``), a beat a second,
    a pong for every ping."""
    context = zmq.Context()
    sockets, frames, seqs = [], [], []
    for i in range(AGENTS):
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"tcp://{bind}")
        name = f"sim-{i:02d}"
        sock.send_multipart(encode({"kind": "hello", "name": name, "token": "", "heartbeat_s": 1.0, "interval_s": 0.1}))
        sockets.append((name, sock))
        frames.append(_frames(name, 1 if per_tick else HZ))
        seqs.append(0)
    poller = zmq.Poller()
    for _, sock in sockets:
        poller.register(sock, zmq.POLLIN)
    period = 1.0 / HZ if per_tick else 1.0
    next_send = next_beat = time.monotonic()
    while not stop.is_set():
        now = time.monotonic()
        if now >= next_send:
            next_send += period
            for i, (name, sock) in enumerate(sockets):
                sock.send_multipart(encode({"kind": "batch", "name": name, "token": "", "seq": seqs[i],
                                            "streams": ["samples", "host"], "rows": 0}, *frames[i]))  # fmt: skip
                seqs[i] += 1
        if now >= next_beat:
            next_beat += 1.0
            for name, sock in sockets:
                sock.send_multipart(encode({"kind": "beat", "name": name, "token": "", "backlog": 0}))
        for sock, _ in poller.poll(timeout=max(0.0, min(next_send, next_beat) - time.monotonic()) * 1000):
            name = next(n for n, s in sockets if s is sock)
            while True:
                try:
                    message = sock.recv_multipart(flags=zmq.NOBLOCK)
                except zmq.Again:
                    break
                decoded = decode(message)
                if decoded and decoded[0]["kind"] == "ping":
                    t = time.time()
                    sock.send_multipart(encode({"kind": "pong", "name": name, "token": "", "t0": decoded[0]["t0"],
                                                "t1": t, "t2": t}))  # fmt: skip
    for _, sock in sockets:
        sock.close()
    context.term()


@pytest.mark.parametrize("per_tick", [False, True], ids=["batched", "per_tick"])
def test_hub_ingestion_20_agents_at_10hz(hub: tuple[str, subprocess.Popen[bytes], Path], per_tick: bool) -> None:
    bind, process, out = hub
    stop = threading.Event()
    feeder = threading.Thread(target=_simulate, args=(bind, stop, per_tick), daemon=True)
    feeder.start()
    try:
        _wait(lambda: len([a for a in _agents(out) if a["rows"]]) == AGENTS, 30, "rows from all 20 agents")
        proc = psutil.Process(process.pid)
        before, started = _cpu_s(proc), time.monotonic()
        time.sleep(WINDOW_S)  # the measurement window itself
        percent = (_cpu_s(proc) - before) / (time.monotonic() - started) * 100.0
        rows = sum(int(a["rows"]) for a in _agents(out))  # type: ignore[call-overload]
    finally:
        stop.set()
        feeder.join(timeout=10)
    mode = "one batch per tick (200 messages/s)" if per_tick else "one batch of 10 ticks per second (20 messages/s)"
    print(f"\nhub ingesting {AGENTS} agents x {HZ} Hz x {PROCESSES_PER_TICK} processes, {mode}: {percent:.2f}% of one "
          f"core over {WINDOW_S:g} s, {rows} rows so far (budget {HUB_BUDGET_PERCENT}%)")  # fmt: skip
    assert rows > 0
    if not per_tick:  # what agents send; one batch per tick is printed for comparison only
        assert percent < 5 * HUB_BUDGET_PERCENT
