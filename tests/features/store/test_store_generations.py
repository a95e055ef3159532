"""The commit counters that let a cache hit skip the pointer read (features/store/_generations.py), with real
processes: what another process commits is seen by the next read, a writer killed in the middle of a commit
costs speed and never coherence, and where the counters cannot be shared every read checks the pointer."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import pandas as pd
import pytest

import features.store.feature_store as feature_store_module
from features.store._generations import GENERATIONS_FILE, Generations
from features.store.feature_store import LOCK_BUCKETS, LOCKS_DIR, FeatureStoreConfig, SimpleFeatureStore

_CONTEXT = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of this process's store is shared


def _frame(marker: int) -> pd.DataFrame:
    return pd.DataFrame({"id": [1, 2, 3], "marker": [marker] * 3})


def _save_in_another_process(base_path: Path, marker: int) -> None:
    SimpleFeatureStore(FeatureStoreConfig(base_path=base_path)).save_features("g", {"f": _frame(marker)})


def _die_while_publishing(base_path: Path, bucket: int) -> None:
    with Generations.publishing(base_path / LOCKS_DIR / GENERATIONS_FILE, LOCK_BUCKETS, bucket):
        os.kill(os.getpid(), signal.SIGKILL)  # between "changing" and "changed", as a crash would be


def _run(target, *args) -> int | None:
    process = _CONTEXT.Process(target=target, args=args)
    process.start()
    process.join(timeout=60)
    assert not process.is_alive(), "the child process did not finish in 60 s"
    return process.exitcode


class _PointerReads:
    """Counts the store's reads of commit pointers (the system calls a hit saves)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = feature_store_module.read_small_file

        def counted(path):
            self.count += 1
            return real(path)

        monkeypatch.setattr(feature_store_module, "read_small_file", counted)


def _marker(store: SimpleFeatureStore) -> int:
    return int(store.get_features(["f"], "g")["f"]["marker"].iloc[0])


def test_hits_read_no_pointer_until_another_process_commits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp_path))
    store.save_features("g", {"f": _frame(1)})
    reads = _PointerReads(monkeypatch)
    assert _marker(store) == 1 and _marker(store) == 1  # the first read records the counter
    before = reads.count
    for _ in range(50):
        assert _marker(store) == 1
    assert reads.count == before  # 50 hits, not one pointer read

    assert _run(_save_in_another_process, tmp_path, 2) == 0
    assert _marker(store) == 2  # the very next read: no TTL, no invalidation by this process
    assert reads.count == before + 1
    assert store.cache.get_stats()["invalidations"] == 1  # type: ignore[union-attr]


def test_a_writer_killed_mid_commit_leaves_readers_checking_the_pointer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp_path))
    store.save_features("g", {"f": _frame(1)})
    assert _marker(store) == 1
    bucket = feature_store_module._bucket("g", "f")
    assert _run(_die_while_publishing, tmp_path, bucket) == -signal.SIGKILL
    reads = _PointerReads(monkeypatch)
    for _ in range(5):
        assert _marker(store) == 1
    assert reads.count == 5  # the counter is odd: every read checks the pointer

    assert _run(_save_in_another_process, tmp_path, 2) == 0  # the next commit makes it even again
    assert _marker(store) == 2
    counted = reads.count
    assert _marker(store) == 2
    assert reads.count == counted  # and hits are free again


def test_a_commit_that_fails_still_makes_readers_validate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception inside the commit (here the pointer's write) leaves the counter even and changed."""
    store = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp_path))
    store.save_features("g", {"f": _frame(1)})
    reader = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp_path))
    assert _marker(reader) == 1 and _marker(reader) == 1
    counters = Generations(tmp_path / LOCKS_DIR / GENERATIONS_FILE, LOCK_BUCKETS)
    bucket = feature_store_module._bucket("g", "f")
    before = counters.read(bucket)

    def refuse(*args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(feature_store_module, "replace_then_sync", refuse)
    with pytest.raises(OSError):
        store.save_features("g", {"f": _frame(2)})
    after = counters.read(bucket)
    assert after > before and after % 2 == 0
    reads = _PointerReads(monkeypatch)
    assert _marker(reader) == 1  # validated against the pointer, which the failed save left as it was
    assert reads.count == 1


def test_where_counters_cannot_be_shared_every_read_checks_the_pointer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nfs = 0x6969
    monkeypatch.setattr("features.store._generations.file_system_type", lambda directory: nfs)
    store = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp_path))
    store.save_features("g", {"f": _frame(1)})
    assert not (tmp_path / LOCKS_DIR / GENERATIONS_FILE).exists()  # nothing counted: a reader could not trust it
    reads = _PointerReads(monkeypatch)
    for _ in range(3):
        assert _marker(store) == 1
    assert reads.count == 3
    assert _run(_save_in_another_process, tmp_path, 2) == 0  # the child sees a local file system and counts
    assert _marker(store) == 2


def test_a_store_that_is_only_read_creates_nothing(tmp_path: Path) -> None:
    SimpleFeatureStore(FeatureStoreConfig(base_path=tmp_path / "s")).save_features("g", {"f": _frame(1)})
    (tmp_path / "s" / LOCKS_DIR / GENERATIONS_FILE).unlink()  # as written by a version that did not count
    reader = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp_path / "s"))
    assert _marker(reader) == 1 and _marker(reader) == 1
    assert not (tmp_path / "s" / LOCKS_DIR / GENERATIONS_FILE).exists()
