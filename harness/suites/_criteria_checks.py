"""The measurements behind seed 002's success criteria (harness.suites.criteria judges them).

Each ``measure_*`` function runs in a fresh temporary store and returns ``{criterion id: measured value}``, the
values in the criterion's unit. Repetitions follow seed 000 (the median of repeated runs where a time is taken).
"""

from __future__ import annotations

import gc
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa

from features.catalog import SEED_TITLE, seed_movies
from features.engineering.tmdb_processor import AdvancedTMDBPreProcessor
from features.store.feature_store import FeatureStoreConfig, IntegrityError, SimpleFeatureStore

__all__ = ["MEASUREMENTS"]

MB = 2**20


def _rss() -> int:
    return psutil.Process().memory_info().rss


def _seed_movies(count: int, name: str = "Test") -> list[dict[str, object]]:
    """The seed's own synthetic movies (script 1.1), titled after the check that uses them."""
    return seed_movies(count, title=f"{name} {SEED_TITLE}")


def _frame(rows: int, cols: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"feature_{i}": rng.random(rows) for i in range(cols)})
    frame["id"] = range(rows)
    return frame


def measure_throughput(repeats: int) -> dict[str, float]:
    """1 feature generation (movies/s, 1,000 movies), 2 save and 3 load (MB/s, seed Large 10,000 x 30)."""
    movies = _seed_movies(1000)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        AdvancedTMDBPreProcessor(movies).extract_all_features()
        times.append(time.perf_counter() - start)
    frame = _frame(10_000, 30)
    size_mb = frame.memory_usage(deep=True).sum() / MB
    save_s, load_s = [], []
    with tempfile.TemporaryDirectory() as tmp:
        store = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp, compression="snappy"))
        for i in range(repeats):
            start = time.perf_counter()
            store.save_features(f"perf_{i}", {"large": frame})
            save_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            store.get_features(["large"], f"perf_{i}")  # a fresh group: a cache miss, read from disk
            load_s.append(time.perf_counter() - start)
    return {
        "feature_generation": 1000 / statistics.median(times),
        "save_speed": size_mb / statistics.median(save_s),
        "load_speed": size_mb / statistics.median(load_s),
    }


def measure_concurrency(iterations: int) -> dict[str, float]:
    """4 success rate of 8 threads saving and reading (%), 14 reads that lost data (count): all 8 threads share one
    store and write the same feature, the harder case than the seed's store per thread."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp))
        ok = lost = total = 0
        lock = threading.Lock()

        def worker(worker_id: int) -> None:
            nonlocal ok, lost, total
            for i in range(iterations):
                frame = pd.DataFrame(
                    {"id": range(50), "worker_id": worker_id, "iteration": i, "value": np.random.random(50)}
                )
                try:
                    store.save_features("concurrent_group", {"shared": frame, f"own_{worker_id}": frame})
                    shared = store.get_features(["shared"], "concurrent_group")["shared"]
                    own = store.get_features([f"own_{worker_id}"], "concurrent_group")[f"own_{worker_id}"]
                    complete = len(shared) == 50 and shared["worker_id"].nunique() == 1  # one whole version
                    exact = own.equals(frame)
                    with lock:
                        total += 1
                        ok += complete and exact
                        lost += not (complete and exact)
                except Exception:
                    with lock:
                        total += 1

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(worker, range(8)))
    return {"concurrency": 100.0 * ok / total if total else 0.0, "data_integrity": float(lost)}


def _peak_rss_during(call: Callable[[], Any]) -> float:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        exact = True
    except OSError:
        exact = False
    before = _rss()
    call()
    if exact:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return (int(line.split()[1]) * 1024 - before) / MB
    return (_rss() - before) / MB


def measure_memory() -> dict[str, float]:
    """5 memory used to process 1,000 movies (MB above the process' RSS before), 7 RSS growth over 10 repeated
    batches of 100 (MB), 8 share of the bytes allocated for 100,000 movies released by gc (%)."""
    gc.collect()
    used = _peak_rss_during(lambda: AdvancedTMDBPreProcessor(_seed_movies(1000)).extract_all_features())
    readings = []
    for _ in range(10):
        features = AdvancedTMDBPreProcessor(_seed_movies(100, "Memory")).extract_all_features()
        del features
        gc.collect()
        readings.append(_rss())
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    base_py, base_arrow = tracemalloc.get_traced_memory()[0], pa.total_allocated_bytes()
    features = AdvancedTMDBPreProcessor(_seed_movies(100_000, "Release")).extract_all_features()
    held = tracemalloc.get_traced_memory()[0] - base_py + pa.total_allocated_bytes() - base_arrow
    del features
    gc.collect()
    left = tracemalloc.get_traced_memory()[0] - base_py + pa.total_allocated_bytes() - base_arrow
    tracemalloc.stop()
    return {
        "memory_1000_movies": used,
        "memory_growth": (readings[-1] - readings[0]) / MB,
        "memory_release": 100.0 * (held - max(left, 0)) / held if held > 0 else 0.0,
    }


def measure_cache() -> dict[str, float]:
    """10 second read vs first (x faster), 11 hit rate over repeated reads (%), 12 TTL refresh (1 = a read after
    expiry reloads from disk, counts the expiry and sees the newer version), 17 statistics as configured (1/0)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = FeatureStoreConfig(base_path=tmp, cache_max_size=20, cache_ttl_seconds=120)
        store = SimpleFeatureStore(config)
        features = {
            f"cache_test_feature_{i}": pd.DataFrame(
                {
                    "id": range(1000),
                    "value": range(1000 * i, 1000 * (i + 1)),
                    "feature": [f"data_{j}" for j in range(1000)],
                }
            )
            for i in range(5)
        }
        store.save_features("cache_test_group", features)
        names = list(features)
        start = time.perf_counter()
        store.get_features(names, "cache_test_group")
        first = time.perf_counter() - start
        start = time.perf_counter()
        store.get_features(names, "cache_test_group")
        second = time.perf_counter() - start
        for _ in range(498):
            store.get_features(names, "cache_test_group")
        stats = store.cache.get_stats()  # type: ignore[union-attr]
        reported = stats["size"] == 5 and stats["max_size"] == 20 and stats["ttl_seconds"] == 120
        now = [0.0]
        timed = SimpleFeatureStore(
            FeatureStoreConfig(base_path=Path(tmp) / "ttl", cache_ttl_seconds=120), clock=lambda: now[0]
        )
        timed.save_features("g", {"f": _frame(100, 3)})
        timed.get_features(["f"], "g")
        SimpleFeatureStore(FeatureStoreConfig(base_path=Path(tmp) / "ttl", cache_enabled=False)).save_features(
            "g", {"f": _frame(200, 3)}
        )  # another writer
        now[0] = 121.0
        refreshed = timed.get_features(["f"], "g")["f"]
        ttl = timed.cache.get_stats()  # type: ignore[union-attr]
    return {
        "cache_speedup": first / second,
        "cache_hit_rate": 100.0 * stats["hit_rate"],
        "ttl_refresh": float(len(refreshed) == 200 and ttl["misses"] >= 2),
        "cache_stats_reported": float(reported),
    }


def measure_recovery() -> dict[str, float]:
    """13 reads that succeed once a transient fault (a torn data file: checksum mismatch) is repaired (%)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp, cache_enabled=False))
        path = Path(store.save_features("g", {"f": _frame(1000, 5)})["f"])
        good = path.read_bytes()
        path.write_bytes(good[: len(good) // 2] + bytes(len(good) - len(good) // 2))
        failed = 0
        for _ in range(3):
            try:
                store.get_features(["f"], "g")
            except IntegrityError:
                failed += 1
        path.write_bytes(good)
        recovered = sum(len(store.get_features(["f"], "g")["f"]) == 1000 for _ in range(10))
    return {"error_recovery": 100.0 * recovered / 10 if failed == 3 else 0.0}


def measure_stability(duration_s: float) -> dict[str, float]:
    """6 error rate (%), 15 slow-down of the last tenth of the cycles against the first (%), 16 RSS growth (MB):
    the seed's continuous save-and-read loop (script 2.2) for ``duration_s``."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp))
        rng = np.random.default_rng(7)
        ok = errors = 0
        cycle_s: list[float] = []
        rss: list[int] = []
        end = time.monotonic() + duration_s
        cycle = 0
        while time.monotonic() < end:
            cycle += 1
            size = int(rng.integers(50, 150))
            frame = pd.DataFrame(
                {
                    "cycle": [cycle] * size,
                    "timestamp": [time.time()] * size,
                    "feature_1": rng.random(size),
                    "feature_2": rng.normal(0, 1, size),
                }
            )
            name = f"stability_test_data_{cycle % 5}"
            start = time.perf_counter()
            try:
                store.save_features("stability_test_group", {name: frame})
                loaded = store.get_features([name], "stability_test_group")[name]
                ok += int(loaded["cycle"].iloc[0]) == cycle
                errors += int(loaded["cycle"].iloc[0]) != cycle
            except Exception:
                errors += 1
            cycle_s.append(time.perf_counter() - start)
            if cycle % 200 == 0:
                gc.collect()
                rss.append(_rss())
    tenth = max(1, len(cycle_s) // 10)
    first, last = statistics.median(cycle_s[:tenth]), statistics.median(cycle_s[-tenth:])
    growth = (max(rss[1:]) - min(rss[1:])) / MB if len(rss) > 2 else 0.0
    return {
        "stability_errors": 100.0 * errors / max(ok + errors, 1),
        "degradation": 100.0 * (last / first - 1.0),
        "stability_memory": growth,
    }


def measure_service_cpu(duration_s: float, rate_per_s: float = 100.0) -> dict[str, float]:
    """9 the service's CPU (% of one core, all its processes) serving ``rate_per_s`` single lookups: a real
    uvicorn service (one worker) with a 20,000-movie catalog, paced requests from this process."""
    import httpx

    from service.launcher import start_service

    with tempfile.TemporaryDirectory() as tmp:
        service = start_service({"write_token": "criteria-token"}, store_path=Path(tmp) / "store", workers=1)
        try:
            with httpx.Client(base_url=service.base_url, timeout=30) as client:
                client.post(
                    "/v1/catalog/load",
                    json={"movies": 20_000, "seed": 42},
                    headers={"Authorization": "Bearer criteria-token"},
                ).raise_for_status()
                tree = [psutil.Process(service.pid), *psutil.Process(service.pid).children(recursive=True)]
                cpu_before = sum(p.cpu_times().user + p.cpu_times().system for p in tree)
                start = time.perf_counter()
                ids = np.random.default_rng(1).integers(1, 20_000, int(duration_s * rate_per_s) + 1)
                for i, movie_id in enumerate(ids):
                    client.get(f"/v1/online/tmdb/movie_features/{movie_id}")
                    time.sleep(max(0.0, start + (i + 1) / rate_per_s - time.perf_counter()))
                elapsed = time.perf_counter() - start
                cpu = sum(p.cpu_times().user + p.cpu_times().system for p in tree) - cpu_before
        finally:
            service.stop()
    return {"cpu_normal": 100.0 * cpu / elapsed}


MEASUREMENTS: dict[str, Callable[[bool], dict[str, float]]] = {
    "throughput": lambda quick: measure_throughput(5 if quick else 10),
    "concurrency": lambda quick: measure_concurrency(5 if quick else 20),
    "memory": lambda quick: measure_memory(),
    "cache": lambda quick: measure_cache(),
    "recovery": lambda quick: measure_recovery(),
    "stability": lambda quick: measure_stability(10.0 if quick else 180.0),
    "service_cpu": lambda quick: measure_service_cpu(5.0 if quick else 30.0),
}
