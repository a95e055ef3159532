"""The HTTP API, against real uvicorn processes started with service.launcher."""

from __future__ import annotations

import asyncio
import io
import math
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi import APIRouter
from prometheus_client.parser import text_string_to_metric_families
from starlette.responses import Response

from service.app import create_app
from service.codec import ARROW_STREAM
from service.routing import DirectRoute
from service.settings import Settings
from tests.conftest import ServiceFactory

TOKEN = "s3cret-token"
FEATURE = "/v1/groups/{group}/features/{feature}"
EXPECTED_ENDPOINTS = {
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/v1/ping"),
    ("GET", "/metrics"),
    ("GET", "/v1/cache/stats"),
    ("GET", "/v1/groups"),
    ("GET", "/v1/groups/{group}/features"),
    ("PUT", FEATURE),
    ("GET", FEATURE),
    ("DELETE", FEATURE),
    ("GET", FEATURE + "/metadata"),
    ("GET", "/v1/online/{group}/{feature}/{entity_id}"),
    ("POST", "/v1/online/{group}/{feature}"),
    ("POST", "/v1/pipeline/tmdb"),
    ("POST", "/v1/load/memory"),
    ("POST", "/v1/load/io"),
    ("POST", "/v1/catalog/load"),
}


@pytest.fixture(scope="module")
def server(module_service_factory: ServiceFactory) -> Iterator[tuple[httpx.Client, Path]]:
    """The open server (no token) with small load caps, and its store directory."""
    store = module_service_factory.base_dir / "open-store"
    service = module_service_factory(
        store_path=store, max_request_memory_mb=64, max_total_memory_mb=96, max_batch_ids=100, max_io_cells=100_000
    )
    with httpx.Client(base_url=service.base_url, timeout=30.0) as client:
        yield client, store


@pytest.fixture
def api(server: tuple[httpx.Client, Path]) -> httpx.Client:
    return server[0]


def put_records(api: httpx.Client, group: str, feature: str, records: list[dict], **body: object) -> httpx.Response:
    return api.put(f"/v1/groups/{group}/features/{feature}", json={"records": records, **body})


def arrow_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def assert_json_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["detail"]
    if code is not None:
        assert body["error"] == code, body
    return body


def counter(metrics_text: str, route: str, method: str = "GET", status: str = "200") -> float:
    """featurestore_requests_total for one route/method/status, summed over every sample that matches."""
    wanted = {"route": route, "method": method, "status": status}
    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics_text)
        for sample in family.samples
        if sample.name == "featurestore_requests_total" and all(sample.labels.get(k) == v for k, v in wanted.items())
    )


def test_health_ready_and_openapi_lists_every_endpoint(api: httpx.Client) -> None:
    assert api.get("/health").json()["status"] == "ok"
    assert api.get("/ready").json()["status"] == "ready"
    assert api.get("/v1/ping").json() == {"pong": True}
    paths = api.get("/openapi.json").json()["paths"]
    listed = {(method.upper(), path) for path, methods in paths.items() for method in methods}
    assert listed >= EXPECTED_ENDPOINTS, EXPECTED_ENDPOINTS - listed
    put_body = paths[FEATURE]["put"]["requestBody"]["content"]
    assert {"application/json", ARROW_STREAM, "application/vnd.apache.parquet"} <= set(put_body)


def test_json_write_reads_back_as_json_and_arrow(api: httpx.Client) -> None:
    records = [{"id": i, "score": i / 4, "name": f"m{i}", "tags": [i, i + 1]} for i in range(5)]
    created = put_records(api, "books", "scores", records, entity_column="id")
    assert created.status_code == 201, created.text
    assert created.json()["rows"] == 5 and created.json()["entity_column"] == "id"
    frame = api.get("/v1/groups/books/features/scores").json()
    assert frame["columns"] == ["id", "score", "name", "tags"] and frame["version"] == created.json()["version"]
    assert [dict(zip(frame["columns"], row, strict=True)) for row in frame["data"]] == records
    arrow = api.get("/v1/groups/books/features/scores", headers={"Accept": ARROW_STREAM})
    assert arrow.headers["content-type"] == ARROW_STREAM
    assert pa.ipc.open_stream(arrow.content).read_all().to_pylist() == records
    page = api.get("/v1/groups/books/features/scores", params={"limit": 2, "offset": 1}).json()
    assert page["data"] == frame["data"][1:3] and page["total_rows"] == 5 and page["rows"] == 2
    columns = api.put("/v1/groups/books/features/cols", json={"columns": {"id": [1, 2], "x": [0.5, None]}})
    assert columns.status_code == 201 and columns.json()["entity_column"] == "id"
    assert "books" in api.get("/v1/groups").json()["groups"]
    listed = api.get("/v1/groups/books/features").json()["features"]
    assert {f["name"] for f in listed} == {"scores", "cols"}
    assert api.get("/v1/groups/books/features/scores/metadata").json()["schema"]["score"] == "double"


@pytest.mark.parametrize("media_type", ["arrow", "application/vnd.apache.parquet", "application/x-parquet"])
def test_binary_writes_read_back_equal(api: httpx.Client, media_type: str) -> None:
    table = pa.table({"key": ["a", "b", "c"], "value": [1.5, float("nan"), 3.0], "n": [1, 2, 3]})
    if media_type == "arrow":
        body, content_type = arrow_bytes(table), ARROW_STREAM
    else:
        sink = io.BytesIO()
        pq.write_table(table, sink)
        body, content_type = sink.getvalue(), media_type
    feature = "f" + str(abs(hash(media_type)) % 10_000)
    response = api.put(
        f"/v1/groups/bin/features/{feature}",
        content=body,
        headers={"content-type": content_type},
        params={"entity_column": "key"},
    )
    assert response.status_code == 201, response.text
    back = pa.ipc.open_stream(api.get(f"/v1/groups/bin/features/{feature}", headers={"Accept": ARROW_STREAM}).content)
    rows = back.read_all().to_pylist()
    assert [r["key"] for r in rows] == ["a", "b", "c"] and [r["n"] for r in rows] == [1, 2, 3]
    assert rows[1]["value"] is None or math.isnan(rows[1]["value"])  # the store reads through pandas: NaN -> null
    as_json = api.get(f"/v1/groups/bin/features/{feature}").json()
    assert as_json["data"][1] == ["b", None, 2]  # NaN serializes to null
    assert api.get(f"/v1/online/bin/{feature}/b").json()["values"] == {"value": None, "n": 2}


def test_online_lookup_single_and_batch(api: httpx.Client) -> None:
    put_records(api, "users", "profile", [{"id": i, "age": 20 + i, "city": f"c{i}"} for i in range(1, 6)])
    one = api.get("/v1/online/users/profile/3")
    assert one.json() == {"entity_id": 3, "version": 1, "values": {"age": 23, "city": "c3"}}
    batch = api.post("/v1/online/users/profile", json={"entity_ids": [5, 99, 1, "x"]}).json()
    assert batch["columns"] == ["age", "city"]
    assert batch["rows"] == [[25, "c5"], None, [21, "c1"], None] and batch["missing"] == [99, "x"]
    put_records(api, "users", "by_name", [{"id": "042", "v": 1}, {"id": "7", "v": 2}])
    assert api.get("/v1/online/users/by_name/042").json()["values"] == {"v": 1}  # int-looking text ids
    assert api.get("/v1/online/users/by_name/7").json()["entity_id"] == "7"
    too_many = api.post("/v1/online/users/profile", json={"entity_ids": list(range(101))})
    assert "limit is 100" in assert_json_error(too_many, 413, "too_many_ids")["detail"]  # a cap, like too_many_movies
    assert_json_error(api.post("/v1/online/users/profile", json={"entity_ids": [1.5]}), 422)
    assert_json_error(api.post("/v1/online/users/profile", content=b"[1,", headers=_JSON), 400, "invalid_json")


_JSON = {"content-type": "application/json"}
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _request_schema(document: dict, path: str, method: str = "post") -> dict:
    return document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]


def test_integers_written_as_integral_floats_are_integers(api: httpx.Client) -> None:
    # JSON Schema's "integer" is a number without a fractional part: 2.0 and 2e0 are integers, 2.5 is not.
    io_load = api.post("/v1/load/io", json={"rows": 4.0, "columns": 2e0, "seed": 1.0})
    assert io_load.status_code == 200 and io_load.json()["rows"] == 4 and io_load.json()["columns"] == 2, io_load.text
    memory = api.post("/v1/load/memory", json={"megabytes": 1, "seed": 3.0})
    assert memory.status_code == 200, memory.text
    catalog = api.post("/v1/catalog/load", json={"movies": 3.0, "seed": 7.0})
    assert catalog.status_code == 200 and catalog.json()["movies"] == 3, catalog.text
    put_records(api, "floats", "f", [{"id": 9007199254740993, "v": "big"}, {"id": 3, "v": "three"}])
    ids = b'{"entity_ids": [3.0, 3e0, 9007199254740993.0, 4.0]}'
    batch = api.post("/v1/online/floats/f", content=ids, headers=_JSON)
    assert batch.status_code == 200, batch.text
    # read exactly: as a double, 9007199254740993.0 would be ...992 and missed
    assert batch.json()["rows"] == [["three"], ["three"], ["big"], None] and batch.json()["missing"] == [4]
    for bad in ({"rows": 4.5, "columns": 2}, {"rows": True, "columns": 2}, {"rows": "4", "columns": 2}):
        assert_json_error(api.post("/v1/load/io", json=bad), 422, "validation_error")
    assert_json_error(api.post("/v1/online/floats/f", json={"entity_ids": [3.5]}), 422, "validation_error")
    # seeds are non-negative (numpy refuses the others), and the schema says so
    assert_json_error(api.post("/v1/load/memory", json={"megabytes": 1, "seed": -1}), 422, "validation_error")
    assert_json_error(api.post("/v1/catalog/load", json={"movies": 3, "seed": -1.0}), 422, "validation_error")
    document = api.get("/openapi.json").json()
    catalog_seed = document["components"]["schemas"]["CatalogLoadRequest"]["properties"]["seed"]
    assert catalog_seed["type"] == "integer" and catalog_seed["minimum"] == 0


def test_empty_names_are_refused_and_the_schema_says_so(api: httpx.Client) -> None:
    url = "/v1/groups/empty/features/f"
    body = {"records": [{"id": 1, "key": "a"}]}
    # an empty entity_column in the body was ignored (the default "id" was used): it is refused now
    empty_in_body = api.put(url, json={**body, "entity_column": ""})
    assert "non-empty" in assert_json_error(empty_in_body, 422, "invalid_frame")["detail"]
    assert_json_error(api.put(url, json=body, params={"entity_column": ""}), 422, "validation_error")
    movies = [{"movie_id": 1, "title": "x"}]
    for target in ({"group": "", "feature": "f"}, {"group": "g", "feature": ""}):
        assert_json_error(api.post("/v1/pipeline/tmdb", json={"movies": movies, "store": target}), 422)
    assert api.get(url).status_code == 404  # nothing was written
    document = api.get("/openapi.json").json()
    put = document["paths"][FEATURE]["put"]
    entity_query = next(p for p in put["parameters"] if p["name"] == "entity_column")
    assert {"type": "string", "minLength": 1} in entity_query["schema"]["anyOf"]
    assert {"type": "string", "minLength": 1} in _request_schema(document, FEATURE, "put")["properties"][
        "entity_column"
    ]["anyOf"]
    store_target = _request_schema(document, "/v1/pipeline/tmdb")["properties"]["store"]["anyOf"][0]
    for name in ("group", "feature"):
        assert store_target["properties"][name]["minLength"] == 1
        assert re.fullmatch(store_target["properties"][name]["pattern"], "") is None


def test_entity_ids_beyond_int64_are_422_within_the_declared_bounds(api: httpx.Client) -> None:
    put_records(api, "wide", "f", [{"id": INT64_MAX, "v": 1}, {"id": INT64_MIN, "v": 2}])
    edges = api.post("/v1/online/wide/f", json={"entity_ids": [INT64_MAX, INT64_MIN]})
    assert edges.status_code == 200 and edges.json()["rows"] == [[1], [2]], edges.text
    for outside in (INT64_MAX + 1, INT64_MIN - 1, 9223372036854775999, 10**30):
        response = api.post("/v1/online/wide/f", json={"entity_ids": [1, outside]})
        assert "entity_ids[1]" in assert_json_error(response, 422, "integer_out_of_range")["detail"]
    for spelled in (b"1e19", b"-9.3e18", b"1e400"):  # integers to JSON Schema, however written
        response = api.post("/v1/online/wide/f", content=b'{"entity_ids": [%s]}' % spelled, headers=_JSON)
        assert response.status_code in (400, 422), response.text  # 1e400 is not a finite JSON number: 400
    document = api.get("/openapi.json").json()
    integer = {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX}
    declared = [
        _request_schema(document, "/v1/online/{group}/{feature}")["properties"]["entity_ids"]["items"]["anyOf"][0],
        _request_schema(document, "/v1/pipeline/tmdb")["properties"]["movies"]["items"]["properties"]["movie_id"][
            "anyOf"
        ][0],
        document["components"]["schemas"]["OnlineValues"]["properties"]["entity_id"]["anyOf"][0],
    ]
    for bounds in declared:
        # exact ints: FastAPI's float-typed models had turned 2**63 - 1 into 9.223372036854776e18 (= 2**63)
        assert {key: bounds[key] for key in integer} == integer and isinstance(bounds["maximum"], int), bounds


def test_integers_in_movie_records_fit_int64_as_declared(api: httpx.Client) -> None:
    movies = [{"movie_id": " 0042 ", "extra": {"nested": [INT64_MAX]}}, {"movie_id": 7.0, "vote_count": 3}]
    accepted = api.post("/v1/pipeline/tmdb", json={"movies": movies, "return_features": True})
    assert accepted.status_code == 200, accepted.text
    assert [row[0] for row in accepted.json()["features"]["data"]] == [42, 7]
    too_big = api.post("/v1/pipeline/tmdb", json={"movies": [{"movie_id": 1, "extra": {"nested": [2**63]}}]})
    assert assert_json_error(too_big, 422, "integer_out_of_range")
    document = api.get("/openapi.json").json()
    record = _request_schema(document, "/v1/pipeline/tmdb")["properties"]["movies"]["items"]
    assert record["required"] == ["movie_id"]
    value = document["components"]["schemas"][record["additionalProperties"]["$ref"].rsplit("/", 1)[1]]
    assert {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX} in value["anyOf"]


def test_lookup_on_a_feature_without_an_entity_column_is_a_declared_409(api: httpx.Client) -> None:
    created = api.put("/v1/groups/plain/features/f", json={"columns": {"a": [1, 2], "b": [0.5, 0.7]}})
    assert created.status_code == 201 and created.json()["entity_column"] is None, created.text
    for response in (api.get("/v1/online/plain/f/1"), api.post("/v1/online/plain/f", json={"entity_ids": [1]})):
        assert "no entity column" in assert_json_error(response, 409, "not_lookupable")["detail"]
    assert_json_error(api.get("/v1/online/_bad/f/1"), 422)  # a bad name is still the request's fault
    paths = api.get("/openapi.json").json()["paths"]
    assert "409" in paths["/v1/online/{group}/{feature}/{entity_id}"]["get"]["responses"]
    assert "409" in paths["/v1/online/{group}/{feature}"]["post"]["responses"]


def test_every_operation_declares_the_statuses_the_server_can_answer(api: httpx.Client) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    writes = {
        ("put", FEATURE),
        ("post", "/v1/catalog/load"),
        ("post", "/v1/load/io"),
        ("post", "/v1/pipeline/tmdb"),
    }
    open_paths = {"/health", "/ready", "/v1/ping"}
    for path, item in paths.items():
        for method, operation in item.items():
            declared = set(operation["responses"])
            assert {"400", "405", "408", "431", "500", "503"} <= declared, (method, path)  # protocol, guards, router
            if "requestBody" in operation:
                assert "413" in declared, (method, path)  # max_body_bytes
            if path not in open_paths:
                assert {"401", "403"} <= declared, (method, path)  # once a read token is set
            if (method, path) in writes:
                assert "507" in declared, (method, path)  # a full disk


def test_unknown_group_feature_or_entity_is_404_json(api: httpx.Client) -> None:
    put_records(api, "known", "feat", [{"id": 1, "x": 1.0}])
    for path in (
        "/v1/groups/nogroup/features",
        "/v1/groups/nogroup/features/feat",
        "/v1/groups/known/features/nofeat",
        "/v1/groups/known/features/nofeat/metadata",
        "/v1/online/nogroup/feat/1",
        "/v1/online/known/nofeat/1",
        "/v1/online/known/feat/2",
        "/no/such/route",
    ):
        assert_json_error(api.get(path), 404, "not_found")
    assert "group 'nogroup' not found" in api.get("/v1/groups/nogroup/features").json()["detail"]
    assert_json_error(api.post("/v1/online/known/nofeat", json={"entity_ids": [1]}), 404)
    assert_json_error(api.delete("/v1/groups/known/features/nofeat"), 404)


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_invalid_names_are_rejected_with_a_reason_and_write_nothing(server: tuple[httpx.Client, Path]) -> None:
    api, store = server
    before = _files(store)
    long_name = "a" * 200
    cases = [
        ("/v1/groups/%2E%2E/features/x", "could leave the store's base path"),
        ("/v1/groups/ok/features/%2E%2E", "could leave the store's base path"),
        ("/v1/groups/a%2Fb/features/x", "encoded '/'"),
        ("/v1/groups/ok/features/a%2fb", "encoded '/'"),
        (f"/v1/groups/{long_name}/features/x", "200 chars long"),
        ("/v1/groups/_hidden/features/x", "use [A-Za-z0-9_-]"),
    ]
    for path, reason in cases:
        for response in (api.put(path, json={"records": [{"id": 1}]}), api.get(path)):
            assert 400 <= response.status_code < 500, (path, response.text)
            assert reason in response.json()["detail"], (path, response.text)
    assert _files(store) == before


def test_malformed_bodies_are_4xx_never_500(api: httpx.Client) -> None:
    url = "/v1/groups/bad/features/f"
    assert_json_error(api.put(url, content=b'{"records": [', headers=_JSON), 400, "invalid_json")
    assert_json_error(api.put(url, content=b"not arrow", headers={"content-type": ARROW_STREAM}), 400, "invalid_arrow")
    parquet = {"content-type": "application/vnd.apache.parquet"}
    assert_json_error(api.put(url, content=b"PAR1garbage", headers=parquet), 400, "invalid_parquet")
    assert_json_error(api.put(url, json={"records": [1, 2]}), 422, "invalid_frame")
    assert_json_error(api.put(url, json={"records": []}), 422, "empty_frame")
    assert_json_error(api.put(url, json={"records": [{"a": 1}], "columns": {}}), 422, "invalid_frame")
    assert_json_error(api.put(url, json={"records": [{"a": 1}, {"a": "x"}]}), 422, "invalid_frame")
    assert_json_error(api.put(url, json={"columns": {"a": [1], "b": [1, 2]}}), 422, "invalid_frame")
    missing_entity = api.put(url, json={"records": [{"a": 1}], "entity_column": "id"})
    assert "entity_column 'id' is not a column" in assert_json_error(missing_entity, 422)["detail"]
    empty_arrow = arrow_bytes(pa.table({"a": pa.array([], pa.int64())}))
    assert_json_error(api.put(url, content=empty_arrow, headers={"content-type": ARROW_STREAM}), 422, "empty_frame")
    for content_type in ("text/plain", "application/xml"):
        response = api.put(url, content=b"x", headers={"content-type": content_type})
        assert_json_error(response, 415, "unsupported_media_type")
    assert_json_error(api.put(url, content=b"x"), 415)
    assert_json_error(api.post("/v1/load/memory", content=b"{nope", headers=_JSON), 400, "invalid_json")
    assert_json_error(api.post("/v1/load/memory", json={"megabytes": -1}), 422, "validation_error")
    assert_json_error(api.get(url, params={"limit": -1}), 422, "validation_error")
    assert_json_error(api.delete("/v1/ping"), 405)
    assert api.get("/v1/groups").json()["groups"].count("bad") == 0


def test_damaged_file_is_a_json_500(server: tuple[httpx.Client, Path]) -> None:
    api, store = server
    put_records(api, "fragile", "f", [{"id": 1, "x": 2.0}])
    data_file = next((store / "fragile" / "f").glob("v*.parquet"))
    data_file.write_bytes(data_file.read_bytes()[::-1])
    assert "failed verification" in assert_json_error(api.get("/v1/groups/fragile/features/f"), 500)["detail"]


def test_memory_endpoint_caps_and_budget(api: httpx.Client) -> None:
    held = api.post("/v1/load/memory", json={"megabytes": 8, "hold_s": 0.05, "seed": 1})
    assert held.status_code == 200, held.text
    assert held.json()["frame_bytes"] >= 8 << 20 and held.json()["rss_bytes_peak"] > 0
    assert_json_error(api.post("/v1/load/memory", json={"megabytes": 65}), 413, "too_much_memory")
    first: list[httpx.Response] = []
    hold = {"megabytes": 60, "hold_s": 3}
    holder = threading.Thread(target=lambda: first.append(api.post("/v1/load/memory", json=hold)))
    holder.start()
    deadline = time.monotonic() + 10
    while not re.search(r"^featurestore_memory_held_bytes [1-9]", api.get("/metrics").text, re.MULTILINE):
        assert time.monotonic() < deadline, "the first hold never showed in featurestore_memory_held_bytes"
    refused = api.post("/v1/load/memory", json={"megabytes": 60})
    holder.join()
    assert "budget" in assert_json_error(refused, 429, "memory_budget_exhausted")["detail"]
    assert int(refused.headers["retry-after"]) >= 1
    assert first[0].status_code == 200 and first[0].json()["held_s"] == 3


def test_io_endpoint_round_trips_and_cleans_up(api: httpx.Client) -> None:
    result = api.post("/v1/load/io", json={"rows": 2000, "columns": 8, "seed": 3}).json()
    assert result["verified"] is True and result["bytes_written"] > 0
    assert result["bytes_read"] == result["bytes_written"]
    assert result["write_ms"] > 0 and result["read_ms"] > 0
    assert_json_error(api.get("/v1/groups/io-scratch/features"), 404)  # the scratch feature was deleted
    assert_json_error(api.post("/v1/load/io", json={"rows": 100_000, "columns": 2}), 413, "too_large")


def test_pipeline_with_messy_movies(api: httpx.Client) -> None:
    movies = [
        {
            "movie_id": 1,
            "title": "Clean",
            "release_date": "2020-05-01",
            "vote_average": 7.5,
            "vote_count": 1200,
            "popularity": 33.1,
            "genre_ids": [28, 12],
            "adult": False,
            "original_language": "en",
            "overview": "A film.",
        },
        {
            "movie_id": 2,
            "title": None,
            "release_date": "not-a-date",
            "vote_average": "8.1",
            "vote_count": None,
            "popularity": -3,
            "genre_ids": None,
            "adult": "false",
            "original_language": "",
            "overview": None,
        },
        {"movie_id": "3", "title": "  Padded  ", "release_date": "", "vote_average": 11, "genre_ids": "[18]"},
    ]
    body = {
        "movies": movies,
        "reference_date": "2024-01-01",
        "return_features": True,
        "store": {"group": "tmdb_test", "feature": "features"},
    }
    response = api.post("/v1/pipeline/tmdb", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["rows"] == 3 and result["columns"][0] == "movie_id" and result["elapsed_ms"] > 0
    assert result["features"]["columns"] == result["columns"] and result["stored"]["rows"] == 3
    assert api.get("/v1/online/tmdb_test/features/2").status_code == 200
    bad = api.post("/v1/pipeline/tmdb", json={"movies": [movies[0], {"movie_id": "abc"}]})
    assert "record 1 has no usable movie_id" in assert_json_error(bad, 422)["detail"]
    assert_json_error(api.post("/v1/pipeline/tmdb", json={"movies": "x"}), 422)


def test_catalog_load_then_lookup(api: httpx.Client) -> None:
    loaded = api.post("/v1/catalog/load", json={"movies": 300, "seed": 7})
    assert loaded.status_code == 200, loaded.text
    result = loaded.json()
    assert result["movies"] == 300 and result["feature_rows"] == 300
    assert set(result["stored"]) == {"movies", "movie_features"}
    movie_id = api.get("/v1/groups/tmdb/features/movies", params={"limit": 1}).json()["data"][0][0]
    raw = api.get(f"/v1/online/tmdb/movies/{movie_id}").json()
    assert raw["entity_id"] == movie_id and "title" in raw["values"]
    assert api.get(f"/v1/online/tmdb/movie_features/{movie_id}").status_code == 200
    assert_json_error(api.post("/v1/catalog/load", json={"movies": 10**9}), 413, "too_many_movies")


def test_metrics_count_requests_by_route_template(api: httpx.Client) -> None:
    put_records(api, "metered", "f", [{"id": 1, "x": 1}])
    before = api.get("/metrics").text
    for _ in range(5):
        api.get("/v1/ping")
        api.get("/v1/online/metered/f/1")
    api.get("/definitely/unmatched")
    after = api.get("/metrics").text
    assert counter(after, "/v1/ping") - counter(before, "/v1/ping") == 5
    online = "/v1/online/{group}/{feature}/{entity_id}"
    assert counter(after, online) - counter(before, online) == 5
    assert counter(after, "unmatched", status="404") - counter(before, "unmatched", status="404") == 1
    assert "/v1/online/metered" not in after  # raw paths never become labels
    assert re.search(r"^featurestore_cache_hits_total [1-9]", after, re.MULTILINE)
    assert re.search(r"^featurestore_store_bytes_written_total [1-9]", after, re.MULTILINE)
    ping_bucket = r'^featurestore_request_duration_seconds_bucket\{.*route="/v1/ping".*\} [1-9]'
    assert re.search(ping_bucket, after, re.MULTILINE)
    assert api.get("/v1/cache/stats").json()["enabled"] is True


def test_token_and_body_cap(service_factory: ServiceFactory) -> None:
    service = service_factory(write_token=TOKEN, max_body_bytes=2048)
    with httpx.Client(base_url=service.base_url) as api:
        url, body = "/v1/groups/secure/features/f", {"records": [{"id": 1, "x": 2}]}
        missing = api.put(url, json=body)
        assert_json_error(missing, 401, "unauthorized")
        assert missing.headers["www-authenticate"] == "Bearer"
        assert_json_error(api.put(url, json=body, headers={"Authorization": "Bearer wrong"}), 403, "forbidden")
        assert_json_error(api.put(url, json=body, headers={"Authorization": f"Basic {TOKEN}"}), 401)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert api.put(url, json=body, headers=auth).status_code == 201
        assert api.get(url).status_code == 200 and api.get("/v1/online/secure/f/1").status_code == 200  # reads open
        assert_json_error(api.delete(url), 401)
        assert_json_error(api.post("/v1/catalog/load", json={"movies": 1}), 401)
        big = {"records": [{"id": i, "x": "y" * 50} for i in range(100)]}
        assert_json_error(api.put(url, json=big, headers=auth), 413, "payload_too_large")

        def chunks() -> Iterator[bytes]:  # no Content-Length: the cap is enforced while streaming
            yield b'{"records": ['
            for i in range(100):
                yield b'{"id": %d, "x": "%s"},' % (i, b"y" * 50)
            yield b'{"id": -1}]}'

        streamed = api.put(url, content=chunks(), headers={**auth, **_JSON})
        assert_json_error(streamed, 413, "payload_too_large")
        assert_json_error(api.post("/v1/online/secure/f", json={"entity_ids": list(range(1000))}), 413)
        assert api.delete(url, headers=auth).status_code == 204
        assert_json_error(api.get(url), 404)


def test_workers_share_metrics(service_factory: ServiceFactory) -> None:
    service = service_factory(workers=2)

    def hit(_: int) -> int:
        with httpx.Client(base_url=service.base_url) as fresh:  # a new connection each time: any worker may answer
            return int(fresh.get("/health").json()["pid"])

    before = counter(httpx.get(service.base_url + "/metrics").text, "/health")
    pids: set[int] = set()
    sent = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        while len(pids) < 2 and sent < 2000:
            pids.update(pool.map(hit, range(40)))
            sent += 40
    assert len(pids) == 2, f"all {sent} requests went to one worker: {pids}"
    metrics = httpx.get(service.base_url + "/metrics").text
    assert counter(metrics, "/health") - before == sent


def test_a_bug_becomes_a_logged_json_500(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings(store_path=tmp_path / "store"))

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a genuine bug")

    async def scenario() -> tuple[httpx.Response, str]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        client = httpx.AsyncClient(transport=transport, base_url="http://test")
        async with app.router.lifespan_context(app), client:
            return await client.get("/boom"), (await client.get("/metrics")).text

    response, metrics = asyncio.run(scenario())
    assert_json_error(response, 500, "internal_error")
    assert counter(metrics, "/boom", status="500") == 1
    assert "RuntimeError on GET /boom: a genuine bug" in caplog.text


def test_direct_route_refuses_endpoints_it_cannot_call() -> None:
    router = APIRouter(route_class=DirectRoute)

    async def with_query(group: str, limit: int = 10) -> Response:
        return Response()

    def not_async(group: str) -> Response:
        return Response()

    for endpoint in (with_query, not_async):
        with pytest.raises(TypeError, match="only str path parameters"):
            router.add_api_route("/x/{group}", endpoint)
