"""What the HTTP benchmarks share: a one-worker service with a catalog, pinned to core 0 while the load generator
runs on core 1 (with two or more cores), the catalog's ids, and wrk asking random ids through a Lua script."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from harness.target.embedded import ensure_catalog
from service.launcher import ServiceProcess, start_service

__all__ = [
    "GENERATOR_PREFIX",
    "LOOKUP_PREFIX",
    "PINNED",
    "catalog_ids",
    "pinned_service",
    "random_lookup_script",
    "wrk",
]

LOOKUP_PREFIX = "/v1/online/tmdb/movie_features/"
PINNED = (os.cpu_count() or 1) >= 2
GENERATOR_PREFIX = ["taskset", "-c", "1"] if PINNED and shutil.which("taskset") else []


@contextmanager
def pinned_service(store: Path, movies: int) -> Iterator[ServiceProcess]:
    """A one-worker service holding a synthetic catalog of ``movies``, every process of it on core 0 if PINNED."""
    with start_service({}, store, workers=1) as running:
        if PINNED:
            for process in [psutil.Process(running.pid), *psutil.Process(running.pid).children(recursive=True)]:
                process.cpu_affinity([0])
        ensure_catalog(running.base_url, movies)
        yield running


def catalog_ids(base_url: str, limit: int) -> list[int]:
    """The first ``limit`` entity ids of the catalog."""
    url = f"{base_url}/v1/groups/tmdb/features/movie_features?limit={limit}"
    body = json.loads(urllib.request.urlopen(url, timeout=30).read())
    return [int(row[0]) for row in body["data"]]


def random_lookup_script(directory: Path, ids: list[int], delay_ms: int | None = None) -> Path:
    """A wrk Lua script requesting a random catalog id each time (and pausing ``delay_ms`` after each answer)."""
    lines = [
        "local ids = {" + ",".join(map(str, ids)) + "}",
        "request = function()",
        f'  return wrk.format("GET", "{LOOKUP_PREFIX}" .. ids[math.random(#ids)])',
        "end",
    ]
    if delay_ms is not None:
        lines += ["function delay()", f"  return {delay_ms}", "end"]
    script = directory / f"lookup-{delay_ms}.lua"
    script.write_text("\n".join(lines) + "\n")
    return script


def wrk(
    url: str, connections: int, duration_s: int = 8, script: Path | None = None, timeout_s: int | None = None
) -> dict[str, float]:
    """Run wrk (one thread, on the generator core) and return requests/s, latency percentiles (ms), non-2xx
    answers and socket timeouts. ``timeout_s`` None keeps wrk's 2 s, after which a request counts as a timeout
    and not in requests/s or latencies."""
    assert shutil.which("wrk"), "wrk is missing: `make system-deps` installs Debian's package"
    command = [*GENERATOR_PREFIX, "wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency"]
    if timeout_s is not None:
        command.append(f"--timeout={timeout_s}s")
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run([*command, url], capture_output=True, text=True, timeout=duration_s + 30, check=True).stdout
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for percentile, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        figures[f"p{percentile}_ms"] = float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["non_2xx"] = float(errors.group(1)) if errors else 0.0
    timeouts = re.search(r"Socket errors:.* timeout (\d+)", out)
    figures["timeouts"] = float(timeouts.group(1)) if timeouts else 0.0
    return figures
