"""Model scaling: the pipeline's width (features produced and the cost of each), online lookup latency against
the number of feature columns, and the batch size of a lookup.

    FEATURELOAD_SCALE=full pytest tests/performance/scalability/test_model_scaling.py -s

Width: the pipeline's output columns (``OUTPUT_SCHEMA``) and its cost per feature, in nanoseconds per movie per
feature, for the whole extraction and per feature family (dates, ratings, genres, language, title, overview:
each family's helper timed alone on the same canonical table). Lookup: a real service (one uvicorn worker)
serves frames of 10..500 columns; the latency is the median over sequential keep-alive requests measured by the
client (so it includes HTTP and JSON encoding, which grow with the row's width). Batch: 1..1,000 ids per POST.
Written to ``runs/<stamp>-scalability-model_scaling/``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import plotly.graph_objects as go
import pyarrow as pa
import pytest
from plotly.subplots import make_subplots

from features.catalog import generate_catalog_table
from features.engineering import tmdb_processor as tmdb
from harness.suites.scaling import fit_growth
from harness.suites.scaling_run import ScalingRun
from service.codec import ARROW_STREAM, table_to_arrow_stream

TOKEN = "model-scaling-token"
MOVIES = {"quick": 20_000, "full": 1_000_000}
COLUMNS = {"quick": [10, 50, 200, 500], "full": [10, 30, 100, 300, 500]}
BATCHES = {"quick": [1, 10, 100, 1_000], "full": [1, 3, 10, 30, 100, 300, 1_000]}
REQUESTS = {"quick": 60, "full": 400}
ROWS = 2_000


def _fastest(call: Callable[[], Any], repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def pipeline_width(run: ScalingRun, movies: int) -> None:
    processor = tmdb.AdvancedTMDBPreProcessor(generate_catalog_table(movies, seed=3))
    table = processor._table  # the canonical table every family reads
    width = len(tmdb.OUTPUT_SCHEMA)
    total_s = _fastest(processor.extract_all_features_table)
    run.add(
        part="pipeline",
        family="all",
        features=width,
        movies=movies,
        seconds=total_s,
        ns_per_movie_feature=total_s / movies / width * 1e9,
    )
    run.say(
        f"pipeline: {width} features from {movies:,} movies in {total_s * 1e3:.1f} ms: "
        f"{total_s / movies / width * 1e9:.2f} ns per movie per feature"
    )
    families: dict[str, Callable[[], dict[str, Any]]] = {
        "dates": lambda: tmdb._date_features(table.column("release_date"), processor.reference_date),
        "ratings": processor._rating_features,
        "genres": lambda: tmdb._genre_features(table.column("genre_ids"), movies),
        "language": lambda: tmdb._language_features(table.column("original_language")),
        "title": lambda: tmdb._text_features(table.column("title"), "title"),
        "overview": lambda: tmdb._text_features(table.column("overview"), "overview"),
    }
    for family, call in families.items():
        features = len(call())
        seconds = _fastest(call)
        run.add(
            part="pipeline",
            family=family,
            features=features,
            movies=movies,
            seconds=seconds,
            ns_per_movie_feature=seconds / movies / features * 1e9,
        )
        run.say(
            f"  {family:<9} {features:>3} features {seconds * 1e3:7.2f} ms, "
            f"{seconds / movies / features * 1e9:6.2f} ns per movie per feature"
        )


def _median_ms(client: httpx.Client, method: str, url: str, count: int, **kwargs: Any) -> float:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        response = client.request(method, url, **kwargs)
        samples.append((time.perf_counter() - start) * 1e3)
        assert response.status_code == 200, response.text[:300]
    return statistics.median(samples)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # the full scale runs for minutes
def test_pipeline_width_lookup_width_and_batch_size(
    scale: str, service_factory: Any, new_scaling_run: Callable[[str], ScalingRun]
) -> None:
    run = new_scaling_run("model_scaling")
    pipeline_width(run, MOVIES[scale])
    service = service_factory(write_token=TOKEN)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    rng = np.random.default_rng(5)
    ids = np.arange(ROWS, dtype=np.int64)
    with httpx.Client(base_url=service.base_url, timeout=30) as client:
        widths, latencies = [], []
        for columns in COLUMNS[scale]:
            table = pa.table({"id": ids, **{f"f{i}": rng.random(ROWS) for i in range(columns)}})
            put = client.put(
                f"/v1/groups/width/features/w{columns}?entity_column=id",
                content=table_to_arrow_stream(table),
                headers={**headers, "Content-Type": ARROW_STREAM},
            )
            assert put.status_code == 201, put.text[:300]
            client.get(f"/v1/online/width/w{columns}/1")  # warm the cache and the entity index
            latency = _median_ms(client, "GET", f"/v1/online/width/w{columns}/{ROWS // 2}", REQUESTS[scale])
            widths.append(columns)
            latencies.append(latency)
            run.add(part="lookup_width", columns=columns, median_ms=latency)
            run.say(f"lookup of one entity with {columns:>3} columns: median {latency:.3f} ms")
        growth = fit_growth(widths, latencies)
        run.fit("lookup/columns", {"kind": "growth", "operation": "lookup", "against": "columns", **growth.to_dict()})
        run.say(f"lookup latency against columns: {growth.line()}")
        sizes, batch_ms = [], []
        for batch in BATCHES[scale]:
            body = {"entity_ids": rng.integers(0, ROWS, batch).tolist()}
            latency = _median_ms(
                client,
                "POST",
                "/v1/online/width/w50" if 50 in widths else "/v1/online/width/w10",
                max(10, REQUESTS[scale] // 4),
                json=body,
            )
            sizes.append(batch)
            batch_ms.append(latency)
            run.add(part="batch", batch=batch, median_ms=latency, us_per_id=latency * 1e3 / batch)
            run.say(f"batch lookup of {batch:>5} ids: median {latency:.3f} ms, {latency * 1e3 / batch:.1f} us per id")
        batch_growth = fit_growth(sizes, batch_ms)
        run.fit(
            "lookup/batch", {"kind": "growth", "operation": "batch lookup", "against": "ids", **batch_growth.to_dict()}
        )
        run.say(f"batch lookup against ids: {batch_growth.line()}")
    figure = make_subplots(rows=1, cols=2, subplot_titles=("lookup vs columns", "batch lookup vs ids"))
    figure.add_trace(go.Scatter(x=widths, y=latencies, mode="lines+markers", name="median ms"), row=1, col=1)
    figure.add_trace(go.Scatter(x=sizes, y=batch_ms, mode="lines+markers", name="median ms per batch"), row=1, col=2)
    figure.update_xaxes(type="log")
    figure.update_yaxes(type="log", title="ms")
    run.write(figure)
    assert latencies[-1] < 100 * latencies[0]  # 50x the columns must not cost 100x
