"""Fault injection, off by default: a fixed delay added to matching requests, so a regression gate can be proven.

``inject_delay_ms`` (``--inject-delay-ms``, ``FEATURESTORE_INJECT_DELAY_MS``) adds that many milliseconds before a
matching request reaches its route, with ``await asyncio.sleep``: the worker's event loop keeps serving other
requests meanwhile, as it would behind a slower dependency. ``inject_delay_route`` (``--inject-delay-route``)
selects the requests:

* unset: every request;
* a route template such as ``/v1/online/{group}/{feature}/{entity_id}``: each ``{name}`` matches one path segment
  and the whole path must match (so the batch lookup ``/v1/online/{group}/{feature}`` is left alone);
* anything else: a regular expression matched from the start of the path, so a plain prefix (``/v1/online/``)
  works too.

``inject_stall`` (``--inject-stall SECONDS/EVERY``, ``FEATURESTORE_INJECT_STALL``, e.g. ``1/10``) freezes each worker's
event loop for SECONDS at the start of every EVERY-second period of the wall clock (``time.sleep`` inside the loop,
from a task the lifespan starts): nothing is served meanwhile, as behind a stop-the-world pause; periods are aligned
on the epoch, so every worker stalls at the same moments. Truth tests use it to prove that latency under a stall is
measured, not hidden (coordinated omission).

``active_faults(settings)`` is what ``GET /health`` reports, so that every run (embedded or not) can record that its
service was slowed on purpose and nobody mistakes an injected run for a real one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Receive, Scope, Send

from service.fault_specs import parse_stall, route_pattern

if TYPE_CHECKING:
    from service.settings import Settings

__all__ = ["InjectDelayMiddleware", "active_faults", "stalls"]


def active_faults(settings: Settings) -> dict[str, Any]:
    """The faults this service injects: ``{"inject_delay_ms": 2.0, "route": "..."}``, ``{"inject_stall": "1/10",
    "stall_s": 1.0, "every_s": 10.0}``, both, or ``{}`` when none."""
    faults: dict[str, Any] = {}
    if settings.inject_delay_ms > 0:
        faults.update(inject_delay_ms=settings.inject_delay_ms, route=settings.inject_delay_route)
    if settings.inject_stall:
        stall_s, every_s = parse_stall(settings.inject_stall)
        faults.update(inject_stall=settings.inject_stall, stall_s=stall_s, every_s=every_s)
    return faults


async def _stall_forever(stall_s: float, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s - time.time() % every_s)  # the next multiple of every_s on the epoch
        time.sleep(stall_s)  # blocks the event loop on purpose: no request is served meanwhile


@contextlib.asynccontextmanager
async def stalls(setting: str | None) -> AsyncIterator[None]:
    """Run the event-loop stall of ``setting`` (``inject_stall``; None: nothing) while the context is open."""
    if not setting:
        yield
        return
    task = asyncio.get_running_loop().create_task(_stall_forever(*parse_stall(setting)))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class InjectDelayMiddleware:
    """Pure ASGI middleware: sleeps ``delay_ms`` before passing a matching HTTP request on."""

    def __init__(self, app: ASGIApp, delay_ms: float, route: str | None = None) -> None:
        self.app = app
        self.delay_s = delay_ms / 1000.0
        self.pattern = route_pattern(route) if route else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (self.pattern is None or self.pattern.match(scope["path"])):
            await asyncio.sleep(self.delay_s)
        await self.app(scope, receive, send)
