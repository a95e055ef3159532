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

import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from tests.performance.benchmarks.lookup_load import (
    GENERATOR_PREFIX,
    LOOKUP_PREFIX,
    PINNED,
    catalog_ids,
    pinned_service,
    random_lookup_script,
    wrk,
)

ROOT = Path(__file__).resolve().parents[3]
DURATION_S = 8
ROUNDS = 5
CATALOG_MOVIES = 20_000
LOOKUP_IDS = 2_000


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory):
    with pinned_service(tmp_path_factory.mktemp("store"), CATALOG_MOVIES) as running:
        yield running


@pytest.fixture(scope="module")
def lookup_ids(service) -> list[int]:
    return catalog_ids(service.base_url, LOOKUP_IDS)


def test_lookup_throughput_versus_trivial_endpoint(benchmark, service, lookup_ids, tmp_path: Path) -> None:
    """Alternating rounds (ping, lookup, ping, ...) and the ratio of medians: this VM's speed drifts by 30%
    between seconds, so one long measurement of each would mostly measure the drift."""
    script = random_lookup_script(tmp_path, lookup_ids)
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


def test_lookup_latency_at_about_1000_requests_per_s(benchmark, service, lookup_ids, tmp_path: Path) -> None:
    # 4 connections, each waiting 4 ms after every answer: about 1,000 requests/s in all, paced, not flooding.
    script = random_lookup_script(tmp_path, lookup_ids, delay_ms=4)
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


def test_one_locust_worker_versus_wrk(benchmark, service, lookup_ids, tmp_path: Path) -> None:
    locustfile = tmp_path / "lookup_only.py"
    locustfile.write_text(LOCUSTFILE.format(ids=lookup_ids, prefix=LOOKUP_PREFIX))
    script = random_lookup_script(tmp_path, lookup_ids)
    result: dict[str, float] = {}

    def measure() -> None:
        result["wrk_rps"] = wrk(service.base_url, connections=32, duration_s=DURATION_S, script=script)["rps"]
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
