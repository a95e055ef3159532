"""Seed 002's success criteria for the store, with the seed's own thresholds, and the seed's own scripts.

The seed's thresholds are loose (10 MB/s to save, 20 MB/s to load, 2x from the cache); this store clears them
by a wide margin, so the timed assertions here do not flake on a busy machine. Throughputs use the median of
five repetitions, as seed 000 asks for repeated measurements. The measured figures are printed (pytest -s).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.store.feature_store import FeatureStoreConfig, SimpleFeatureStore
from tests.machine_load import MachineWatch
from tests.seed_scripts import extract_scripts, first_line_title, run_script, seed_file

SEED_DATASETS = [("small", 1000, 10), ("medium", 5000, 20), ("large", 10000, 30)]
REPEATS = 5


def seed_frame(rows: int, cols: int) -> pd.DataFrame:
    frame = pd.DataFrame({f"feature_{i}": np.random.random(rows) for i in range(cols)})
    frame["id"] = range(rows)
    return frame


@pytest.mark.exclusive  # MB/s of a save (an fsync and a write-out): other tests' disk and CPU would count
@pytest.mark.parametrize("name, rows, cols", SEED_DATASETS)
def test_save_at_least_10_mb_per_s_and_load_at_least_20_mb_per_s(
    tmp_path: Path, name: str, rows: int, cols: int, other_load: MachineWatch
) -> None:
    store = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp_path, cache_enabled=True, compression="snappy"))
    frame = seed_frame(rows, cols)
    size_mb = frame.memory_usage(deep=True).sum() / 1024 / 1024
    save_s, load_s = [], []
    for repeat in range(REPEATS):
        group = f"perf_test_group_{name}_{repeat}"  # a fresh group each time: a load is a cache miss
        start = time.perf_counter()
        store.save_features(group, {f"perf_test_{name}": frame})
        save_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        loaded = store.get_features([f"perf_test_{name}"], group)
        load_s.append(time.perf_counter() - start)
        pd.testing.assert_frame_equal(loaded[f"perf_test_{name}"], frame)
    save_mb_s, load_mb_s = size_mb / statistics.median(save_s), size_mb / statistics.median(load_s)
    print(f"{name}: {size_mb:.2f} MB, save {save_mb_s:.1f} MB/s, load {load_mb_s:.1f} MB/s")
    with other_load.judging(f"the {name} set's save and load speed"):
        assert save_mb_s >= 10
        assert load_mb_s >= 20


@pytest.mark.exclusive  # a ratio of two timings
def test_second_read_is_at_least_twice_as_fast_and_hit_rate_above_80_percent(tmp_path: Path) -> None:
    config = FeatureStoreConfig(base_path=tmp_path, cache_enabled=True, cache_max_size=20, cache_ttl_seconds=120)
    store = SimpleFeatureStore(config)
    features = {
        f"cache_test_feature_{i}": pd.DataFrame(
            {"id": range(1000), "value": range(1000 * i, 1000 * (i + 1)), "feature": [f"data_{j}" for j in range(1000)]}
        )
        for i in range(5)
    }
    store.save_features("cache_test_group", features)
    names = list(features)
    start = time.perf_counter()
    store.get_features(names, "cache_test_group")
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    store.get_features(names, "cache_test_group")
    second_s = time.perf_counter() - start
    for _ in range(8):
        store.get_features(names, "cache_test_group")
    stats = store.cache.get_stats()  # type: ignore[union-attr]
    print(f"cache speedup {first_s / second_s:.1f}x, hit rate {stats['hit_rate']:.0%}")
    assert first_s / second_s >= 2
    assert stats["hit_rate"] > 0.80
    assert (stats["size"], stats["max_size"], stats["ttl_seconds"]) == (5, 20, 120)


def test_expired_entries_refresh_from_disk_automatically(tmp_path: Path) -> None:
    now = [0.0]
    store = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp_path, cache_ttl_seconds=120), clock=lambda: now[0])
    store.save_features("g", {"f": seed_frame(100, 3)})
    store.get_features(["f"], "g")
    now[0] = 121.0
    refreshed = store.get_features(["f"], "g")["f"]
    assert len(refreshed) == 100
    stats = store.cache.get_stats()  # type: ignore[union-attr]
    assert stats["expirations"] == 1 and stats["size"] == 1


def test_continuous_operation_error_rate_below_5_percent_and_memory_stable(tmp_path: Path) -> None:
    """The seed's 3-minute stability loop, shortened to 2,000 cycles (about 15 s here)."""
    import gc

    import psutil

    store = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp_path))
    process = psutil.Process()
    rng = np.random.default_rng(7)
    operations = errors = 0
    rss_mb = []
    for cycle in range(2000):
        size = int(rng.integers(50, 150))
        frame = pd.DataFrame(
            {"cycle": [cycle] * size, "feature_1": rng.random(size), "feature_2": rng.normal(size=size)}
        )
        name = f"stability_test_data_{cycle % 5}"
        store.save_features("stability_test_group", {name: frame})
        loaded = store.get_features([name], "stability_test_group")[name]
        if len(loaded) == size and int(loaded["cycle"].iloc[0]) == cycle:
            operations += 1
        else:
            errors += 1
        if cycle % 250 == 0:
            gc.collect()
            rss_mb.append(process.memory_info().rss / 1024 / 1024)
    assert errors / (operations + errors) < 0.05
    assert errors == 0
    assert max(rss_mb[1:]) - min(rss_mb[1:]) < 50


SEED_SCRIPTS_IN_TEST = {0, 1, 2, 4, 5}  # 3 is the 3-minute stability run: `make seed-scripts` runs it


def _seed_document_or_skip() -> str:
    # The seed document is not part of the product: a user's clone has no shared seeds directory beside it.
    try:
        return seed_file().read_text(encoding="utf-8")
    except FileNotFoundError as missing:
        pytest.skip(f"the seed's own scripts cannot run here: {missing} (CI has the shared seeds beside the clone)")


@pytest.mark.slow
@pytest.mark.exclusive  # the seed's criteria include save and load speeds
@pytest.mark.parametrize("index", sorted(SEED_SCRIPTS_IN_TEST))
def test_the_seed_scripts_run_unchanged_and_report_no_failed_criterion(tmp_path: Path, index: int) -> None:
    scripts = extract_scripts(_seed_document_or_skip(), tmp_path)
    assert len(scripts) == 6
    result = run_script(scripts[index], timeout_s=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "❌" not in result.stdout, f"{first_line_title(scripts[index])}\n{result.stdout[-2000:]}"
    assert "완료" in result.stdout  # every seed script ends by printing that it completed
