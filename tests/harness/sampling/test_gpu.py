"""GPU backends against fakes at the system edge (the pynvml and GPUtil module functions), detection, and the
sampler's GPU files.

Without a GPU backend the sampler writes no gpu.arrows / gpu_processes.arrows at all; sampler.json's "gpu" says
backend "none" and why.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import GPUtil
import pynvml
import pytest

from harness.recording.recorder import read_stream
from harness.sampling.gpu import (
    FakeGpu,
    GpuBackend,
    GpuDevice,
    GpuProcess,
    GpuSample,
    GputilBackend,
    GpuUnavailable,
    NoGpu,
    NvmlBackend,
    detect_gpu,
)
from harness.sampling.sampler import ProcessTarget, Sampler

MIB = 2**20


def nvml_error(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)  # pynvml maps the code to its subclass, e.g. NVMLError_NotSupported


class FakeDriver:
    """The NVML C library as pynvml's functions see it: devices are dicts; a ``NotSupported()`` field raises
    NVMLError_NotSupported; ``lost`` devices raise NVMLError_GPUIsLost on every call."""

    def __init__(self, devices: list[dict[str, Any]], init_error: int | None = None) -> None:
        self.devices = devices
        self.init_error = init_error
        self.lost: set[int] = set()
        self.shutdowns = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        calls: dict[str, Callable[..., Any]] = {
            "nvmlInit": self.init,
            "nvmlShutdown": self.shutdown,
            "nvmlDeviceGetCount": lambda: len(self.devices),
            "nvmlDeviceGetHandleByIndex": lambda i: i,
            "nvmlDeviceGetName": lambda h: self.field(h, "name"),
            "nvmlDeviceGetUUID": lambda h: self.field(h, "uuid"),
            "nvmlDeviceGetUtilizationRates": lambda h: SimpleNamespace(gpu=self.field(h, "util"), memory=0),
            "nvmlDeviceGetMemoryInfo": lambda h: SimpleNamespace(**self.field(h, "memory")),
            "nvmlDeviceGetTemperature": self.temperature,
            "nvmlDeviceGetPowerUsage": lambda h: self.field(h, "power_mw"),
            "nvmlDeviceGetComputeRunningProcesses": lambda h: self.field(h, "compute"),
            "nvmlDeviceGetGraphicsRunningProcesses": lambda h: self.field(h, "graphics"),
        }
        for name, call in calls.items():
            monkeypatch.setattr(pynvml, name, call)

    def init(self) -> None:
        if self.init_error is not None:
            raise nvml_error(self.init_error)

    def shutdown(self) -> None:
        self.shutdowns += 1

    def field(self, handle: int, key: str) -> Any:
        if handle in self.lost:
            raise nvml_error(pynvml.NVML_ERROR_GPU_IS_LOST)
        value = self.devices[handle][key]
        if isinstance(value, NotSupported):
            raise nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return value

    def temperature(self, handle: int, sensor: int) -> Any:
        assert sensor == pynvml.NVML_TEMPERATURE_GPU
        return self.field(handle, "temperature")


class NotSupported:
    """Marks a device field the fake driver answers with NVMLError_NotSupported."""


def device(index: int, **overrides: Any) -> dict[str, Any]:
    fields = {
        "name": f"Fake GPU {index}".encode(),  # older pynvml returns bytes
        "uuid": f"GPU-{index:04d}",
        "util": 40 + index,
        "memory": {"total": 16 * 2**30, "used": (index + 1) * 2**30, "free": 0},
        "temperature": 60,
        "power_mw": 123_456,
        "compute": [SimpleNamespace(pid=1000 + index, usedGpuMemory=512 * MIB)],
        "graphics": [],
    }
    return fields | overrides


def test_nvml_reads_devices_with_unit_conversions(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeDriver([device(0), device(1)]).install(monkeypatch)
    backend = NvmlBackend()
    assert backend.devices() == [
        GpuDevice(0, "Fake GPU 0", "GPU-0000", 16 * 2**30),
        GpuDevice(1, "Fake GPU 1", "GPU-0001", 16 * 2**30),
    ]
    first = backend.sample()[0]
    assert first == GpuSample(0, "Fake GPU 0", "GPU-0000", 40.0, 2**30, 16 * 2**30, 60.0, 123.456)


def test_nvml_not_supported_fields_are_none(monkeypatch: pytest.MonkeyPatch) -> None:
    unsupported = device(0, temperature=NotSupported(), power_mw=NotSupported(), util=NotSupported())
    unsupported["compute"] = NotSupported()
    FakeDriver([unsupported]).install(monkeypatch)
    backend = NvmlBackend()
    (sample,) = backend.sample()
    assert (sample.util_percent, sample.temperature_c, sample.power_w) == (None, None, None)
    assert sample.mem_used_bytes == 2**30
    assert backend.processes() == []


def test_nvml_processes_merge_compute_and_graphics(monkeypatch: pytest.MonkeyPatch) -> None:
    both = SimpleNamespace(pid=7, usedGpuMemory=100)
    dev = device(0, compute=[both, SimpleNamespace(pid=8, usedGpuMemory=None)])
    dev["graphics"] = [SimpleNamespace(pid=7, usedGpuMemory=300), SimpleNamespace(pid=9, usedGpuMemory=5)]
    FakeDriver([dev]).install(monkeypatch)
    processes = sorted(NvmlBackend().processes(), key=lambda p: p.pid)
    assert processes == [GpuProcess(0, 7, 300), GpuProcess(0, 8, None), GpuProcess(0, 9, 5)]


def test_nvml_device_that_disappears_is_skipped_and_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    driver = FakeDriver([device(0), device(1)])
    driver.install(monkeypatch)
    backend = NvmlBackend()
    driver.lost.add(1)
    with caplog.at_level(logging.WARNING, logger="featureload.gpu"):
        for _ in range(3):
            assert [s.index for s in backend.sample()] == [0]
            assert [p.index for p in backend.processes()] == [0]
    assert sum("GPU 1 stopped answering" in r.getMessage() for r in caplog.records) == 1
    backend.close()
    backend.close()
    assert driver.shutdowns == 1


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, "no NVIDIA driver: NVMLError_LibraryNotFound"),
        (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "no NVIDIA driver: NVMLError_DriverNotLoaded"),
        (pynvml.NVML_ERROR_NO_PERMISSION, "NVML failed to initialise: NVMLError_NoPermission"),
    ],
)
def test_nvml_init_failure_is_unavailable(monkeypatch: pytest.MonkeyPatch, code: int, reason: str) -> None:
    FakeDriver([], init_error=code).install(monkeypatch)
    with pytest.raises(GpuUnavailable, match=reason):
        NvmlBackend()


def test_nvml_without_devices_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    driver = FakeDriver([])
    driver.install(monkeypatch)
    with pytest.raises(GpuUnavailable, match="NVML found 0 devices"):
        NvmlBackend()
    assert driver.shutdowns == 1


def gputil_gpu(index: int, load: float = 0.5, temperature: float = 55.0) -> GPUtil.GPU:
    return GPUtil.GPU(index, f"GPU-u{index}", load, 8192.0, 1024.0, 7168.0, "550.1", "Fake", "123", "Disabled",
                      "Enabled", temperature)  # fmt: skip


def test_gputil_converts_units_and_has_no_power_or_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(GPUtil, "getGPUs", lambda: [gputil_gpu(0), gputil_gpu(1, temperature=float("nan"))])
    backend = GputilBackend()
    assert backend.devices()[0] == GpuDevice(0, "Fake", "GPU-u0", 8192 * MIB)
    first, second = backend.sample()
    assert first == GpuSample(0, "Fake", "GPU-u0", 50.0, 1024 * MIB, 8192 * MIB, 55.0, None)
    assert second.temperature_c is None  # nvidia-smi's "[N/A]" parses to NaN
    assert backend.processes() == []


def test_gputil_device_that_disappears_and_a_failing_call(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    listings: list[Any] = [[gputil_gpu(0), gputil_gpu(1)], [gputil_gpu(0)], OSError("nvidia-smi crashed")]

    def get_gpus() -> list[GPUtil.GPU]:
        listing = listings.pop(0) if len(listings) > 1 else listings[0]
        if isinstance(listing, Exception):
            raise listing
        return listing

    monkeypatch.setattr(GPUtil, "getGPUs", get_gpus)
    backend = GputilBackend()
    assert [s.index for s in backend.sample()] == [0]
    with caplog.at_level(logging.WARNING, logger="featureload.gpu"):
        assert backend.sample() == [] and backend.sample() == []
    assert sum("getGPUs() failed" in r.getMessage() for r in caplog.records) == 1


def test_gputil_without_gpus_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(GPUtil, "getGPUs", lambda: [])
    with pytest.raises(GpuUnavailable, match="nvidia-smi is not on PATH"):
        GputilBackend(which=lambda _: None)
    with pytest.raises(GpuUnavailable, match="nvidia-smi listed no devices"):
        GputilBackend(which=lambda _: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(GPUtil, "getGPUs", lambda: int("garbled nvidia-smi output"))
    with pytest.raises(GpuUnavailable, match="GPUtil failed: ValueError"):
        GputilBackend()


def fake_gpu() -> FakeGpu:
    return FakeGpu([GpuDevice(0, "Fake", "GPU-f0", 2**30)])


def unavailable(reason: str) -> Callable[[], GpuBackend]:
    def start() -> GpuBackend:
        raise GpuUnavailable(reason)

    return start


def test_detect_returns_the_first_backend_that_works(caplog: pytest.LogCaptureFixture) -> None:
    assert detect_gpu(backends={"nvml": fake_gpu, "gputil": unavailable("x")}).name == "fake"
    assert detect_gpu(backends={"nvml": unavailable("no driver"), "gputil": fake_gpu}).name == "fake"
    order: list[str] = []
    backends = {name: (lambda n=name: order.append(n) or fake_gpu()) for name in ("nvml", "gputil")}
    detect_gpu(prefer=("gputil", "nvml"), backends=backends)
    assert order == ["gputil"]
    empty = FakeGpu([])
    with caplog.at_level(logging.INFO, logger="featureload.gpu"):
        none = detect_gpu(backends={"nvml": unavailable("no driver"), "gputil": lambda: empty})
    assert isinstance(none, NoGpu) and none.reason == "nvml: no driver; gputil: no devices"
    assert empty.closed
    assert [r.getMessage() for r in caplog.records] == ["no GPU sampled: nvml: no driver; gputil: no devices"]


def test_detect_survives_unexpected_errors_and_rejects_unknown_names() -> None:
    def broken() -> GpuBackend:
        raise RuntimeError("driver exploded")

    assert detect_gpu(prefer=("nvml",), backends={"nvml": broken}).reason == "nvml: RuntimeError (driver exploded)"
    with pytest.raises(ValueError, match="unknown GPU backend 'cuda': use one of nvml, gputil"):
        detect_gpu(prefer=("cuda",))


def test_detect_with_the_real_modules_on_this_machine() -> None:
    backend = detect_gpu()
    try:
        if backend.name == "none":  # this machine: no NVIDIA library, no nvidia-smi
            assert backend.reason.startswith("nvml: ") and "; gputil: " in backend.reason
            assert backend.sample() == [] and backend.devices() == []
        else:
            assert backend.devices()
    finally:
        backend.close()


def test_sampler_writes_gpu_files_from_the_backend(tmp_path: Path) -> None:
    gpu = FakeGpu(
        [GpuDevice(0, "Fake", "GPU-f0", 2**30), GpuDevice(1, "Fake", "GPU-f1", 2**30)],
        script=[
            [GpuSample(0, "Fake", "GPU-f0", 10.0, 5, 2**30, 40.0, None)],
            [
                GpuSample(0, "Fake", "GPU-f0", 20.0, 6, 2**30, None, 70.5),
                GpuSample(1, "Fake", "GPU-f1", 1.0, 1, 2, 3, 4),
            ],
        ],
        processes=[GpuProcess(0, 4242, 5)],
    )
    sampler = Sampler([ProcessTarget("service", pid=os.getpid())], tmp_path, gpu=gpu, host=False)
    sampler.sample_once()
    sampler.sample_once()
    sampler.close()
    rows = read_stream(tmp_path / "gpu.arrows").to_pylist()
    assert [(r["index"], r["util_percent"], r["power_w"]) for r in rows] == [
        (0, 10.0, None),
        (0, 20.0, 70.5),
        (1, 1.0, 4.0),
    ]
    assert rows[1]["ts_s"] == rows[2]["ts_s"] > rows[0]["ts_s"]
    processes = read_stream(tmp_path / "gpu_processes.arrows").to_pylist()
    assert [(p["index"], p["pid"], p["used_memory_bytes"]) for p in processes] == [(0, 4242, 5)] * 2
    status = json.loads((tmp_path / "sampler.json").read_text())
    assert status["gpu"] == {"backend": "fake", "devices": 2, "reason": None}
    assert gpu.closed


def test_sampler_without_gpu_writes_no_gpu_files(tmp_path: Path) -> None:
    sampler = Sampler(
        [ProcessTarget("service", pid=os.getpid())], tmp_path, gpu=NoGpu("no NVIDIA driver: test"), host=False
    )
    sampler.sample_once()
    sampler.close()
    assert not (tmp_path / "gpu.arrows").exists() and not (tmp_path / "gpu_processes.arrows").exists()
    status = json.loads((tmp_path / "sampler.json").read_text())
    assert status["gpu"] == {"backend": "none", "devices": 0, "reason": "no NVIDIA driver: test"}


def test_a_failing_gpu_backend_does_not_stop_sampling(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class Flaky(FakeGpu):
        def sample(self) -> list[GpuSample]:
            raise RuntimeError("device fell off the bus")

    with caplog.at_level(logging.WARNING, logger="featureload.sampler"):
        sampler = Sampler(
            [ProcessTarget("service", pid=os.getpid())], tmp_path, gpu=Flaky([GpuDevice(0, "F", None, None)])
        )
        for _ in range(3):
            sampler.sample_once()
        sampler.close()
    assert sampler.ticks == 3 and read_stream(tmp_path / "gpu.arrows").num_rows == 0
    assert sum("device fell off the bus" in r.getMessage() for r in caplog.records) == 1
