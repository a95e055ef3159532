"""The faults a service under test injects on purpose (``service.faults``), as a run or campaign records them.

The service reports its own in ``GET /health`` (``"faults": {"inject_delay_ms": 2.0, "route": "..."}``, ``{}``
when none), so a run against any service, embedded or not, can ask it. ``fetch_service_faults`` asks;
``faults_from_environment`` reads the ``FEATURESTORE_INJECT_*`` variables a run's metadata recorded (what the
embedded service inherited); ``describe_faults`` is the banner every report shows, so nobody mistakes an injected
run for a real one.
"""

from __future__ import annotations

import json
import urllib.error
from collections.abc import Mapping
from typing import Any

from harness.target._http import open_url

__all__ = ["describe_faults", "faults_from_environment", "faults_from_metadata", "fetch_service_faults"]


def fetch_service_faults(base_url: str, token: str | None = None, timeout_s: float = 5.0) -> dict[str, Any] | None:
    """The faults the service at ``base_url`` reports in ``GET /health`` (``{}``: none); None when it does not
    answer or is too old to report them."""
    try:
        with open_url(f"{base_url.rstrip('/')}/health", token=token, timeout_s=timeout_s) as response:
            body = json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    faults = body.get("faults") if isinstance(body, dict) else None
    return dict(faults) if isinstance(faults, dict) else None


def faults_from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The faults the ``FEATURESTORE_INJECT_DELAY_MS`` / ``_ROUTE`` variables of ``environ`` turn on ({}: none)."""
    raw = (environ.get("FEATURESTORE_INJECT_DELAY_MS") or "").strip()
    try:
        delay_ms = float(raw) if raw else 0.0
    except ValueError:
        return {"inject_delay_ms": raw, "route": environ.get("FEATURESTORE_INJECT_DELAY_ROUTE") or None}
    faults: dict[str, Any] = {}
    if delay_ms > 0:
        faults = {"inject_delay_ms": delay_ms, "route": environ.get("FEATURESTORE_INJECT_DELAY_ROUTE") or None}
    if stall := (environ.get("FEATURESTORE_INJECT_STALL") or "").strip():
        faults["inject_stall"] = stall
    return faults


def faults_from_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A run's faults from its metadata.json: ``service_faults`` when the run asked its service, else the
    variables its environment recorded."""
    recorded = metadata.get("service_faults")
    if isinstance(recorded, dict):
        return dict(recorded)
    env = (metadata.get("environment") or {}).get("env") or {}
    return faults_from_environment(env)


def describe_faults(faults: Mapping[str, Any] | None) -> str | None:
    """One line for a report banner (None when no fault was injected): ``injected fault: 2 ms delay on route
    /v1/online/...; event-loop stall 1 s every 10 s (not a real measurement of the build)``."""
    if not faults:
        return None
    parts = []
    if faults.get("inject_delay_ms"):
        route = faults.get("route")
        parts.append(f"{faults.get('inject_delay_ms')} ms delay on {f'route {route}' if route else 'every request'}")
    if faults.get("inject_stall"):
        stall, _, every = str(faults["inject_stall"]).partition("/")  # "SECONDS/EVERY"
        stall, every = _number(faults.get("stall_s", stall)), _number(faults.get("every_s", every))
        parts.append(f"event-loop stall {stall} s every {every} s")
    if not parts:
        parts.append(", ".join(f"{k}={v}" for k, v in faults.items()))
    return f"injected fault: {'; '.join(parts)} (not a real measurement of the build)"


def _number(value: Any) -> str:
    """``1.0`` -> ``1``, ``"0.5"`` -> ``0.5``; text that is no number stays as it is."""
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return str(value)
