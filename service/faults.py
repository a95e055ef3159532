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

``active_faults(settings)`` is what ``GET /health`` reports, so that every run (embedded or not) can record that its
service was slowed on purpose and nobody mistakes an injected run for a real one.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from service.settings import Settings

__all__ = ["InjectDelayMiddleware", "active_faults", "route_pattern"]

_TEMPLATE_PARAM = re.compile(r"\{[^{}/]+\}")


def route_pattern(route: str) -> re.Pattern[str]:
    """The compiled pattern for an ``inject_delay_route`` value (see the module docstring).

    Raises ValueError (with what would be right) for an invalid regular expression.
    """
    if _TEMPLATE_PARAM.search(route):
        parts = _TEMPLATE_PARAM.split(route)
        return re.compile("[^/]+".join(re.escape(part) for part in parts) + r"\Z")
    try:
        return re.compile(route)
    except re.error as error:
        raise ValueError(
            f"inject_delay_route={route!r} is invalid: {error}; expected a route template such as "
            "'/v1/online/{group}/{feature}/{entity_id}', a path prefix or a regular expression"
        ) from None


def active_faults(settings: Settings) -> dict[str, Any]:
    """The faults this service injects: ``{"inject_delay_ms": 2.0, "route": "..."}``, or ``{}`` when none."""
    if settings.inject_delay_ms <= 0:
        return {}
    return {"inject_delay_ms": settings.inject_delay_ms, "route": settings.inject_delay_route}


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
