"""Memory scaling: the service's RSS against its catalog size and its cache bound; bytes per entity; eviction.

    FEATURELOAD_SCALE=full pytest tests/performance/scalability/test_memory_scaling.py -s

Catalog: a real service (one uvicorn worker) loads catalogs of growing size (``POST /v1/catalog/load``) and serves
lookups from them; its RSS (the whole process tree, psutil) is read after each. Bytes per entity is the slope of
RSS against movies (least squares). Cache: a service whose cache is bounded at ``cache_max_bytes`` reads feature
frames totalling several times that bound; every read caches the frame, so the cache must evict, and RSS must
plateau: its growth over the second half of the reads (medians of three readings) stays under half the bytes
read in that half (without eviction it would grow by all of them). Written to
``runs/<stamp>-scalability-memory_scaling/``.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import plotly.graph_objects as go
import psutil
import pyarrow as pa
import pytest
from plotly.subplots import make_subplots
from scipy import stats

from harness.suites.scaling_run import ScalingRun
from service.codec import ARROW_STREAM, table_to_arrow_stream

TOKEN = "memory-scaling-token"
MB = 2**20
CATALOGS = {"quick": [2_000, 10_000, 40_000], "full": [10_000, 50_000, 100_000, 300_000, 1_000_000]}
CACHE_BOUNDS_MB = {"quick": [32], "full": [32, 128]}
FRAME_MB = 4  # each feature frame read into the cache
FRAMES_PER_BOUND = 4  # frames read: 4x the bound in bytes
PLATEAU_SHARE = 0.5  # RSS growth over the second half of the reads must stay under half the bytes read then


def tree_rss(pid: int) -> int:
    """RSS of ``pid`` and its children (bytes)."""
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


def catalog_sweep(run: ScalingRun, service: Any, sizes: list[int]) -> tuple[list[int], list[int]]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    rss = []
    with httpx.Client(base_url=service.base_url, timeout=300) as client:
        base = tree_rss(service.pid)
        run.add(part="catalog", movies=0, rss_bytes=base)
        for movies in sizes:
            loaded = client.post("/v1/catalog/load", json={"movies": movies, "seed": 1}, headers=headers)
            assert loaded.status_code == 200, loaded.text[:300]
            for movie_id in np.random.default_rng(movies).integers(1, movies, 50).tolist():
                client.get(f"/v1/online/tmdb/movie_features/{movie_id}")
            rss.append(tree_rss(service.pid))
            run.add(part="catalog", movies=movies, rss_bytes=rss[-1])
            run.say(
                f"catalog of {movies:>9,} movies: service RSS {rss[-1] / MB:8.1f} MB (+{(rss[-1] - base) / MB:.1f})"
            )
    slope = stats.linregress(sizes, rss)
    run.fit(
        "rss/catalog",
        {
            "kind": "linear",
            "bytes_per_entity": slope.slope,
            "stderr": slope.stderr,
            "r_squared": slope.rvalue**2,
            "base_rss_bytes": base,
        },
    )
    run.say(
        f"bytes per entity: {slope.slope:,.0f} B/movie (+-{slope.stderr:,.0f}, R^2 {slope.rvalue**2:.3f}), "
        f"catalog and its features, raw movies and the entity index, as the service holds them"
    )
    return sizes, rss


def eviction(run: ScalingRun, service_factory: Any, bound_mb: int) -> list[int]:
    service = service_factory(write_token=TOKEN, cache_max_bytes=bound_mb * MB, cache_max_entries=10_000)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": ARROW_STREAM}
    rows = FRAME_MB * MB // (8 * 8)
    rng = np.random.default_rng(bound_mb)
    frames = FRAMES_PER_BOUND * bound_mb // FRAME_MB
    rss = []
    with httpx.Client(base_url=service.base_url, timeout=60) as client:
        for i in range(frames):
            table = pa.table({"id": np.arange(rows), **{f"f{c}": rng.random(rows) for c in range(7)}})
            put = client.put(
                f"/v1/groups/evict/features/f{i}?entity_column=id",
                content=table_to_arrow_stream(table),
                headers=headers,
            )
            assert put.status_code == 201, put.text[:300]
            del table
            gc.collect()
            assert client.get(f"/v1/online/evict/f{i}/1").status_code == 200  # caches the frame and its index
            rss.append(tree_rss(service.pid))
            run.add(
                part="eviction",
                cache_bound_mb=bound_mb,
                frames_read=i + 1,
                cached_mb_read=(i + 1) * FRAME_MB,
                rss_bytes=rss[-1],
            )
        cache = client.get("/v1/cache/stats").json()
    half = len(rss) // 2
    read_second_half = (len(rss) - half) * FRAME_MB * MB
    growth = int(np.median(rss[-3:]) - np.median(rss[half - 1 : half + 2]))  # medians: the allocator breathes
    run.fit(
        f"eviction/{bound_mb}MB",
        {
            "kind": "plateau",
            "cache_bound_bytes": bound_mb * MB,
            "second_half_growth_bytes": growth,
            "evictions": cache["evictions"],
            "cache_bytes": cache["bytes"],
            "peak_rss_bytes": max(rss),
        },
    )
    run.say(
        f"cache bound {bound_mb} MB, {frames * FRAME_MB} MB read: cache holds {cache['bytes'] / MB:.1f} MB after "
        f"{cache['evictions']} evictions; RSS {rss[0] / MB:.0f} -> {rss[half] / MB:.0f} -> {rss[-1] / MB:.0f} MB, "
        f"growth over the second half {growth / MB:.1f} MB"
    )
    assert cache["evictions"] > 0 and cache["bytes"] <= bound_mb * MB
    assert growth < PLATEAU_SHARE * read_second_half, f"RSS did not plateau: +{growth / MB:.1f} MB over the second half"
    return rss


@pytest.mark.slow
@pytest.mark.timeout(3600)  # the full scale runs for minutes
def test_rss_against_catalog_size_and_cache_bound(
    scale: str, service_factory: Any, new_scaling_run: Callable[[str], ScalingRun]
) -> None:
    run = new_scaling_run("memory_scaling")
    service = service_factory(write_token=TOKEN)
    sizes, rss = catalog_sweep(run, service, CATALOGS[scale])
    figure = make_subplots(
        rows=1, cols=2, subplot_titles=("service RSS vs catalog", "RSS while reading past the bound")
    )
    figure.add_trace(go.Scatter(x=sizes, y=[r / MB for r in rss], mode="lines+markers", name="RSS MB"), row=1, col=1)
    for bound in CACHE_BOUNDS_MB[scale]:
        series = eviction(run, service_factory, bound)
        figure.add_trace(
            go.Scatter(
                x=[(i + 1) * FRAME_MB for i in range(len(series))],
                y=[r / MB for r in series],
                mode="lines+markers",
                name=f"bound {bound} MB",
            ),
            row=1,
            col=2,
        )
    figure.update_xaxes(title="movies", row=1, col=1)
    figure.update_xaxes(title="MB of frames read", row=1, col=2)
    figure.update_yaxes(title="RSS MB")
    run.write(figure)
    assert rss[-1] > rss[0]  # a bigger catalog is held in memory: the measurement sees it
