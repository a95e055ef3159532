"""JSON responses serialized with orjson: fast, and NaN/inf become null instead of failing.

Routes return ``json_response(...)`` (a plain ``Response``), so FastAPI sends the bytes as they are and skips
re-validating them against the declared ``response_model`` (which still documents the shape in OpenAPI).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.responses import Response

__all__ = ["JSON", "dumps", "entity_answer", "json_response"]

JSON = "application/json"
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    """orjson fallback for the few types it does not know (called only for those)."""
    if str(value) in ("<NA>", "NaT"):  # pandas' missing-value markers
        return None
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if hasattr(value, "isoformat"):  # pandas Timestamp and other datetime-likes
        return value.isoformat()
    if hasattr(value, "tolist"):  # numpy / pandas array-likes not covered by OPT_SERIALIZE_NUMPY
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot serialize {type(value).__name__} to JSON")


def dumps(payload: Any) -> bytes:
    """Serialize ``payload`` to JSON bytes (NaN/inf become null)."""
    return orjson.dumps(payload, default=_default, option=_OPTIONS)


def json_response(payload: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON ``Response`` built with orjson; FastAPI sends it as is, without re-validating it."""
    return Response(dumps(payload), status_code=status_code, headers=headers, media_type=JSON)


def entity_answer(entity_id: int | str, version: int, values: bytes) -> bytes:
    """The single lookup's body, ``{"entity_id": ..., "version": ..., "values": {...}}``, around ``values``
    already encoded by ``dumps``: the same bytes as ``dumps`` of the whole object."""
    return b'{"entity_id":' + dumps(entity_id) + b',"version":' + str(version).encode() + b',"values":' + values + b"}"
