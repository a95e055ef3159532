"""Damage on disk stays local to its feature, and what the store accepts it can read back.

A damaged commit pointer (unreadable JSON, a non-integer version, a directory in its place) or a missing data
file makes that one feature fail with an IntegrityError naming the real cause; the other features of the group
still list and read, and the damaged one can be deleted. Column types that could be written but not read back
(maps, time64[ns], fixed-size lists of size 0) are refused at write with a ValueError naming the column.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from features.store.feature_store import (
    FeatureNotFoundError,
    FeatureStoreConfig,
    IntegrityError,
    SimpleFeatureStore,
)


@pytest.fixture
def store(tmp_path: Path) -> SimpleFeatureStore:
    return SimpleFeatureStore(FeatureStoreConfig(base_path=tmp_path / "store"))


def _saved(store: SimpleFeatureStore) -> pd.DataFrame:
    healthy = pd.DataFrame({"id": [1, 2], "x": [0.5, 0.7]})
    store.save_features("g", {"healthy": healthy, "broken": pd.DataFrame({"id": [1], "x": [0.1]})})
    return healthy


def _pointer(store: SimpleFeatureStore, name: str = "broken") -> Path:
    return store.base_path / "g" / name / "_current.json"


def _rewrite_pointer(store: SimpleFeatureStore, **changes: object) -> None:
    pointer = _pointer(store)
    pointer.write_text(json.dumps({**json.loads(pointer.read_text()), **changes}))


def _assert_local_and_deletable(store: SimpleFeatureStore, healthy: pd.DataFrame, cause: str) -> None:
    fresh = SimpleFeatureStore(store.config)  # no cache, no memo: what a restarted service sees
    for each in (store, fresh):
        assert each.list_features("g") == ["broken", "healthy"]
        assert each.list_groups() == ["g"]
        with pytest.raises(IntegrityError, match=cause):
            each.get_features(["broken"], "g")
        with pytest.raises(IntegrityError, match=cause):
            each.get_metadata("g", "broken")
        pd.testing.assert_frame_equal(each.get_features(["healthy"], "g")["healthy"], healthy)
    fresh.delete_feature("g", "broken")
    assert fresh.list_features("g") == ["healthy"]
    assert not (store.base_path / "g" / "broken").exists()
    with pytest.raises(FeatureNotFoundError):
        store.get_features(["broken"], "g")


def test_a_pointer_that_is_a_directory_is_damage_of_that_feature_only_and_deletable(store: SimpleFeatureStore) -> None:
    healthy = _saved(store)
    pointer = _pointer(store)
    pointer.unlink()
    (pointer / "inside").mkdir(parents=True)
    _assert_local_and_deletable(store, healthy, "is a directory")


def test_an_unreadable_pointer_is_damage_of_that_feature_only_and_deletable(store: SimpleFeatureStore) -> None:
    healthy = _saved(store)
    _pointer(store).write_bytes(b'{"version": 1, "fi')
    _assert_local_and_deletable(store, healthy, "commit pointer is unreadable")


@pytest.mark.parametrize("version", ["1", 1.5, True, 0, None])
def test_a_pointer_whose_version_is_not_a_positive_integer_is_refused(
    store: SimpleFeatureStore, version: object
) -> None:
    healthy = _saved(store)
    _rewrite_pointer(store, version=version)
    _assert_local_and_deletable(store, healthy, "version .* is not a positive integer")


def test_a_pointer_naming_a_file_outside_its_version_is_refused(store: SimpleFeatureStore) -> None:
    healthy = _saved(store)
    _rewrite_pointer(store, file="../healthy/v0000000001.parquet")
    _assert_local_and_deletable(store, healthy, "is not the data file of version 1")


def test_a_missing_data_file_is_named_as_such(store: SimpleFeatureStore) -> None:
    healthy = _saved(store)
    (store.base_path / "g" / "broken" / "v0000000001.parquet").unlink()
    _assert_local_and_deletable_reads(store, healthy)


def _assert_local_and_deletable_reads(store: SimpleFeatureStore, healthy: pd.DataFrame) -> None:
    message = "data file v0000000001.parquet named by the pointer is missing"
    for each in (store, SimpleFeatureStore(store.config)):
        with pytest.raises(IntegrityError, match=message) as raised:
            each.get_features(["broken"], "g")
        assert "changed" not in str(raised.value)
        assert each.get_metadata("g", "broken").version == 1  # the pointer itself is fine
        pd.testing.assert_frame_equal(each.get_features(["healthy"], "g")["healthy"], healthy)
    store.delete_feature("g", "broken")
    assert store.list_features("g") == ["healthy"]


def test_a_data_file_that_is_a_directory_is_named_as_such(store: SimpleFeatureStore) -> None:
    healthy = _saved(store)
    data = store.base_path / "g" / "broken" / "v0000000001.parquet"
    data.unlink()
    data.mkdir()
    for each in (store, SimpleFeatureStore(store.config)):
        with pytest.raises(IntegrityError, match=r"data file v0000000001\.parquet cannot be read: it is a directory"):
            each.get_features(["broken"], "g")
        pd.testing.assert_frame_equal(each.get_features(["healthy"], "g")["healthy"], healthy)
    store.delete_feature("g", "broken")
    assert store.list_features("g") == ["healthy"]


def test_an_undecodable_data_file_is_damage_even_without_checksums(tmp_path: Path) -> None:
    # Without checksum verification the decoder meets the damage: an IntegrityError (500), never a ValueError (422).
    store = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp_path / "store", verify_checksums=False))
    _saved(store)
    data = store.base_path / "g" / "broken" / "v0000000001.parquet"
    data.write_bytes(b"\0" * data.stat().st_size)
    with pytest.raises(IntegrityError, match=r"data file v0000000001\.parquet is not readable Parquet"):
        store.get_features(["broken"], "g")


def test_a_save_over_a_damaged_pointer_is_refused_without_touching_the_feature(store: SimpleFeatureStore) -> None:
    _saved(store)
    _rewrite_pointer(store, version="1")
    before = sorted(os.listdir(store.base_path / "g" / "broken"))
    with pytest.raises(IntegrityError, match="version"):
        store.save_features("g", {"broken": pd.DataFrame({"id": [1]})})
    assert sorted(os.listdir(store.base_path / "g" / "broken")) == before
    assert os.listdir(store.base_path / ".staging") == []


UNREADABLE = {
    "map<string, int64>": pa.array([[("a", 1)], [("b", 2)]], pa.map_(pa.string(), pa.int64())),
    "time64[ns]": pa.array([1, 2], pa.time64("ns")),
    "fixed_size_list<item: int64>[0]": pa.array([[], []], pa.list_(pa.int64(), 0)),
    "list<item: map<string, int64>>": pa.array([[[("a", 1)]], []], pa.list_(pa.map_(pa.string(), pa.int64()))),
    "struct<s: fixed_size_list<item: int64>[0]>": pa.array(
        [{"s": []}, {"s": []}], pa.struct([("s", pa.list_(pa.int64(), 0))])
    ),
}


@pytest.mark.parametrize("type_name", sorted(UNREADABLE))
def test_a_column_type_that_cannot_be_read_back_is_refused_at_write(store: SimpleFeatureStore, type_name: str) -> None:
    column = UNREADABLE[type_name]
    assert str(column.type) == type_name
    table = pa.table({"id": [1, 2], "bad": column})
    with pytest.raises(ValueError, match=r"column 'bad' of type .* cannot be stored"):
        store.save_features("g", {"f": table})
    with pytest.raises(FeatureNotFoundError):
        store.get_features(["f"], "g")
    assert not (store.base_path / "g").exists()


READABLE = {
    "time64[us]": pa.array([dt.time(1, 2, 3, 4), None], pa.time64("us")),
    "fixed_size_list<item: int64>[2]": pa.array([[1, 2], [3, 4]], pa.list_(pa.int64(), 2)),
    "list<item: struct<k: string, v: int64>>": pa.array(
        [[{"k": "a", "v": 1}], []], pa.list_(pa.struct([("k", pa.string()), ("v", pa.int64())]))
    ),
    "duration[ns]": pa.array([1, 2], pa.duration("ns")),
    "decimal128(5, 2)": pa.array([1, None], pa.decimal128(5, 2)),
}


@pytest.mark.parametrize("type_name", sorted(READABLE))
def test_column_types_that_read_back_are_accepted(tmp_path: Path, type_name: str) -> None:
    column = READABLE[type_name]
    for cache_enabled in (True, False):  # the cached read converts through pandas, the uncached one does not
        store = SimpleFeatureStore(
            FeatureStoreConfig(base_path=tmp_path / f"s{cache_enabled}", cache_enabled=cache_enabled)
        )
        store.save_features("g", {"f": pa.table({"id": [1, 2], "ok": column})})
        for _ in range(2):
            assert store.get_table("g", "f").column("ok").to_pylist() == column.to_pylist()
