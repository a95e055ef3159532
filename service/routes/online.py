"""Online lookup by entity id: the hot path. Bodies are parsed by hand and answers written with orjson."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from features.store.feature_store import EntityNotFoundError
from service.codec import INT64_MAX, INT64_MIN, int64_overflow_error, parse_json
from service.deps import Context
from service.errors import ApiError
from service.responses import json_response
from service.routing import DirectRoute
from service.schemas import (
    OnlineBatchRequest,
    OnlineBatchResponse,
    OnlineValues,
    error_responses,
    json_request_body,
)

__all__ = ["parse_entity_id", "router"]

router = APIRouter(prefix="/v1/online", tags=["online"], route_class=DirectRoute)
_INT = re.compile(r"-?[0-9]{1,18}")


def parse_entity_id(text: str) -> int | str:
    """An id from the URL: an int when it looks like one (up to 18 digits), else the text itself."""
    return int(text) if _INT.fullmatch(text) else text


@router.get("/{group}/{feature}/{entity_id}", response_model=OnlineValues, responses=error_responses(400, 404, 422))
async def get_entity(group: str, feature: str, entity_id: str, context: Context) -> Response:
    """Feature values of one entity (404 when the id is unknown)."""
    key = parse_entity_id(entity_id)
    result = await context.lookup(group, feature, (key,))
    row = result.rows[0]
    if row is None and key != entity_id:  # "42" may be stored as text rather than as an integer
        key = entity_id
        result = await context.lookup(group, feature, (key,))
        row = result.rows[0]
    if row is None:
        raise EntityNotFoundError(f"entity {entity_id!r} not found in {group}/{feature} (version {result.version})")
    values = dict(zip(result.columns, row, strict=True))
    return json_response({"entity_id": key, "version": result.version, "values": values})


@router.post(
    "/{group}/{feature}",
    response_model=OnlineBatchResponse,
    responses=error_responses(400, 404, 413, 422),
    openapi_extra=json_request_body(OnlineBatchRequest),
)
async def get_entities(group: str, feature: str, request: Request, context: Context) -> Response:
    """Feature rows for a batch of entity ids, in request order (null rows and ``missing`` for unknown ids)."""
    entity_ids = _parse_entity_ids(parse_json(await request.body()), context.settings.max_batch_ids)
    result = await context.lookup(group, feature, entity_ids)
    return json_response(
        {"columns": result.columns, "rows": result.rows, "missing": result.missing, "version": result.version}
    )


def _parse_entity_ids(payload: Any, max_ids: int) -> list[int | str]:
    """``payload["entity_ids"]`` checked: a list of at most ``max_ids`` int64s or strings (ApiError 422 if not)."""
    if not isinstance(payload, dict) or set(payload) != {"entity_ids"}:
        raise ApiError(422, "validation_error", 'expected a JSON object {"entity_ids": [...]} and nothing else')
    entity_ids = payload["entity_ids"]
    if not isinstance(entity_ids, list):
        raise ApiError(422, "validation_error", '"entity_ids" must be a list of integers or strings')
    if len(entity_ids) > max_ids:
        raise ApiError(
            422, "too_many_ids", f"{len(entity_ids)} entity ids in one batch; the limit is {max_ids} (max_batch_ids)"
        )
    for position, value in enumerate(entity_ids):
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ApiError(
                422, "validation_error", f"entity_ids[{position}] must be an integer or a string, got {value!r:.40}"
            )
        if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
            raise int64_overflow_error(f"entity_ids[{position}]")  # no stored id can be outside int64
    return entity_ids
