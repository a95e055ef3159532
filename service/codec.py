"""Request bodies in, frames out: JSON parsing and frames as JSON, Arrow IPC stream or Parquet.

JSON write bodies come in one of two forms (``entity_column`` optional in both)::

    {"records": [{"id": 1, "x": 0.5}, {"id": 2, "x": 0.7}], "entity_column": "id"}     row form
    {"columns": {"id": [1, 2], "x": [0.5, 0.7]}, "entity_column": "id"}               column form

A row missing a key gets null there; the column set is the union of all rows' keys, in first-seen order.

Numbers are kept exact or refused, never changed: orjson turns an integer literal beyond 64 bits into a float, so
a body with a long digit run is parsed again exactly, and integers outside int64 are refused (422) wherever a
frame, an entity id or a movie record would otherwise store them as doubles. Non-finite floats (``1e400``,
``NaN``) are not JSON and get a 400. Decoded frames are held to ``FrameLimits`` (``service.frame_limits``).
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import pyarrow as pa

from service.errors import ApiError
from service.frame_limits import FrameLimits, check_values, read_arrow_stream, read_parquet
from service.responses import JSON

__all__ = [
    "ARROW_STREAM",
    "INT64_MAX",
    "INT64_MIN",
    "JSON",
    "PARQUET",
    "PARQUET_ALIASES",
    "decode_frame",
    "find_int64_overflow",
    "frame_kind",
    "int64_overflow_error",
    "parse_json",
    "table_to_arrow_stream",
    "table_to_json",
]

ARROW_STREAM = "application/vnd.apache.arrow.stream"
PARQUET = "application/vnd.apache.parquet"
PARQUET_ALIASES = (PARQUET, "application/x-parquet")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# An integer literal of 19 digits or more may not fit in int64 (orjson would then give a float): parse again exactly.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def _api_error(status_code: int, code: str, detail: str) -> ApiError:
    return ApiError(status_code, code, detail)


def parse_json(body: bytes) -> Any:
    """Parse a JSON request body; raises ApiError 400 (invalid_json) saying where it broke."""
    if not body:
        raise _api_error(400, "invalid_json", "the request body is empty: expected a JSON object")
    try:
        payload = orjson.loads(body)
        if _LONG_DIGITS.search(body) is None:
            return payload
        return json.loads(body, parse_float=_finite_float, parse_constant=_no_constant)
    except (orjson.JSONDecodeError, ValueError) as error:
        raise _api_error(400, "invalid_json", f"the request body is not valid JSON: {error}") from None


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} is infinity when parsed as double")
    return value


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not a JSON value")


def find_int64_overflow(value: Any, where: str) -> str | None:
    """The location (``where`` extended with keys and indexes) of the first integer in ``value`` outside int64,
    or None when every integer fits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return where if not INT64_MIN <= value <= INT64_MAX else None
    if isinstance(value, list):
        items: Any = ((f"{where}[{i}]", v) for i, v in enumerate(value))
    elif isinstance(value, dict):
        items = ((f"{where}.{k}", v) for k, v in value.items())
    else:
        return None
    for location, item in items:
        found = find_int64_overflow(item, location)
        if found is not None:
            return found
    return None


def int64_overflow_error(location: str) -> ApiError:
    """The 422 for an integer outside int64 at ``location``."""
    return _api_error(
        422,
        "integer_out_of_range",
        f"{location} is an integer outside the int64 range [{INT64_MIN}, {INT64_MAX}]: it would be stored "
        "inexactly; send it as a string or a float",
    )


def frame_kind(content_type: str | None) -> str:
    """Map a Content-Type header to ``"json"``, ``"arrow"`` or ``"parquet"``; ApiError 415 otherwise."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type == JSON:
        return "json"
    if media_type == ARROW_STREAM:
        return "arrow"
    if media_type in PARQUET_ALIASES:
        return "parquet"
    shown = media_type or "none"
    raise _api_error(
        415,
        "unsupported_media_type",
        f"Content-Type {shown!r} is not supported: use {JSON}, {ARROW_STREAM} or {PARQUET} (or application/x-parquet)",
    )


def decode_frame(kind: str, body: bytes, limits: FrameLimits) -> tuple[pa.Table, str | None]:
    """Decode a write body of ``kind`` (see ``frame_kind``) into a table and the body's entity column, if any.

    Raises ApiError 400 for a body that is not valid JSON / Arrow / Parquet, ApiError 413 for a frame that
    decodes past ``limits``, ApiError 422 for a well-formed body that does not describe a usable frame (wrong
    shape, mixed types, integers outside int64, no rows or no columns).
    """
    entity_column: str | None = None
    if kind == "json":
        table, entity_column = _json_frame(parse_json(body), limits)
    elif kind == "arrow":
        table = read_arrow_stream(body, limits)
    elif kind == "parquet":
        table = read_parquet(body, limits)
    else:  # pragma: no cover - frame_kind only returns the three kinds above
        raise ValueError(f"unknown frame kind {kind!r}")
    if table.num_columns == 0:
        raise _api_error(422, "empty_frame", "the frame has no columns: send at least one column")
    if table.num_rows == 0:
        raise _api_error(422, "empty_frame", "the frame has no rows: send at least one row")
    return table, entity_column


def _json_frame(payload: Any, limits: FrameLimits) -> tuple[pa.Table, str | None]:
    if not isinstance(payload, dict):
        raise _api_error(422, "invalid_frame", 'expected a JSON object with "records" or "columns"')
    entity_column = payload.get("entity_column")
    if entity_column is not None and (not isinstance(entity_column, str) or not entity_column):
        raise _api_error(422, "invalid_frame", '"entity_column" must be a column name (a non-empty string) or null')
    has_records, has_columns = "records" in payload, "columns" in payload
    if has_records == has_columns:
        raise _api_error(
            422, "invalid_frame", 'send exactly one of "records" (a list of objects) or "columns" (name -> list)'
        )
    if has_records:
        records = payload["records"]
        if not isinstance(records, list):
            raise _api_error(422, "invalid_frame", '"records" must be a list of objects')
        for position, record in enumerate(records):
            if not isinstance(record, dict):
                raise _api_error(422, "invalid_frame", f"records[{position}] must be an object, got {record!r:.60}")
        names = list(dict.fromkeys(key for record in records for key in record))
        columns = {name: [record.get(name) for record in records] for name in names}
    else:
        columns = payload["columns"]
        if not isinstance(columns, dict) or not all(isinstance(v, list) for v in columns.values()):
            raise _api_error(422, "invalid_frame", '"columns" must be an object mapping names to lists')
        lengths = {name: len(values) for name, values in columns.items()}
        if len(set(lengths.values())) > 1:
            raise _api_error(422, "invalid_frame", f"all columns must have the same length, got {lengths}")
    check_values(sum(len(values) for values in columns.values()), limits)
    for name, values in columns.items():
        overflow = find_int64_overflow(values, f"column {name!r}")
        if overflow is not None:
            raise int64_overflow_error(overflow)
    try:
        return pa.table(columns) if columns else pa.table({}), entity_column
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as error:
        raise _api_error(422, "invalid_frame", f"the values cannot form a typed frame: {error}") from None


def table_to_json(table: pa.Table) -> dict[str, Any]:
    """``{"columns": [...], "data": [[row values]...]}`` for ``table`` (row-major, column order kept)."""
    columns = [column.to_pylist() for column in table.columns]
    return {"columns": table.column_names, "data": list(zip(*columns, strict=True)) if columns else []}


def table_to_arrow_stream(table: pa.Table) -> bytes:
    """``table`` serialized as an Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()
