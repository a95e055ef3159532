"""Prometheus metrics: request counts and durations by route template, store and cache counters.

Single process: the metrics live in a registry of their own (one per app, so tests can build several apps).
Several workers: ``PROMETHEUS_MULTIPROC_DIR`` must be set before ``prometheus_client`` is imported (``python -m
service`` does it); each worker writes its values to files there, and ``/metrics`` sums every worker's files with
a ``MultiProcessCollector`` on a fresh registry. The held-memory and in-flight body gauges use ``livesum``: the sum
over live workers.

Labels stay bounded: ``route`` is the route template (``/v1/online/{group}/{feature}/{entity_id}``) or
``unmatched``, ``method`` one of the standard methods or ``other``, ``status`` the response code (499 when the
client disconnected before sending its whole body: see ``service.errors``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.process_collector import ProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["MetricsMiddleware", "ServiceMetrics", "StoreMetricsObserver"]

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Seconds; dense below 10 ms where the online lookups live, sparse up to the slow pipeline and catalog calls.
_DURATION_BUCKETS_S = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


class ServiceMetrics:
    """The service's metric families, and ``render()`` for ``/metrics``.

    ``multiprocess_dir`` None means single-process metrics; otherwise it must equal the
    ``PROMETHEUS_MULTIPROC_DIR`` prometheus_client was imported with (RuntimeError if not).
    """

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        multiprocess_values = values.ValueClass is not values.MutexValue
        if multiprocess_dir is not None:
            expected = os.path.realpath(multiprocess_dir)
            actual = os.path.realpath(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or "") if multiprocess_values else ""
            if actual != expected:
                raise RuntimeError(
                    f"metrics_dir is {multiprocess_dir} but prometheus_client was imported with "
                    f"PROMETHEUS_MULTIPROC_DIR={actual or 'unset'}: set PROMETHEUS_MULTIPROC_DIR={multiprocess_dir} "
                    "in the environment before starting the workers (python -m service does this)"
                )
            Path(multiprocess_dir).mkdir(parents=True, exist_ok=True)
        self.registry = CollectorRegistry(auto_describe=True)
        if multiprocess_dir is None:
            ProcessCollector(registry=self.registry)
        registry = self.registry
        self.requests_total = Counter(
            "featurestore_requests", "HTTP requests served", ("route", "method", "status"), registry=registry
        )
        self.request_duration_seconds = Histogram(
            "featurestore_request_duration_seconds",
            "Time from request start to the end of the response, by route template",
            ("route", "method"),
            buckets=_DURATION_BUCKETS_S,
            registry=registry,
        )
        self.cache_hits_total = Counter("featurestore_cache_hits", "Feature cache hits", registry=registry)
        self.cache_misses_total = Counter("featurestore_cache_misses", "Feature cache misses", registry=registry)
        self.store_bytes_read_total = Counter(
            "featurestore_store_bytes_read", "Bytes of feature files read from disk", registry=registry
        )
        self.store_bytes_written_total = Counter(
            "featurestore_store_bytes_written", "Bytes of feature files written to disk", registry=registry
        )
        self.memory_held_bytes = Gauge(
            "featurestore_memory_held_bytes",
            "Bytes currently held by /v1/load/* requests (summed over live workers)",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.inflight_body_bytes = Gauge(
            "featurestore_inflight_body_bytes",
            "Bytes of request bodies reserved by the requests in flight (summed over live workers)",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.observer = StoreMetricsObserver(self)

    def observe_request(self, route: str, method: str, status: int, duration_s: float) -> None:
        """Count one finished request."""
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests_total.labels(route, method, str(status)),
                self.request_duration_seconds.labels(route, method),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(duration_s)

    def render(self) -> tuple[bytes, str]:
        """The exposition text (all workers' values in multiprocess mode) and its content type."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(self.multiprocess_dir))
        return generate_latest(registry), CONTENT_TYPE_LATEST

    def process_exiting(self) -> None:
        """Drop this worker's live gauges from the multiprocess files (call at shutdown)."""
        if self.multiprocess_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), str(self.multiprocess_dir))


class StoreMetricsObserver:
    """The store's observer hooks, counted in ServiceMetrics (no per-feature labels: bounded cardinality)."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._hits = metrics.cache_hits_total
        self._misses = metrics.cache_misses_total
        self._read = metrics.store_bytes_read_total
        self._written = metrics.store_bytes_written_total

    def cache_hit(self, group: str, name: str) -> None:
        self._hits.inc()

    def cache_miss(self, group: str, name: str) -> None:
        self._misses.inc()

    def bytes_read(self, n: int) -> None:
        self._read.inc(n)

    def bytes_written(self, n: int) -> None:
        self._written.inc(n)


class MetricsMiddleware:
    """Pure ASGI middleware timing every HTTP request and counting it by route template, method and status.

    The route comes from ``scope["route"]``, which the router sets on the shared scope when a route matches;
    requests no route matched (or rejected before routing) count as ``unmatched``.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app raises before starting a response, the server answers 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in _METHODS else "other"
            self.metrics.observe_request(template, method, status, time.perf_counter() - started)
