"""Synthetic workloads: frame materialization, the store I/O round trip and the memory budget."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.store.feature_store import FeatureNotFoundError, FeatureStoreConfig, SimpleFeatureStore
from features.workloads import (
    BYTES_PER_MB,
    IO_SCRATCH_GROUP,
    MemoryBudget,
    MemoryBudgetExceededError,
    RoundTripMismatchError,
    io_roundtrip,
    materialize_frame,
)


@pytest.mark.parametrize("megabytes", [0.01, 1, 7.5])
def test_materialize_frame_has_about_the_requested_size(megabytes: float) -> None:
    frame = materialize_frame(megabytes, seed=1)
    size = frame.memory_usage(index=False).sum()
    assert megabytes * BYTES_PER_MB <= size < megabytes * BYTES_PER_MB + 8 * 8  # at most one extra row
    assert set(frame.dtypes) == {np.dtype("float64")}
    assert frame.to_numpy().min() >= 0 and frame.notna().all().all()


def test_materialize_frame_is_seeded_and_checks_its_input() -> None:
    pd.testing.assert_frame_equal(materialize_frame(0.1, seed=5), materialize_frame(0.1, seed=5))
    assert not materialize_frame(0.1, seed=5).equals(materialize_frame(0.1, seed=6))
    for bad in (0, -1, float("nan"), float("inf"), "1"):
        with pytest.raises(ValueError, match="megabytes must be a positive finite number"):
            materialize_frame(bad)  # type: ignore[arg-type]


def test_io_roundtrip_writes_reads_verifies_and_deletes(tmp_path: Path) -> None:
    store = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp_path))
    result = io_roundtrip(store, rows=500, columns=4, seed=2)
    assert result["verified"] is True and (result["rows"], result["columns"]) == (500, 4)
    assert result["bytes_written"] == result["bytes_read"] > 0 and result["frame_bytes"] == 500 * 4 * 8
    assert result["write_ms"] > 0 and result["read_ms"] > 0
    with pytest.raises(FeatureNotFoundError):
        store.list_features(IO_SCRATCH_GROUP)
    assert io_roundtrip(store, 10, 1)["feature"] != result["feature"]
    with pytest.raises(ValueError, match="rows must be a positive integer"):
        io_roundtrip(store, 0, 3)


class _CorruptingStore:
    """Delegates to a real store but returns a frame with one changed value."""

    def __init__(self, store: SimpleFeatureStore) -> None:
        self._store = store
        self.deleted: list[str] = []

    def save_features(self, group: str, features: Mapping[str, pd.DataFrame]) -> dict[str, str]:
        return self._store.save_features(group, features)

    def get_features(self, names: Sequence[str], group: str) -> dict[str, pd.DataFrame]:
        frames = self._store.get_features(names, group)
        frame = frames[names[0]].copy()
        frame.iloc[3, 1] = -1.0
        return {names[0]: frame}

    def get_metadata(self, group: str, name: str) -> object:
        return self._store.get_metadata(group, name)

    def delete_feature(self, group: str, name: str) -> None:
        self.deleted.append(name)
        self._store.delete_feature(group, name)


def test_io_roundtrip_detects_a_mismatch_and_still_cleans_up(tmp_path: Path) -> None:
    store = _CorruptingStore(SimpleFeatureStore(FeatureStoreConfig(base_path=tmp_path)))
    with pytest.raises(RoundTripMismatchError, match="1 of 40 values differ"):
        io_roundtrip(store, rows=10, columns=4)  # type: ignore[arg-type]
    assert len(store.deleted) == 1


def test_memory_budget_accounts_and_refuses_past_the_cap() -> None:
    budget = MemoryBudget(100)
    first = budget.acquire(60, hold_s=30)
    with budget.acquire(40):
        assert budget.held_mb == 100
        with pytest.raises(MemoryBudgetExceededError) as caught:
            budget.acquire(1)
    error = caught.value
    assert (error.requested_mb, error.held_mb, error.cap_mb) == (1, 100, 100)
    assert "100 MB of the 100 MB budget is already held" in str(error)
    assert 25 < error.retry_after_s <= 30  # the 60 MB lease expects to release within 30 s
    assert budget.held_mb == 60
    first.release()
    first.release()  # idempotent
    assert budget.held_mb == 0
    with pytest.raises(ValueError, match="positive finite"):
        budget.acquire(0)
    with pytest.raises(ValueError, match="cap_mb"):
        MemoryBudget(0)


def test_memory_budget_is_thread_safe() -> None:
    budget = MemoryBudget(50)
    peak: list[float] = []
    refused = 0
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def worker() -> None:
        nonlocal refused
        barrier.wait()
        for _ in range(500):
            try:
                with budget.acquire(7):
                    held = budget.held_mb
                    with lock:
                        peak.append(held)
            except MemoryBudgetExceededError:
                with lock:
                    refused += 1

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert budget.held_mb == 0
    assert max(peak) <= 49 and len(peak) + refused == 16 * 500
