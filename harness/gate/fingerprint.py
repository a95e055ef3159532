"""The machine fingerprint that keys a baseline, and the CPU frequency conditions a campaign records.

A fingerprint has two parts::

    machine    cpu_model, cpu_count_logical, cpu_count_physical, memory_gib, kernel, arch, os
    software   python, packages (locust, fastapi, ...), git commit and dirty state, hostname

``key`` is the first 16 hex digits of the SHA-256 of the machine part alone: a comparison across different keys
compares machines as much as builds (the gate refuses it unless told otherwise). The software part is expected
to differ between a baseline and a candidate (that is the point of the comparison) and is reported, not keyed.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.recording.rundir import collect_environment

__all__ = ["MACHINE_FIELDS", "cpu_frequency", "machine_differences", "machine_fingerprint", "software_differences"]

MACHINE_FIELDS = ("cpu_model", "cpu_count_logical", "cpu_count_physical", "memory_gib", "kernel", "arch", "os")
CPU_ROOT = Path("/sys/devices/system/cpu")


def machine_fingerprint(environ: Mapping[str, str], cwd: Path) -> dict[str, Any]:
    """This machine's fingerprint: ``{"key", "machine": {...}, "software": {...}}`` (see the module docstring)."""
    env = collect_environment(environ, cwd)
    machine = {
        "cpu_model": env["cpu_model"],
        "cpu_count_logical": env["cpu_count_logical"],
        "cpu_count_physical": env["cpu_count_physical"],
        "memory_gib": round(env["memory_total_bytes"] / 2**30),  # the kernel's reserve moves the exact bytes
        "kernel": platform.release(),
        "arch": platform.machine(),
        "os": platform.system(),
    }
    software = {
        "python": env["python"],
        "packages": env["packages"],
        "git": env["git"],
        "hostname": env["hostname"],
    }
    return {"key": machine_key(machine), "machine": machine, "software": software}


def machine_key(machine: Mapping[str, Any]) -> str:
    """16 hex digits identifying the machine part of a fingerprint."""
    canonical = json.dumps({k: machine.get(k) for k in MACHINE_FIELDS}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def machine_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Lines naming each machine field on which fingerprints ``a`` and ``b`` differ (empty: same machine)."""
    ma, mb = a.get("machine", {}), b.get("machine", {})
    return [f"{k}: {ma.get(k)!r} vs {mb.get(k)!r}" for k in MACHINE_FIELDS if ma.get(k) != mb.get(k)]


def software_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Lines naming the Python and package versions that differ between fingerprints ``a`` and ``b``."""
    sa, sb = a.get("software", {}), b.get("software", {})
    lines = [f"python: {sa.get('python')} vs {sb.get('python')}"] if sa.get("python") != sb.get("python") else []
    pa_, pb = sa.get("packages") or {}, sb.get("packages") or {}
    lines += [
        f"{name}: {pa_.get(name)} vs {pb.get(name)}"
        for name in sorted(set(pa_) | set(pb))
        if pa_.get(name) != pb.get(name) and name != "featureload"
    ]
    return lines


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def cpu_frequency(root: Path = CPU_ROOT) -> dict[str, Any]:
    """Per CPU: the cpufreq governor and current/min/max frequency in MHz, from ``root``/cpu*/cpufreq.

    ``{"available": False, "reason": ...}`` where the kernel exposes none (most VMs and containers): the campaign
    records "unavailable" rather than guess.
    """
    cpus: dict[str, dict[str, Any]] = {}
    for directory in sorted(root.glob("cpu[0-9]*/cpufreq")):
        entry: dict[str, Any] = {"governor": _read(directory / "scaling_governor")}
        for name, file in (
            ("cur_mhz", "scaling_cur_freq"),
            ("min_mhz", "scaling_min_freq"),
            ("max_mhz", "scaling_max_freq"),
        ):
            text = _read(directory / file)
            entry[name] = round(int(text) / 1000.0, 1) if text and text.isdigit() else None
        cpus[directory.parent.name] = entry
    if not cpus:
        return {"available": False, "reason": f"unavailable: no {root}/cpu*/cpufreq (a VM or container hides it)"}
    governors = sorted({str(c["governor"]) for c in cpus.values()})
    return {"available": True, "governors": governors, "cpus": cpus}
