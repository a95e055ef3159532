"""Liveness, readiness and the trivial reference endpoint used to size the hot path's overhead."""

from __future__ import annotations

import os

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


@fast_router.get("/health", response_model=Health)
async def health(context: Context) -> Response:
    """Liveness: the process is up and serving (with its pid and the faults it injects, if any)."""
    return json_response({"status": "ok", "pid": os.getpid(), "faults": active_faults(context.settings)})


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
def ready(context: Context) -> Response:
    """Readiness: the store directory exists and this process may write to it (503 otherwise)."""
    path = context.settings.store_path
    # access(2) answers for permissions and read-only mounts without creating anything: the probe is open to
    # everyone, so it must not write to disk.
    if not path.is_dir():
        detail = f"store directory {path} does not exist"
    elif not os.access(path, os.W_OK | os.X_OK):
        detail = f"store directory {path} is not writable by this process (or is on a read-only mount)"
    else:
        return json_response({"status": "ready", "store_path": str(path)})
    return json_response({"status": "unavailable", "store_path": str(path), "detail": detail}, status_code=503)


@fast_router.get("/v1/ping", response_model=Pong)
async def ping() -> Response:
    """A trivial endpoint through the same middleware: the reference for hot-path overhead."""
    return Response(_PONG, media_type="application/json")
