"""Hardening (issue 7): memory caps that hold for any request, and bad input that is a 4xx, never a 500 or a
silent change. Against real uvicorn processes; memory is read from the service's own process."""

from __future__ import annotations

import io
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.codec import ARROW_STREAM, PARQUET
from service.frame_limits import FrameLimits
from service.launcher import ServiceProcess
from service.settings import Settings, SettingsError
from tests.conftest import ServiceFactory

MB = 1 << 20
BOMB_ROWS = 200_000_000


@pytest.fixture(scope="module")
def service(module_service_factory: ServiceFactory) -> ServiceProcess:
    """One service with default caps (the defaults are what must hold)."""
    return module_service_factory()


@pytest.fixture(scope="module")
def api(service: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.base_url, timeout=30.0) as client:
        yield client


def rss_bytes(service: ServiceProcess) -> int:
    return int(psutil.Process(service.pid).memory_info().rss)


def peak_rss_bytes(service: ServiceProcess) -> int:
    """The process's RSS high-water mark (VmHWM): catches a peak that was freed before we could sample it."""
    for line in Path(f"/proc/{service.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


def arrow_stream(table: pa.Table, compression: str | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def parquet_bytes(table: pa.Table, **options: object) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **options)
    return sink.getvalue()


def bombs() -> dict[str, tuple[str, bytes]]:
    """Bodies under 1 MB that decode to gigabytes: null columns of 200M rows, one 1 MB string repeated by a
    dictionary, a zstd-compressed 300 MB value. Built without ever holding the decoded data here."""
    nulls = pa.table({"id": pa.nulls(BOMB_ROWS)})
    repeated = pa.DictionaryArray.from_arrays(pa.array(np.zeros(2000, dtype=np.int32)), pa.array(["x" * MB]))
    size = 300 * MB
    offsets = pa.py_buffer(np.array([0, size], dtype=np.int64).tobytes())
    huge_value = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(bytes(size))])
    return {
        "parquet, 200M null rows": (PARQUET, parquet_bytes(nulls, compression="zstd")),
        "arrow, 200M null rows": (ARROW_STREAM, arrow_stream(nulls)),
        # store_schema=False: the file says "string", so the reader meets the dictionary only while decoding
        "parquet, 2 GB of dictionary strings": (
            PARQUET,
            parquet_bytes(pa.table({"s": repeated}), compression="zstd", store_schema=False),
        ),
        "arrow, 2 GB of dictionary strings": (ARROW_STREAM, arrow_stream(pa.table({"s": repeated}), "zstd")),
        "arrow, one zstd value of 300 MB": (ARROW_STREAM, arrow_stream(pa.table({"b": huge_value}), "zstd")),
    }


def test_frame_caps_are_settings_read_from_the_environment() -> None:
    settings = Settings.from_env({"FEATURESTORE_MAX_FRAME_BYTES": "1000", "FEATURESTORE_MAX_FRAME_CELLS": "10"})
    assert (settings.max_frame_bytes, settings.max_frame_cells) == (1000, 10)
    with pytest.raises(SettingsError, match="max_frame_bytes=0 is invalid"):
        Settings(max_frame_bytes=0)
    # the decoded bytes are held to the smaller of the two caps, and the message names the one that binds
    assert FrameLimits.from_settings(Settings()).max_bytes == 256 * MB
    tight = FrameLimits.from_settings(Settings(max_request_memory_mb=64, max_total_memory_mb=96))
    assert (tight.max_bytes, tight.bytes_setting) == (64 * MB, "max_request_memory_mb")


def test_decompression_bombs_get_413_without_the_memory(api: httpx.Client, service: ServiceProcess) -> None:
    peak_before = peak_rss_bytes(service)
    for name, (media_type, body) in bombs().items():
        assert len(body) < MB, name
        response = api.put(
            f"/v1/groups/bombs/features/f{len(name)}", content=body, headers={"content-type": media_type}
        )
        assert response.status_code == 413, (name, response.text)
        error = response.json()
        assert error["error"] == "frame_too_large", (name, error)
        assert "max_frame_cells" in error["detail"] or "max_frame_bytes" in error["detail"], (name, error)
        grown_mb = (peak_rss_bytes(service) - peak_before) / MB
        assert grown_mb < 64, f"{name}: the service's peak RSS grew by {grown_mb:.0f} MB"
    assert api.get("/v1/groups/bombs/features").status_code == 404  # nothing was stored


def test_legitimate_binary_frames_still_round_trip(api: httpx.Client) -> None:
    table = pa.table(
        {
            "id": pa.array(range(100_000)),
            "name": pa.array([f"movie {i % 977}" for i in range(100_000)]),
            "tags": pa.array([["a", f"t{i % 13}"] for i in range(100_000)]),
            "delta": pa.array([f"prefix-{i}" for i in range(100_000)]),
        }
    )
    bodies = {
        PARQUET: parquet_bytes(table, use_dictionary=["name", "tags"], column_encoding={"delta": "DELTA_BYTE_ARRAY"}),
        ARROW_STREAM: arrow_stream(table, "zstd"),
    }
    for media_type, body in bodies.items():
        url = f"/v1/groups/legit/features/f{len(media_type)}"
        assert api.put(url, content=body, headers={"content-type": media_type}).status_code == 201
        read = api.get(url, headers={"Accept": ARROW_STREAM})
        # values, not types: the store reads strings back as large_string (through pandas)
        assert pa.ipc.open_stream(read.content).read_all().to_pydict() == table.to_pydict(), media_type


def _hostile_round(api: httpx.Client, count: int) -> None:
    """``count`` requests for unique names: lookups, reads and metadata of valid 120-char names that do not
    exist (404), and lookups of 3000-char names, which are invalid (422)."""
    for _ in range(count // 6):
        group, feature = ("g" + uuid.uuid4().hex * 4)[:120], ("f" + uuid.uuid4().hex * 4)[:120]
        long_group, long_feature = uuid.uuid4().hex * 94, uuid.uuid4().hex * 94
        responses = [
            api.get(f"/v1/online/{group}/{feature}/{uuid.uuid4().hex}"),
            api.post(f"/v1/online/{group}/{feature}", json={"entity_ids": [1, "a"]}),
            api.get(f"/v1/groups/{group}/features/{feature}"),
            api.get(f"/v1/groups/{group}/features/{feature}/metadata"),
        ]
        assert [r.status_code for r in responses] == [404] * 4, [r.text for r in responses]
        responses = [
            api.get(f"/v1/online/{long_group}/{long_feature}/1"),
            api.post(f"/v1/online/{long_group}/{long_feature}", json={"entity_ids": [1]}),
        ]
        assert [r.status_code for r in responses] == [422] * 2, [r.text[:200] for r in responses]


def test_lookups_of_missing_names_do_not_grow_memory(api: httpx.Client, service: ServiceProcess) -> None:
    _hostile_round(api, 1200)  # warm-up: allocator arenas, connection, code paths
    before = rss_bytes(service)
    _hostile_round(api, 6000)
    grown_mb = (rss_bytes(service) - before) / MB
    assert grown_mb < 3, f"RSS grew by {grown_mb:.1f} MB over 6000 requests for missing names"


def test_huge_limit_or_offset_is_422(api: httpx.Client) -> None:
    url = "/v1/groups/pages/features/f"
    assert api.put(url, json={"records": [{"id": i} for i in range(5)]}).status_code == 201
    for params in ({"limit": 2**63}, {"offset": 2**63}, {"limit": 10**30}, {"offset": 2**62 + 1}):
        response = api.get(url, params=params)
        assert response.status_code == 422, (params, response.text)
    page = api.get(url, params={"offset": 2**62, "limit": 2**62}).json()  # the largest allowed: an empty page
    assert (page["rows"], page["total_rows"]) == (0, 5)


def test_integers_beyond_int64_are_refused_not_rounded(api: httpx.Client) -> None:
    url = "/v1/groups/ints/features/f"
    exact = {"records": [{"id": 1, "big": 2**63 - 1}, {"id": 2, "big": -(2**63)}]}
    assert api.put(url, json=exact).status_code == 201
    assert [row[1] for row in api.get(url).json()["data"]] == [2**63 - 1, -(2**63)]  # the bounds, exact
    for value in (2**63, -(2**63) - 1, 10**23, 2**64):
        for body in ({"records": [{"id": 1, "big": value}]}, {"columns": {"id": [1], "big": [value]}}):
            response = api.put(url, json=body)
            assert response.status_code == 422, (value, response.text)
            assert response.json()["error"] == "integer_out_of_range" and "'big'" in response.json()["detail"]
    assert api.get(url).json()["version"] == 1  # nothing was written
    batch = api.post("/v1/online/ints/f", json={"entity_ids": [1, 10**23]})
    assert batch.status_code == 422 and "entity_ids[1]" in batch.json()["detail"], batch.text
    movies = {"movies": [{"id": 1, "title": "x", "budget": 10**25}]}
    pipeline = api.post("/v1/pipeline/tmdb", json=movies)
    assert pipeline.status_code == 422 and "movies[0].budget" in pipeline.json()["detail"], pipeline.text
    for raw in (b'{"records": [{"id": 1, "x": 1e400}]}', b'{"records": [{"id": 1, "x": NaN}]}'):
        bad = api.put(url, content=raw, headers={"content-type": "application/json"})
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_json", bad.text
        # a long digit run elsewhere takes the exact parser: it must refuse non-finite numbers too
        bad = api.put(
            url, content=raw[:-3] + b', "n": 12345678901234567890}]}', headers={"content-type": "application/json"}
        )
        assert bad.status_code == 400, bad.text


def _requests_total(metrics_text: str, status: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
        if sample.name == "featurestore_requests_total" and sample.labels.get("status") == status
    )


def test_client_leaving_mid_body_is_499_not_500(service_factory: ServiceFactory) -> None:
    service = service_factory()
    head = (
        "PUT /v1/groups/left/features/f HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 100000\r\n\r\n"
    )
    with socket.create_connection((service.host, service.port)) as sock:
        sock.sendall(head.encode() + b'{"records": [')
    with httpx.Client(base_url=service.base_url, timeout=10.0) as api:
        # The server handles the disconnect after our close: poll /metrics (bounded) until it has counted it.
        for _ in range(200):
            text = api.get("/metrics").text
            if _requests_total(text, "499") or _requests_total(text, "500"):
                break
    assert _requests_total(text, "499") == 1, text
    assert _requests_total(text, "500") == 0
    log = service.log_text()
    assert "ClientDisconnect" not in log and "Traceback" not in log and "unhandled" not in log, log
