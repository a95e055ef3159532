"""The TMDB feature pipeline over HTTP: movies in, engineered features out (and optionally stored)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from features.engineering.tmdb_processor import AdvancedTMDBPreProcessor
from features.store.feature_store import SimpleFeatureStore
from features.store.names import validate_name
from service.access import authorize_write
from service.codec import find_int64_overflow, int64_overflow_error, parse_json, table_to_json
from service.deps import Context
from service.errors import ApiError
from service.responses import json_response
from service.schemas import PipelineResponse, error_responses, pipeline_request_body

__all__ = ["router"]

router = APIRouter(prefix="/v1/pipeline", tags=["pipeline"])
_FIELDS = {"movies", "reference_date", "store", "return_features"}


@router.post(
    "/tmdb",
    response_model=PipelineResponse,
    responses=error_responses(400, 401, 403, 413, 422, 503, 507),
    openapi_extra=pipeline_request_body(),
)
async def run_tmdb_pipeline(request: Request, context: Context) -> Response:
    """Extract TMDB features from movie records; optionally store them (write token) and return them."""
    movies, reference_date, target, return_features = _parse(
        parse_json(await request.body()), context.settings.max_pipeline_movies
    )
    if target is not None:  # storing the result writes to the store: that needs the write token
        authorize_write(context.settings, request.headers.get("authorization"))
    result = await run_in_threadpool(_run, context.store, movies, reference_date, target, return_features)
    if target is not None:
        context.forget(*target)
    return json_response(result)


def _run(
    store: SimpleFeatureStore,
    movies: list[dict[str, Any]],
    reference_date: dt.date | None,
    target: tuple[str, str] | None,
    return_features: bool,
) -> dict[str, Any]:
    started = time.perf_counter()
    processor = AdvancedTMDBPreProcessor(movies, reference_date=reference_date)
    table = processor.extract_all_features_table()
    extracted = time.perf_counter()
    result: dict[str, Any] = {
        "rows": table.num_rows,
        "columns": table.column_names,
        "elapsed_ms": (extracted - started) * 1000.0,
    }
    if target is not None:
        group, feature = target
        store.save_features(group, {feature: table}, entity_column="movie_id")
        result["stored"] = store.get_metadata(group, feature).to_dict()
    if return_features:
        result["features"] = table_to_json(table)
    result["total_ms"] = (time.perf_counter() - started) * 1000.0
    return result


def _parse(payload: Any, max_movies: int) -> tuple[list[dict[str, Any]], dt.date | None, tuple[str, str] | None, bool]:
    """The pipeline request, checked by hand (a 50,000-movie body is too big to validate field by field)."""
    if not isinstance(payload, dict):
        raise ApiError(422, "validation_error", 'expected a JSON object with a "movies" list')
    unknown = set(payload) - _FIELDS
    if unknown:
        raise ApiError(422, "validation_error", f"unknown fields {sorted(unknown)}: allowed are {sorted(_FIELDS)}")
    movies = payload.get("movies")
    if not isinstance(movies, list):
        raise ApiError(422, "validation_error", '"movies" must be a list of movie objects')
    if len(movies) > max_movies:
        raise ApiError(
            413,
            "too_many_movies",
            f"{len(movies)} movies in one request; the limit is {max_movies} (max_pipeline_movies)",
        )
    for position, movie in enumerate(movies):
        if not isinstance(movie, dict):
            raise ApiError(422, "validation_error", f"movies[{position}] must be an object, got {movie!r:.40}")
    overflow = find_int64_overflow(movies, "movies")
    if overflow is not None:
        raise int64_overflow_error(overflow)
    reference_date = payload.get("reference_date")
    if reference_date is not None:
        try:
            reference_date = dt.date.fromisoformat(reference_date)
        except (TypeError, ValueError):
            raise ApiError(
                422, "validation_error", f'"reference_date" must be "YYYY-MM-DD" or null, got {reference_date!r:.40}'
            ) from None
    store = payload.get("store")
    target = None
    if store is not None:
        if not isinstance(store, dict) or set(store) != {"group", "feature"}:
            raise ApiError(422, "validation_error", '"store" must be {"group": ..., "feature": ...} or null')
        target = (validate_name("group", store["group"]), validate_name("feature", store["feature"]))
    return_features = payload.get("return_features", False)
    if not isinstance(return_features, bool):
        raise ApiError(422, "validation_error", '"return_features" must be true or false')
    return movies, reference_date, target, return_features
