"""Request and response models: they document the API in OpenAPI and validate the small request bodies.

Large bodies (frames, entity-id batches, movie lists) are parsed by hand with orjson for speed; their models
still describe them in OpenAPI through ``json_request_body``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CacheStats",
    "CatalogLoadRequest",
    "CatalogLoadResponse",
    "ErrorResponse",
    "FeatureList",
    "FeatureMetadataModel",
    "FrameData",
    "FrameResponse",
    "GroupList",
    "Health",
    "IoLoadRequest",
    "IoLoadResponse",
    "MemoryLoadRequest",
    "MemoryLoadResponse",
    "OnlineBatchRequest",
    "OnlineBatchResponse",
    "OnlineValues",
    "PipelineRequest",
    "PipelineResponse",
    "PipelineStoreTarget",
    "Pong",
    "Readiness",
    "WriteFrameJson",
    "error_responses",
    "json_request_body",
]

EntityId = int | str


class _Strict(BaseModel):
    # strict: a request saying "hold_s": true or "seed": false is refused (422), not coerced to 1.0 / 0
    model_config = ConfigDict(extra="forbid", strict=True)


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """Every error body: a short code and a sentence saying what was wrong and what would be right."""

    error: str = Field(examples=["not_found"])
    detail: str = Field(examples=["feature 'ratings' not found in group 'tmdb'"])
    errors: list[FieldError] | None = None


class Health(BaseModel):
    status: str = "ok"
    pid: int
    faults: dict[str, float | str | None] = Field(
        default_factory=dict,
        description="injected faults (service.faults), empty when none",
        examples=[{"inject_delay_ms": 2.0, "route": "/v1/online/{group}/{feature}/{entity_id}"}],
    )


class Readiness(BaseModel):
    status: str = Field(examples=["ready"])
    detail: str | None = None


class Pong(BaseModel):
    pong: bool = True


class FeatureMetadataModel(BaseModel):
    group: str
    name: str
    version: int
    rows: int
    columns: list[str]
    schema_: dict[str, str] = Field(alias="schema")
    checksum: str
    size_bytes: int
    written_at: str
    compression: str
    entity_column: str | None
    file: str = ""


class WriteFrameJson(BaseModel):
    """A frame as JSON: exactly one of ``records`` (row form) or ``columns`` (column form)."""

    # Whole-body examples: per-field ones would be merged into one body holding both forms, which is refused.
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"records": [{"id": 1, "score": 0.5}], "entity_column": "id"},
                {"columns": {"id": [1, 2], "score": [0.5, 0.7]}},
            ]
        }
    )

    records: list[dict[str, Any]] | None = None
    columns: dict[str, list[Any]] | None = None
    entity_column: str | None = Field(None, description="the id column for online lookup (else entity_id/id/movie_id)")


class GroupList(BaseModel):
    groups: list[str]


class DamagedFeature(BaseModel):
    name: str
    detail: str = Field(description="what is damaged on disk (the feature can still be deleted)")


class FeatureList(BaseModel):
    group: str
    features: list[FeatureMetadataModel]
    damaged: list[DamagedFeature] = Field(default_factory=list, description="features whose stored files are damaged")


class FrameData(BaseModel):
    columns: list[str]
    data: list[list[Any]]


class FrameResponse(FrameData):
    rows: int = Field(description="rows in this response")
    total_rows: int = Field(description="rows in the stored version")
    offset: int
    version: int


class OnlineValues(BaseModel):
    entity_id: EntityId
    version: int
    values: dict[str, Any]


class OnlineBatchRequest(_Strict):
    entity_ids: list[EntityId] = Field(description="ids to look up, at most max_batch_ids (10,000 by default)")


class OnlineBatchResponse(BaseModel):
    columns: list[str]
    rows: list[list[Any] | None] = Field(description="one per requested id, in order; null for unknown ids")
    missing: list[EntityId]
    version: int


class PipelineStoreTarget(_Strict):
    group: str
    feature: str


class PipelineRequest(_Strict):
    movies: list[dict[str, Any]] = Field(description="TMDB movie records, at most max_pipeline_movies")
    reference_date: dt.date | None = Field(None, description="YYYY-MM-DD; ages are computed from it")
    store: PipelineStoreTarget | None = Field(None, description="also store the features there (entity movie_id)")
    return_features: bool = False


class PipelineResponse(BaseModel):
    rows: int
    columns: list[str]
    elapsed_ms: float = Field(description="feature extraction time")
    total_ms: float = Field(description="extraction plus storing and encoding")
    features: FrameData | None = None
    stored: FeatureMetadataModel | None = None


class MemoryLoadRequest(_Strict):
    megabytes: float = Field(gt=0, description="MB (2**20 bytes) to materialize, at most max_request_memory_mb")
    hold_s: float = Field(0.0, ge=0, description="seconds to hold it, clamped to max_hold_s")
    seed: int | None = None


class MemoryLoadResponse(BaseModel):
    megabytes: float
    frame_bytes: int
    held_s: float
    materialize_ms: float
    rss_bytes_before: int
    rss_bytes_peak: int = Field(description="largest RSS sampled while the frame was held (whole process)")
    rss_bytes_after: int
    pid: int


class IoLoadRequest(_Strict):
    rows: int = Field(gt=0)
    columns: int = Field(gt=0)
    seed: int | None = None


class IoLoadResponse(BaseModel):
    rows: int
    columns: int
    feature: str
    bytes_written: int
    bytes_read: int
    frame_bytes: int
    write_ms: float
    read_ms: float
    delete_ms: float
    verified: bool
    pid: int


class CacheStats(BaseModel):
    enabled: bool
    pid: int
    size: int | None = None
    max_size: int | None = None
    bytes: int | None = None
    max_bytes: int | None = None
    ttl_seconds: float | None = None
    hits: int | None = None
    misses: int | None = None
    hit_rate: float | None = None
    evictions: int | None = None
    expirations: int | None = None
    invalidations: int | None = None


class CatalogLoadRequest(_Strict):
    movies: int = Field(gt=0, description="catalog size, at most max_catalog_movies")
    seed: int = 42


class CatalogLoadResponse(BaseModel):
    movies: int
    feature_rows: int
    feature_columns: int
    generate_ms: float
    features_ms: float
    store_ms: float
    elapsed_ms: float
    stored: dict[str, FeatureMetadataModel]


def error_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries declaring the JSON error body for each status code."""
    return {code: {"model": ErrorResponse} for code in status_codes}


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline_refs(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline_refs(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


def json_request_body(model: type[BaseModel], *extra_media: str) -> dict[str, Any]:
    """``openapi_extra`` describing a JSON body of ``model`` (plus binary ``extra_media`` types) for a route
    that reads its body itself."""
    schema = model.model_json_schema()
    content: dict[str, Any] = {"application/json": {"schema": _inline_refs(schema, schema.get("$defs", {}))}}
    for media_type in extra_media:
        content[media_type] = {"schema": {"type": "string", "format": "binary"}}
    return {"requestBody": {"required": True, "content": content}}
