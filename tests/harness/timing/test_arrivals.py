"""The open model distributed (harness.timing.arrivals): the arrival rate split across Locust workers, and a lost
worker's share taken over by the others and accounted for in metadata.json and the report.

Real runs: ``locust --headless --processes 2 --arrival-rate 100`` against the embedded service, the master on
a free port; the kill test SIGKILLs one forked worker mid-run.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from harness.timing.hdr_log import read_hdr
from service.launcher import free_port
from tests.locust_runs import FinishedRun, collect, spawning_done, start_locust
from tests.machine_load import MachineWatch
from tests.unpatched import locust_unpatched

with locust_unpatched():  # these tests need Locust's classes, not a gevent-patched pytest process
    import gevent
    from locust.event import Events

    from harness.timing.arrivals import RATE_MESSAGE, ArrivalScheduler, register_rate_listener
    from harness.timing.latency import LatencySide

RATE = 100.0


class _FakeRunner:
    """A LocalRunner's messaging, as Locust does it: one listener per message type, called with the environment."""

    def __init__(self, environment: SimpleNamespace) -> None:
        self.environment, self.custom_messages = environment, {}

    def register_message(self, msg_type: str, listener) -> None:
        self.custom_messages[msg_type] = listener

    def send_message(self, msg_type: str, data: dict) -> None:
        self.custom_messages[msg_type](environment=self.environment, msg=SimpleNamespace(data=data))


def test_rate_messages_reach_the_current_run_of_a_web_ui_session() -> None:
    environment = SimpleNamespace(events=Events())
    runner = _FakeRunner(environment)
    first = environment.featureload_latency = LatencySide("auto")
    register_rate_listener(runner, first)  # the first run's RateController registers the listener
    runner.send_message(RATE_MESSAGE, {"rate_per_s": 10.0})
    second = environment.featureload_latency = LatencySide("auto")  # the next Start makes a new run
    register_rate_listener(runner, second)  # already registered: Locust keeps the first listener
    runner.send_message(RATE_MESSAGE, {"rate_per_s": 25.0})
    assert second.open_model["rate_per_s"] == 25.0
    assert first.open_model["rate_per_s"] == 10.0
    environment.events.test_stopping.fire(environment=environment)
    assert second.stopping and not first.stopping


def test_no_arrival_is_sent_once_the_run_is_stopping() -> None:
    """Locust's stop() holds the loop for 50-70 ms (inspect.stack()) before it fires test_stopping; the arrivals
    due meanwhile fall after the run's end. Sent late, their lag made a 12 s run at 100 req/s INVALID."""
    now = [0.0]

    def clock() -> float:
        now[0] += 0.001  # each look at the clock moves it on, so the scheduler never spins in place
        return now[0]

    sent: list[float] = []
    options = SimpleNamespace(max_in_flight=10, arrival_process="constant")
    environment = SimpleNamespace(parsed_options=options, events=Events())
    user = SimpleNamespace(environment=environment, tasks=[lambda _user: sent.append(now[0])])
    side = environment.featureload_latency = LatencySide("auto")
    register_rate_listener(_FakeRunner(environment), side)
    side.open_model["rate_per_s"] = 100.0
    scheduler = gevent.spawn(ArrivalScheduler(user, side, clock=clock).run)
    try:
        for _ in range(2_000):  # bounded: 5 arrivals 10 ms of fake time apart take ~50 turns
            if len(sent) >= 5:
                break
            gevent.sleep(0.001)
        assert len(sent) >= 5
        environment.events.test_stopping.fire(environment=environment)
        before = len(sent)
        now[0] += 1.0  # the stop held the loop: a second's arrivals are now due
        for _ in range(20):
            gevent.sleep(0.005)
        assert len(sent) == before, f"{len(sent) - before} arrivals sent after test_stopping"
        assert side.stopping
    finally:
        scheduler.kill()


def _workers_of(process: psutil.Process, count: int, timeout_s: float = 30.0) -> list[psutil.Process]:
    """The ``--processes`` workers Locust forked (children running Locust; the service and reaper are not)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        forked = [c for c in process.children() if c.cmdline()[:2] == process.cmdline()[:2]]
        if len(forked) >= count:
            return forked
        time.sleep(0.2)
    raise AssertionError(f"Locust did not fork {count} workers")


def _achieved_per_second(run_dir: Path) -> dict[int, int]:
    """Completed requests per epoch second, from the merged histograms."""
    table = read_hdr(run_dir / "latency.hdr.arrows")
    per_second: dict[int, int] = {}
    for second, kind, count in zip(*(table.column(c).to_pylist() for c in ("interval_s", "kind", "count")),
                                   strict=True):  # fmt: skip
        if kind == "response":
            per_second[second] = per_second.get(second, 0) + count
    return per_second


def _run(tmp_path: Path, seconds: int, kill_after_s: float | None = None) -> FinishedRun:
    """The run; with ``kill_after_s``, one worker is SIGKILLed that long after every user was spawned."""
    port = str(free_port())
    process = start_locust(
        tmp_path / "runs", "--processes", "2", "-u", "2", "-r", "2", "--arrival-rate", f"{RATE:g}", "-t",
        f"{seconds}s", "--catalog-size", "300", "--master-bind-port", port, "--master-port", port,
    )  # fmt: skip
    lines: list[str] = []
    spawned = threading.Event()

    def read() -> None:
        for line in process.stderr:  # type: ignore[union-attr]
            lines.append(line)
            if spawning_done(line):
                spawned.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if kill_after_s is not None:
            workers = _workers_of(psutil.Process(process.pid), 2)
            assert spawned.wait(60), "".join(lines[-30:])
            time.sleep(kill_after_s)
            workers[0].send_signal(signal.SIGKILL)
        process.wait(timeout=120)
        reader.join(10)
    finally:
        if process.poll() is None:
            process.kill()
    return collect(tmp_path / "runs", process.returncode, "".join(lines))


@pytest.mark.slow
def test_the_rate_is_split_across_two_workers(tmp_path: Path, other_load: MachineWatch) -> None:
    run = _run(tmp_path, 6)
    assert run.code == 0, run.stderr[-3000:]
    meta, arrivals = run.metadata, run.summary["latency_hdr"]["arrivals"]
    assert len(meta["workers"]) == 2 and meta["workers_lost"] == []
    ledger = meta["open_model"]["workers"]
    assert set(ledger) == set(meta["workers"])
    assert meta["open_model"]["lost_workers"] == []
    assert arrivals["offered"] == pytest.approx(RATE * meta["duration_s"], rel=0.05), arrivals
    # sending on time is a measurement: a worker starved by other processes sends less than its half
    with other_load.judging("each worker sending its half of the rate"):
        for worker, entry in ledger.items():  # each got half the rate, and sent it
            assert entry["scheduled"] == pytest.approx(RATE / 2 * meta["duration_s"], rel=0.15), (worker, entry)
            assert entry["scheduled"] == pytest.approx(entry["offered"], rel=0.15), (worker, entry)
        assert arrivals["achieved_rate_per_s"] == pytest.approx(RATE, rel=0.15), arrivals
    # the master merged both workers' histograms: every request Locust counted
    assert sum(_achieved_per_second(run.run_dir).values()) == meta["locust_totals"]["requests"] > 0


@pytest.mark.slow
def test_a_lost_worker_s_share_goes_to_the_other_and_is_accounted_for(tmp_path: Path) -> None:
    run = _run(tmp_path, 10, kill_after_s=1.0)
    meta = run.metadata
    assert run.code in (0, 1), run.stderr[-3000:]  # the lost worker's in-flight requests may count as failures
    assert meta["duration_s"] >= 9.5  # the run went on to its end
    (lost,) = meta["workers_lost"]
    (share,) = meta["open_model"]["lost_workers"]
    assert share["worker"] == lost
    # between the kill and Locust noticing it (4-5 s without heartbeat) the lost worker's half was never sent
    assert share["never_scheduled"] == pytest.approx(share["offered"] - share["scheduled"], abs=1)
    assert RATE / 2 * 2 <= share["never_scheduled"] <= RATE / 2 * 7, share
    assert share["scheduled"] <= share["offered"]  # what it sent after its last report (every 3 s) died with it
    survivor = (set(meta["workers"]) - {lost}).pop()
    assert meta["open_model"]["workers"][survivor]["lost_at_s"] is None
    # after the loss was noticed the survivor carried the whole rate
    per_second = _achieved_per_second(run.run_dir)
    after = [per_second.get(s, 0) for s in range(int(share["lost_at_s"]) + 1, int(max(per_second)))]
    assert after and sum(after) / len(after) == pytest.approx(RATE, rel=0.25), (after, share)
    html = run.report_html
    assert f"Worker <b>{lost}</b> was lost" in html and 'id="open-model-workers"' in html
