"""The machine as a whole, read once per sampler tick (psutil).

CPU busy percent is computed from the per-core time counters between two reads, as psutil's ``cpu_percent`` does
(busy = total - idle - iowait, guest time counted once), but with its own state: other psutil users in the same
process cannot disturb it. The first read has no interval, so its CPU figures are None.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psutil

__all__ = ["HostReader", "HostReading"]


@dataclass(frozen=True)
class HostReading:
    """One read of the host; counters (disk, net) are cumulative since boot, None where unavailable."""

    cpu_percent: float | None  # machine busy percent, 0..100
    cpu_per_core: list[float] | None  # busy percent per logical core
    mem_total_bytes: int
    mem_used_bytes: int  # psutil's "used" (total - free - buffers - cache on Linux)
    mem_available_bytes: int
    swap_used_bytes: int
    load1: float | None
    load5: float | None
    load15: float | None
    disk_read_bytes: int | None
    disk_write_bytes: int | None
    net_sent_bytes: int | None
    net_recv_bytes: int | None


def _busy_and_total(times: Any) -> tuple[float, float]:
    total = sum(times)
    # On Linux guest time is already inside user/nice; count it once, as psutil does.
    total -= getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


def _percent(busy: float, total: float, previous: tuple[float, float]) -> float:
    d_total = total - previous[1]
    if d_total <= 0:
        return 0.0
    return min(100.0, max(0.0, (busy - previous[0]) / d_total * 100.0))


class HostReader:
    """Reads host CPU, memory, load, disk and network counters; keeps the previous CPU counters for percents."""

    def __init__(self) -> None:
        self._previous: list[tuple[float, float]] | None = None

    def _cpu(self) -> tuple[float | None, list[float] | None]:
        cores = [_busy_and_total(t) for t in psutil.cpu_times(percpu=True)]
        previous, self._previous = self._previous, cores
        if previous is None or len(previous) != len(cores):
            return None, None
        per_core = [_percent(b, t, p) for (b, t), p in zip(cores, previous, strict=True)]
        machine = _percent(sum(b for b, _ in cores), sum(t for _, t in cores), _sum(previous))
        return machine, per_core

    def read(self) -> HostReading:
        """One reading; the first one's CPU figures are None (no interval yet)."""
        cpu_percent, per_core = self._cpu()
        memory = psutil.virtual_memory()
        try:
            load: Sequence[float | None] = os.getloadavg()
        except OSError:
            load = (None, None, None)
        disk = _safe(psutil.disk_io_counters)
        net = _safe(psutil.net_io_counters)
        return HostReading(
            cpu_percent=cpu_percent,
            cpu_per_core=per_core,
            mem_total_bytes=memory.total,
            mem_used_bytes=memory.used,
            mem_available_bytes=memory.available,
            swap_used_bytes=_safe(lambda: psutil.swap_memory().used),
            load1=load[0],
            load5=load[1],
            load15=load[2],
            disk_read_bytes=None if disk is None else disk.read_bytes,
            disk_write_bytes=None if disk is None else disk.write_bytes,
            net_sent_bytes=None if net is None else net.bytes_sent,
            net_recv_bytes=None if net is None else net.bytes_recv,
        )


def _sum(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    return sum(b for b, _ in pairs), sum(t for _, t in pairs)


def _safe(read: Any) -> Any:
    """``read()``, or None where a container or platform does not provide the counter."""
    try:
        return read()
    except (OSError, RuntimeError, psutil.Error):
        return None
