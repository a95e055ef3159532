"""Was the machine too busy to measure? The CPU that processes outside a test used while the test measured.

A test that asserts on a measurement (MB/s, a scheduling lag, a share of a core, a significance test between two
runs) measures the machine as well as the code: on a shared 2-core machine another job can halve a save's MB/s.
Such a test watches the machine while it measures and judges its figures inside ``watch.judging(...)``: when an
assertion fails there and other processes used more than ``max_other_cores`` of CPU on average meanwhile, the test
is skipped with a reason that says so and names the busiest of them ("machine too busy to measure ..."), instead of
failing the suite. On a quiet machine the same assertion fails as usual, so a real regression is still caught.

How "other" is computed (Linux; psutil):

    other CPU = machine busy CPU (user, nice, system, irq, softirq, steal) over the window
              - this test's own tree: this process and every child it waited for (``os.times``), plus the CPU
                its live descendants used during the window

The counters tick (``SC_CLK_TCK``, 100 per second here), so a reading is uncertain by about a tick per CPU at each
end: that much is taken off "other" before dividing by the window, or over a window of a few milliseconds one tick
would read as several busy cores (and a fast failure be skipped as "machine too busy").

Steal time counts as "other": on a VM it is the neighbours' load. A descendant that exited without being waited
for would count as "other" too, which errs on the side of calling the machine busy only for the CPU it used.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import psutil
import pytest

__all__ = ["MachineWatch"]

_BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq", "steal")
# CPU seconds a busy-minus-own reading can be off by: a tick per CPU at either end (module docstring)
_COUNTER_SLACK_S = 2 * (psutil.cpu_count() or 1) / os.sysconf("SC_CLK_TCK")


def _machine_busy_s() -> float:
    times = psutil.cpu_times()
    return sum(getattr(times, name, 0.0) for name in _BUSY_FIELDS)


def _own_cpu_s() -> float:
    """CPU seconds of this process and of every child it (or they) waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _descendants_cpu_s() -> dict[int, float]:
    found: dict[int, float] = {}
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                cpu = child.cpu_times()
                found[child.pid] = cpu.user + cpu.system
    return found


def _busiest_others(exclude: set[int], limit: int = 3) -> list[str]:
    procs = []
    for proc in psutil.process_iter(["pid", "name"]):
        if proc.pid in exclude:
            continue
        with contextlib.suppress(psutil.Error):
            proc.cpu_percent(None)
            procs.append(proc)
    time.sleep(0.2)  # a rate needs two readings; only on the way to a skip, never on a passing test's path
    rates = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            rates.append((proc.cpu_percent(None), proc.info["name"], proc.pid))
    rates.sort(reverse=True)
    return [f"{name} (pid {pid}) {percent:.0f}%" for percent, name, pid in rates[:limit] if percent >= 5]


@dataclass
class MachineWatch:
    """Started when created; ``other_cores()`` is the average number of cores others used since."""

    max_other_cores: float = 0.5
    started: float = field(default_factory=time.monotonic)
    _busy0: float = field(default_factory=_machine_busy_s)
    _own0: float = field(default_factory=_own_cpu_s)
    _children0: dict[int, float] = field(default_factory=_descendants_cpu_s)

    def other_cores(self) -> float:
        """Cores used on average by processes outside this test since the watch started (>= 0)."""
        wall = max(time.monotonic() - self.started, 1e-3)
        busy = _machine_busy_s() - self._busy0
        own = _own_cpu_s() - self._own0 + sum(_descendants_cpu_s().values()) - sum(self._children0.values())
        return max(0.0, busy - own - _COUNTER_SLACK_S) / wall

    @contextlib.contextmanager
    def judging(self, what: str) -> Iterator[None]:
        """Assertions on ``what`` (a measurement): a failure on a busy machine skips with the reason."""
        try:
            yield
        except AssertionError as failure:
            others = self.other_cores()
            if others <= self.max_other_cores:
                raise
            own = {os.getpid(), *_descendants_cpu_s()}
            busiest = ", ".join(_busiest_others(own)) or "none still running"
            check = (str(failure).splitlines() or ["assertion failed"])[0][:300]
            pytest.skip(
                f"machine too busy to measure {what}: other processes used {others:.2f} of "
                f"{psutil.cpu_count()} cores on average while it ran (the limit is {self.max_other_cores:g}); "
                f"busiest now: {busiest}. The failed check: {check}"
            )
