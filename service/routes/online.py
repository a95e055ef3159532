"""Online lookup by entity id: the hot path. Bodies are parsed by hand and answers written with orjson.

A feature stored without an entity column (or whose ids are not unique) cannot be looked up: that is the stored
data's state, not a fault of the request, so it answers 409 (``not_lookupable``), not 422.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any, NoReturn

from fastapi import APIRouter, Request
from starlette.responses import Response

from features.store.feature_store import EntityNotFoundError
from features.store.names import NAME_PATTERN
from service.codec import INT64_MAX, INT64_MIN, int64_overflow_error, parse_json
from service.deps import Context
from service.errors import ApiError
from service.responses import JSON, dumps, entity_answer, json_response
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


def _not_lookupable(group: str, feature: str, error: ValueError) -> NoReturn:
    """Re-raise a lookup's ValueError: a bad name stays a 422; with valid names it is the stored feature that
    cannot serve lookups (no entity column, duplicate ids), a 409."""
    if NAME_PATTERN.fullmatch(group) is None or NAME_PATTERN.fullmatch(feature) is None:
        raise error
    raise ApiError(409, "not_lookupable", str(error)) from None


@router.get(
    "/{group}/{feature}/{entity_id}", response_model=OnlineValues, responses=error_responses(400, 404, 409, 422)
)
async def get_entity(group: str, feature: str, entity_id: str, context: Context) -> Response:
    """Feature values of one entity (404 when the id is unknown, 409 when the feature has no entity column)."""
    key = parse_entity_id(entity_id)
    try:
        values, version = await context.lookup_encoded(group, feature, key, dumps)
        if values is None and key != entity_id:  # "42" may be stored as text rather than as an integer
            key = entity_id
            values, version = await context.lookup_encoded(group, feature, key, dumps)
    except ValueError as error:
        _not_lookupable(group, feature, error)
    if values is None:
        raise EntityNotFoundError(f"entity {entity_id!r} not found in {group}/{feature} (version {version})")
    return Response(entity_answer(key, version, values), media_type=JSON)


@router.post(
    "/{group}/{feature}",
    response_model=OnlineBatchResponse,
    responses=error_responses(400, 404, 409, 413, 422),
    openapi_extra=json_request_body(OnlineBatchRequest),
)
async def get_entities(group: str, feature: str, request: Request, context: Context) -> Response:
    """Feature rows for a batch of entity ids, in request order (null rows and ``missing`` for unknown ids)."""
    entity_ids = _parse_entity_ids(await request.body(), context.settings.max_batch_ids)
    try:
        result = await context.lookup(group, feature, entity_ids)
    except ValueError as error:
        _not_lookupable(group, feature, error)
    return json_response(
        {"columns": result.columns, "rows": result.rows, "missing": result.missing, "version": result.version}
    )


def _parse_entity_ids(body: bytes, max_ids: int) -> list[int | str]:
    """The body's ``entity_ids`` checked: a list of at most ``max_ids`` int64s or strings.

    An integer may be written as JSON Schema allows, ``7`` or ``7.0``; ``7.5`` is refused. Raises ApiError 400
    (not JSON), 413 (more than ``max_ids``), 422 (anything else wrong).
    """
    payload = parse_json(body)
    if not isinstance(payload, dict) or set(payload) != {"entity_ids"}:
        raise ApiError(422, "validation_error", 'expected a JSON object {"entity_ids": [...]} and nothing else')
    entity_ids = payload["entity_ids"]
    if not isinstance(entity_ids, list):
        raise ApiError(422, "validation_error", '"entity_ids" must be a list of integers or strings')
    if len(entity_ids) > max_ids:
        raise ApiError(
            413, "too_many_ids", f"{len(entity_ids)} entity ids in one batch; the limit is {max_ids} (max_batch_ids)"
        )
    for position, value in enumerate(entity_ids):
        if isinstance(value, float):  # 7.0: read every id again, exactly, from the body's text
            return _exact_entity_ids(body)
        _check_entity_id(position, value)
    return entity_ids


def _check_entity_id(position: int, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ApiError(
            422, "validation_error", f"entity_ids[{position}] must be an integer or a string, got {value!r:.40}"
        )
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise int64_overflow_error(f"entity_ids[{position}]")  # no stored id can be outside int64


def _exact_entity_ids(body: bytes) -> list[int | str]:
    """The ids of a body holding numbers written with a fraction or an exponent: each must be an integer
    (``7.0``, ``7e0``), read exactly (a double would round ``9007199254740993.0``)."""
    entity_ids: list[Any] = json.loads(body, parse_float=Decimal)["entity_ids"]
    for position, value in enumerate(entity_ids):
        if isinstance(value, Decimal):
            if not INT64_MIN <= value <= INT64_MAX:  # compared before int(): 1e999999999 would take minutes
                raise int64_overflow_error(f"entity_ids[{position}]")
            if value != value.to_integral_value():
                raise ApiError(
                    422,
                    "validation_error",
                    f"entity_ids[{position}] must be an integer or a string, got {value!s:.40}",
                )
            entity_ids[position] = value = int(value)
        _check_entity_id(position, value)
    return entity_ids
