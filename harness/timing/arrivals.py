"""The open model: requests arrive at a planned rate, whatever the service's answers (k6's arrival-rate
executors, Gatling's open injection, wrk2's constant throughput).

Locust users form a closed model: a user waits for its answer before it sends again, so when the service stalls
the load drops and the latency real users would have seen is never recorded (coordinated omission). In the open
model one scheduler greenlet per Locust process plans arrivals on a monotonic clock (``--arrival-process``:
``constant`` spacing 1/rate, or ``poisson`` with exponential gaps) and hands each to one of at most
``--max-in-flight`` long-lived arrival greenlets (started on demand; an idle one waits on a queue, so an arrival
costs no greenlet spawn); an arrival that finds them all busy is dropped and counted (``lag`` rows of
``harness.timing.hdr``, ``failures``), never silently skipped. Each arrival runs one of the user class's own tasks,
picked with Locust's weights, on the scheduler user, with its intended start on the greenlet, so the request hook
records both latencies (``harness.timing.latency``) and the scheduling lag. The user's HTTP pool holds ``--connections``
keep-alive connections (as wrk2's ``-c``): an arrival that finds them all busy waits for one, and that wait is in
its response time (from the intended start), not in its service time (from the send).

The rate: ``--arrival-rate R`` (total requests/s), or the profile's rate shape (``profiles.rate_shapes``: rate
stages, stress by rate). The master (or the only process) decides the total rate each ``CONTROL_INTERVAL_S`` and
sends each worker its share (total / workers ready or running) in a ``RATE_MESSAGE``; when a worker is lost, the
others take over its share at the next tick, and the report counts the arrivals that were offered but never
scheduled. Use one user per Locust process (``-u`` = number of workers): extra users of a process stay idle.
"""

from __future__ import annotations

import gc
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent.queue import Queue
from locust.runners import STATE_MISSING, MasterRunner, WorkerRunner

from harness.locust_side.options import ARRIVAL_PROCESSES, DEFAULT_CONNECTIONS
from harness.timing.latency import INTENDED_ATTR, LatencySide, latency_side

__all__ = [
    "CONTROL_INTERVAL_S",
    "RATE_MESSAGE",
    "ArrivalClock",
    "OpenModelMixin",
    "RateController",
    "open_model_enabled",
    "quiet_heap",
]

logger = logging.getLogger("featureload")

RATE_MESSAGE = "featureload_rate"
CONTROL_INTERVAL_S = 0.25
EPOCH_REFRESH_S = 1.0  # the epoch-monotonic offset is read again this often (a wall-clock step)
SPIN_S = 0.002  # closer than this to an arrival, the scheduler yields instead of sleeping (timers round to ~1 ms)
PROCESSES = ARRIVAL_PROCESSES  # --arrival-process, --connections: declared with the other options


def open_model_enabled(environment: Any) -> bool:
    """Whether this run uses the open model: ``--arrival-rate`` > 0 or a rate-driven profile shape."""
    options = environment.parsed_options
    if options is not None and (getattr(options, "arrival_rate", 0) or 0) > 0:
        return True
    if options is not None and getattr(options, "featureload_rate_shape", False):
        return True
    return bool(getattr(environment.shape_class, "rate_driven", False))


class ArrivalClock:
    """Intended arrival times on a monotonic clock: ``next(rate)`` returns the next one for the current rate
    (requests/s of this process); constant spacing or exponential (poisson) gaps. A rate of 0 pauses: the next
    arrival after a pause is planned from the moment the rate is back, not in the past."""

    def __init__(self, process: str = "constant", clock: Callable[[], float] = time.monotonic, seed: int | None = None):
        if process not in PROCESSES:
            raise ValueError(f"arrival process {process!r} is invalid: expected one of {', '.join(PROCESSES)}")
        self.process = process
        self._clock = clock
        self._random = random.Random(seed)
        self._last: float | None = None

    def next(self, rate_per_s: float) -> float | None:
        """The next intended arrival (monotonic seconds), or None while the rate is 0."""
        if rate_per_s <= 0:
            self._last = None
            return None
        gap = self._random.expovariate(rate_per_s) if self.process == "poisson" else 1.0 / rate_per_s
        if self._last is None:
            self._last = self._clock() + self._random.random() * gap  # a random phase: workers do not beat
            return self._last
        self._last += gap
        return self._last


class OpenModelMixin:
    """Mixed into a Locust user class (before FastHttpUser): with the open model on, the first user of the process
    schedules arrivals instead of running its task loop; without it, the user runs as Locust runs it."""

    environment: Any
    tasks: list[Any]
    concurrency: int

    def __init__(self, environment: Any, *args: Any, **kwargs: Any) -> None:
        if open_model_enabled(environment):  # the HTTP pool's size
            options = environment.parsed_options
            self.concurrency = max(
                1, min(int(options.max_in_flight), int(getattr(options, "connections", DEFAULT_CONNECTIONS)))
            )
        super().__init__(environment, *args, **kwargs)

    def run(self) -> None:
        side = latency_side(self.environment)
        if side is None or not open_model_enabled(self.environment):
            super().run()  # type: ignore[misc]
            return
        if not side.open_model.setdefault("scheduler_claimed", False):
            side.open_model["scheduler_claimed"] = True
            self.on_start()  # type: ignore[attr-defined]
            try:
                ArrivalScheduler(self, side).run()
            except gevent.GreenletExit:
                pass
            finally:
                side.open_model["scheduler_claimed"] = False
                self.on_stop()  # type: ignore[attr-defined]
            return
        logger.info("open model: one scheduler per Locust process; this extra user stays idle")
        while True:
            gevent.sleep(3600)


def quiet_heap() -> None:
    """Collect once, then move every object alive to the garbage collector's permanent generation (``gc.freeze``):
    call when the process has started up, before arrivals run. Without it each full collection walked Locust's,
    gevent's and pyarrow's start-up objects again (40-55 ms, about once a second at 5,000 req/s), all that time
    holding the scheduler: the arrivals' lag p99 was the length of a full collection. Objects made afterwards are
    collected as before."""
    gc.collect()
    gc.freeze()


class ArrivalScheduler:
    """Runs arrivals for one process: the rate is ``side.open_model["rate_per_s"]`` (set by RATE_MESSAGE)."""

    def __init__(self, user: Any, side: LatencySide, clock: Callable[[], float] = time.monotonic) -> None:
        options = user.environment.parsed_options
        tasks = list(getattr(user, "tasks", []) or [])
        if not tasks or not all(callable(t) and not isinstance(t, type) for t in tasks):
            raise ValueError(f"{type(user).__name__}: the open model runs @task functions of the user class; "
                             "TaskSet classes are not supported")  # fmt: skip
        self.user, self.side, self.tasks = user, side, tasks
        self.max_in_flight = max(1, int(options.max_in_flight))
        self.arrivals = ArrivalClock(getattr(options, "arrival_process", "constant"), clock)
        self._clock = clock
        # long-lived arrival greenlets (started on demand, at most max_in_flight): an idle one waits on the queue
        self._workers: list[gevent.Greenlet] = []
        self._idle = 0  # workers blocked in self._queue.get(): each arrival put on the queue has one to take it
        self._queue: Queue = Queue()
        self._epoch_offset = 0.0  # epoch s minus monotonic s, refreshed every EPOCH_REFRESH_S
        self._epoch_at = -EPOCH_REFRESH_S

    def run(self) -> None:
        """Plan and start arrivals until the user is stopped (GreenletExit); in-flight arrivals are then ended."""
        side = self.side
        open_model, histograms, arrivals = side.open_model, side.histograms, self.arrivals
        side.stopping = False
        try:
            while True:
                rate = float(open_model.get("rate_per_s") or 0.0)
                due = arrivals.next(rate) if not side.stopping else None
                if due is None:
                    gevent.sleep(CONTROL_INTERVAL_S / 5)
                    continue
                now = self._wait_until(due)
                if side.stopping:
                    # Locust's stop() first spends 50-70 ms in inspect.stack(), holding the loop: arrivals due
                    # then fall after the run's end, and sent, their lag alone made a 12 s run at 100 req/s INVALID
                    continue
                if now - self._epoch_at >= EPOCH_REFRESH_S:
                    self._epoch_offset, self._epoch_at = time.time() - self._clock(), now
                if self._idle:
                    self._idle -= 1
                    self._queue.put((due, due + self._epoch_offset))
                elif len(self._workers) < self.max_in_flight:
                    self._workers.append(gevent.spawn(self._worker, due, due + self._epoch_offset))
                else:
                    histograms.count_dropped(now + self._epoch_offset)
        finally:
            gevent.killall(self._workers, block=False)

    def _wait_until(self, due_s: float) -> float:
        """Return once ``due_s`` has come: sleep on a timer when it is far, wait for an idle loop when it is near;
        returns now.

        Near, ``gevent.idle()`` and not ``gevent.sleep(0)``: sleep(0) resumes the scheduler in the loop's next
        round of callbacks whatever I/O is pending, so the spin took a turn between any two answers; at 16,000
        req/s offered py-spy put 30% of the generator's CPU in that spin, and the open model held 12,000 req/s
        where wrk did 15,000 (lag p99 1.3 ms at 5,000 req/s). ``idle()`` resumes it once no I/O or callback is
        pending: the answers are read first, and the loop still spins only while it has nothing else to do."""
        while (left := due_s - (now := self._clock())) > 0:
            if left > 2 * SPIN_S:
                gevent.sleep(left - SPIN_S)
            else:
                gevent.idle()
        return now

    def _worker(self, due_s: float, epoch_s: float) -> None:
        get, arrival = self._queue.get, self._arrival
        while True:
            arrival(due_s, epoch_s)
            self._idle += 1
            due_s, epoch_s = get()

    def _arrival(self, due_s: float, epoch_s: float) -> None:
        lag_s = self._clock() - due_s
        self.side.histograms.record(epoch_s + lag_s, "lag", "", "", lag_s * 1000.0, False)
        setattr(gevent.getcurrent(), INTENDED_ATTR, (due_s, epoch_s))
        task = self.tasks[0] if len(self.tasks) == 1 else random.choice(self.tasks)
        try:
            task(self.user)
        except gevent.GreenletExit:
            raise
        except Exception as error:  # a task's bug must not stop the arrivals; Locust logs it the same way
            logger.error("open-model arrival failed in %s: %s", getattr(task, "__name__", task), error)
            self.user.environment.events.user_error.fire(user_instance=self.user, exception=error,
                                                         tb=error.__traceback__)  # fmt: skip


class RateController:
    """Master (or the only process): every CONTROL_INTERVAL_S, decide the total rate and send each process its
    share. The total comes from the shape's ``arrival_rate()`` when it has one, else ``--arrival-rate``.

    Distributed, it keeps a ledger per worker (``worker_ledger``): the arrivals offered to it (its share
    integrated over the time it was counted), the arrivals it scheduled (the "lag" rows of its reports,
    ``count_scheduled``), and when it was lost. A lost worker's share goes to the others at the next tick; what it
    was offered but never scheduled (or scheduled and never reported) is its lost share, which metadata.json
    (``open_model.workers``, ``open_model.lost_workers``) and the report name."""

    def __init__(self, environment: Any, runner: Any, side: LatencySide) -> None:
        self.environment, self.runner, self.side = environment, runner, side
        self.plan: list[dict[str, float]] = []  # changes of the offered rate: {"at_s": epoch s, "rate_per_s": R}
        self.ledger: dict[str, dict[str, Any]] = {}  # worker id -> offered, scheduled, first/lost times
        self._greenlet: gevent.Greenlet | None = None
        self._last: tuple[float, int] | None = None
        self._sent_at = 0.0
        self._assigned: tuple[list[str], float, float] | None = None  # (worker ids, share per worker, since s)
        if not isinstance(runner, MasterRunner):
            register_rate_listener(runner)

    def total_rate(self) -> float:
        shape = self.environment.shape_class
        if shape is not None and hasattr(shape, "arrival_rate"):
            return float(shape.arrival_rate() or 0.0)
        return float(getattr(self.environment.parsed_options, "arrival_rate", 0.0) or 0.0)

    def workers(self) -> list[str]:
        """The workers that get a share: ready, spawning or running (Locust's ``worker_count``); [] locally."""
        if not isinstance(self.runner, MasterRunner):
            return []
        clients = self.runner.clients
        return sorted(c.id for c in clients.ready + clients.spawning + clients.running)

    def processes(self) -> int:
        return max(1, len(self.workers())) if isinstance(self.runner, MasterRunner) else 1

    def start(self) -> None:
        if self._greenlet is None:
            options = self.environment.parsed_options
            # workers learn that a rate shape drives the run from the options the master's spawn message carries
            options.featureload_rate_shape = bool(getattr(self.environment.shape_class, "rate_driven", False))
            self.side.open_model.update(arrival_process=options.arrival_process,
                                        max_in_flight_per_process=options.max_in_flight, plan=self.plan)  # fmt: skip
            if isinstance(self.runner, MasterRunner):
                self.side.open_model.update(workers=self.ledger, lost_workers=[])
            self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        """End the plan (call when the test stops; idempotent): the offered rate drops to 0 from now."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True)
            self._greenlet = None
            now = time.time()
            self._account(now, [], 0.0)
            self._record(now, 0.0, self._last[1] if self._last else 1)

    def tick(self) -> None:
        """Send the current share if it changed, or if a second has passed (a worker that joined late)."""
        rate, workers = self.total_rate(), self.workers()
        processes = max(1, len(workers)) if isinstance(self.runner, MasterRunner) else 1
        now = time.time()
        share = rate / processes
        self._account(now, workers, share)
        if self._last != (rate, processes) or now - self._sent_at >= 1.0:
            if self._last is None or self._last != (rate, processes):
                self._record(now, rate, processes)
            self._last, self._sent_at = (rate, processes), now
            self.runner.send_message(RATE_MESSAGE, {"rate_per_s": share, "total_rate_per_s": rate,
                                                    "processes": processes})  # fmt: skip

    def count_scheduled(self, worker: str, arrivals: int) -> None:
        """Arrivals ``worker`` scheduled (sent or dropped), as its report carried them."""
        if arrivals:
            entry = self.ledger.setdefault(worker, _ledger_entry(time.time()))
            entry["scheduled"] += int(arrivals)

    def _account(self, now: float, workers: list[str], share: float) -> None:
        """Credit each worker assigned since the last tick with its share over that time; note lost workers."""
        if not isinstance(self.runner, MasterRunner):
            return
        if self._assigned is not None:
            previous, previous_share, since = self._assigned
            for worker in previous:
                entry = self.ledger.setdefault(worker, _ledger_entry(since))
                entry["offered"] += previous_share * max(0.0, now - since)
                if worker not in workers and entry["lost_at_s"] is None and self._is_lost(worker):
                    entry["lost_at_s"] = round(now, 3)
                    logger.warning("open model: worker %s lost; its share of the rate goes to the %d left",
                                   worker, len(workers))  # fmt: skip
        for worker in workers:
            self.ledger.setdefault(worker, _ledger_entry(now))
        self._assigned = (workers, share, now)

    def _is_lost(self, worker: str) -> bool:
        """Locust marked the worker missing (no heartbeat for 3 s), or it left without stopping first."""
        client = self.runner.clients.get(worker)
        return client is None or client.state == STATE_MISSING

    def summarize(self) -> None:
        """Write each lost worker's share into ``open_model["lost_workers"]``: call once the workers' last
        reports are in (their scheduled arrivals), before metadata.json is written."""
        lost = []
        for worker, entry in sorted(self.ledger.items()):
            entry["offered"] = round(entry["offered"], 1)
            if entry["lost_at_s"] is not None:
                missing = max(0, round(entry["offered"]) - entry["scheduled"])
                lost.append({"worker": worker, "lost_at_s": entry["lost_at_s"], "offered": round(entry["offered"]),
                             "scheduled": entry["scheduled"], "never_scheduled": missing})  # fmt: skip
        if isinstance(self.runner, MasterRunner):
            self.side.open_model["lost_workers"] = lost

    def _record(self, now: float, rate: float, processes: int) -> None:
        self.plan.append({"at_s": round(now, 3), "rate_per_s": rate, "processes": processes})

    def _loop(self) -> None:
        while True:
            self.tick()
            gevent.sleep(CONTROL_INTERVAL_S)


def _ledger_entry(since_s: float) -> dict[str, Any]:
    return {"first_assigned_s": round(since_s, 3), "offered": 0.0, "scheduled": 0, "lost_at_s": None}


def register_rate_listener(runner: Any, side: LatencySide | None = None) -> None:
    """A worker (or the only process) takes its share of the rate from RATE_MESSAGE, and plans no arrival once
    Locust fires test_stopping (the run's time is up, or a stop was asked for). The share goes to the
    process's current LatencySide (``environment.featureload_latency``): a web UI session makes a new one per run,
    and the listener is registered once, so it looks the side up at each message; ``side`` is the fallback."""

    def on_rate(environment: Any, msg: Any, **_: Any) -> None:
        target = latency_side(environment) or side
        if target is not None:
            target.open_model["rate_per_s"] = float(msg.data.get("rate_per_s") or 0.0)

    def on_stopping(environment: Any, **_: Any) -> None:
        target = latency_side(environment) or side
        if target is not None:
            target.stopping = True

    if RATE_MESSAGE not in getattr(runner, "custom_messages", {}):
        runner.register_message(RATE_MESSAGE, on_rate)
        runner.environment.events.test_stopping.add_listener(on_stopping)


def is_worker(runner: Any) -> bool:
    return isinstance(runner, WorkerRunner)
