from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from features.store.feature_store import (
    FeatureNotFoundError,
    FeatureStoreConfig,
    IntegrityError,
    SimpleFeatureStore,
)

StoreFactory = Callable[..., SimpleFeatureStore]


@pytest.fixture
def make_store(tmp_path: Path) -> StoreFactory:
    def factory(**overrides: object) -> SimpleFeatureStore:
        clock = overrides.pop("clock", None)
        observer = overrides.pop("observer", None)
        config = FeatureStoreConfig(base_path=tmp_path / "store", **overrides)  # type: ignore[arg-type]
        if clock is None:
            return SimpleFeatureStore(config, observer=observer)
        return SimpleFeatureStore(config, observer=observer, clock=clock)

    return factory


def sample_frame(rows: int = 100, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "score": rng.random(rows),
            "count": rng.integers(0, 1000, rows),
            "label": [f"item-{i}" for i in range(rows)],
        }
    )


def test_save_returns_paths_and_get_reads_the_same_frame(make_store: StoreFactory) -> None:
    store = make_store()
    frame = sample_frame()
    paths = store.save_features("group_a", {"feat": frame})
    assert Path(paths["feat"]).is_file()
    loaded = store.get_features(["feat"], "group_a")["feat"]
    pd.testing.assert_frame_equal(loaded, frame)


@pytest.mark.parametrize("compression", ["snappy", "zstd", "gzip", "none"])
def test_every_supported_compression_round_trips(make_store: StoreFactory, compression: str) -> None:
    store = make_store(compression=compression, cache_enabled=False)
    store.save_features("g", {"f": sample_frame()})
    pd.testing.assert_frame_equal(store.get_features(["f"], "g")["f"], sample_frame())
    assert store.get_metadata("g", "f").compression == compression


def test_arrow_tables_are_accepted(make_store: StoreFactory) -> None:
    store = make_store()
    table = pa.table({"id": [1, 2, 3], "x": [0.5, 1.5, 2.5]})
    store.save_features("g", {"t": table})
    assert store.get_table("g", "t").to_pydict() == table.to_pydict()


def test_metadata_records_schema_rows_checksum_and_version(make_store: StoreFactory) -> None:
    store = make_store()
    store.save_features("g", {"f": sample_frame(10)})
    store.save_features("g", {"f": sample_frame(20)})
    meta = store.get_metadata("g", "f")
    assert meta.version == 2
    assert meta.rows == 20
    assert meta.columns == ["id", "score", "count", "label"]
    assert meta.schema["score"] == "double"
    assert meta.checksum.startswith("crc32:")
    assert meta.entity_column == "id"
    assert meta.size_bytes == (store.base_path / "g" / "f" / meta.file).stat().st_size
    assert json.loads(json.dumps(meta.to_dict()))["version"] == 2


@pytest.mark.parametrize(
    "bad_name",
    ["..", "../escape", "a/b", "a\\b", "/abs", "", "x" * 129, "nul\x00", "_private", ".hidden", "sp ace"],
)
def test_invalid_names_raise_and_write_nothing(make_store: StoreFactory, bad_name: str) -> None:
    store = make_store()
    with pytest.raises(ValueError, match=r"name .* is invalid"):
        store.save_features(bad_name, {"f": sample_frame()})
    with pytest.raises(ValueError, match=r"name .* is invalid"):
        store.save_features("g", {bad_name: sample_frame()})
    with pytest.raises(ValueError, match=r"name .* is invalid"):
        store.get_features([bad_name], "g")
    assert list(store.base_path.iterdir()) == []


def test_one_bad_frame_in_a_save_writes_none_of_them(make_store: StoreFactory) -> None:
    store = make_store()
    with pytest.raises(ValueError, match="entity_column 'nope'"):
        store.save_features("g", {"good": sample_frame(), "bad": pd.DataFrame({"x": [1]})}, entity_column="nope")
    with pytest.raises(ValueError, match="must be a pandas DataFrame"):
        store.save_features("g", {"good": sample_frame(), "bad": [1, 2]})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="no columns"):
        store.save_features("g", {"empty": pd.DataFrame()})
    assert store.list_groups() == []


def test_unknown_group_and_feature_raise_not_found(make_store: StoreFactory) -> None:
    store = make_store()
    with pytest.raises(FeatureNotFoundError, match="group 'nope' not found"):
        store.get_features(["f"], "nope")
    store.save_features("g", {"f": sample_frame()})
    with pytest.raises(FeatureNotFoundError, match="feature 'other' not found in group 'g'"):
        store.get_features(["other"], "g")
    with pytest.raises(FeatureNotFoundError):
        store.list_features("nope")


def test_list_and_delete(make_store: StoreFactory) -> None:
    store = make_store()
    store.save_features("g1", {"a": sample_frame(), "b": sample_frame()})
    store.save_features("g2", {"c": sample_frame()})
    assert store.list_groups() == ["g1", "g2"]
    assert store.list_features("g1") == ["a", "b"]
    store.get_features(["a"], "g1")  # cached
    store.delete_feature("g1", "a")
    assert store.list_features("g1") == ["b"]
    with pytest.raises(FeatureNotFoundError):
        store.get_features(["a"], "g1")
    with pytest.raises(FeatureNotFoundError):
        store.delete_feature("g1", "a")
    assert store.delete_group("g2") == ["c"]
    assert store.list_groups() == ["g1"]


def test_only_the_newest_versions_are_kept_on_disk(make_store: StoreFactory) -> None:
    store = make_store(keep_versions=2)
    for rows in range(1, 6):
        store.save_features("g", {"f": sample_frame(rows)})
    files = sorted(p.name for p in (store.base_path / "g" / "f").glob("v*.parquet"))
    assert files == ["v0000000004.parquet", "v0000000005.parquet"]


def test_cached_frame_is_protected_from_caller_mutation(make_store: StoreFactory) -> None:
    store = make_store()
    store.save_features("g", {"f": sample_frame()})
    first = store.get_features(["f"], "g")["f"]
    first.loc[0, "score"] = -1.0
    first["extra"] = 1
    second = store.get_features(["f"], "g")["f"]
    assert second.loc[0, "score"] != -1.0
    assert "extra" not in second.columns
    assert store.cache is not None and store.cache.get_stats()["hits"] >= 1


def test_a_write_by_another_store_instance_invalidates_the_cache(make_store: StoreFactory) -> None:
    reader, writer = make_store(), make_store()
    writer.save_features("g", {"f": sample_frame(10)})
    assert len(reader.get_features(["f"], "g")["f"]) == 10
    writer.save_features("g", {"f": sample_frame(30)})
    assert len(reader.get_features(["f"], "g")["f"]) == 30
    assert reader.cache is not None and reader.cache.get_stats()["invalidations"] == 1


def test_expired_entries_are_re_read_from_disk(make_store: StoreFactory) -> None:
    now = [0.0]
    store = make_store(cache_ttl_seconds=5.0, clock=lambda: now[0])
    store.save_features("g", {"f": sample_frame()})
    store.get_features(["f"], "g")
    store.get_features(["f"], "g")
    now[0] = 6.0
    store.get_features(["f"], "g")
    stats = store.cache.get_stats()  # type: ignore[union-attr]
    assert (stats["hits"], stats["misses"], stats["expirations"]) == (1, 2, 1)


def test_corrupted_file_is_detected_by_the_checksum(make_store: StoreFactory) -> None:
    store = make_store(cache_enabled=False)
    store.save_features("g", {"f": sample_frame()})
    data_file = store.base_path / "g" / "f" / store.get_metadata("g", "f").file
    raw = bytearray(data_file.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data_file.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match="checksum"):
        store.get_features(["f"], "g")
    data_file.write_bytes(bytes(raw[:-10]))
    with pytest.raises(IntegrityError, match="bytes"):
        store.get_features(["f"], "g")


def test_files_staged_by_dead_writers_are_removed_when_the_store_opens(make_store: StoreFactory) -> None:
    store = make_store()
    store.save_features("g", {"f": sample_frame()})
    dead_pid = 2**22 + 1  # above Linux's pid_max: no live process has it
    orphan = store.base_path / ".staging" / f".v.parquet.tmp-{dead_pid}-dead"
    live = store.base_path / ".staging" / f".v.parquet.tmp-{os.getpid()}-live"
    orphan.write_bytes(b"partial")
    live.write_bytes(b"being written")
    SimpleFeatureStore(store.config)
    assert not orphan.exists()
    assert live.exists()  # a live writer's staged file is never touched


def test_lookup_returns_rows_in_request_order(make_store: StoreFactory) -> None:
    store = make_store()
    frame = sample_frame(50)
    store.save_features("g", {"f": frame})
    single = store.lookup("g", "f", [7])
    assert single.columns == ["score", "count", "label"]
    assert single.rows == [[frame.score[7], int(frame["count"][7]), "item-7"]]
    batch = store.lookup("g", "f", [3, 999, 1, "x"])
    assert [row[2] if row else None for row in batch.rows] == ["item-3", None, "item-1", None]
    assert batch.missing == [999, "x"]
    assert store.lookup("g", "f", [12345]).missing == [12345]


def test_lookup_sees_new_versions_and_works_without_cache(make_store: StoreFactory) -> None:
    for store in (make_store(), make_store(cache_enabled=False)):
        store.save_features("g", {"f": sample_frame(5)})
        assert store.lookup("g", "f", [4]).version >= 1
        frame = sample_frame(5)
        frame["label"] = "changed"
        store.save_features("g", {"f": frame})
        result = store.lookup("g", "f", [4])
        assert result.rows[0][2] == "changed"


def test_lookup_needs_an_entity_column_with_unique_ids(make_store: StoreFactory) -> None:
    store = make_store()
    store.save_features("g", {"no_id": pd.DataFrame({"x": [1.0, 2.0]})})
    with pytest.raises(ValueError, match="no entity column"):
        store.lookup("g", "no_id", [1])
    store.save_features("g", {"dup": pd.DataFrame({"key": [1, 1], "x": [1.0, 2.0]})}, entity_column="key")
    with pytest.raises(ValueError, match="duplicate"):
        store.lookup("g", "dup", [1])


def test_lookup_converts_nested_and_temporal_values_to_plain_python(make_store: StoreFactory) -> None:
    store = make_store()
    frame = pd.DataFrame(
        {
            "movie_id": [10, 20],
            "genres": [[28, 12], []],
            "released": pd.to_datetime(["2020-01-02", None]),
            "score": [1.5, np.nan],
        }
    )
    store.save_features("g", {"f": frame})
    rows = store.lookup("g", "f", [10, 20]).rows
    assert rows[0][0] == [28, 12] and rows[1][0] == []
    assert rows[0][1].startswith("2020-01-02T00:00:00") and rows[1][1] is None
    assert rows[0][2] == 1.5 and np.isnan(rows[1][2])


class CountingObserver:
    def __init__(self) -> None:
        self.counts = {"hit": 0, "miss": 0, "read": 0, "written": 0}

    def cache_hit(self, group: str, name: str) -> None:
        self.counts["hit"] += 1

    def cache_miss(self, group: str, name: str) -> None:
        self.counts["miss"] += 1

    def bytes_read(self, n: int) -> None:
        self.counts["read"] += n

    def bytes_written(self, n: int) -> None:
        self.counts["written"] += n


def test_observer_sees_cache_and_byte_counts(make_store: StoreFactory) -> None:
    observer = CountingObserver()
    store = make_store(observer=observer)
    store.save_features("g", {"f": sample_frame()})
    store.get_features(["f"], "g")
    store.get_features(["f"], "g")
    size = store.get_metadata("g", "f").size_bytes
    assert observer.counts == {"hit": 1, "miss": 1, "read": size, "written": size}


def test_config_rejects_unknown_compression() -> None:
    with pytest.raises(ValueError, match="compression 'lzma' is not supported"):
        FeatureStoreConfig(base_path="/tmp/x", compression="lzma")


def test_nothing_but_committed_files_remain_after_writes(make_store: StoreFactory) -> None:
    store = make_store()
    for _ in range(3):
        store.save_features("g", {"f": sample_frame()})
    names = set(os.listdir(store.base_path / "g" / "f"))
    # _previous.json is the pointer of the commit before (a hard link): the fallback a power cut may need
    assert names == {"_current.json", "_previous.json", "v0000000002.parquet", "v0000000003.parquet"}
    assert json.loads((store.base_path / "g" / "f" / "_previous.json").read_text())["version"] == 2
    assert os.listdir(store.base_path / ".staging") == []


def test_encoded_rows_are_kept_within_their_budget_and_answered_beyond_it() -> None:
    from features.store.lookup import ENCODED_ROWS_MAX_BYTES, ENCODED_ROWS_MIN_BYTES, EntityIndex

    ids = range(100)
    frame = pd.DataFrame({"id": ids, "x": [float(i) for i in ids], "label": [f"m{i}" for i in ids]})
    index = EntityIndex(frame, "id")
    assert ENCODED_ROWS_MIN_BYTES <= index.encoded_budget <= ENCODED_ROWS_MAX_BYTES
    calls: list[dict] = []

    def encode(values: dict) -> bytes:
        calls.append(values)
        return json.dumps(values).encode()

    assert index.encoded_values(7, encode) == b'{"x": 7.0, "label": "m7"}'
    assert index.encoded_values(7, encode) == b'{"x": 7.0, "label": "m7"}' and len(calls) == 1  # kept
    assert index.encoded_values(1000, encode) is None and len(calls) == 1  # unknown: nothing encoded, nothing kept
    index.encoded_budget = 60  # room for two rows of about 25 bytes
    for entity in range(10, 20):
        assert index.encoded_values(entity, encode) == json.dumps({"x": float(entity), "label": f"m{entity}"}).encode()
    assert len(index._encoded) == 2 and index._encoded_bytes <= 60  # bounded; the rest answered, not kept
    assert index.encoded_values(15, encode) is not None and len(calls) == 12  # encoded again each time
