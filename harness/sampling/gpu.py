"""GPU backends for the sampler: one small interface, a real NVML backend, a GPUtil fallback, none, and a fake.

``detect_gpu()`` returns the first backend that initialises and sees at least one device, else ``NoGpu`` whose
``reason`` says why each backend failed. Nothing here raises for a missing GPU or driver: a machine without one
is the normal case, logged once. Sampling never raises either: a field the device does not support is None, a
device that stops answering (lost, unplugged) is left out of that tick's samples and logged once.

Units: memory in bytes, utilization in percent (0..100), temperature in degrees Celsius, power in watts.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any, Protocol

__all__ = [
    "FakeGpu",
    "GpuBackend",
    "GpuDevice",
    "GpuProcess",
    "GpuSample",
    "GpuUnavailable",
    "GputilBackend",
    "NoGpu",
    "NvmlBackend",
    "detect_gpu",
]

logger = logging.getLogger("featureload.gpu")

_MIB = 2**20  # nvidia-smi (and so GPUtil) reports memory in MiB


class GpuUnavailable(Exception):
    """A backend cannot be used here; the message is the reason recorded in sampler.json."""


@dataclass(frozen=True)
class GpuDevice:
    """Static facts about one device."""

    index: int
    name: str
    uuid: str | None
    mem_total_bytes: int | None


@dataclass(frozen=True)
class GpuSample:
    """One device at one instant; None where the backend or device does not report the field."""

    index: int
    name: str
    uuid: str | None
    util_percent: float | None
    mem_used_bytes: int | None
    mem_total_bytes: int | None
    temperature_c: float | None
    power_w: float | None


@dataclass(frozen=True)
class GpuProcess:
    """A process holding memory on a device (compute or graphics context)."""

    index: int
    pid: int
    used_memory_bytes: int | None


class GpuBackend(Protocol):
    """What the sampler needs from a GPU source. ``reason`` is None for a working backend."""

    name: str
    reason: str | None

    def devices(self) -> list[GpuDevice]: ...

    def sample(self) -> list[GpuSample]: ...

    def processes(self) -> list[GpuProcess]: ...

    def close(self) -> None: ...


class _LogOnce:
    """Logs each distinct key once, so a lost device does not flood the log at 10 Hz."""

    def __init__(self) -> None:
        self._seen: set[object] = set()

    def warning(self, key: object, message: str, *args: object) -> None:
        if key not in self._seen:
            self._seen.add(key)
            logger.warning(message, *args)


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class NvmlBackend:
    """NVIDIA devices through NVML (``pynvml`` from nvidia-ml-py); raises GpuUnavailable from the constructor.

    ``nvml`` is the pynvml module (injectable; the tests replace its functions at this edge).
    """

    name = "nvml"
    reason = None

    def __init__(self, nvml: ModuleType | None = None) -> None:
        if nvml is None:
            try:
                import pynvml as nvml
            except ImportError as exc:
                raise GpuUnavailable(f"pynvml is not installed (pip install nvidia-ml-py): {exc}") from exc
        self._nvml = nvml
        self._log = _LogOnce()
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            kind = type(exc).__name__
            if isinstance(exc, nvml.NVMLError_LibraryNotFound | nvml.NVMLError_DriverNotLoaded):
                raise GpuUnavailable(f"no NVIDIA driver: {kind} ({exc})") from exc
            raise GpuUnavailable(f"NVML failed to initialise: {kind} ({exc})") from exc
        self._open = True
        try:
            count = nvml.nvmlDeviceGetCount()
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self._devices = [self._device(i, h) for i, h in enumerate(self._handles)]
        except nvml.NVMLError as exc:
            self.close()
            raise GpuUnavailable(f"NVML could not list devices: {type(exc).__name__} ({exc})") from exc
        if not self._devices:
            self.close()
            raise GpuUnavailable("NVML found 0 devices")

    def _optional(self, call: Callable[..., Any], *args: Any) -> Any:
        """``call(*args)``, or None where the device does not support it or we may not ask."""
        try:
            return call(*args)
        except (self._nvml.NVMLError_NotSupported, self._nvml.NVMLError_NoPermission):
            return None

    def _device(self, index: int, handle: Any) -> GpuDevice:
        nvml = self._nvml
        memory = self._optional(nvml.nvmlDeviceGetMemoryInfo, handle)
        uuid = self._optional(nvml.nvmlDeviceGetUUID, handle)
        return GpuDevice(
            index=index,
            name=_text(nvml.nvmlDeviceGetName(handle)),
            uuid=None if uuid is None else _text(uuid),
            mem_total_bytes=None if memory is None else int(memory.total),
        )

    def devices(self) -> list[GpuDevice]:
        """The devices found at start-up."""
        return list(self._devices)

    def sample(self) -> list[GpuSample]:
        """One sample per answering device; a device raising anything but NotSupported is skipped this tick."""
        nvml, samples = self._nvml, []
        for device, handle in zip(self._devices, self._handles, strict=True):
            try:
                util = self._optional(nvml.nvmlDeviceGetUtilizationRates, handle)
                memory = self._optional(nvml.nvmlDeviceGetMemoryInfo, handle)
                temperature = self._optional(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)
                power_mw = self._optional(nvml.nvmlDeviceGetPowerUsage, handle)
            except nvml.NVMLError as exc:
                self._log.warning(("sample", device.index), "GPU %d stopped answering: %r", device.index, exc)
                continue
            samples.append(
                GpuSample(
                    index=device.index,
                    name=device.name,
                    uuid=device.uuid,
                    util_percent=None if util is None else float(util.gpu),
                    mem_used_bytes=None if memory is None else int(memory.used),
                    mem_total_bytes=None if memory is None else int(memory.total),
                    temperature_c=None if temperature is None else float(temperature),
                    power_w=None if power_mw is None else power_mw / 1000.0,
                )
            )
        return samples

    def processes(self) -> list[GpuProcess]:
        """Compute and graphics processes per device (a pid in both is listed once, with the larger memory)."""
        nvml, found = self._nvml, {}
        for device, handle in zip(self._devices, self._handles, strict=True):
            for call in (nvml.nvmlDeviceGetComputeRunningProcesses, nvml.nvmlDeviceGetGraphicsRunningProcesses):
                try:
                    infos = self._optional(call, handle) or []
                except nvml.NVMLError as exc:
                    self._log.warning(("processes", device.index), "GPU %d process list failed: %r", device.index, exc)
                    continue
                for info in infos:
                    memory = getattr(info, "usedGpuMemory", None)
                    key = (device.index, int(info.pid))
                    previous = found.get(key)
                    if previous is None or (memory or 0) > (previous.used_memory_bytes or 0):
                        found[key] = GpuProcess(device.index, int(info.pid), None if memory is None else int(memory))
        return list(found.values())

    def close(self) -> None:
        """Shut NVML down (idempotent; errors ignored)."""
        if not self._open:
            return
        self._open = False
        with contextlib.suppress(self._nvml.NVMLError):
            self._nvml.nvmlShutdown()


class GputilBackend:
    """NVIDIA devices through GPUtil (which runs ``nvidia-smi`` on every call): no power, no processes.

    ``gputil`` is the GPUtil module (injectable); ``which`` finds nvidia-smi to explain an empty device list.
    """

    name = "gputil"
    reason = None

    def __init__(self, gputil: ModuleType | None = None, which: Callable[[str], str | None] = shutil.which) -> None:
        if gputil is None:
            try:
                import GPUtil as gputil
            except ImportError as exc:
                raise GpuUnavailable(f"GPUtil is not importable: {exc}") from exc
        self._gputil = gputil
        self._log = _LogOnce()
        try:
            gpus = gputil.getGPUs()
        except Exception as exc:  # GPUtil parses nvidia-smi output by hand: any failure means "not usable"
            raise GpuUnavailable(f"GPUtil failed: {type(exc).__name__} ({exc})") from exc
        if not gpus:
            if which("nvidia-smi") is None:
                raise GpuUnavailable("GPUtil found no GPU: nvidia-smi is not on PATH")
            raise GpuUnavailable("GPUtil found no GPU: nvidia-smi listed no devices")
        self._devices = [GpuDevice(int(g.id), str(g.name), g.uuid or None, _mib_to_bytes(g.memoryTotal)) for g in gpus]

    def devices(self) -> list[GpuDevice]:
        """The devices found at start-up."""
        return list(self._devices)

    def sample(self) -> list[GpuSample]:
        """One sample per device nvidia-smi lists now (a vanished device is simply absent)."""
        try:
            gpus = self._gputil.getGPUs()
        except Exception as exc:
            self._log.warning("sample", "GPUtil.getGPUs() failed: %r", exc)
            return []
        return [
            GpuSample(
                index=int(g.id),
                name=str(g.name),
                uuid=g.uuid or None,
                util_percent=_finite(g.load * 100.0),
                mem_used_bytes=_mib_to_bytes(g.memoryUsed),
                mem_total_bytes=_mib_to_bytes(g.memoryTotal),
                temperature_c=_finite(g.temperature),
                power_w=None,
            )
            for g in gpus
        ]

    def processes(self) -> list[GpuProcess]:
        """GPUtil does not list processes."""
        return []

    def close(self) -> None:
        """Nothing to release."""


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _mib_to_bytes(value: float | None) -> int | None:
    mib = _finite(value)
    return None if mib is None else int(mib * _MIB)


class NoGpu:
    """No GPU backend is active; ``reason`` says why (recorded in sampler.json)."""

    name = "none"

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def devices(self) -> list[GpuDevice]:
        """No devices."""
        return []

    def sample(self) -> list[GpuSample]:
        """No samples."""
        return []

    def processes(self) -> list[GpuProcess]:
        """No processes."""
        return []

    def close(self) -> None:
        """Nothing to release."""


class FakeGpu:
    """A scripted backend for tests: ``script[k]`` is what the k-th ``sample()`` returns (the last entry repeats).

    With an empty script each device reports an idle sample (0% busy, 0 bytes used). ``processes`` is returned
    by every ``processes()`` call.
    """

    name = "fake"
    reason = None

    def __init__(
        self,
        devices: Sequence[GpuDevice],
        script: Sequence[Sequence[GpuSample]] = (),
        processes: Iterable[GpuProcess] = (),
    ) -> None:
        self._devices = list(devices)
        self._script = [list(tick) for tick in script]
        self._processes = list(processes)
        self.calls = 0
        self.closed = False

    def devices(self) -> list[GpuDevice]:
        """The scripted devices."""
        return list(self._devices)

    def sample(self) -> list[GpuSample]:
        """The next scripted tick."""
        self.calls += 1
        if self._script:
            return list(self._script[min(self.calls, len(self._script)) - 1])
        idle = GpuSample(0, "", None, 0.0, 0, None, None, None)
        return [
            replace(idle, index=d.index, name=d.name, uuid=d.uuid, mem_total_bytes=d.mem_total_bytes)
            for d in self._devices
        ]

    def processes(self) -> list[GpuProcess]:
        """The scripted processes."""
        return list(self._processes)

    def close(self) -> None:
        """Marks the fake closed (tests check the sampler closes its backend)."""
        self.closed = True


BACKENDS: Mapping[str, Callable[[], GpuBackend]] = {"nvml": NvmlBackend, "gputil": GputilBackend}


def detect_gpu(
    prefer: Sequence[str] = ("nvml", "gputil"),
    backends: Mapping[str, Callable[[], GpuBackend]] = BACKENDS,
) -> GpuBackend:
    """The first backend in ``prefer`` that initialises with at least one device, else ``NoGpu``.

    Never raises for a missing GPU, driver or library: each failure becomes part of ``NoGpu.reason``
    (``"nvml: no NVIDIA driver: ...; gputil: ..."``), logged once at INFO. Raises ValueError for a name in
    ``prefer`` that is not a backend (known: ``backends``' keys).
    """
    if unknown := [name for name in prefer if name not in backends]:
        raise ValueError(f"unknown GPU backend {unknown[0]!r}: use one of {', '.join(backends)}")
    reasons = []
    for name in prefer:
        try:
            backend = backends[name]()
        except GpuUnavailable as exc:
            reasons.append(f"{name}: {exc}")
            continue
        except Exception as exc:  # a broken driver install must not stop a load test
            reasons.append(f"{name}: {type(exc).__name__} ({exc})")
            continue
        if backend.devices():
            return backend
        backend.close()
        reasons.append(f"{name}: no devices")
    reason = "; ".join(reasons) or "no GPU backend was tried"
    logger.info("no GPU sampled: %s", reason)
    return NoGpu(reason)
