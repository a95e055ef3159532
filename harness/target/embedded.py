"""The embedded default: when no host is given, a run starts the service itself and removes it afterwards.

The service runs as its own uvicorn subprocess (never inside the gevent-patched Locust process), on a free
loopback port, closed for writes by a random token (unless one is given), with a temporary directory holding its
store and its metrics, loaded with a synthetic catalog::

    $TMPDIR/featureload-embedded-<random>/   owner (pid and start time of the Locust process), store/, metrics/,
                                         service.log (when no log_path is given)

Nothing outlives the run, whatever is killed: the service dies with the Locust process and its workers with
the service (parent-death signal, ``service.lifeline``); a reaper process (``harness.target.reaper``) kills the
service's process group and removes the directory when the Locust process dies without stopping it; and each
start removes the directories of owners no longer running (a reaper killed too).
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import tempfile
import time
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from harness.target._http import open_url
from harness.target.reaper import Reaper, claim, sweep
from service.launcher import ServiceProcess, start_service

__all__ = ["EMBEDDED_PREFIX", "EmbeddedService", "ensure_catalog", "fetch_cache_stats", "start_embedded_service"]

logger = logging.getLogger(__name__)
EMBEDDED_PREFIX = "featureload-embedded-"


@dataclass
class EmbeddedService:
    """A running embedded service, the temporary directory it owns (``root``: store and metrics) and the token
    its writes need."""

    process: ServiceProcess
    root: Path
    catalog: dict[str, Any]
    write_token: str
    reaper: Reaper

    @property
    def base_url(self) -> str:
        return self.process.base_url

    @property
    def store_path(self) -> Path:
        return self.root / "store"

    def stop(self) -> None:
        """Stop every service process and delete the temporary directory (idempotent)."""
        self.process.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        self.reaper.close()


def start_embedded_service(
    catalog_movies: int,
    workers: int = 1,
    seed: int = 42,
    log_path: Path | None = None,
    write_token: str | None = None,
    read_token: str | None = None,
) -> EmbeddedService:
    """Start the service on a free 127.0.0.1 port with a fresh store, load the catalog, return once ready.

    ``write_token`` None generates a random one (``secrets.token_urlsafe``): the embedded service is never open
    for writes. ``read_token`` closes its reads too. Both reach the service through its environment.
    Raises ServiceStartError (from the launcher) or RuntimeError if the catalog cannot be loaded; nothing is
    left running or on disk in either case.
    """
    for stale in sweep(EMBEDDED_PREFIX):
        logger.info("removed %s, left by a run that was killed", stale)
    root = Path(tempfile.mkdtemp(prefix=EMBEDDED_PREFIX))
    claim(root)
    reaper = Reaper.start([root])
    token = write_token or secrets.token_urlsafe(32)
    settings: dict[str, Any] = {"write_token": token, "read_token": read_token}
    if workers > 1:
        settings["metrics_dir"] = root / "metrics"  # not the service's own temp dir, which a SIGKILL would leave
    try:
        # Without a log_path (a web UI session: each run copies its part) the log lives in the directory the
        # reaper removes, not in a temp file a SIGKILL would leave.
        process = start_service(settings, root / "store", workers=workers, log_path=log_path or root / "service.log")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        reaper.close()
        raise
    reaper.watch(process.pid)  # the service leads its own process group
    embedded = EmbeddedService(process=process, root=root, catalog={}, write_token=token, reaper=reaper)
    try:
        started = time.perf_counter()
        catalog = _post_json(
            f"{process.base_url}/v1/catalog/load", {"movies": catalog_movies, "seed": seed}, token=token
        )
        catalog["load_s"] = round(time.perf_counter() - started, 3)
    except BaseException:
        embedded.stop()
        raise
    embedded.catalog = catalog
    logger.info("embedded service at %s (pid %s), catalog of %s movies", process.base_url, process.pid, catalog_movies)
    return embedded


def ensure_catalog(
    base_url: str, catalog_movies: int, seed: int = 42, *, write_token: str | None = None, read_token: str | None = None
) -> dict[str, Any]:
    """Load the synthetic catalog into an external service unless it already has one; returns what was found
    or loaded. The read token (else the write token) reads, the write token loads. Raises RuntimeError when the
    service refuses."""
    url = f"{base_url.rstrip('/')}/v1/groups/tmdb/features/movie_features/metadata"
    try:
        with open_url(url, token=read_token or write_token) as response:
            return {"already_loaded": True, "metadata": json.loads(response.read())}
    except urllib.error.HTTPError as error:
        if error.code != 404:
            raise RuntimeError(f"GET {_path(url)} failed with {error.code}: {error.read()[:300]!r}") from error
    loaded = _post_json(
        f"{base_url.rstrip('/')}/v1/catalog/load", {"movies": catalog_movies, "seed": seed}, token=write_token
    )
    return {"already_loaded": False, **{k: v for k, v in loaded.items() if k != "stored"}}


def fetch_cache_stats(base_url: str, token: str | None = None) -> dict[str, Any] | None:
    """The service's cache counters, hits and misses summed over every worker (None if it does not answer).

    Hits and misses come from /metrics, which sums every uvicorn worker; /v1/cache/stats answers for whichever
    single worker takes the connection, so it is kept only as a sample of one worker's state. ``token`` is
    sent as a bearer token (a service with closed reads needs it).
    """
    base = base_url.rstrip("/")
    try:
        with open_url(f"{base}/v1/cache/stats", token=token, timeout_s=10) as response:
            one_worker = json.loads(response.read())
        with open_url(f"{base}/metrics", token=token, timeout_s=10) as response:
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


def _path(url: str) -> str:
    """The path of ``url``: error messages name what failed without the URL's credentials."""
    return "/" + url.split("://", 1)[-1].partition("/")[2]


def _post_json(url: str, body: dict[str, Any], timeout_s: float = 300.0, token: str | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    try:
        with open_url(
            url, token=token, data=json.dumps(body).encode(), headers=headers, method="POST", timeout_s=timeout_s
        ) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"POST {_path(url)} failed with {error.code}: {error.read()[:500]!r}") from error
