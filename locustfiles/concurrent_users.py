"""Concurrent users: mostly single-entity online lookups of popular movies, some batches, some reads, rare writes.

    locust -f locustfiles/concurrent_users.py --headless -u 100 -r 10 -t 60s
    locust -f locustfiles/concurrent_users.py --profile ramp           # a named load profile
    locust -f locustfiles/concurrent_users.py                          # web UI on http://localhost:8089

Without -H the run starts the service itself (see harness.target.embedded); ids follow a zipf skew over the catalog.
"""

from __future__ import annotations

import random

from locust import task

import harness.plugin  # noqa: F401  (registers the harness: embedded service, run directory, thresholds)
from harness.users import (
    CATALOG_FEATURE,
    CATALOG_GROUP,
    FeatureStoreUser,
    check_batch_lookup,
    check_frame,
    check_single_lookup,
    check_written,
)

FEATURE_PATH = f"{CATALOG_GROUP}/{CATALOG_FEATURE}"
# Request names, one per endpoint: what thresholds ("GET <name>: p95 < 20ms") and the report group by.
LOOKUP_ONE = "/v1/online/{group}/{feature}/{entity_id}"
LOOKUP_BATCH = "/v1/online/{group}/{feature} [batch]"
READ_PAGE = "/v1/groups/{group}/features/{feature} [page]"
WRITE_RATINGS = "/v1/groups/{group}/features/{feature} [write]"


class OnlineLookupUser(FeatureStoreUser):
    """A recommendation front end fetching movie features as users browse."""

    endpoints = (("GET", LOOKUP_ONE), ("POST", LOOKUP_BATCH), ("GET", READ_PAGE), ("PUT", WRITE_RATINGS))

    @task(80)
    def lookup_one_movie(self) -> None:
        movie_id = self.ids.one()
        self.request_json(
            "GET", f"/v1/online/{FEATURE_PATH}/{movie_id}", name=LOOKUP_ONE,
            check=lambda body: check_single_lookup(body, movie_id),
        )  # fmt: skip

    @task(12)
    def lookup_a_batch(self) -> None:
        movie_ids = self.ids.many(random.choice((10, 50, 100)))
        self.request_json(
            "POST", f"/v1/online/{FEATURE_PATH}", name=LOOKUP_BATCH,
            json={"entity_ids": movie_ids}, check=lambda body: check_batch_lookup(body, movie_ids),
        )  # fmt: skip

    @task(6)
    def read_a_page_of_features(self) -> None:
        offset = random.randrange(0, 1000)
        self.request_json(
            "GET", f"/v1/groups/{CATALOG_GROUP}/features/{CATALOG_FEATURE}?limit=100&offset={offset}",
            name=READ_PAGE, check=lambda body: check_frame(body, page=100),
        )  # fmt: skip

    @task(2)
    def write_user_ratings(self) -> None:
        records = [{"id": i, "rating": random.uniform(0.5, 5.0), "movie_id": self.ids.one()} for i in range(20)]
        self.request_json(
            "PUT", f"/v1/groups/load-test/features/ratings-{random.randrange(8)}",
            name=WRITE_RATINGS,
            json={"records": records, "entity_column": "id"}, check=lambda body: check_written(body, rows=20),
        )  # fmt: skip
