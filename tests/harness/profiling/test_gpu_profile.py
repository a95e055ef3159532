"""harness.profiling.gpu_profile (tests/performance/profiling/gpu_profiler.py): high-rate samples from the sampler's GPU
backends, statistics per device, peak memory per process, and a plain answer without a GPU."""

from __future__ import annotations

from harness.profiling.gpu_profile import profile_gpu
from harness.sampling.gpu import FakeGpu, GpuDevice, GpuProcess, GpuSample, NoGpu


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.001)


def test_samples_every_tick_and_summarizes_per_device_and_process() -> None:
    device = GpuDevice(0, "Fake A100", "GPU-0", 40 * 2**30)
    script = [
        [GpuSample(0, "Fake A100", "GPU-0", float(u), u * 2**20, 40 * 2**30, 60.0 + u / 10, 100.0 + u)]
        for u in (10, 50, 90, 30)
    ]
    backend = FakeGpu([device], script, processes=[GpuProcess(0, 1234, 512 * 2**20)])
    clock = _Clock()
    profile = profile_gpu(0.1, 0.01, backend=backend, clock=clock, sleep=clock.sleep)
    data = profile.to_dict()
    assert data["available"] and data["ticks"] == 10 and backend.closed
    util = data["stats"][0]["util_percent"]
    assert util["max"] == 90.0 and 30.0 < util["mean"] < 60.0
    assert data["stats"][0]["power_w"]["max"] == 190.0 and data["stats"][0]["temperature_c"]["max"] == 69.0
    assert data["process_peak_bytes"] == {"1234": 512 * 2**20}
    assert "utilization mean" in profile.summary_line()


def test_without_a_gpu_it_says_so_and_samples_nothing() -> None:
    profile = profile_gpu(0.05, 0.01, backend=NoGpu("nvml: no NVIDIA driver"))
    assert not profile.available and profile.samples == []
    assert profile.summary_line() == "no GPU: nvml: no NVIDIA driver"
