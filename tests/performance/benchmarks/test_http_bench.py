"""HTTP benchmarks with real load generators against a real uvicorn service (one worker), printed, not asserted.

- online lookup throughput versus a trivial endpoint (``/v1/ping``) on the same service: target >= 70%;
- online lookup latency at about 1,000 requests/s (wrk paced by a per-request delay): target p99 <= 3 ms;
- one Locust worker process versus wrk against the same lookup URLs in the same run: target >= 90%.

Lookups draw random ids from the catalog (a Lua script for wrk, the same ids for Locust), so every request is a
real hash probe rather than one hot row. With two or more cores the service is pinned to core 0 and the load
generator to core 1, so neither steals the other's CPU and the figures compare the server paths.
Run: ``pytest tests/performance/benchmarks/test_http_bench.py --benchmark-only -s`` (needs Debian's ``wrk``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil
import pytest

from service.launcher import start_service

ROOT = Path(__file__).resolve().parents[3]
LOOKUP_PREFIX = "/v1/online/tmdb/movie_features/"
DURATION_S = 8
ROUNDS = 5
PINNED = (os.cpu_count() or 1) >= 2
GENERATOR_PREFIX = ["taskset", "-c", "1"] if PINNED and shutil.which("taskset") else []


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory):
    with start_service({}, tmp_path_factory.mktemp("store"), workers=1) as running:
        if PINNED:
            for process in [psutil.Process(running.pid), *psutil.Process(running.pid).children(recursive=True)]:
                process.cpu_affinity([0])
        request = urllib.request.Request(
            f"{running.base_url}/v1/catalog/load",
            data=json.dumps({"movies": 20_000, "seed": 42}).encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=120).read()
        yield running


@pytest.fixture(scope="module")
def catalog_ids(service) -> list[int]:
    url = f"{service.base_url}/v1/groups/tmdb/features/movie_features?limit=2000"
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


def wrk(url: str, connections: int, duration_s: int = DURATION_S, script: Path | None = None) -> dict[str, float]:
    """Run wrk (one thread, on the generator core) and return requests/s and latency percentiles (ms)."""
    assert shutil.which("wrk"), "wrk is missing: `make system-deps` installs Debian's package"
    command = [*GENERATOR_PREFIX, "wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    out = subprocess.run([*command, url], capture_output=True, text=True, timeout=duration_s + 30, check=True).stdout
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for percentile, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        figures[f"p{percentile}_ms"] = float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["non_2xx"] = float(errors.group(1)) if errors else 0.0
    return figures


def test_lookup_throughput_versus_trivial_endpoint(benchmark, service, catalog_ids, tmp_path: Path) -> None:
    """Alternating rounds (ping, lookup, ping, ...) and the ratio of medians: this VM's speed drifts by 30%
    between seconds, so one long measurement of each would mostly measure the drift."""
    script = random_lookup_script(tmp_path, catalog_ids)
    rounds: dict[str, list[float]] = {"ping": [], "lookup": []}

    def measure() -> None:
        for _ in range(ROUNDS):
            rounds["ping"].append(wrk(service.base_url + "/v1/ping", connections=16, duration_s=4)["rps"])
            lookup = wrk(service.base_url, connections=16, duration_s=4, script=script)
            assert lookup["non_2xx"] == 0
            rounds["lookup"].append(lookup["rps"])

    benchmark.pedantic(measure, rounds=1, iterations=1)
    ping, lookup = statistics.median(rounds["ping"]), statistics.median(rounds["lookup"])
    benchmark.extra_info.update(rounds, lookup_to_ping=lookup / ping, pinned=PINNED)
    print(
        f"\nping {ping:.0f} req/s, lookup (random ids) {lookup:.0f} req/s (medians of {ROUNDS} alternating rounds): "
        f"{lookup / ping:.0%} (pinned: {PINNED}; rounds ping {rounds['ping']}, lookup {rounds['lookup']})"
    )


def test_lookup_latency_at_about_1000_requests_per_s(benchmark, service, catalog_ids, tmp_path: Path) -> None:
    # 4 connections, each waiting 4 ms after every answer: about 1,000 requests/s in all, paced, not flooding.
    script = random_lookup_script(tmp_path, catalog_ids, delay_ms=4)
    result: dict[str, float] = {}
    benchmark.pedantic(
        lambda: result.update(wrk(service.base_url, connections=4, duration_s=15, script=script)), rounds=1
    )
    benchmark.extra_info.update(result)
    print(f"\nlookup at {result['rps']:.0f} req/s: p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms")


LOCUSTFILE = """
import random
from locust import FastHttpUser, constant, task

IDS = {ids!r}

class Lookup(FastHttpUser):
    wait_time = constant(0)

    @task
    def lookup(self):
        self.client.get("{prefix}" + str(random.choice(IDS)), name="lookup")
"""


def test_one_locust_worker_versus_wrk(benchmark, service, catalog_ids, tmp_path: Path) -> None:
    locustfile = tmp_path / "lookup_only.py"
    locustfile.write_text(LOCUSTFILE.format(ids=catalog_ids, prefix=LOOKUP_PREFIX))
    script = random_lookup_script(tmp_path, catalog_ids)
    result: dict[str, float] = {}

    def measure() -> None:
        result["wrk_rps"] = wrk(service.base_url, connections=32, script=script)["rps"]
        stats_prefix = tmp_path / "locust"
        command = [
            *GENERATOR_PREFIX, sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-u", "32",
            "-r", "32", "-t", f"{DURATION_S}s", "-H", service.base_url, "--csv", str(stats_prefix), "--only-summary",
        ]  # fmt: skip
        subprocess.run(command, cwd=ROOT, capture_output=True, timeout=DURATION_S + 60, check=True)
        aggregated = (stats_prefix.parent / "locust_stats.csv").read_text().splitlines()[-1].split(",")
        result["locust_rps"] = float(aggregated[9])  # "Requests/s" column of the Aggregated row

    benchmark.pedantic(measure, rounds=1, iterations=1)
    ratio = result["locust_rps"] / result["wrk_rps"]
    benchmark.extra_info.update(result, locust_to_wrk=ratio, pinned=PINNED)
    print(f"\none Locust process {result['locust_rps']:.0f} req/s, wrk {result['wrk_rps']:.0f} req/s: {ratio:.0%}")
