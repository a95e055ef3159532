"""The embedded default: when no host is given, a run starts the service itself and removes it afterwards.

The service runs as its own uvicorn subprocess (never inside the gevent-patched Locust process), on a free
loopback port, with a temporary store loaded with a synthetic catalog.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from service.launcher import ServiceProcess, start_service

__all__ = ["EmbeddedService", "ensure_catalog", "fetch_cache_stats", "start_embedded_service"]

logger = logging.getLogger(__name__)


@dataclass
class EmbeddedService:
    """A running embedded service and the temporary store it owns."""

    process: ServiceProcess
    store_path: Path
    catalog: dict[str, Any]

    @property
    def base_url(self) -> str:
        return self.process.base_url

    def stop(self) -> None:
        """Stop every service process and delete the temporary store (idempotent)."""
        self.process.stop()
        shutil.rmtree(self.store_path, ignore_errors=True)


def start_embedded_service(
    catalog_movies: int, workers: int = 1, seed: int = 42, log_path: Path | None = None
) -> EmbeddedService:
    """Start the service on a free 127.0.0.1 port with a fresh store, load the catalog, return once ready.

    Raises ServiceStartError (from the launcher) or RuntimeError if the catalog cannot be loaded; nothing is
    left running or on disk in either case.
    """
    store_path = Path(tempfile.mkdtemp(prefix="featureload-store-"))
    try:
        process = start_service({}, store_path, workers=workers, log_path=log_path)
    except BaseException:
        shutil.rmtree(store_path, ignore_errors=True)
        raise
    try:
        started = time.perf_counter()
        catalog = _post_json(f"{process.base_url}/v1/catalog/load", {"movies": catalog_movies, "seed": seed})
        catalog["load_s"] = round(time.perf_counter() - started, 3)
    except BaseException:
        process.stop()
        shutil.rmtree(store_path, ignore_errors=True)
        raise
    logger.info("embedded service at %s (pid %s), catalog of %s movies", process.base_url, process.pid, catalog_movies)
    return EmbeddedService(process=process, store_path=store_path, catalog=catalog)


def ensure_catalog(base_url: str, catalog_movies: int, seed: int = 42) -> dict[str, Any]:
    """Load the synthetic catalog into an external service unless it already has one; returns what was found
    or loaded. Raises RuntimeError when the service refuses."""
    url = f"{base_url.rstrip('/')}/v1/groups/tmdb/features/movie_features/metadata"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return {"already_loaded": True, "metadata": json.loads(response.read())}
    except urllib.error.HTTPError as error:
        if error.code != 404:
            raise RuntimeError(f"GET {url} failed with {error.code}: {error.read()[:300]!r}") from error
    loaded = _post_json(f"{base_url.rstrip('/')}/v1/catalog/load", {"movies": catalog_movies, "seed": seed})
    return {"already_loaded": False, **{k: v for k, v in loaded.items() if k != "stored"}}


def fetch_cache_stats(base_url: str) -> dict[str, Any] | None:
    """The service's cache counters, hits and misses summed over every worker (None if it does not answer).

    Hits and misses come from /metrics, which sums every uvicorn worker; /v1/cache/stats answers for whichever
    single worker takes the connection, so it is kept only as a sample of one worker's state.
    """
    base = base_url.rstrip("/")
    try:
        with urllib.request.urlopen(f"{base}/v1/cache/stats", timeout=10) as response:
            one_worker = json.loads(response.read())
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
            totals = _counter_totals(response.read().decode(), ("featurestore_cache_hits", "featurestore_cache_misses"))
    except (OSError, ValueError) as error:
        logger.info("no cache stats from the service: %s", error)
        return None
    hits, misses = totals["featurestore_cache_hits"], totals["featurestore_cache_misses"]
    return {
        "source": "/metrics, summed over every service worker",
        "hits": int(hits),
        "misses": int(misses),
        "hit_rate": hits / (hits + misses) if hits + misses else 0.0,
        "one_worker": one_worker,
    }


def _counter_totals(exposition: str, names: tuple[str, ...]) -> dict[str, float]:
    """Sum the ``<name>_total`` samples of each counter in a Prometheus text exposition (0 when absent)."""
    totals = dict.fromkeys(names, 0.0)
    for family in text_string_to_metric_families(exposition):
        if family.name in totals:
            totals[family.name] += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return totals


def _post_json(url: str, body: dict[str, Any], timeout_s: float = 300.0) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"POST {url} failed with {error.code}: {error.read()[:500]!r}") from error
