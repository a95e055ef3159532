"""Request bodies in, frames out: JSON parsing and frames as JSON, Arrow IPC stream or Parquet.

JSON write bodies come in one of two forms (``entity_column`` optional in both)::

    {"records": [{"id": 1, "x": 0.5}, {"id": 2, "x": 0.7}], "entity_column": "id"}     row form
    {"columns": {"id": [1, 2], "x": [0.5, 0.7]}, "entity_column": "id"}               column form

A row missing a key gets null there; the column set is the union of all rows' keys, in first-seen order.
"""

from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from service.errors import ApiError
from service.responses import JSON

__all__ = [
    "ARROW_STREAM",
    "JSON",
    "PARQUET",
    "PARQUET_ALIASES",
    "decode_frame",
    "frame_kind",
    "parse_json",
    "table_to_arrow_stream",
    "table_to_json",
]

ARROW_STREAM = "application/vnd.apache.arrow.stream"
PARQUET = "application/vnd.apache.parquet"
PARQUET_ALIASES = (PARQUET, "application/x-parquet")


def _api_error(status_code: int, code: str, detail: str) -> ApiError:
    return ApiError(status_code, code, detail)


def parse_json(body: bytes) -> Any:
    """Parse a JSON request body; raises ApiError 400 (invalid_json) saying where it broke."""
    if not body:
        raise _api_error(400, "invalid_json", "the request body is empty: expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise _api_error(400, "invalid_json", f"the request body is not valid JSON: {error}") from None


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


def decode_frame(kind: str, body: bytes) -> tuple[pa.Table, str | None]:
    """Decode a write body of ``kind`` (see ``frame_kind``) into a table and the body's entity column, if any.

    Raises ApiError 400 for a body that is not valid JSON / Arrow / Parquet, ApiError 422 for a well-formed
    body that does not describe a usable frame (wrong shape, mixed types, no rows or no columns).
    """
    entity_column: str | None = None
    if kind == "json":
        table, entity_column = _json_frame(parse_json(body))
    elif kind == "arrow":
        try:
            table = pa.ipc.open_stream(pa.BufferReader(body)).read_all()
        except (pa.ArrowException, OSError, ValueError) as error:
            raise _api_error(400, "invalid_arrow", f"the body is not a valid Arrow IPC stream: {error}") from None
    elif kind == "parquet":
        try:
            table = pq.read_table(pa.BufferReader(body))
        except (pa.ArrowException, OSError, ValueError) as error:
            raise _api_error(400, "invalid_parquet", f"the body is not a valid Parquet file: {error}") from None
    else:  # pragma: no cover - frame_kind only returns the three kinds above
        raise ValueError(f"unknown frame kind {kind!r}")
    if table.num_columns == 0:
        raise _api_error(422, "empty_frame", "the frame has no columns: send at least one column")
    if table.num_rows == 0:
        raise _api_error(422, "empty_frame", "the frame has no rows: send at least one row")
    return table, entity_column


def _json_frame(payload: Any) -> tuple[pa.Table, str | None]:
    if not isinstance(payload, dict):
        raise _api_error(422, "invalid_frame", 'expected a JSON object with "records" or "columns"')
    entity_column = payload.get("entity_column")
    if entity_column is not None and not isinstance(entity_column, str):
        raise _api_error(422, "invalid_frame", '"entity_column" must be a string or null')
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
