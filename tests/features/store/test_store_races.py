"""Reads, writes and deletes of one feature at the same time: labels match data, no 500, no directory left behind.

Store-level tests drive threads on one store; the HTTP tests drive a real uvicorn process, where the route and
the store's thread pool meet.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pandas as pd
import pyarrow as pa
import pytest

from features.store.feature_store import FeatureNotFoundError, FeatureStoreConfig, SimpleFeatureStore
from tests.conftest import ServiceFactory

WRITES = 300


def _directories(root: Path) -> list[str]:
    """Every directory under ``root`` except the store's own hidden ones, relative to ``root``."""
    found = []
    for path, dirs, _ in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [os.path.relpath(os.path.join(path, d), root) for d in dirs]
    return sorted(found)


def test_a_read_carries_the_version_of_the_data_it_returns(tmp_path: Path) -> None:
    store = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp_path))
    store.save_features("g", {"f": pd.DataFrame({"id": [0], "marker": [0]})})
    version_of_marker: dict[int, int] = {0: 1}
    done = threading.Event()

    def write() -> None:
        for marker in range(1, WRITES):
            store.save_features("g", {"f": pd.DataFrame({"id": [0], "marker": [marker]})})
            version_of_marker[marker] = store.get_metadata("g", "f").version
        done.set()

    seen: list[tuple[int, int]] = []
    writer = threading.Thread(target=write)
    writer.start()
    while not done.is_set():
        table, metadata = store.get_table_and_metadata("g", "f")
        seen.append((table.column("marker")[0].as_py(), metadata.version))
    writer.join()
    assert len(seen) > 10
    wrong = [(marker, version) for marker, version in seen if version_of_marker[marker] != version]
    assert wrong == []


def test_deletes_racing_writes_never_fail_a_write_and_leave_no_directory(tmp_path: Path) -> None:
    store = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp_path, cache_enabled=False))
    frame = pd.DataFrame({"id": range(200), "x": range(200)})
    stop = threading.Event()
    errors: list[BaseException] = []

    def delete_repeatedly() -> None:
        while not stop.is_set():
            try:
                store.delete_feature("g", "f")
            except FeatureNotFoundError:
                pass
            except BaseException as error:  # any other exception is the defect under test
                errors.append(error)

    deleter = threading.Thread(target=delete_repeatedly)
    deleter.start()
    try:
        for _ in range(WRITES):
            store.save_features("g", {"f": frame})
    finally:
        stop.set()
        deleter.join()
    assert errors == []
    if (tmp_path / "g" / "f" / "_current.json").exists():
        store.delete_feature("g", "f")
    assert _directories(tmp_path) == []
    assert os.listdir(tmp_path / ".staging") == []


def test_failed_operations_leave_no_directory(tmp_path: Path) -> None:
    store = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp_path))
    with pytest.raises(FeatureNotFoundError):
        store.delete_feature("nogroup", "nofeature")
    with pytest.raises(FeatureNotFoundError):
        store.get_features(["nofeature"], "nogroup")
    unstorable = pd.DataFrame({"id": [1, 2], "mixed": [1, "a"]})  # Parquet cannot hold a mixed object column
    with pytest.raises(ValueError):
        store.save_features("g2", {"f": unstorable})
    store.save_features("g3", {"kept": pd.DataFrame({"id": [1]}), "gone": pd.DataFrame({"id": [1]})})
    store.delete_feature("g3", "gone")
    assert _directories(tmp_path) == ["g3", os.path.join("g3", "kept")]
    store.delete_feature("g3", "kept")
    assert _directories(tmp_path) == []
    assert len(os.listdir(tmp_path / ".locks")) <= 256


@pytest.fixture(scope="module")
def http_store(module_service_factory: ServiceFactory) -> tuple[str, Path]:
    store = module_service_factory.base_dir / "race-store"
    service = module_service_factory(store_path=store)
    return service.base_url, store


def test_http_read_label_matches_its_data_while_a_writer_commits(http_store: tuple[str, Path]) -> None:
    base_url, _ = http_store
    url = f"{base_url}/v1/groups/race/features/label"
    version_of_marker: dict[int, int] = {}
    done = threading.Event()

    def write() -> None:
        with httpx.Client(timeout=30.0) as client:
            for marker in range(WRITES):
                response = client.put(url, json={"records": [{"id": 0, "marker": marker}]})
                assert response.status_code == 201, response.text
                version_of_marker[marker] = response.json()["version"]
        done.set()

    seen: list[tuple[int, int, int]] = []
    with httpx.Client(timeout=30.0) as client:
        client.put(url, json={"records": [{"id": 0, "marker": -1}]}).raise_for_status()
        writer = threading.Thread(target=write)
        writer.start()
        while not done.is_set():
            body = client.get(url).json()
            arrow = client.get(url, headers={"Accept": "application/vnd.apache.arrow.stream"})
            seen.append((body["data"][0][1], body["version"], 0))
            table = pa.ipc.open_stream(arrow.content).read_all()
            seen.append((table.column("marker")[0].as_py(), int(arrow.headers["X-Feature-Version"]), 1))
        writer.join()
    version_of_marker[-1] = 1
    assert len(seen) > 20
    wrong = [entry for entry in seen if version_of_marker[entry[0]] != entry[1]]
    assert wrong == [], f"{len(wrong)} of {len(seen)} reads labelled with another version: {wrong[:5]}"


def test_http_delete_racing_put_gives_no_server_error(http_store: tuple[str, Path]) -> None:
    base_url, store_path = http_store
    url = f"{base_url}/v1/groups/race2/features/contended"
    body = {"records": [{"id": i, "x": float(i)} for i in range(500)]}

    def put(_: int) -> int:
        with httpx.Client(timeout=30.0) as client:
            return client.put(url, json=body).status_code

    def delete(_: int) -> int:
        with httpx.Client(timeout=30.0) as client:
            return client.delete(url).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        puts = pool.map(put, range(120))
        deletes = pool.map(delete, range(120))
        put_codes, delete_codes = set(puts), set(deletes)
    assert put_codes <= {201, 404, 409}, put_codes
    assert 201 in put_codes
    assert delete_codes <= {204, 404}, delete_codes
    with httpx.Client(timeout=30.0) as client:
        client.delete(url)
        for _ in range(40):  # the IO workload writes, reads and deletes a scratch feature each time
            assert client.post(f"{base_url}/v1/load/io", json={"rows": 100, "columns": 4}).status_code == 200
        for _ in range(20):
            assert client.delete(f"{base_url}/v1/groups/ghost/features/missing").status_code == 404
    assert [d for d in _directories(store_path) if d.startswith(("race2", "io-scratch", "ghost"))] == []
