"""A high-rate GPU profile: NVML (or GPUtil, or a fake) sampled every ``interval_s`` for ``duration_s``.

Per device and tick: utilization (%), memory used (bytes), power (W), temperature (deg C); per tick the processes
holding GPU memory (pid, bytes). The backend comes from ``harness.sampling.gpu.detect_gpu`` (the sampler's own
backends), or is passed in (``FakeGpu`` in tests). Without a GPU the profile says so plainly (``available`` False
and the backends' reasons) and records nothing else: a machine without one is the normal case.

Output (``GpuProfile.to_dict``): the backend, devices, the samples as columns, per-device statistics (mean, p95,
max of utilization, memory, power, temperature) and the peak memory per process.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.sampling.gpu import GpuBackend, detect_gpu

__all__ = ["GpuProfile", "profile_gpu"]

_FIELDS = ("util_percent", "mem_used_bytes", "power_w", "temperature_c")


@dataclass
class GpuProfile:
    backend: str
    reason: str | None
    interval_s: float
    devices: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    process_peak_bytes: dict[int, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def available(self) -> bool:
        return bool(self.devices)

    def stats(self) -> dict[int, dict[str, Any]]:
        """Per device index: {field: {mean, p95, max}} over the samples where the field was reported."""
        out: dict[int, dict[str, Any]] = {}
        by_device: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for sample in self.samples:
            by_device[sample["index"]].append(sample)
        for index, rows in by_device.items():
            out[index] = {}
            for name in _FIELDS:
                values = np.array([r[name] for r in rows if r[name] is not None], dtype=float)
                out[index][name] = (
                    None
                    if values.size == 0
                    else {
                        "mean": float(values.mean()),
                        "p95": float(np.percentile(values, 95)),
                        "max": float(values.max()),
                    }
                )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "available": self.available,
            "backend": self.backend,
            "reason": self.reason,
            "interval_s": self.interval_s,
            "elapsed_s": round(self.elapsed_s, 3),
            "ticks": len(self.samples),
            "achieved_hz": len(self.samples) / max(len(self.devices), 1) / self.elapsed_s if self.elapsed_s else None,
            "devices": self.devices,
            "stats": self.stats(),
            "process_peak_bytes": {str(k): v for k, v in self.process_peak_bytes.items()},
            "samples": self.samples,
        }

    def summary_line(self) -> str:
        if not self.available:
            return f"no GPU: {self.reason}"
        parts = []
        for index, stats in self.stats().items():
            util, mem = stats["util_percent"], stats["mem_used_bytes"]
            parts.append(
                f"GPU {index}: utilization mean {util['mean']:.0f}% / max {util['max']:.0f}%"
                if util
                else f"GPU {index}: utilization not reported"
            )
            if mem:
                parts[-1] += f", memory max {mem['max'] / 2**20:,.0f} MiB"
        return f"{len(self.samples)} samples at {self.interval_s * 1e3:g} ms ({self.backend}): " + "; ".join(parts)


def profile_gpu(
    duration_s: float,
    interval_s: float = 0.01,
    backend: GpuBackend | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> GpuProfile:
    """Sample ``backend`` (default: ``detect_gpu()``) every ``interval_s`` for ``duration_s``; never raises for a
    missing GPU. The backend is closed at the end."""
    backend = backend or detect_gpu()
    profile = GpuProfile(backend.name, backend.reason, interval_s)
    try:
        profile.devices = [
            {"index": d.index, "name": d.name, "uuid": d.uuid, "mem_total_bytes": d.mem_total_bytes}
            for d in backend.devices()
        ]
        if not profile.devices:
            return profile
        start = clock()
        for tick in range(max(1, round(duration_s / interval_s))):
            now = clock() - start
            for s in backend.sample():
                profile.samples.append({"t_s": round(now, 4), "index": s.index, **{f: getattr(s, f) for f in _FIELDS}})
            for p in backend.processes():
                used = p.used_memory_bytes or 0
                profile.process_peak_bytes[p.pid] = max(profile.process_peak_bytes.get(p.pid, 0), used)
            sleep(max(0.0, start + (tick + 1) * interval_s - clock()))
        profile.elapsed_s = clock() - start
    finally:
        backend.close()
    return profile
