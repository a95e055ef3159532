"""Request and response models: they document the API in OpenAPI and validate the small request bodies.

Large bodies (frames, entity-id batches, movie lists) are parsed by hand with orjson for speed; their models
still describe them in OpenAPI through ``json_request_body``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from features.store.names import NAME_MAX_LENGTH, NAME_PATTERN
from service.codec import INT64_MAX, INT64_MIN

__all__ = [
    "INT64_JSON_VALUE",
    "INT64_JSON_VALUE_SCHEMA",
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
    "MovieRecord",
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
    "integral_float_to_int",
    "json_request_body",
    "pipeline_request_body",
]


def integral_float_to_int(value: Any) -> Any:
    """``value`` as an int when it is a float with no fractional part (``1.0``, ``2e3``), else unchanged.

    JSON Schema's "integer" is a number with a zero fractional part, written ``1`` or ``1.0`` alike; JSON parsers
    give a float for the second. Strict models would refuse it, so integer fields pass through this first.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer as JSON Schema means it: 1.0 is the integer 1; 1.5, "1" and true are refused (strict models).
JsonInt = Annotated[int, BeforeValidator(integral_float_to_int)]
Seed = Annotated[
    int, Field(ge=0, description="random seed (a non-negative integer)"), BeforeValidator(integral_float_to_int)
]
# Every id the store can hold fits int64 (codec: integers outside it are refused, never stored as doubles).
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
EntityId = Int64 | str
Name = Annotated[
    str,
    Field(
        min_length=1,
        max_length=NAME_MAX_LENGTH,
        pattern=f"^{NAME_PATTERN.pattern}$",
        description=f"[A-Za-z0-9_-], 1-{NAME_MAX_LENGTH} chars, starting with a letter or digit",
    ),
]
ColumnName = Annotated[str, Field(min_length=1)]


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


def _frame_body_schema(schema: dict[str, Any]) -> None:
    """The JSON write body as ``codec`` reads it: exactly one form, never null, with a row and a column.

    What JSON Schema cannot say (equal column lengths, one type per column, an ``entity_column`` that is one of
    the columns) is refused with 422 too. Whole-body examples: per-field ones would be merged into one body
    holding both forms, which is refused.
    """
    properties = schema["properties"]
    properties["records"] = {
        "type": "array",
        "items": {"type": "object"},
        "contains": {"type": "object", "minProperties": 1},
        "description": "row form: one object per row; a row missing a key gets null there",
    }
    properties["columns"] = {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": {"type": "array", "minItems": 1},
        "description": "column form: name -> values, every list of the same length",
    }
    schema["oneOf"] = [{"required": ["records"]}, {"required": ["columns"]}]
    schema["examples"] = [
        {"records": [{"id": 1, "score": 0.5}], "entity_column": "id"},
        {"columns": {"id": [1, 2], "score": [0.5, 0.7]}},
    ]


class WriteFrameJson(BaseModel):
    """A frame as JSON: exactly one of ``records`` (row form) or ``columns`` (column form)."""

    model_config = ConfigDict(json_schema_extra=_frame_body_schema)

    records: list[dict[str, Any]] | None = None
    columns: dict[str, list[Any]] | None = None
    entity_column: ColumnName | None = Field(
        None, description="the id column for online lookup, a column of the frame (else entity_id/id/movie_id)"
    )


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
    group: Name
    feature: Name


# Any JSON value whose integers, at any depth, fit int64: what the pipeline accepts in a movie's other fields
# (codec.find_int64_overflow refuses the rest). Recursive, so it lives in components (service.openapi adds it).
INT64_JSON_VALUE = "Int64JsonValue"
_INT64_JSON_REF = {"$ref": f"#/components/schemas/{INT64_JSON_VALUE}"}
INT64_JSON_VALUE_SCHEMA: dict[str, Any] = {
    "description": "any JSON value; every integer in it, at any depth, fits int64",
    "anyOf": [
        {"type": ["null", "boolean", "string"]},
        {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX},
        {"type": "number", "not": {"type": "integer"}},
        {"type": "array", "items": _INT64_JSON_REF},
        {"type": "object", "additionalProperties": _INT64_JSON_REF},
    ],
}


class MovieRecord(BaseModel):
    """A TMDB movie: ``movie_id`` is required; the other TMDB fields (title, release_date, vote_average,
    vote_count, popularity, genre_ids, adult, original_language, overview) are optional and coerced leniently;
    other fields are ignored. Integers anywhere in a record must fit int64."""

    # The other fields are INT64_JSON_VALUE in the API's document (pipeline_request_body).
    model_config = ConfigDict(extra="allow")

    movie_id: Int64 | Annotated[str, Field(pattern=r"^\s*[+-]?0*[0-9]{1,18}\s*$")] = Field(
        description="an int64, or its decimal digits as a string"
    )


class PipelineRequest(_Strict):
    movies: list[MovieRecord] = Field(description="TMDB movie records, at most max_pipeline_movies")
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
    seed: Seed | None = None


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
    rows: JsonInt = Field(gt=0, description="at most max_io_rows, and rows x columns at most max_io_cells")
    columns: JsonInt = Field(gt=0, description="at most max_io_columns")
    seed: Seed | None = None


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
    movies: JsonInt = Field(gt=0, description="catalog size, at most max_catalog_movies")
    seed: Seed = 42


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


def pipeline_request_body() -> dict[str, Any]:
    """``openapi_extra`` for the pipeline: ``PipelineRequest``, a movie's other fields being INT64_JSON_VALUE
    (a recursive schema, which pydantic cannot refer to from a model)."""
    extra = json_request_body(PipelineRequest)
    movie = extra["requestBody"]["content"]["application/json"]["schema"]["properties"]["movies"]["items"]
    movie["additionalProperties"] = _INT64_JSON_REF
    return extra
