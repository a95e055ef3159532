"""Load the synthetic TMDB catalog into the store: raw movies plus their engineered features."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from features.catalog import generate_catalog_table
from features.engineering.tmdb_processor import AdvancedTMDBPreProcessor
from features.store.feature_store import SimpleFeatureStore
from service.deps import Context, WriteAccess
from service.errors import ApiError
from service.responses import json_response
from service.schemas import CatalogLoadRequest, CatalogLoadResponse, error_responses

__all__ = ["CATALOG_FEATURE", "CATALOG_GROUP", "FEATURES_FEATURE", "router"]

router = APIRouter(prefix="/v1/catalog", tags=["catalog"])
CATALOG_GROUP = "tmdb"
CATALOG_FEATURE = "movies"
FEATURES_FEATURE = "movie_features"


@router.post(
    "/load",
    response_model=CatalogLoadResponse,
    dependencies=[WriteAccess],
    responses=error_responses(401, 403, 413, 422, 503, 507),
)
def load_catalog(body: CatalogLoadRequest, context: Context) -> Response:
    """Generate a seeded catalog, extract its features, store both as tmdb/movies and tmdb/movie_features."""
    limit = context.settings.max_catalog_movies
    if body.movies > limit:
        raise ApiError(
            413, "too_many_movies", f"{body.movies} movies requested; the limit is {limit} (max_catalog_movies)"
        )
    result = _load(context.store, body.movies, body.seed)
    context.forget(CATALOG_GROUP, CATALOG_FEATURE)
    context.forget(CATALOG_GROUP, FEATURES_FEATURE)
    return json_response(result)


def _load(store: SimpleFeatureStore, movies: int, seed: int) -> dict[str, Any]:
    started = time.perf_counter()
    catalog = generate_catalog_table(movies, seed=seed)
    generated = time.perf_counter()
    features = AdvancedTMDBPreProcessor(catalog).extract_all_features_table()
    extracted = time.perf_counter()
    store.save_features(CATALOG_GROUP, {CATALOG_FEATURE: catalog}, entity_column="movie_id")
    store.save_features(CATALOG_GROUP, {FEATURES_FEATURE: features}, entity_column="movie_id")
    stored = time.perf_counter()
    return {
        "movies": catalog.num_rows,
        "feature_rows": features.num_rows,
        "feature_columns": features.num_columns,
        "generate_ms": (generated - started) * 1000.0,
        "features_ms": (extracted - generated) * 1000.0,
        "store_ms": (stored - extracted) * 1000.0,
        "elapsed_ms": (stored - started) * 1000.0,
        "stored": {
            name: store.get_metadata(CATALOG_GROUP, name).to_dict() for name in (CATALOG_FEATURE, FEATURES_FEATURE)
        },
    }
