"""IO-intensive: frames of several sizes written to the store and read back, through the API and server-side.

    locust -f locustfiles/io_intensive.py --headless -u 10 -r 2 -t 60s

Client round trips send Arrow IPC bodies (PUT) and read them back as JSON; the server-side round trip
(/v1/load/io) writes and re-reads a frame inside the service, verifying it, and reports bytes and timings.
"""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
from locust import between, task

import harness.plugin  # noqa: F401  (registers the harness: embedded service, run directory, thresholds)
from harness.users import FeatureStoreUser, check_frame, check_written

SIZES = ((1_000, 10), (10_000, 20), (50_000, 30))  # rows x columns
ARROW_WRITE = "/v1/groups/{group}/features/{feature} [arrow write]"
READ_BACK = "/v1/groups/{group}/features/{feature} [read back]"
SERVER_ROUND_TRIP = "/v1/load/io"


def arrow_body(rows: int, columns: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    table = pa.table({"id": np.arange(rows), **{f"f{i}": rng.random(rows) for i in range(columns - 1)}})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def check_io(body: object, rows: int, columns: int) -> str | None:
    if not isinstance(body, dict) or (body.get("rows"), body.get("columns")) != (rows, columns):
        return f"io: asked {rows}x{columns}, got {str(body)[:120]}"
    if not body.get("bytes_written") or not body.get("bytes_read"):
        return "io: the service reports no bytes written or read"
    return None


class IoIntensiveUser(FeatureStoreUser):
    """Feature pipelines writing fresh frames and consumers reading them back."""

    wait_time = between(0.1, 0.5)
    endpoints = (("PUT", ARROW_WRITE), ("GET", READ_BACK), ("POST", SERVER_ROUND_TRIP))
    needs_catalog = False

    def on_start(self) -> None:  # these users need no catalog ids
        self.bodies = {size: arrow_body(*size, seed=i) for i, size in enumerate(SIZES)}
        self.slot = f"frame-{random.randrange(1 << 20):05x}"

    @task(3)
    def write_then_read_back(self) -> None:
        rows, columns = random.choice(SIZES[:2])
        path = f"/v1/groups/io-test/features/{self.slot}"
        written = self.request_json(
            "PUT", f"{path}?entity_column=id", name=ARROW_WRITE,
            data=self.bodies[(rows, columns)], headers={"Content-Type": "application/vnd.apache.arrow.stream"},
            check=lambda body: check_written(body, rows=rows),
        )  # fmt: skip
        if written is not None:
            self.request_json(
                "GET", f"{path}?limit={rows}", name=READ_BACK,
                check=lambda body: check_frame(body, rows=rows, columns=columns),
            )  # fmt: skip

    @task(2)
    def server_side_round_trip(self) -> None:
        rows, columns = random.choice(SIZES)
        self.request_json(
            "POST", "/v1/load/io", name=SERVER_ROUND_TRIP,
            json={"rows": rows, "columns": columns}, check=lambda body: check_io(body, rows, columns),
        )  # fmt: skip
