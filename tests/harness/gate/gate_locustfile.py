"""A paced scenario for proving the regression gate (tests/harness/gate/test_campaign.py): lookups, batches and pings.

Each user runs at a constant pace (``constant_throughput``), so an endpoint's throughput does not depend on
another endpoint's latency. With Locust's usual closed-loop users (``between``), a delay on one endpoint slows every
user's loop and so, truly, lowers the throughput of every endpoint: the gate would rightly report that, and the
test could not tell "the delayed endpoint regressed" from "everything did".

    locust -f tests/harness/gate/gate_locustfile.py --headless -u 10 -r 10 -t 4s
"""

from __future__ import annotations

from locust import constant_throughput, task

import harness.plugin  # noqa: F401  (registers the harness: embedded service, run directory, thresholds)
from harness.users import CATALOG_FEATURE, CATALOG_GROUP, FeatureStoreUser, check_batch_lookup, check_single_lookup

FEATURE_PATH = f"{CATALOG_GROUP}/{CATALOG_FEATURE}"


class PacedLookupUser(FeatureStoreUser):
    """A client polling the store at a fixed rate: 20 requests per second, whatever the latency."""

    wait_time = constant_throughput(20)

    @task(4)
    def lookup_one_movie(self) -> None:
        movie_id = self.ids.one()
        self.request_json(
            "GET", f"/v1/online/{FEATURE_PATH}/{movie_id}", name="/v1/online/{group}/{feature}/{entity_id}",
            check=lambda body: check_single_lookup(body, movie_id),
        )  # fmt: skip

    @task(1)
    def lookup_a_batch(self) -> None:
        movie_ids = self.ids.many(10)
        self.request_json(
            "POST", f"/v1/online/{FEATURE_PATH}", name="/v1/online/{group}/{feature} [batch]",
            json={"entity_ids": movie_ids}, check=lambda body: check_batch_lookup(body, movie_ids),
        )  # fmt: skip

    @task(1)
    def ping(self) -> None:
        self.request_json("GET", "/v1/ping", name="/v1/ping")
