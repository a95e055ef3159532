"""The service on a full, read-only or damaged store: real uvicorn processes, a tmpfs each test mounts (root only).

A full disk answers 507 and a read-only one 503 (never a generic 500); no response carries another request's
bytes; every acknowledged feature reads back identical before and after a restart; /ready says why it is not
ready and never shows the store's path; damage stays local to its feature; column types that could not be read
back are refused at write.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa

from service.codec import ARROW_STREAM
from tests.conftest import ServiceFactory
from tests.features.store.test_store_disk_full import fill, mounted_tmpfs, remount

FEATURE = "/v1/groups/{group}/features/{feature}"
PONG = b'{"pong":true}'


def arrow_body(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def frame(rows: int, seed: int) -> pa.Table:
    """Random doubles: they do not compress, so the Parquet file is about 16 bytes a row."""
    rng = np.random.default_rng(seed)
    return pa.table({"id": np.arange(rows), "x": rng.random(rows)})


def put(client: httpx.Client, feature: str, table: pa.Table, group: str = "g") -> httpx.Response:
    return client.put(
        FEATURE.format(group=group, feature=feature), content=arrow_body(table), headers={"content-type": ARROW_STREAM}
    )


def read_back(client: httpx.Client, feature: str, group: str = "g") -> pa.Table:
    response = client.get(FEATURE.format(group=group, feature=feature), headers={"accept": ARROW_STREAM})
    assert response.status_code == 200, response.text
    return pa.ipc.open_stream(response.content).read_all()


def raw_ping(port: int) -> bytes:
    """GET /v1/ping on a new connection (so the service's descriptor numbers keep being reused): the raw bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(b"GET /v1/ping HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        chunks = []
        for _ in range(64):  # a pong is one or two segments; bounded all the same
            chunk = connection.recv(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_full_disk_answers_507_and_no_response_or_feature_gets_foreign_bytes(
    service_factory: ServiceFactory, tmp_path: Path
) -> None:
    with mounted_tmpfs(tmp_path / "disk", "20m") as disk:
        store = disk / "store"
        service = service_factory(store_path=store)
        try:
            acked: dict[str, pa.Table] = {}
            with httpx.Client(base_url=service.base_url, timeout=60) as client:
                for i in range(3):
                    table = frame(1_000, seed=i)
                    assert put(client, f"small{i}", table).status_code == 201
                    acked[f"small{i}"] = table
                filler = fill(disk, leave=1_500 << 10)  # room for about two of the frames below

                statuses: Counter[int] = Counter()
                wrong: list[str] = []
                lock = threading.Lock()

                def write(writer: int) -> None:
                    mine: list[str] = []
                    with httpx.Client(base_url=service.base_url, timeout=60) as own:
                        for i in range(12):
                            name, table = f"w{writer}-{i}", frame(40_000, seed=100 * writer + i)
                            response = put(own, name, table)
                            with lock:
                                statuses[response.status_code] += 1
                                if response.status_code == 201:
                                    acked[name] = table
                                    mine.append(name)
                                elif response.status_code != 507 or response.json()["error"] != "insufficient_storage":
                                    wrong.append(f"PUT {name}: {response.status_code} {response.text[:200]}")
                            if response.status_code == 507 and mine and i % 3 == 2:  # free some space again
                                gone = mine.pop(0)
                                deleted = own.delete(FEATURE.format(group="g", feature=gone))
                                with lock:
                                    statuses[deleted.status_code] += 1
                                    acked.pop(gone)

                def ping() -> None:
                    for _ in range(120):
                        answer = raw_ping(service.port)
                        if not answer.startswith(b"HTTP/1.1 200") or not answer.endswith(PONG) or b"PAR1" in answer:
                            with lock:
                                wrong.append(f"ping answered {answer[:120]!r}")

                def guarded(work: Callable[[], None]) -> None:
                    try:
                        work()
                    except Exception as error:  # a thread's exception would otherwise only be printed
                        with lock:
                            wrong.append(f"{type(error).__name__}: {error}")

                threads = [threading.Thread(target=guarded, args=(lambda w=w: write(w),)) for w in range(2)]
                threads += [threading.Thread(target=guarded, args=(ping,)) for _ in range(2)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(timeout=300)
                assert not any(thread.is_alive() for thread in threads)

                assert wrong == []
                assert statuses[507] > 0 and statuses[201] > 0 and set(statuses) <= {201, 204, 507}, statuses
                assert statuses[201] + statuses[507] == 2 * 12, statuses
                assert os.listdir(store / ".staging") == []
                fill(disk, leave=256 << 10)  # the writers' deletes may have freed room for one more
                refused = put(client, "refused", frame(40_000, seed=999))
                assert refused.status_code == 507
                assert "disk is full" in refused.json()["detail"] and str(disk) not in refused.text
                ready = client.get("/ready")
                assert ready.status_code == 503 and "full" in ready.json()["detail"]
                assert str(disk) not in ready.text and "store_path" not in ready.json()
                for name, table in acked.items():
                    assert read_back(client, name).equals(table), name

                filler.unlink()
                ready = client.get("/ready")
                assert ready.status_code == 200 and ready.json() == {"status": "ready"}
            service.stop()

            service = service_factory(store_path=store)  # a restart: everything from disk
            with httpx.Client(base_url=service.base_url, timeout=60) as client:
                listing = client.get("/v1/groups/g/features").json()
                assert listing["damaged"] == []
                assert sorted(f["name"] for f in listing["features"]) == sorted(acked)
                for name, table in acked.items():
                    assert read_back(client, name).equals(table), name
                again = frame(40_000, seed=1000)
                assert put(client, "again", again).status_code == 201
                assert read_back(client, "again").equals(again)
        finally:
            service.stop()


def test_a_read_only_store_answers_503_and_keeps_serving_reads(service_factory: ServiceFactory, tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "disk", "16m") as disk:
        service = service_factory(store_path=disk / "store")
        try:
            with httpx.Client(base_url=service.base_url, timeout=60) as client:
                kept = frame(100, seed=1)
                assert put(client, "kept", kept).status_code == 201
                remount(disk, "ro")
                try:
                    refused = put(client, "new", frame(100, seed=2))
                    assert refused.status_code == 503, refused.text
                    assert refused.json()["error"] == "store_unavailable"
                    assert "not writable" in refused.json()["detail"] and str(disk) not in refused.text
                    assert client.delete(FEATURE.format(group="g", feature="kept")).status_code == 503
                    ready = client.get("/ready")
                    assert ready.status_code == 503 and "not writable" in ready.json()["detail"]
                    assert str(disk) not in ready.text
                    assert read_back(client, "kept").equals(kept)
                finally:
                    remount(disk, "rw")
                assert put(client, "new", frame(100, seed=2)).status_code == 201
        finally:
            service.stop()


def test_damage_stays_local_to_its_feature(service_factory: ServiceFactory, tmp_path: Path) -> None:
    store = tmp_path / "store"
    service = service_factory(store_path=store)
    with httpx.Client(base_url=service.base_url, timeout=60) as client:
        healthy = frame(10, seed=1)
        for name in ("healthy", "garbled", "dir", "version", "nofile"):
            assert put(client, name, healthy).status_code == 201
        (store / "g" / "garbled" / "_current.json").write_bytes(b'{"version": ')
        pointer = store / "g" / "dir" / "_current.json"
        pointer.unlink()
        (pointer / "sub").mkdir(parents=True)
        pointer = store / "g" / "version" / "_current.json"
        pointer.write_text(json.dumps({**json.loads(pointer.read_text()), "version": "1"}))
        (store / "g" / "nofile" / "v0000000001.parquet").unlink()

        listing = client.get("/v1/groups/g/features")
        assert listing.status_code == 200, listing.text
        damaged = {item["name"]: item["detail"] for item in listing.json()["damaged"]}
        assert sorted(damaged) == ["dir", "garbled", "version"]
        assert "is a directory" in damaged["dir"] and "not a positive integer" in damaged["version"]
        assert sorted(f["name"] for f in listing.json()["features"]) == ["healthy", "nofile"]
        missing = client.get(FEATURE.format(group="g", feature="nofile"))
        assert missing.status_code == 500 and missing.json()["error"] == "integrity_error"
        assert "data file v0000000001.parquet named by the pointer is missing" in missing.json()["detail"]
        for name in ("garbled", "dir", "version", "nofile"):
            assert client.get(FEATURE.format(group="g", feature=name)).json()["error"] == "integrity_error"
            assert client.delete(FEATURE.format(group="g", feature=name)).status_code == 204, name
            assert client.get(FEATURE.format(group="g", feature=name)).status_code == 404
        assert read_back(client, "healthy").equals(healthy)
        assert client.get("/v1/groups/g/features").json()["damaged"] == []


UNREADABLE = {
    "map<string, int64>": pa.array([[("a", 1)], [("b", 2)]], pa.map_(pa.string(), pa.int64())),
    "time64[ns]": pa.array([1, 2], pa.time64("ns")),
    "fixed_size_list<item: int64>[0]": pa.array([[], []], pa.list_(pa.int64(), 0)),
}


def test_column_types_that_cannot_be_read_back_are_refused_at_write(
    service_factory: ServiceFactory, tmp_path: Path
) -> None:
    service = service_factory(store_path=tmp_path / "store")
    with httpx.Client(base_url=service.base_url, timeout=60) as client:
        for type_name, column in UNREADABLE.items():
            response = put(client, "f", pa.table({"id": [1, 2], "bad": column}))
            assert response.status_code == 422, (type_name, response.text)
            assert f"column 'bad' of type {type_name}" in response.json()["detail"]
            assert client.get(FEATURE.format(group="g", feature="f")).status_code == 404
        readable = pa.table({"id": [1, 2], "ok": pa.array([1_000, 2_000], pa.time64("us"))})
        assert put(client, "f", readable).status_code == 201
        assert client.get(FEATURE.format(group="g", feature="f")).status_code == 200
        assert read_back(client, "f").column("ok").to_pylist() == readable.column("ok").to_pylist()
        assert client.get("/v1/online/g/f/1").status_code == 200
