"""What the run records is what the service served: per endpoint, Locust's statistics (and the request log) count
the requests the service's ``/metrics`` counts, with either transport (``--http-client lean`` or ``locust``).

A user stopped at the end of the run used to be killed with its request in flight: the service served and
counted it, the run never recorded it (about one request per user). The lookups here are slowed on the service
side (an injected delay), so that most users have a lookup in flight when the run stops."""

from __future__ import annotations

import csv
import re
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ServiceFactory
from tests.locust_runs import run_locust

pytestmark = pytest.mark.slow

# request name in the locustfile -> (method, route template) in the service's metrics
USER_ENDPOINTS = {
    "/v1/online/{group}/{feature}/{entity_id}": ("GET", "/v1/online/{group}/{feature}/{entity_id}"),
    "/v1/online/{group}/{feature} [batch]": ("POST", "/v1/online/{group}/{feature}"),
    "/v1/groups/{group}/features/{feature} [write]": ("PUT", "/v1/groups/{group}/features/{feature}"),
}
PAGE = "/v1/groups/{group}/features/{feature} [page]"  # its route is also read by the preflight and the catalog ids
_SAMPLE = re.compile(r'^featurestore_requests_total\{method="(\w+)",route="([^"]+)",status="(\d+)"\} ([0-9.e+]+)$')


def served(base_url: str) -> dict[tuple[str, str], int]:
    """(method, route) -> requests the service counted, all statuses."""
    with urllib.request.urlopen(base_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    counts: dict[tuple[str, str], int] = {}
    for line in text.splitlines():
        if found := _SAMPLE.match(line):
            key = (found[1], found[2])
            counts[key] = counts.get(key, 0) + int(float(found[4]))
    return counts


def recorded(run_dir: Path) -> dict[str, int]:
    with open(run_dir / "locust_stats.csv", newline="", encoding="utf-8") as handle:
        return {row["Name"]: int(row["Request Count"]) for row in csv.DictReader(handle) if row["Type"] != ""}


@pytest.mark.parametrize("client", ["lean", "locust"])
def test_each_endpoint_counts_what_the_service_served(
    tmp_path: Path, service_factory: ServiceFactory, client: str
) -> None:
    service = service_factory(inject_delay_ms=150, inject_delay_route="/v1/online/")
    run = run_locust(tmp_path / "runs", "-H", service.base_url, "--load-catalog", "--catalog-size", "500",
                     "-u", "10", "-r", "10", "-t", "4s", "--http-client", client)  # fmt: skip
    assert run.code == 0, run.stderr[-3000:]
    assert "Warning" not in run.stderr, run.stderr[-3000:]  # a clean run warns of nothing (a RuntimeWarning did)
    by_route = served(service.base_url)
    counts = recorded(run.run_dir)
    assert counts["/v1/online/{group}/{feature}/{entity_id}"] > 50, counts  # the run did load the service
    for name, key in USER_ENDPOINTS.items():
        assert counts.get(name, 0) == by_route.get(key, 0), (name, counts, by_route)
    page_reads = by_route[("GET", "/v1/groups/{group}/features/{feature}")] - counts.get(PAGE, 0)
    assert 0 <= page_reads <= 3, (counts, by_route)  # the preflight's and the users' catalog reads
    assert run.metadata["requests_recorded"] == run.metadata["locust_totals"]["requests"]


def test_the_open_model_counts_what_the_service_served_and_plans_nothing_at_the_stop(
    tmp_path: Path, service_factory: ServiceFactory
) -> None:
    """The open model's arrivals in flight at the stop are recorded too, and the arrivals' schedule ends with the
    run: none is planned while the last answers are awaited."""
    service = service_factory(inject_delay_ms=300, inject_delay_route="/v1/online/")
    run = run_locust(tmp_path / "runs", "-H", service.base_url, "--load-catalog", "--catalog-size", "500",
                     "-u", "1", "-r", "1", "-t", "4s", "--arrival-rate", "40")  # fmt: skip
    assert run.code == 0, run.stderr[-3000:]
    by_route = served(service.base_url)
    counts = recorded(run.run_dir)
    assert counts["/v1/online/{group}/{feature}/{entity_id}"] > 50, counts
    for name, key in USER_ENDPOINTS.items():
        assert counts.get(name, 0) == by_route.get(key, 0), (name, counts, by_route)
    arrivals = run.summary["latency_hdr"]["arrivals"]
    assert arrivals["scheduled"] <= arrivals["offered"] + 2, arrivals  # ~12 arrivals were in flight at the stop
    assert arrivals["achieved"] == sum(counts.values()), (arrivals, counts)
