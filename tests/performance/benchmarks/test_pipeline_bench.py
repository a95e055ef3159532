"""Throughput of the TMDB feature pipeline (AdvancedTMDBPreProcessor) on the synthetic catalog.

Each case reports ``movies_per_s`` (catalog size / median round time) in ``benchmark.extra_info`` and
prints it; nothing is asserted about time because timings on the shared 2-core machine are noisy.
Inputs: an Arrow table (the fast path), a pandas DataFrame from ``table.to_pandas()`` (numpy and
object columns) and a list of dicts (``table.to_pylist()``). The catalog build is not timed.

Run: ``pytest tests/performance/benchmarks/test_pipeline_bench.py --benchmark-only -s``
(add ``-m "not slow"`` to skip the 1M-movie cases).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pytest

from features.catalog import generate_catalog_table
from features.engineering.tmdb_processor import AdvancedTMDBPreProcessor

ONE_MILLION = pytest.param(1_000_000, marks=pytest.mark.slow, id="1000000")
ROUNDS = {1_000: 200, 100_000: 20, 1_000_000: 5}


@pytest.fixture(scope="module")
def catalog() -> Iterator[Callable[[int], pa.Table]]:
    """The seed-42 catalog with 3% messy rows, built once per size and freed after this module."""
    built: dict[int, pa.Table] = {}

    def get(n: int) -> pa.Table:
        if n not in built:
            built[n] = generate_catalog_table(n, seed=42)
        return built[n]

    yield get
    built.clear()


def run(benchmark: Any, label: str, n: int, movies: object, extract: Callable[[AdvancedTMDBPreProcessor], Any]) -> None:
    result = benchmark.pedantic(
        lambda: extract(AdvancedTMDBPreProcessor(movies)), rounds=ROUNDS[n], warmup_rounds=1, iterations=1
    )
    assert len(result) == n
    if benchmark.stats is not None:  # None under --benchmark-disable
        median_s = benchmark.stats.stats.median
        benchmark.extra_info["movies_per_s"] = round(n / median_s)
        print(f"\n{label} n={n:>9,}: median {median_s * 1e3:9.2f} ms -> {n / median_s:>12,.0f} movies/s")


@pytest.mark.parametrize("n", [1_000, 100_000, ONE_MILLION])
def test_arrow_table_to_table(benchmark: Any, catalog: Callable[[int], pa.Table], n: int) -> None:
    run(benchmark, "arrow -> table    ", n, catalog(n), lambda p: p.extract_all_features_table())


@pytest.mark.parametrize("n", [1_000, 100_000, ONE_MILLION])
def test_arrow_table_to_dataframe(benchmark: Any, catalog: Callable[[int], pa.Table], n: int) -> None:
    run(benchmark, "arrow -> dataframe", n, catalog(n), lambda p: p.extract_all_features())


@pytest.mark.parametrize("n", [100_000, ONE_MILLION])
def test_dataframe_to_dataframe(benchmark: Any, catalog: Callable[[int], pa.Table], n: int) -> None:
    run(benchmark, "pandas -> dataframe", n, catalog(n).to_pandas(), lambda p: p.extract_all_features())


@pytest.mark.parametrize("n", [1_000, 100_000])
def test_list_of_dicts_to_dataframe(benchmark: Any, catalog: Callable[[int], pa.Table], n: int) -> None:
    run(benchmark, "dicts -> dataframe", n, catalog(n).to_pylist(), lambda p: p.extract_all_features())
