"""CPU-intensive: the service runs the TMDB feature pipeline on posted batches of movies of several sizes.

    locust -f locustfiles/cpu_intensive.py --headless -u 20 -r 5 -t 60s

Batches come from the same synthetic catalog generator the service uses (messy records included), so every
response must hold one feature row per posted movie.
"""

from __future__ import annotations

import json
import random

from locust import between, task

import harness.plugin  # noqa: F401  (registers the harness: embedded service, run directory, thresholds)
from features.catalog import generate_catalog
from harness.users import FeatureStoreUser

BATCH_SIZES = (10, 100, 1_000)
BODIES_PER_SIZE = 8
PIPELINE = {size: f"/v1/pipeline/tmdb [{size} movies]" for size in BATCH_SIZES}  # one request name per size


def _encoded_batches() -> dict[int, list[bytes]]:
    """JSON bodies encoded once, so the load generator spends its CPU on sending, not on json.dumps."""
    pool = generate_catalog(5_000, seed=7)
    rng = random.Random(7)
    batches: dict[int, list[bytes]] = {}
    for size in BATCH_SIZES:
        starts = [rng.randrange(len(pool) - size) for _ in range(BODIES_PER_SIZE)]
        batches[size] = [json.dumps({"movies": pool[s : s + size]}).encode() for s in starts]
    return batches


_BODIES = _encoded_batches()


def check_pipeline(body: object, movies: int) -> str | None:
    if not isinstance(body, dict) or body.get("rows") != movies:
        return f"pipeline: posted {movies} movies, got {str(body)[:120]}"
    if not body.get("columns") or "movie_id" not in body["columns"]:
        return "pipeline: no movie_id among the feature columns"
    return None


class FeatureEngineeringUser(FeatureStoreUser):
    """Clients asking the service to engineer features for fresh movie batches."""

    wait_time = between(0.05, 0.3)
    endpoints = tuple(("POST", name) for name in PIPELINE.values())
    needs_catalog = False

    def on_start(self) -> None:  # these users need no catalog ids
        pass

    @task
    def engineer_features(self) -> None:
        size = random.choice(BATCH_SIZES)
        self.request_json(
            "POST", "/v1/pipeline/tmdb", name=PIPELINE[size],
            data=random.choice(_BODIES[size]), headers={"Content-Type": "application/json"},
            check=lambda body: check_pipeline(body, size),
        )  # fmt: skip
