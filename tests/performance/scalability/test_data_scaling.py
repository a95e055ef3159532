"""Data scaling: how the store's save, load and lookup, and the TMDB pipeline, grow with rows and columns.

    FEATURELOAD_SCALE=full pytest tests/performance/scalability/test_data_scaling.py -s   # 10^2..10^6 rows

Each size is timed ``REPEATS`` times and the fastest run is kept (the one least disturbed by the rest of the
machine); peak memory is the process's RSS high-water mark above its RSS before the operation (``VmHWM``, reset
through ``/proc/self/clear_refs``; where that reset is refused, the RSS after minus before). The growth exponent is
the log-log slope over the upper half of the sizes with its 95% confidence interval (``harness.suites.scaling``); growth
is flagged super-linear when the interval's lower bound exceeds 1.05. Figures are printed and written to
``runs/<stamp>-scalability-data_scaling/`` (results.parquet, scaling.json, figure.html).

The quick variant (``make test``) asserts only that nothing grows like n^1.5 or worse: timings on a shared VM
are too noisy to assert 1.05 in seconds; the full run prints the exponents the README quotes.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import psutil
import pytest

from features.catalog import generate_catalog_table
from features.engineering.tmdb_processor import AdvancedTMDBPreProcessor
from features.store.feature_store import FeatureStoreConfig, SimpleFeatureStore
from harness.suites.scaling import fit_growth
from harness.suites.scaling_run import ScalingRun

ROWS = {
    "quick": [100, 1_000, 10_000, 50_000],
    "full": [100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000],
}
COLUMNS = {"quick": [10, 30, 100], "full": [10, 20, 30, 50, 100, 200, 300]}
ROWS_AT = 30  # columns of the rows sweep
COLUMNS_AT = {"quick": 5_000, "full": 100_000}  # rows of the columns sweep
REPEATS = {"quick": 2, "full": 5}
LOOKUP_IDS = 1_000
GROSS_EXPONENT = 1.5  # what the quick variant refuses: clearly worse than linear


def _rss() -> int:
    return psutil.Process().memory_info().rss


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return _rss()


def measure(operation: Callable[[], Any], repeats: int) -> tuple[float, int]:
    """(fastest of ``repeats`` runs in seconds, peak RSS above the start in bytes) of ``operation``."""
    best, peak = float("inf"), 0
    for _ in range(repeats):
        gc.collect()
        before = _rss()
        exact = _reset_peak()
        start = time.perf_counter()
        operation()
        best = min(best, time.perf_counter() - start)
        peak = max(peak, (_peak_rss() if exact else _rss()) - before)
    return best, max(peak, 0)


def frame(rows: int, columns: int) -> pd.DataFrame:
    rng = np.random.default_rng(rows * 1_000 + columns)
    data = {f"feature_{i}": rng.random(rows) for i in range(columns)}
    data["id"] = np.arange(rows, dtype=np.int64)
    return pd.DataFrame(data)


def store_sweep(tmp: Path, run: ScalingRun, sweep: str, sizes: list[tuple[int, int]], repeats: int) -> None:
    """Time save, load (a cold read, checksum verified) and lookup (index build + 1,000 ids, then warm) per size."""
    store = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp / sweep, cache_enabled=False))
    cached = SimpleFeatureStore(FeatureStoreConfig(base_path=tmp / sweep, cache_enabled=True))
    for rows, columns in sizes:
        data = frame(rows, columns)
        name = f"f_{rows}_{columns}"
        size_bytes = int(data.memory_usage(deep=True).sum())
        save_s, save_peak = measure(lambda: store.save_features(sweep, {name: data}, entity_column="id"), repeats)  # noqa: B023
        load_s, load_peak = measure(lambda: store.get_features([name], sweep), repeats)  # noqa: B023
        ids = np.random.default_rng(rows).integers(0, rows, LOOKUP_IDS).tolist()

        def cold_lookup() -> None:
            cached.cache.clear()  # type: ignore[union-attr]
            cached.lookup(sweep, name, ids)  # noqa: B023  (called within this iteration)

        cold_s, cold_peak = measure(cold_lookup, repeats)
        warm_s, _ = measure(lambda: cached.lookup(sweep, name, ids), repeats)  # noqa: B023
        for op, seconds, peak in (
            ("save", save_s, save_peak),
            ("load", load_s, load_peak),
            ("lookup", cold_s, cold_peak),
            ("lookup_warm", warm_s, 0),
        ):
            run.add(
                sweep=sweep,
                operation=op,
                rows=rows,
                columns=columns,
                cells=rows * columns,
                frame_bytes=size_bytes,
                seconds=seconds,
                peak_rss_bytes=peak,
            )
        run.say(
            f"{sweep} {rows:>9,} x {columns:>3}: save {save_s * 1e3:9.2f} ms, load {load_s * 1e3:8.2f} ms, "
            f"lookup cold {cold_s * 1e3:8.2f} ms / warm {warm_s * 1e3:6.2f} ms ({LOOKUP_IDS} ids), "
            f"peak +{save_peak / 2**20:7.1f} MB save, +{load_peak / 2**20:7.1f} MB load"
        )
        store.delete_feature(sweep, name)


def pipeline_sweep(run: ScalingRun, sizes: list[int], repeats: int) -> None:
    for rows in sizes:
        catalog = generate_catalog_table(rows, seed=7)
        seconds, peak = measure(lambda: AdvancedTMDBPreProcessor(catalog).extract_all_features_table(), repeats)  # noqa: B023
        run.add(
            sweep="rows",
            operation="pipeline",
            rows=rows,
            columns=None,
            cells=None,
            frame_bytes=int(catalog.nbytes),
            seconds=seconds,
            peak_rss_bytes=peak,
        )
        run.say(
            f"pipeline {rows:>9,} movies: {seconds * 1e3:9.2f} ms ({rows / seconds:,.0f} movies/s), "
            f"peak +{peak / 2**20:.1f} MB"
        )


def growth_figure(results: pd.DataFrame) -> go.Figure:
    figure = go.Figure()
    for (sweep, op), points in results.groupby(["sweep", "operation"]):
        x = points["rows"] if sweep == "rows" else points["columns"]
        figure.add_trace(go.Scatter(x=x, y=points["seconds"], mode="lines+markers", name=f"{op} vs {sweep}"))
    figure.update_layout(
        title="time per operation against size (log-log, fastest of the repeats)",
        xaxis={"type": "log", "title": "rows, or columns"},
        yaxis={"type": "log", "title": "seconds"},
    )
    return figure


@pytest.mark.slow
@pytest.mark.timeout(3600)  # the full scale runs for minutes
def test_store_and_pipeline_grow_linearly_with_rows_and_columns(
    tmp_path: Path, scale: str, new_scaling_run: Callable[[str], ScalingRun]
) -> None:
    run = new_scaling_run("data_scaling")
    repeats = REPEATS[scale]
    store_sweep(tmp_path, run, "rows", [(r, ROWS_AT) for r in ROWS[scale]], repeats)
    store_sweep(tmp_path, run, "columns", [(COLUMNS_AT[scale], c) for c in COLUMNS[scale]], repeats)
    pipeline_sweep(run, ROWS[scale], repeats)
    results = pd.DataFrame(run.rows)
    exponents = {}
    for (sweep, op), points in results.groupby(["sweep", "operation"]):
        size = points["rows"] if sweep == "rows" else points["columns"]
        growth = fit_growth(size, points["seconds"])
        run.fit(f"{op}/{sweep}", {"kind": "growth", "operation": op, "against": sweep, **growth.to_dict()})
        run.say(f"{op} against {sweep}: {growth.line()}")
        exponents[(op, sweep)] = growth
    run.write(growth_figure(results))
    for (op, sweep), growth in exponents.items():
        if op != "lookup_warm":  # a warm lookup is a hash probe: its cost should not depend on rows at all
            assert growth.exponent < GROSS_EXPONENT, f"{op} against {sweep}: {growth.line()}"
