"""Liveness, readiness and the trivial reference endpoint used to size the hot path's overhead."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter
from starlette.responses import Response

from service.deps import Context
from service.faults import active_faults
from service.responses import json_response
from service.routing import DirectRoute
from service.schemas import Health, Pong, Readiness

__all__ = ["fast_router", "router"]

router = APIRouter(tags=["health"])
fast_router = APIRouter(tags=["health"], route_class=DirectRoute)
_PONG = b'{"pong":true}'
# Below this much free space on the store's disk the service is not ready: a frame's Parquet file would not fit.
READY_MIN_FREE_BYTES = 4 << 20


@fast_router.get("/health", response_model=Health)
async def health(context: Context) -> Response:
    """Liveness: the process is up and serving (with its pid and the faults it injects, if any)."""
    return json_response({"status": "ok", "pid": os.getpid(), "faults": active_faults(context.settings)})


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
def ready(context: Context) -> Response:
    """Readiness: the store directory exists, this process may write to it, and its disk is not full (503 otherwise).

    The probe is open to everyone: it names no path, and it writes nothing to disk.
    """
    detail = store_unready_reason(context.settings.store_path)
    if detail is None:
        return json_response({"status": "ready"})
    return json_response({"status": "unavailable", "detail": detail}, status_code=503)


def store_unready_reason(path: Path) -> str | None:
    """Why the store at ``path`` cannot take writes, or None when it can."""
    # access(2) answers for permissions and read-only mounts without creating anything.
    if not path.is_dir():
        return "the store directory does not exist"
    if not os.access(path, os.W_OK | os.X_OK):
        return "the store directory is not writable by this process (or is on a read-only mount)"
    disk = os.statvfs(path)
    free = disk.f_bavail * disk.f_frsize
    if free < READY_MIN_FREE_BYTES:
        return f"the store's disk is full: {free} bytes free, below the {READY_MIN_FREE_BYTES >> 20} MiB minimum"
    if disk.f_files and not disk.f_favail:
        return "the store's disk is full: no free inodes left"
    return None


@fast_router.get("/v1/ping", response_model=Pong)
async def ping() -> Response:
    """A trivial endpoint through the same middleware: the reference for hot-path overhead."""
    return Response(_PONG, media_type="application/json")
