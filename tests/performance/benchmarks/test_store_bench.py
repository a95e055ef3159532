"""Store save/load against raw pyarrow.parquet on the same frame in the same run, and cache hit versus disk.

Targets (printed, not asserted: timings here are noisy): save and load within 1.15x of raw
``pq.write_table``/``pq.read_table(...).to_pandas()``; a cache hit >= 100x faster than a disk read of 10k x 30.
Run: ``pytest tests/performance/benchmarks/test_store_bench.py --benchmark-only -s``
"""

from __future__ import annotations

import itertools
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.store.feature_store import FeatureStoreConfig, SimpleFeatureStore

FRAMES = {
    "seed-small-1k-x10": (1_000, 10),
    "seed-medium-5k-x20": (5_000, 20),
    "seed-large-10k-x30": (10_000, 30),
    "1M-x30-float": (1_000_000, 30),
}


def make_frame(rows: int, cols: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"feature_{i}": rng.random(rows) for i in range(cols)})
    frame["id"] = np.arange(rows)
    return frame


def median_s(action: Callable[[], object], rounds: int) -> float:
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def rounds_for(rows: int) -> int:
    return 5 if rows >= 1_000_000 else 30


@pytest.mark.parametrize("label", list(FRAMES))
def test_save_versus_raw_parquet_write(benchmark, tmp_path: Path, label: str) -> None:
    rows, cols = FRAMES[label]
    frame = make_frame(rows, cols)
    store = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp_path / "store", cache_enabled=False))
    counter = itertools.count()
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    rounds = rounds_for(rows)

    def raw_write(fsync: bool) -> None:
        path = raw_dir / f"{next(counter)}.parquet"
        pq.write_table(pa.Table.from_pandas(frame), path, compression="snappy")
        if fsync:  # the durability our save pays for: without it a crash can leave a torn file
            fd = os.open(path, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)

    raw_s = median_s(lambda: raw_write(fsync=False), rounds)
    raw_fsync_s = median_s(lambda: raw_write(fsync=True), rounds)
    benchmark.group = f"save {label}"
    benchmark.pedantic(lambda: store.save_features("bench", {"frame": frame}), rounds=rounds, warmup_rounds=1)
    ours_s = benchmark.stats.stats.median
    benchmark.extra_info.update(
        raw_median_s=raw_s,
        raw_fsync_median_s=raw_fsync_s,
        ratio_to_raw=ours_s / raw_s,
        ratio_to_raw_fsync=ours_s / raw_fsync_s,
    )
    print(
        f"\nsave {label}: ours {ours_s * 1e3:.2f} ms, raw {raw_s * 1e3:.2f} ms ({ours_s / raw_s:.2f}x), "
        f"raw+fsync {raw_fsync_s * 1e3:.2f} ms ({ours_s / raw_fsync_s:.2f}x)"
    )


@pytest.mark.parametrize("label", list(FRAMES))
def test_load_versus_raw_parquet_read(benchmark, tmp_path: Path, label: str) -> None:
    rows, cols = FRAMES[label]
    frame = make_frame(rows, cols)
    store = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp_path / "store", cache_enabled=False))
    path = Path(store.save_features("bench", {"frame": frame})["frame"])
    rounds = rounds_for(rows)
    raw_s = median_s(lambda: pq.read_table(path).to_pandas(), rounds)
    benchmark.group = f"load {label}"
    benchmark.pedantic(lambda: store.get_features(["frame"], "bench"), rounds=rounds, warmup_rounds=1)
    ours_s = benchmark.stats.stats.median
    benchmark.extra_info.update(raw_median_s=raw_s, ratio_to_raw=ours_s / raw_s)
    print(f"\nload {label}: ours {ours_s * 1e3:.2f} ms, raw {raw_s * 1e3:.2f} ms, ratio {ours_s / raw_s:.2f}x")


def test_cache_hit_versus_disk_read_10k_x_30(benchmark, tmp_path: Path) -> None:
    frame = make_frame(10_000, 30)
    cached = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp_path))
    uncached = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp_path, cache_enabled=False))
    cached.save_features("bench", {"frame": frame})
    disk_s = median_s(lambda: uncached.get_features(["frame"], "bench"), 50)
    cached.get_features(["frame"], "bench")
    benchmark.group = "cache"
    benchmark.pedantic(lambda: cached.get_features(["frame"], "bench"), rounds=2000, warmup_rounds=10)
    hit_s = benchmark.stats.stats.median
    benchmark.extra_info.update(disk_median_s=disk_s, speedup=disk_s / hit_s)
    print(f"\ncache hit {hit_s * 1e6:.1f} us, disk read {disk_s * 1e3:.2f} ms, speedup {disk_s / hit_s:.0f}x")


def test_cache_hit_versus_disk_read_interleaved_10k_x_30(benchmark, tmp_path: Path) -> None:
    """Issue 19 item 3: each hit follows a cold read (another store reading from disk in the same process), as
    in a service whose working set does not fit the cache. The cold read's decoding evicts the CPU caches, so a
    hit's Python work runs cold; the split says where its time goes. The pointer read is what a hit paid before
    the commit counters (features/store/_generations.py) and pays still where they cannot be shared (NFS)."""
    from features.store._files import read_small_file

    frame = make_frame(10_000, 30)
    cached = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp_path))
    uncached = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp_path, cache_enabled=False))
    cached.save_features("bench", {"frame": frame})
    cached.get_features(["frame"], "bench")
    cold_read = lambda: uncached.get_features(["frame"], "bench")  # noqa: E731
    pointer = str(tmp_path / "bench" / "frame" / "_current.json")
    entry = cached.cache._entries[("bench", "frame")]  # type: ignore[union-attr]
    generation = entry.generation  # the commit counter the entry was validated at: a hit's lookup matches it
    assert generation is not None
    parts: dict[str, Callable[[], object]] = {
        "hit": lambda: cached.get_features(["frame"], "bench"),
        "pointer read": lambda: read_small_file(pointer),
        "cache lookup": lambda: cached.cache.get_current(("bench", "frame"), generation),  # type: ignore[union-attr]
        "shallow copy": lambda: entry.value[0].copy(deep=False),
    }
    after_cold: dict[str, list[float]] = {name: [] for name in parts}
    cold: list[float] = []
    for _ in range(200):
        for name, action in parts.items():
            start = time.perf_counter()
            cold_read()
            cold.append(time.perf_counter() - start)
            start = time.perf_counter()
            action()
            after_cold[name].append(time.perf_counter() - start)
    steady_hit_s = median_s(parts["hit"], 2000)
    cold_s = statistics.median(cold)
    medians_us = {name: statistics.median(values) * 1e6 for name, values in after_cold.items()}
    benchmark.group = "cache"

    def hit_after_cold_read() -> None:
        cold_read()
        parts["hit"]()

    benchmark.pedantic(hit_after_cold_read, rounds=50, warmup_rounds=2)
    benchmark.extra_info.update(
        cold_read_median_s=cold_s,
        after_cold_median_us=medians_us,
        steady_hit_median_us=steady_hit_s * 1e6,
        speedup_interleaved=cold_s / (medians_us["hit"] / 1e6),
    )
    print(
        f"\ninterleaved: cache hit {medians_us['hit']:.1f} us after a cold read ({steady_hit_s * 1e6:.1f} us in a "
        f"run of hits), cold read {cold_s * 1e3:.2f} ms, speedup {cold_s / (medians_us['hit'] / 1e6):.0f}x (target "
        f"100x); after a cold read: a pointer read (no longer in a hit) {medians_us['pointer read']:.1f} us, "
        f"cache lookup {medians_us['cache lookup']:.1f} us, shallow copy {medians_us['shallow copy']:.1f} us"
    )
