"""Memory pressure: the service materialises frames that grow over the run, and serves large reads.

    locust -f locustfiles/memory_pressure.py --headless -u 10 -r 2 -t 60s

Sizes grow linearly with the run's elapsed time (``START_MB`` at the start, ``+GROWTH_MB_PER_MIN`` each minute),
capped at ``MAX_MB``; the service's own caps (max_request_memory_mb, max_total_memory_mb) answer 413/429 beyond
them, which count as failures here: a well-sized run stays under them.
"""

from __future__ import annotations

import random
import time

from locust import between, events, task

import harness.plugin  # noqa: F401  (registers the harness: embedded service, run directory, thresholds)
from harness.users import CATALOG_FEATURE, CATALOG_GROUP, FeatureStoreUser, check_frame

START_MB = 8.0
GROWTH_MB_PER_MIN = 32.0
MAX_MB = 96.0
MATERIALISE = "/v1/load/memory"
LARGE_PAGE = "/v1/groups/{group}/features/{feature} [large page]"
_started_s = time.monotonic()


@events.test_start.add_listener
def _reset_clock(**_: object) -> None:
    global _started_s
    _started_s = time.monotonic()


def current_megabytes() -> float:
    """The frame size for a request made now (MB)."""
    elapsed_min = (time.monotonic() - _started_s) / 60.0
    return min(MAX_MB, START_MB + GROWTH_MB_PER_MIN * elapsed_min)


def check_memory(body: object, megabytes: float) -> str | None:
    if not isinstance(body, dict) or abs(float(body.get("megabytes", -1)) - megabytes) > 1e-6:
        return f"memory: asked {megabytes:.1f} MB, got {str(body)[:120]}"
    if body.get("frame_bytes", 0) < megabytes * (1 << 20) * 0.95:
        return f"memory: frame of {body.get('frame_bytes')} bytes is smaller than the {megabytes:.1f} MB asked"
    return None


class MemoryPressureUser(FeatureStoreUser):
    """Analysts pulling big frames while batch jobs materialise working sets."""

    wait_time = between(0.2, 1.0)
    endpoints = (("POST", MATERIALISE), ("GET", LARGE_PAGE))

    @task(3)
    def materialise_a_frame(self) -> None:
        megabytes = round(current_megabytes() * random.uniform(0.5, 1.0), 1)
        self.request_json(
            "POST", "/v1/load/memory", name=MATERIALISE,
            json={"megabytes": megabytes, "hold_s": 0.5}, check=lambda body: check_memory(body, megabytes),
        )  # fmt: skip

    @task(2)
    def read_a_large_page(self) -> None:
        rows = random.choice((2_000, 5_000, 10_000))
        self.request_json(
            "GET", f"/v1/groups/{CATALOG_GROUP}/features/{CATALOG_FEATURE}?limit={rows}",
            name=LARGE_PAGE, check=lambda body: check_frame(body, page=rows),
        )  # fmt: skip
