"""Feature groups and frames: write (JSON, Arrow IPC stream, Parquet), read, list, describe, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from features.store.feature_store import FeatureMetadata, FeatureNotFoundError, IntegrityError, SimpleFeatureStore
from features.store.names import validate_name
from service.codec import ARROW_STREAM, PARQUET, decode_frame, frame_kind, table_to_arrow_stream, table_to_json
from service.deps import Context, WriteAccess
from service.frame_limits import FrameLimits
from service.responses import json_response
from service.schemas import (
    FeatureList,
    FeatureMetadataModel,
    FrameResponse,
    GroupList,
    WriteFrameJson,
    error_responses,
    json_request_body,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1/groups", tags=["features"])
_FEATURE = "/{group}/features/{feature}"
# limit/offset bound: far above any stored frame, and offset + limit still fits the int64 Arrow slices with.
_MAX_ROWS_PARAM = 2**62


@router.get("", response_model=GroupList)
def list_groups(context: Context) -> Response:
    """Names of the groups that hold at least one feature."""
    return json_response({"groups": context.store.list_groups()})


@router.get("/{group}/features", response_model=FeatureList, responses=error_responses(404, 422))
def list_features(group: str, context: Context) -> Response:
    """The features of a group, with their current metadata; features whose pointer is damaged are listed apart
    (``damaged``, with the cause), so one damaged feature never hides the others. Delete one to clear it."""
    store = context.store
    features, damaged = [], []
    for name in store.list_features(group):
        try:
            features.append(store.get_metadata(group, name).to_dict())
        except IntegrityError as error:
            damaged.append({"name": name, "detail": str(error)})
        except FeatureNotFoundError:
            continue  # deleted since it was listed
    return json_response({"group": group, "features": features, "damaged": damaged})


@router.put(
    _FEATURE,
    status_code=201,
    response_model=FeatureMetadataModel,
    dependencies=[WriteAccess],
    responses=error_responses(400, 401, 403, 413, 415, 422, 503, 507),
    openapi_extra=json_request_body(WriteFrameJson, ARROW_STREAM, PARQUET, "application/x-parquet"),
)
async def put_feature(
    group: str,
    feature: str,
    request: Request,
    context: Context,
    entity_column: Annotated[
        str | None, Query(min_length=1, description="id column (Arrow/Parquet; JSON may set it); not empty")
    ] = None,
) -> Response:
    """Write a frame as the feature's next version; returns its metadata."""
    validate_name("group", group)
    validate_name("feature", feature)
    kind = frame_kind(request.headers.get("content-type"))
    body = await request.body()  # bounded by max_body_bytes (RequestGuardMiddleware)
    limits = FrameLimits.from_settings(context.settings)
    metadata = await run_in_threadpool(
        _decode_and_save, context.store, group, feature, kind, body, limits, entity_column
    )
    context.forget(group, feature)
    return json_response(metadata.to_dict(), status_code=201)


def _decode_and_save(
    store: SimpleFeatureStore,
    group: str,
    feature: str,
    kind: str,
    body: bytes,
    limits: FrameLimits,
    entity_column: str | None,
) -> FeatureMetadata:
    table, body_entity_column = decode_frame(kind, body, limits)
    store.save_features(group, {feature: table}, entity_column=body_entity_column or entity_column)
    return store.get_metadata(group, feature)


@router.get(
    _FEATURE,
    response_model=FrameResponse,
    responses={**error_responses(404, 422), 200: {"content": {ARROW_STREAM: {}}}},
)
def get_feature(
    group: str,
    feature: str,
    context: Context,
    accept: Annotated[str | None, Header()] = None,
    limit: Annotated[int | None, Query(ge=0, le=_MAX_ROWS_PARAM, description="at most this many rows")] = None,
    offset: Annotated[int, Query(ge=0, le=_MAX_ROWS_PARAM, description="skip this many rows first")] = 0,
) -> Response:
    """The feature's current frame as JSON rows, or as an Arrow IPC stream (Accept: the Arrow stream type)."""
    table, metadata = context.store.get_table_and_metadata(group, feature)  # one read: the label is the data's
    total_rows = table.num_rows
    table = table.slice(offset, limit)
    if accept is not None and ARROW_STREAM in accept.lower():
        headers = {"X-Feature-Version": str(metadata.version), "X-Total-Rows": str(total_rows)}
        return Response(table_to_arrow_stream(table), media_type=ARROW_STREAM, headers=headers)
    payload = table_to_json(table)
    return json_response(
        {**payload, "rows": table.num_rows, "total_rows": total_rows, "offset": offset, "version": metadata.version}
    )


@router.get(f"{_FEATURE}/metadata", response_model=FeatureMetadataModel, responses=error_responses(404, 422))
def get_feature_metadata(group: str, feature: str, context: Context) -> Response:
    """The current version's metadata: version, rows, schema, checksum, size, entity column."""
    return json_response(context.store.get_metadata(group, feature).to_dict())


@router.delete(
    _FEATURE, status_code=204, dependencies=[WriteAccess], responses=error_responses(401, 403, 404, 422, 503)
)
def delete_feature(group: str, feature: str, context: Context) -> Response:
    """Delete every version of the feature."""
    context.store.delete_feature(group, feature)
    context.forget(group, feature)
    return Response(status_code=204)
