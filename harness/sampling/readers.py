"""One tick of reading: the followed processes, the host and the GPU, as rows for the sampler's streams.

Shared by the sidecar sampler (``harness.sampling.sampler``, rows into files) and the agent
(``harness.sampling.agent``, rows over the network), so both record exactly the same columns. Each row is a tuple
in its schema's order (``SAMPLE_SCHEMA``, ``HOST_SCHEMA``, ``GPU_SCHEMA``, ``GPU_PROCESS_SCHEMA``): ``ts_s``
first, the ``host`` column (whose machine the row describes: ``LOCAL_HOST`` for the machine the run directory is
written on, an agent's name otherwise) last.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import astuple
from typing import Any

from harness.recording._columns import LOCAL_HOST, local_rows
from harness.sampling.gpu import GpuBackend, GpuDevice
from harness.sampling.host import HostReader
from harness.sampling.proc import ProcessTarget, ProcessTracker, Tick

__all__ = ["LOCAL_HOST", "TickReader", "local_rows"]

logger = logging.getLogger("featureload.sampler")


class TickReader:
    """Reads ``targets`` (plus its own process as ``own_role``), the host (when ``host``) and ``gpu`` at once.

    ``read(ts_s)`` returns the tracker's ``Tick`` and the rows per stream name ("samples", "host", "gpu",
    "gpu_processes"; the last two only when ``gpu`` is a real backend). GPU failures never raise: they give no
    rows and are logged once per kind. Not thread-safe.
    """

    def __init__(
        self,
        targets: Sequence[ProcessTarget],
        gpu: GpuBackend,
        *,
        host: bool = True,
        uss: bool = False,
        own_role: str = "sampler",
        rescan_every_ticks: int = 10,
        host_name: str = LOCAL_HOST,
    ) -> None:
        self.tracker = ProcessTracker(targets, own_role=own_role, uss=uss, rescan_every_ticks=rescan_every_ticks)
        self.host = HostReader() if host else None
        self.gpu = gpu
        self.host_name = host_name
        self._gpu_failures: set[str] = set()
        self.gpu_devices: list[GpuDevice] = self.gpu_call("devices", gpu.devices)

    @property
    def streams(self) -> list[str]:
        """The streams this reader fills."""
        names = ["samples", *(["host"] if self.host is not None else [])]
        return names + (["gpu", "gpu_processes"] if self.gpu.name != "none" else [])

    def gpu_call(self, what: str, call: Callable[[], list[Any]]) -> list[Any]:
        """A GPU read that may not break sampling: failures give [] and are logged once per kind."""
        try:
            return call()
        except Exception as exc:
            if what not in self._gpu_failures:
                self._gpu_failures.add(what)
                logger.warning("GPU %s via %s failed, continuing without: %r", what, self.gpu.name, exc)
            return []

    def read(self, ts_s: float) -> tuple[Tick, dict[str, list[tuple[Any, ...]]]]:
        found = self.tracker.tick()
        name = self.host_name
        rows: dict[str, list[tuple[Any, ...]]] = {stream: [] for stream in self.streams}
        rows["samples"] = [(ts_s, *row, name) for row in found.rows]
        if self.host is not None:
            reading = self.host.read()
            cores = self.tracker.logical_cores
            busy = None if reading.cpu_percent is None else reading.cpu_percent * cores
            rows["samples"].append((ts_s, "host", None, None, None, None, busy, reading.cpu_percent,
                                    reading.mem_used_bytes, *([None] * 7), name))  # fmt: skip
            rows["host"].append((ts_s, *astuple(reading), name))
        if "gpu" in rows:
            rows["gpu"] = [(ts_s, *astuple(s), name) for s in self.gpu_call("sample", self.gpu.sample)]
            rows["gpu_processes"] = [(ts_s, *astuple(p), name) for p in self.gpu_call("processes", self.gpu.processes)]
        return found, rows
