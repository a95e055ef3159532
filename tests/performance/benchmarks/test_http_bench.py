"""HTTP benchmarks with real load generators against a real uvicorn service (one worker), printed, not asserted.

- online lookup throughput versus a trivial endpoint (``/v1/ping``) on the same service: target >= 70%;
- online lookup latency at about 1,000 requests/s (wrk paced by a per-request delay): target p99 <= 3 ms;
- one Locust worker process versus wrk against the same lookup URL in the same run: target >= 90%.

Run: ``pytest tests/performance/benchmarks/test_http_bench.py --benchmark-only -s`` (needs Debian's ``wrk``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from service.launcher import start_service

ROOT = Path(__file__).resolve().parents[3]
LOOKUP_PATH = "/v1/online/tmdb/movie_features/{movie_id}"
DURATION_S = 8


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory):
    with start_service({}, tmp_path_factory.mktemp("store"), workers=1) as running:
        request = urllib.request.Request(
            f"{running.base_url}/v1/catalog/load",
            data=json.dumps({"movies": 20_000, "seed": 42}).encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=120).read()
        yield running


def a_catalog_id(base_url: str) -> int:
    body = urllib.request.urlopen(f"{base_url}/v1/groups/tmdb/features/movie_features?limit=1", timeout=30).read()
    return int(json.loads(body)["data"][0][0])


def wrk(url: str, connections: int, duration_s: int = DURATION_S, script: Path | None = None) -> dict[str, float]:
    """Run wrk (one thread) and return requests/s and latency percentiles (ms)."""
    assert shutil.which("wrk"), "wrk is missing: `make system-deps` installs Debian's package"
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency", url]
    if script is not None:
        command[1:1] = ["-s", str(script)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 30, check=True).stdout
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for percentile, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        figures[f"p{percentile}_ms"] = float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    figures["non_2xx"] = float(errors.group(1)) if errors else 0.0
    return figures


def test_lookup_throughput_versus_trivial_endpoint(benchmark, service) -> None:
    lookup_url = service.base_url + LOOKUP_PATH.format(movie_id=a_catalog_id(service.base_url))
    result: dict[str, dict[str, float]] = {}

    def measure() -> None:
        result["ping"] = wrk(service.base_url + "/v1/ping", connections=32)
        result["lookup"] = wrk(lookup_url, connections=32)

    benchmark.pedantic(measure, rounds=1, iterations=1)
    ratio = result["lookup"]["rps"] / result["ping"]["rps"]
    benchmark.extra_info.update(result, lookup_to_ping=ratio)
    print(f"\nping {result['ping']['rps']:.0f} req/s, lookup {result['lookup']['rps']:.0f} req/s: {ratio:.0%}")
    assert result["lookup"]["non_2xx"] == 0


def test_lookup_latency_at_about_1000_requests_per_s(benchmark, service, tmp_path: Path) -> None:
    lookup_url = service.base_url + LOOKUP_PATH.format(movie_id=a_catalog_id(service.base_url))
    script = tmp_path / "pace.lua"
    # 4 connections, each waiting 4 ms after every answer: about 1,000 requests/s in all, paced, not flooding.
    script.write_text("function delay()\n  return 4\nend\n")
    result: dict[str, float] = {}
    benchmark.pedantic(lambda: result.update(wrk(lookup_url, connections=4, duration_s=15, script=script)), rounds=1)
    benchmark.extra_info.update(result)
    print(f"\nlookup at {result['rps']:.0f} req/s: p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms")


LOCUSTFILE = """
from locust import FastHttpUser, constant, task

class Lookup(FastHttpUser):
    wait_time = constant(0)

    @task
    def lookup(self):
        self.client.get("{path}", name="lookup")
"""


def test_one_locust_worker_versus_wrk(benchmark, service, tmp_path: Path) -> None:
    path = LOOKUP_PATH.format(movie_id=a_catalog_id(service.base_url))
    locustfile = tmp_path / "lookup_only.py"
    locustfile.write_text(LOCUSTFILE.format(path=path))
    result: dict[str, float] = {}

    def measure() -> None:
        result["wrk_rps"] = wrk(service.base_url + path, connections=32)["rps"]
        stats_prefix = tmp_path / "locust"
        command = [
            sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-u", "32", "-r", "32",
            "-t", f"{DURATION_S}s", "-H", service.base_url, "--csv", str(stats_prefix), "--only-summary",
        ]  # fmt: skip
        subprocess.run(command, cwd=ROOT, capture_output=True, timeout=DURATION_S + 60, check=True)
        aggregated = (stats_prefix.parent / "locust_stats.csv").read_text().splitlines()[-1].split(",")
        result["locust_rps"] = float(aggregated[9])  # "Requests/s" column of the Aggregated row

    benchmark.pedantic(measure, rounds=1, iterations=1)
    ratio = result["locust_rps"] / result["wrk_rps"]
    benchmark.extra_info.update(result, locust_to_wrk=ratio)
    print(f"\none Locust process {result['locust_rps']:.0f} req/s, wrk {result['wrk_rps']:.0f} req/s: {ratio:.0%}")
