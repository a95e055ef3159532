"""The FastAPI application: ``create_app(settings)`` builds it; ``app`` is the one uvicorn workers import.

Middleware, outermost first: MetricsMiddleware (times and counts every request by route template), then
RequestGuardMiddleware (body cap, body bytes in flight, encoded slashes), then ReadAccessMiddleware (only when a read
token is set), then InjectDelayMiddleware (only when a fault is injected: ``service.faults``), then
FastLookupMiddleware (the single lookup from memory, before routing: ``service.fast_lookup``); all are pure ASGI,
so the hot path pays a function call each. The injected delay sits inside the metrics, so the service's own timings
include it. The store is opened in the lifespan, so importing this module only reads settings. The connection-level
guards (head size, header and body timeouts, connection cap) live in the HTTP protocol, ``service.http_protocol``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute

from service.access import ReadAccessMiddleware
from service.context import build_context
from service.errors import install_error_handlers
from service.fast_lookup import FastLookupMiddleware
from service.faults import InjectDelayMiddleware, stalls
from service.guards import RequestGuardMiddleware
from service.lifeline import die_with_spawning_parent
from service.metrics import MetricsMiddleware, ServiceMetrics
from service.openapi import install_openapi
from service.routes import ROUTERS
from service.routing import include_routes
from service.settings import Settings

__all__ = ["app", "create_app"]

logger = logging.getLogger("service")
LOOKUP_PATH = "/v1/online/{group}/{feature}/{entity_id}"


def create_app(settings: Settings) -> FastAPI:
    """Build the service for ``settings``: routes, JSON error handlers, middleware, metrics and lifespan."""
    metrics = ServiceMetrics(settings.metrics_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        die_with_spawning_parent()  # a uvicorn worker dies with its supervisor, even a SIGKILLed one
        app.state.context = build_context(settings, metrics)
        logger.info("feature store service ready: pid %d, store %s", os.getpid(), settings.store_path)
        try:
            async with stalls(settings.inject_stall):  # fault injection, off by default (service.faults)
                yield
        finally:
            metrics.process_exiting()

    app = FastAPI(
        title="Feature store service",
        version="0.1.0",
        summary="Online feature store: Parquet-backed groups, online lookup, TMDB pipeline and load endpoints.",
        lifespan=lifespan,
        # Metrics are Prometheus (/metrics). FastAPI's built-in OpenTelemetry checks for configured providers on
        # every request even when none is set up, which costs the hot path about 5% of its throughput.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    docs_routes = list(app.router.routes)
    include_routes(app, ROUTERS)
    # Routes are matched in order: the API first, the OpenAPI/docs pages FastAPI registered at construction last.
    app.router.routes[:] = [r for r in app.router.routes if r not in docs_routes] + docs_routes
    install_error_handlers(app)
    install_openapi(app)  # names, 400 and 405 as the server enforces them
    # Innermost: the single lookup answered from memory when it can (service.fast_lookup), inside fault injection,
    # the read token, the guards and the metrics, like the route it stands in for.
    app.add_middleware(FastLookupMiddleware, route=_route(app, LOOKUP_PATH))
    if settings.inject_delay_ms > 0:  # next: routed like any request, timed by the metrics
        delay_ms, route = settings.inject_delay_ms, settings.inject_delay_route
        app.add_middleware(InjectDelayMiddleware, delay_ms=delay_ms, route=route)
        logger.warning("fault injection: %g ms delay on %s", delay_ms, route or "every request")
    if settings.inject_stall:
        logger.warning("fault injection: the event loop stalls %s (seconds/every)", settings.inject_stall)
    if settings.read_token is not None:
        app.add_middleware(ReadAccessMiddleware, read_token=settings.read_token, write_token=settings.write_token)
    app.add_middleware(
        RequestGuardMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_inflight_body_bytes=settings.max_inflight_body_bytes,
        inflight_gauge=metrics.inflight_body_bytes,
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _route(app: FastAPI, path: str) -> APIRoute:
    return next(r for r in app.router.routes if isinstance(r, APIRoute) and r.path == path)


app = create_app(Settings.from_env(os.environ))
