"""The single lookup's fast path (service/fast_lookup.py): the full path's answer byte for byte, under every
middleware, coherent with writes from other processes, and out of the way whenever anything is unusual."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from features.store.feature_store import FeatureStoreConfig, SimpleFeatureStore
from service.app import create_app
from service.fast_lookup import FastLookupMiddleware
from service.responses import dumps
from service.settings import Settings
from tests.conftest import ServiceFactory
from tests.service.test_service_api import counter

ONLINE = "/v1/online/{group}/{feature}/{entity_id}"
RECORDS = [
    {"id": 1, "title": 'Ünïcode "quoted"', "score": 7.25, "votes": 12, "flag": True, "genres": ["a", "b"]},
    {"id": 2, "title": None, "score": None, "votes": -3, "flag": False, "genres": []},
]


class _FastAnswers:
    """Counts the requests the fast path answered (monkeypatched around ``FastLookupMiddleware._answer``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = FastLookupMiddleware._answer

        def counted(middleware: FastLookupMiddleware, scope: dict, rest: str) -> bytes | None:
            body = real(middleware, scope, rest)
            self.count += body is not None
            return body

        monkeypatch.setattr(FastLookupMiddleware, "_answer", counted)


def _in_process(settings: Settings, scenario: Callable[[httpx.AsyncClient], Awaitable[Any]]) -> Any:
    app = create_app(settings)

    async def run() -> Any:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return await scenario(c)

    return asyncio.run(run())


async def _put(client: httpx.AsyncClient, feature: str = "f", records: list[dict] = RECORDS) -> None:
    response = await client.put(f"/v1/groups/g/features/{feature}", json={"records": records})
    assert response.status_code == 201, response.text


def test_the_fast_answer_is_the_full_paths_byte_for_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _FastAnswers(monkeypatch)
    paths = [f"/v1/online/g/f/{entity}" for entity in (1, 1, 2, 2, 1)]

    async def scenario(client: httpx.AsyncClient) -> tuple[list[httpx.Response], str, str]:
        await _put(client)
        before = (await client.get("/metrics")).text
        answers = [await client.get(path) for path in paths]
        return answers, before, (await client.get("/metrics")).text

    answers, before, after = _in_process(Settings(store_path=tmp_path / "fast"), scenario)
    assert fast.count == 4  # all but the first, cold read
    assert counter(after, ONLINE) - counter(before, ONLINE) == 5  # timed and counted under the route's template

    monkeypatch.setattr("features.store.feature_store.SimpleFeatureStore.lookup_current", lambda *args: None)
    full, _, _ = _in_process(Settings(store_path=tmp_path / "full"), scenario)
    assert fast.count == 4  # none more: every answer of this service went the full path
    for quick, slow in zip(answers, full, strict=True):
        assert quick.status_code == slow.status_code == 200
        assert quick.content == slow.content
        assert quick.headers.items() == slow.headers.items()

    # and the bytes are those of the whole answer encoded at once, as before the fast path existed
    store = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp_path / "fast"))
    result = store.lookup("g", "f", [2])
    expected = {"entity_id": 2, "version": 1, "values": dict(zip(result.columns, result.rows[0], strict=True))}
    assert answers[3].content == dumps(expected)
    assert answers[3].json()["values"]["score"] is None


def test_anything_unusual_takes_the_full_path_and_its_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _FastAnswers(monkeypatch)

    async def scenario(client: httpx.AsyncClient) -> dict[str, httpx.Response]:
        await _put(client)
        await _put(client, "text_ids", [{"id": "42", "x": 1}])
        await _put(client, "no_entity", [{"x": 1}])
        got = {}
        for name, path in {
            "warm": "/v1/online/g/f/1",
            "unknown id": "/v1/online/g/f/999",
            "text id": "/v1/online/g/text_ids/42",
            "text id again": "/v1/online/g/text_ids/42",
            "no entity column": "/v1/online/g/no_entity/1",
            "bad name": "/v1/online/g/bad..name/1",
            "unknown feature": "/v1/online/g/missing/1",
            "trailing slash": "/v1/online/g/f/1/",
        }.items():
            got[name] = await client.get(path)
        got["head"] = await client.head("/v1/online/g/f/1")
        got["post"] = await client.post("/v1/online/g/f/1")
        return got

    got = _in_process(Settings(store_path=tmp_path / "store"), scenario)
    assert got["unknown id"].status_code == 404 and got["unknown id"].json()["error"]
    assert got["text id"].json()["entity_id"] == "42" and got["text id again"].json()["entity_id"] == "42"
    assert got["no entity column"].status_code == 409
    assert got["bad name"].status_code == 422
    assert got["unknown feature"].status_code == 404
    assert got["trailing slash"].status_code == 307  # Starlette's redirect to the route without the slash
    assert got["head"].status_code == 405 and got["post"].status_code == 405
    assert fast.count == 0  # "warm" was the first read of f/1; nothing else is the fast path's


def test_the_read_token_and_an_injected_delay_apply_to_fast_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = _FastAnswers(monkeypatch)
    token = {"Authorization": "Bearer reader"}
    settings = Settings(store_path=tmp_path / "store", read_token="reader", write_token="writer", inject_delay_ms=50)

    async def scenario(client: httpx.AsyncClient) -> tuple[int, int, float]:
        put = await client.put(
            "/v1/groups/g/features/f", json={"records": RECORDS}, headers={"Authorization": "Bearer writer"}
        )
        assert put.status_code == 201
        assert (await client.get("/v1/online/g/f/1", headers=token)).status_code == 200  # warms it
        refused = (await client.get("/v1/online/g/f/1")).status_code
        started = time.perf_counter()
        answered = (await client.get("/v1/online/g/f/1", headers=token)).status_code
        return refused, answered, time.perf_counter() - started

    refused, answered, elapsed_s = _in_process(settings, scenario)
    assert refused == 401 and answered == 200
    assert fast.count == 1
    assert elapsed_s >= 0.05  # the delay sits outside the fast path, as ab's injected-delay check needs


def test_a_write_by_another_process_is_the_next_fast_answer(service_factory: ServiceFactory, tmp_path: Path) -> None:
    store_path = tmp_path / "shared-store"
    service = service_factory(store_path=store_path)
    writer = SimpleFeatureStore(FeatureStoreConfig(base_path=store_path))  # this test's process, not the service's
    writer.save_features("g", {"f": pd.DataFrame({"id": [1], "x": [1]})}, entity_column="id")
    with httpx.Client(base_url=service.base_url, timeout=30) as client:
        for marker in range(1, 30):
            if marker > 1:
                writer.save_features("g", {"f": pd.DataFrame({"id": [1], "x": [marker]})}, entity_column="id")
            for _ in range(3):  # the first read after a write validates; the next ones are fast answers
                body = client.get("/v1/online/g/f/1").json()
                assert (body["values"]["x"], body["version"]) == (marker, marker)
