"""Who may write and read: every route is probed without a token, and the store on disk must not change.

The audit table below names a valid request for every route the app serves, and the first test fails when a
route is added without an entry: a new route cannot skip the audit.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.settings import Settings
from tests.conftest import ServiceFactory

WRITE_TOKEN = "w-token-planted-1234"
READ_TOKEN = "r-token-planted-5678"
MOVIE = {"movie_id": 1, "title": "A", "release_date": "2001-02-03", "genres": [{"id": 18, "name": "Drama"}]}

# (method, path template) -> (concrete path, JSON body or None, writes to disk?)
AUDIT: dict[tuple[str, str], tuple[str, Any, bool]] = {
    ("GET", "/health"): ("/health", None, False),
    ("GET", "/ready"): ("/ready", None, False),
    ("GET", "/v1/ping"): ("/v1/ping", None, False),
    ("GET", "/metrics"): ("/metrics", None, False),
    ("GET", "/v1/cache/stats"): ("/v1/cache/stats", None, False),
    ("GET", "/v1/groups"): ("/v1/groups", None, False),
    ("GET", "/v1/groups/{group}/features"): ("/v1/groups/g/features", None, False),
    ("PUT", "/v1/groups/{group}/features/{feature}"): ("/v1/groups/g/features/f", {"records": [{"id": 9}]}, True),
    ("GET", "/v1/groups/{group}/features/{feature}"): ("/v1/groups/g/features/f", None, False),
    ("DELETE", "/v1/groups/{group}/features/{feature}"): ("/v1/groups/g/features/f", None, True),
    ("GET", "/v1/groups/{group}/features/{feature}/metadata"): ("/v1/groups/g/features/f/metadata", None, False),
    ("GET", "/v1/online/{group}/{feature}/{entity_id}"): ("/v1/online/g/f/1", None, False),
    ("POST", "/v1/online/{group}/{feature}"): ("/v1/online/g/f", {"entity_ids": [1]}, False),
    ("POST", "/v1/pipeline/tmdb"): (
        "/v1/pipeline/tmdb",
        {"movies": [MOVIE], "store": {"group": "g", "feature": "f"}},
        True,
    ),
    ("POST", "/v1/load/memory"): ("/v1/load/memory", {"megabytes": 1, "hold_s": 0}, False),
    ("POST", "/v1/load/io"): ("/v1/load/io", {"rows": 10, "columns": 2}, True),
    ("POST", "/v1/catalog/load"): ("/v1/catalog/load", {"movies": 10}, True),
}
DOCS = {"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under ``root`` with its size and mtime (ns): any write shows up."""
    found = {}
    for path, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(path, name)
            stat = os.stat(full)
            found[os.path.relpath(full, root)] = (stat.st_size, stat.st_mtime_ns)
    return found


def _send(client: httpx.Client, method: str, path: str, body: Any, token: str | None) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return client.request(method, path, json=body, headers=headers)


def test_the_audit_table_covers_every_route_the_app_serves(tmp_path: Path) -> None:
    app = create_app(Settings(store_path=tmp_path))
    served = {
        (method, route.path)
        for route in app.routes
        for method in getattr(route, "methods", ()) or ()
        if method != "HEAD" and route.path not in DOCS
    }
    assert served == set(AUDIT), f"routes missing from the audit: {served - set(AUDIT)}"


@pytest.fixture(scope="module")
def protected(module_service_factory: ServiceFactory) -> Iterator[tuple[httpx.Client, Path]]:
    store = module_service_factory.base_dir / "protected-store"
    service = module_service_factory(store_path=store, write_token=WRITE_TOKEN, max_catalog_movies=100)
    with httpx.Client(base_url=service.base_url, timeout=30.0) as client:
        put = client.put("/v1/groups/g/features/f", json={"records": [{"id": 1, "x": 1.0}]}, headers=_auth())
        assert put.status_code == 201, put.text
        yield client, store


def _auth(token: str = WRITE_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("route", sorted(AUDIT), ids=lambda r: f"{r[0]} {r[1]}")
@pytest.mark.parametrize("token", [None, "wrong-token"], ids=["no-token", "wrong-token"])
def test_no_request_without_the_write_token_changes_the_store(
    protected: tuple[httpx.Client, Path], route: tuple[str, str], token: str | None
) -> None:
    client, store = protected
    path, body, writes = AUDIT[route]
    before = _snapshot(store)
    response = _send(client, route[0], path, body, token)
    assert _snapshot(store) == before, f"{route} changed the store without the write token"
    assert response.status_code < 500, response.text
    if writes:
        assert response.status_code == (401 if token is None else 403), response.text
        assert response.json()["error"] in ("unauthorized", "forbidden")
        if token is None:
            assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("route", sorted(r for r, (_, _, writes) in AUDIT.items() if writes), ids=" ".join)
def test_every_writing_route_works_with_the_write_token(
    protected: tuple[httpx.Client, Path], route: tuple[str, str]
) -> None:
    client, _ = protected
    path, body, _ = AUDIT[route]
    response = _send(client, route[0], path, body, WRITE_TOKEN)
    assert response.status_code in (200, 201, 204), response.text
    if route[0] == "DELETE":  # put the feature back for the other tests
        client.put("/v1/groups/g/features/f", json={"records": [{"id": 1, "x": 1.0}]}, headers=_auth())


def test_the_pipeline_without_a_store_target_stays_open(protected: tuple[httpx.Client, Path]) -> None:
    client, store = protected
    before = _snapshot(store)
    response = client.post("/v1/pipeline/tmdb", json={"movies": [MOVIE], "return_features": True})
    assert response.status_code == 200, response.text
    assert _snapshot(store) == before


@pytest.fixture(scope="module")
def closed(module_service_factory: ServiceFactory) -> Iterator[httpx.Client]:
    service = module_service_factory(
        store_path=module_service_factory.base_dir / "closed-store", write_token=WRITE_TOKEN, read_token=READ_TOKEN
    )
    with httpx.Client(base_url=service.base_url, timeout=30.0) as client:
        put = client.put("/v1/groups/g/features/f", json={"records": [{"id": 1, "x": 1.0}]}, headers=_auth())
        assert put.status_code == 201, put.text
        yield client


@pytest.mark.parametrize("route", sorted(r for r, (_, _, writes) in AUDIT.items() if not writes), ids=" ".join)
def test_a_read_token_closes_every_read_but_the_probes(closed: httpx.Client, route: tuple[str, str]) -> None:
    path, body, _ = AUDIT[route]
    anonymous = _send(closed, route[0], path, body, None)
    if path in ("/health", "/ready", "/v1/ping"):
        assert anonymous.status_code == 200
        return
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.json()["error"] == "unauthorized"
    assert _send(closed, route[0], path, body, "wrong").status_code == 403
    for token in (READ_TOKEN, WRITE_TOKEN):
        assert _send(closed, route[0], path, body, token).status_code == 200, token


def test_with_a_read_token_writes_still_need_the_write_token(closed: httpx.Client) -> None:
    body = {"records": [{"id": 2}]}
    assert closed.put("/v1/groups/g/features/h", json=body, headers=_auth(READ_TOKEN)).status_code == 403
    assert closed.put("/v1/groups/g/features/h", json=body, headers=_auth(WRITE_TOKEN)).status_code == 201
    assert closed.get("/openapi.json").status_code == 200  # the API's description stays readable


def test_blank_read_token_is_refused_with_the_setting_named() -> None:
    with pytest.raises(ValueError, match="read_token must not be blank"):
        Settings(read_token="  ")
