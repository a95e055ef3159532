"""The conditions a campaign controls and records around each run: a quiet machine, and pinned cores.

Quiet: before a run, the machine's CPU (measured over ``window_s``, not the load average, which lags a minute
behind and would still show the previous run) must be under ``max_cpu_percent``. The campaign waits up to a bound,
then goes on with a warning; either way it records what it saw, with the busiest other processes.

Cores: with two or more usable CPUs the service and the load generator get disjoint halves, so neither steals the
other's time slices. The Locust process is pinned as soon as it starts (its children inherit its mask); a
``CorePinner`` thread then moves the embedded service's process tree (found among Locust's descendants by its
``-m service`` command line) to the service's cores, within ``poll_s`` of its start, long before the catalog is
loaded and the test begins. With one CPU nothing is pinned, and the record says so.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import psutil

__all__ = ["CorePinner", "QuietCheck", "measure_busy", "split_cores", "wait_until_quiet"]

SERVICE_MARKERS = ("-m service", "service.app:app", "service/__main__.py")


@dataclass
class QuietCheck:
    """What the machine looked like before a run: quiet or not, how long the campaign waited, who was busy."""

    quiet: bool
    waited_s: float
    cpu_percent: float
    load1: float
    busy_processes: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "quiet": self.quiet,
            "waited_s": round(self.waited_s, 2),
            "cpu_percent": round(self.cpu_percent, 1),
            "load1": round(self.load1, 2),
            "busy_processes": self.busy_processes,
        }


def measure_busy(window_s: float = 0.5, exclude: Iterable[int] = (), min_percent: float = 10.0) -> QuietCheck:
    """The machine's CPU % (of all cores) over ``window_s``, and the processes (not in ``exclude``) using more than
    ``min_percent`` of one core meanwhile, busiest first."""
    skip = set(exclude)
    procs = []
    for proc in psutil.process_iter(["pid", "name"]):
        if proc.pid not in skip:
            with contextlib.suppress(psutil.Error):
                proc.cpu_percent(None)
                procs.append(proc)
    cpu = psutil.cpu_percent(interval=window_s)
    busy = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            percent = proc.cpu_percent(None)
            if percent >= min_percent:
                busy.append({"pid": proc.pid, "name": proc.info["name"], "cpu_percent": round(percent, 1)})
    busy.sort(key=lambda p: -p["cpu_percent"])
    return QuietCheck(quiet=True, waited_s=0.0, cpu_percent=cpu, load1=os.getloadavg()[0], busy_processes=busy[:5])


def wait_until_quiet(
    max_cpu_percent: float,
    timeout_s: float,
    measure: Callable[[], QuietCheck] = measure_busy,
    sleep: Callable[[float], None] = time.sleep,
) -> QuietCheck:
    """Measure until the CPU is under ``max_cpu_percent`` or ``timeout_s`` has passed; returns the last
    measurement with ``quiet`` and ``waited_s`` set (``quiet`` False: the run starts on a busy machine)."""
    started = time.monotonic()
    while True:
        check = measure()
        check.waited_s = time.monotonic() - started
        check.quiet = check.cpu_percent < max_cpu_percent
        if check.quiet or check.waited_s >= timeout_s:
            return check
        sleep(min(1.0, max(0.0, timeout_s - check.waited_s)))


def split_cores(available: Iterable[int] | None = None) -> tuple[list[int], list[int]] | None:
    """(service cores, generator cores): the lower half of the usable CPUs for the service, the rest for the load
    generator; None with fewer than two."""
    cores = sorted(available if available is not None else os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    half = len(cores) // 2
    return cores[:half], cores[half:]


class CorePinner:
    """Pins one Locust process to the generator's cores and its embedded service's tree to the service's.

    ``start(pid)`` pins the Locust process and starts watching its descendants every ``poll_s``; ``stop()`` ends
    the watch and returns the record: cores, pinned service pids, seconds from start to the service's pinning.
    """

    def __init__(self, service_cores: list[int], generator_cores: list[int], poll_s: float = 0.05) -> None:
        self.service_cores = service_cores
        self.generator_cores = generator_cores
        self.poll_s = poll_s
        self._pinned: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._errors: list[str] = []
        self._started = 0.0

    def start(self, pid: int) -> None:
        self._started = time.monotonic()
        try:
            os.sched_setaffinity(pid, self.generator_cores)
        except OSError as error:
            self._errors.append(f"generator pid {pid}: {error}")
        self._thread = threading.Thread(target=self._watch, args=(pid,), name="core-pinner", daemon=True)
        self._thread.start()

    def _watch(self, pid: int) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(pid).children(recursive=True):
                    if child.pid in self._pinned or not self._is_service(child):
                        continue
                    for proc in [child, *child.children(recursive=True)]:
                        self._pin(proc)
            self._stop.wait(self.poll_s)

    def _is_service(self, proc: psutil.Process) -> bool:
        try:
            cmdline = " ".join(proc.cmdline())
        except psutil.Error:
            return False
        parent_pinned = proc.ppid() in self._pinned
        return parent_pinned or any(marker in cmdline for marker in SERVICE_MARKERS)

    def _pin(self, proc: psutil.Process) -> None:
        if proc.pid in self._pinned:
            return
        try:
            proc.cpu_affinity(self.service_cores)
            self._pinned[proc.pid] = time.monotonic() - self._started
        except (psutil.Error, OSError) as error:
            self._errors.append(f"service pid {proc.pid}: {error}")

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        return {
            "method": "os.sched_setaffinity on the Locust process, psutil cpu_affinity on its embedded service tree",
            "service_cores": self.service_cores,
            "generator_cores": self.generator_cores,
            "service_pids": sorted(self._pinned),
            "service_pinned_after_s": round(min(self._pinned.values()), 3) if self._pinned else None,
            "errors": self._errors,
        }
