"""Locust workers on other hosts: their clocks seen from the master, as agents' are (``harness.sampling.clock``).

The master pings its workers once a second with Locust's own custom messages (``PING``; no transport of ours);
each worker answers at once (``PONG``: t0 echoed, t1 and t2 on its clock, its hostname). A worker whose hostname
is the master's shares its clock and its rows stay ``local``; a worker elsewhere gets its hostname in the ``host``
column of the samples it ships, and at the end of the run those rows move onto the master's clock by its host's
offset (``harness.sampling.monitoring.merge_worker_samples``). Several workers of one host share one estimate.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from harness.sampling.clock import ClockEstimator
from harness.sampling.readers import LOCAL_HOST

__all__ = ["PING", "PONG", "WorkerClocks", "answer_pings"]

PING, PONG = "featureload_clock_ping", "featureload_clock_pong"
MAX_HOSTS = 1000  # bounded whatever connects


def answer_pings(runner: Any, clock: Callable[[], float] = time.time) -> None:
    """On a worker: answer the master's pings (register once per runner)."""
    host = socket.gethostname()

    def on_ping(environment: Any = None, msg: Any = None, **_: Any) -> None:
        t1 = clock()
        data = msg.data if isinstance(getattr(msg, "data", None), dict) else {}
        runner.send_message(PONG, {"t0": data.get("t0"), "t1": t1, "t2": clock(), "host": host})

    runner.register_message(PING, on_ping)


class WorkerClocks:
    """On the master: one clock estimate per worker host; ``ping()`` asks every worker (call it every second)."""

    def __init__(self, runner: Any, clock: Callable[[], float] = time.time, own_host: str | None = None) -> None:
        self._runner = runner
        self._clock = clock
        self._own_host = own_host or socket.gethostname()
        self.hosts: dict[str, ClockEstimator] = {}
        self.worker_host: dict[str, str] = {}  # Locust client id -> host name (LOCAL_HOST for this machine)
        runner.register_message(PONG, self._on_pong)

    def ping(self) -> None:
        self._runner.send_message(PING, {"t0": self._clock()})

    def _on_pong(self, environment: Any = None, msg: Any = None, **_: Any) -> None:
        t3 = self._clock()
        data = getattr(msg, "data", None)
        if not isinstance(data, dict) or not isinstance(data.get("host"), str):
            return
        host = LOCAL_HOST if data["host"] == self._own_host else data["host"][:255]
        node = str(getattr(msg, "node_id", ""))
        if len(self.worker_host) < MAX_HOSTS:
            self.worker_host[node] = host
        if host == LOCAL_HOST or (host not in self.hosts and len(self.hosts) >= MAX_HOSTS):
            return
        t0, t1, t2 = data.get("t0"), data.get("t1"), data.get("t2")
        if all(isinstance(t, int | float) for t in (t0, t1, t2)):
            self.hosts.setdefault(host, ClockEstimator()).add(float(t0), float(t1), float(t2), t3)  # type: ignore[arg-type]

    def host_of(self, client_id: str | None) -> str:
        """The host column for rows a worker shipped: its pong's host, else the hostname in Locust's client id
        ("<hostname>_<hex>"), LOCAL_HOST for this machine."""
        if client_id is None:
            return LOCAL_HOST
        if client_id in self.worker_host:
            return self.worker_host[client_id]
        name = client_id.rsplit("_", 1)[0]
        return LOCAL_HOST if not name or name == self._own_host else name

    def offsets_s(self) -> dict[str, float]:
        """Each worker host's offset (its clock minus this one's), in seconds, where one was estimated."""
        return {host: e.offset_s for host, c in self.hosts.items() if (e := c.estimate()) is not None}

    def describe(self) -> dict[str, Any]:
        """For metadata.json: per worker host its clock offset and uncertainty (ms), and its workers."""
        out: dict[str, Any] = {}
        for host, estimator in self.hosts.items():
            estimate = estimator.estimate()
            out[host] = {
                "clock_offset_ms": None if estimate is None else round(estimate.offset_s * 1000, 3),
                "clock_uncertainty_ms": None if estimate is None else round(estimate.uncertainty_s * 1000, 3),
                "clock_exchanges": 0 if estimate is None else estimate.samples,
                "workers": sorted(w for w, h in self.worker_host.items() if h == host),
            }
        return out
