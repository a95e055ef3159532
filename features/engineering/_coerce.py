"""Turn TMDB-like input (list of dicts, pandas DataFrame, Arrow table) into one canonical Arrow table.

Every input field gets one canonical Arrow type (:data:`CANONICAL_SCHEMA`). Clean columns take a
C-level path (``pa.array`` on the column's values, or an Arrow cast); only a column that holds
values of unexpected types is converted value by value, with the rules below, so clean data never
pays for the mess of another column.

Per-value rules (the vectorized paths apply the same ones):

* ``movie_id``: an int (not bool), an integral finite float, or a string of decimal digits that fits
  int64. Anything else raises ValueError naming the record's 0-based position.
* numbers (vote_average, vote_count, popularity): int/float (not bool) or a numeric string such as
  ``"12"``/``" 7.5 "``; bools, NaN/inf and anything else become null.
* text (title, overview, original_language, release_date): str as is, bytes decoded as UTF-8 (bad
  bytes replaced), int as ``str(value)``; for release_date also date/datetime as ISO text; anything
  else becomes null. Lone surrogates are replaced by ``?``.
* adult: bool, 0/1, or a string such as "true"/"False"/"1"/"no"; anything else becomes null.
* genre_ids: a list/tuple/set/ndarray of ids, a single int, or a string of ints ("28,12" or
  "[28, 12]"); elements that are not integer-like become null elements (counted as unknown genres).
  Anything else (None, dicts, floats) becomes a null list.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import numbers
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["CANONICAL_SCHEMA", "to_canonical_table"]

CANONICAL_SCHEMA = pa.schema(
    [
        ("movie_id", pa.int64()),
        ("title", pa.large_string()),
        ("release_date", pa.large_string()),
        ("vote_average", pa.float64()),
        ("vote_count", pa.float64()),
        ("popularity", pa.float64()),
        ("genre_ids", pa.list_(pa.int64())),
        ("adult", pa.bool_()),
        ("original_language", pa.large_string()),
        ("overview", pa.large_string()),
    ]
)
_KIND = {
    "movie_id": "id",
    "title": "text",
    "release_date": "date",
    "vote_average": "number",
    "vote_count": "number",
    "popularity": "number",
    "genre_ids": "genres",
    "adult": "bool",
    "original_language": "text",
    "overview": "text",
}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_INT_TEXT = re.compile(r"\s*[+-]?\d+\s*")
_INT_IN_TEXT = re.compile(r"[+-]?\d+")
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})
_CONVERSION_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, UnicodeEncodeError)
_NONE = type(None)


def _int_like(v: object) -> int | None:
    if isinstance(v, bool | np.bool_):
        return None
    if isinstance(v, numbers.Integral):
        i = int(v)
    elif isinstance(v, numbers.Real):
        f = float(v)
        if not (math.isfinite(f) and f.is_integer()):
            return None
        i = int(f)
    elif isinstance(v, str) and _INT_TEXT.fullmatch(v):
        i = int(v)
    else:
        return None
    return i if _INT64_MIN <= i <= _INT64_MAX else None


def _number(v: object) -> float | None:
    if isinstance(v, bool | np.bool_) or not isinstance(v, numbers.Real | str):
        return None
    try:
        f = float(v)
    except (ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


def _text(v: object) -> str | None:
    if isinstance(v, str):
        return v.encode("utf-8", "replace").decode("utf-8")
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, numbers.Integral) and not isinstance(v, bool | np.bool_):
        return str(int(v))
    return None


def _date_text(v: object) -> str | None:
    return v.isoformat()[:10] if isinstance(v, dt.date) else _text(v)


def _flag(v: object) -> bool | None:
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, numbers.Real) and v in (0, 1):
        return bool(v)
    if isinstance(v, str):
        s = v.strip().lower()
        return True if s in _TRUE else False if s in _FALSE else None
    return None


def _genres(v: object) -> list[int | None] | None:
    if isinstance(v, str):
        return [_int_like(x) for x in _INT_IN_TEXT.findall(v)]
    if isinstance(v, list | tuple | set | frozenset | np.ndarray):
        return [_int_like(x) for x in v]
    i = _int_like(v) if isinstance(v, numbers.Integral) else None
    return None if i is None else [i]


_PER_VALUE: dict[str, Callable[[Any], Any]] = {
    "number": _number,
    "text": _text,
    "date": _date_text,
    "bool": _flag,
    "genres": _genres,
}


def _bad_id(position: int, value: object) -> ValueError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return ValueError(f"record {position} has no usable movie_id: got {shown}")


def _ids_from_python(values: Sequence[object]) -> pa.Array:
    # set(map(type, ...)) runs in C; it tells clean ints apart from bools/floats, which pa.array
    # would silently accept (True) or truncate (1.5).
    if set(map(type, values)) <= {int}:
        try:
            return pa.array(values, type=pa.int64())
        except _CONVERSION_ERRORS:
            pass
    ids = list(map(_int_like, values))
    for i, v in enumerate(ids):
        if v is None:
            raise _bad_id(i, values[i])
    return pa.array(ids, type=pa.int64())


def _genres_from_python(values: Sequence[object], arrow_type: pa.DataType) -> pa.Array:
    types = set(map(type, values))
    if types <= {list, _NONE}:
        # Build the list array from one flat list of ids plus lengths: several times faster than
        # pa.array on a million small lists, and the element type check comes for free.
        flat = list(itertools.chain.from_iterable(filter(None, values)))
        if set(map(type, flat)) <= {int}:
            try:
                flat_ids = pa.array(flat, type=pa.int64())
            except _CONVERSION_ERRORS:
                flat_ids = None
            if flat_ids is not None:
                n = len(values)
                offsets = np.zeros(n + 1, np.int64)
                np.cumsum(np.fromiter(map(operator.length_hint, values), np.int64, n), out=offsets[1:])
                is_none = np.fromiter(map(operator.is_, values, itertools.repeat(None)), bool, n)
                return pa.ListArray.from_arrays(offsets.astype(np.int32), flat_ids, mask=pa.array(is_none))
    elif types <= {np.ndarray, _NONE}:
        # Lists that came out of Arrow/pandas as ndarrays: their dtype decides, not the values.
        try:
            inferred = pa.array(values, from_pandas=True)
            if _same_family(inferred.type, "genres"):
                return inferred.cast(arrow_type)
        except _CONVERSION_ERRORS:
            pass
    return pa.array(list(map(_genres, values)), type=arrow_type)


def _column_from_python(values: Sequence[object], kind: str, arrow_type: pa.DataType) -> pa.Array:
    """Convert one column of Python values; the per-value fallback runs only if the fast path fails."""
    if kind == "id":
        return _ids_from_python(values)
    if kind == "genres":
        return _genres_from_python(values, arrow_type)
    # set(map(type, ...)) runs in C; it catches bools, which pa.array would take as 1.0/0.0.
    if kind != "number" or set(map(type, values)) <= {int, float, _NONE}:
        try:
            return pa.array(values, type=arrow_type, from_pandas=True)
        except _CONVERSION_ERRORS:
            pass
    return pa.array(list(map(_PER_VALUE[kind], values)), type=arrow_type)


def _first_bad_id(arr: pa.ChunkedArray, bad: pa.ChunkedArray) -> ValueError:
    pos = int(pc.index(bad, True).as_py())
    return _bad_id(pos, arr[pos].as_py())


def _ids_from_arrow(col: pa.ChunkedArray) -> pa.ChunkedArray:
    t = col.type
    if pa.types.is_integer(t):
        if col.null_count:
            raise _first_bad_id(col, pc.is_null(col))
        if pa.types.is_uint64(t):
            too_big = pc.greater(col, pa.scalar(_INT64_MAX, pa.uint64()))
            if pc.any(too_big).as_py():
                raise _first_bad_id(col, too_big)
        return col.cast(pa.int64())
    if pa.types.is_floating(t):
        f = col.cast(pa.float64())
        bad = pc.or_kleene(pc.is_null(f, nan_is_null=True), pc.invert(pc.equal(f, pc.floor(f))))
        bad = pc.or_kleene(bad, pc.greater_equal(pc.abs(f), 2.0**63))
        if pc.any(bad).as_py():
            raise _first_bad_id(col, pc.fill_null(bad, True))
        return f.cast(pa.int64())
    return pa.chunked_array([_ids_from_python(col.to_pylist())])


def _same_family(t: pa.DataType, kind: str) -> bool:
    if kind == "number":
        return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
    if kind in ("text", "date"):
        if kind == "date" and (pa.types.is_date(t) or pa.types.is_timestamp(t)):
            return True
        return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
    if kind == "bool":
        return pa.types.is_boolean(t)
    # genres: any list of integers (floats need the per-value integral check)
    is_list = pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
    return is_list and (pa.types.is_integer(t.value_type) or pa.types.is_null(t.value_type))


def _column_from_arrow(col: pa.ChunkedArray, kind: str, arrow_type: pa.DataType) -> pa.ChunkedArray:
    if kind == "id":
        return _ids_from_arrow(col)
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if pa.types.is_null(col.type):
        return pa.chunked_array([pa.nulls(len(col), arrow_type)])
    if _same_family(col.type, kind):
        if pa.types.is_string(col.type) or col.type == arrow_type:
            return col  # plain string is kept: the scanners read int32 and int64 offsets alike
        try:
            return col.cast(arrow_type, safe=False)
        except _CONVERSION_ERRORS:
            pass
    return pa.chunked_array([_column_from_python(col.to_pylist(), kind, arrow_type)])


def _table_from_records(records: Sequence[object]) -> pa.Table:
    arrays = []
    for field in CANONICAL_SCHEMA:
        try:
            # map(dict.get, ...) pulls one field out of every record without a Python-level loop.
            values: list[object] = list(map(dict.get, records, itertools.repeat(field.name)))
        except TypeError:
            values = []
            for i, r in enumerate(records):
                if not isinstance(r, Mapping):
                    raise ValueError(
                        f"record {i} has no usable movie_id: it is a {type(r).__name__}, not a mapping"
                    ) from None
                values.append(r.get(field.name))
        arrays.append(_column_from_python(values, _KIND[field.name], field.type))
    return pa.Table.from_arrays(arrays, names=CANONICAL_SCHEMA.names)


def _table_from_pandas(df: pd.DataFrame) -> pa.Table:
    arrays = []
    for field in CANONICAL_SCHEMA:
        kind = _KIND[field.name]
        if field.name not in df.columns:
            if kind == "id" and len(df):
                raise _bad_id(0, None)
            arrays.append(pa.nulls(len(df), field.type))
            continue
        s = df[field.name]
        if s.dtype == object:
            arrays.append(_column_from_python(s.to_numpy(), kind, field.type))
            continue
        try:
            col = pa.chunked_array([pa.array(s, from_pandas=True)])
        except _CONVERSION_ERRORS:
            arrays.append(_column_from_python(s.to_numpy(dtype=object), kind, field.type))
            continue
        arrays.append(_column_from_arrow(col, kind, field.type))
    return pa.Table.from_arrays(arrays, names=CANONICAL_SCHEMA.names)


def _table_from_arrow(table: pa.Table) -> pa.Table:
    arrays = []
    for field in CANONICAL_SCHEMA:
        if field.name in table.column_names:
            arrays.append(_column_from_arrow(table.column(field.name), _KIND[field.name], field.type))
        elif _KIND[field.name] == "id" and table.num_rows:
            raise _bad_id(0, None)
        else:
            arrays.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(arrays, names=CANONICAL_SCHEMA.names)


def to_canonical_table(movies: object) -> pa.Table:
    """Return ``movies`` as a table with exactly the fields of :data:`CANONICAL_SCHEMA`, one row per record.

    Text columns are string or large_string. Missing fields/keys become nulls; extra ones are
    ignored. Raises ValueError for a record without a usable movie_id (0-based position in the
    message) and TypeError when ``movies`` is not a sequence of mappings, a DataFrame or an Arrow
    table/record batch.
    """
    if isinstance(movies, pa.RecordBatch):
        movies = pa.Table.from_batches([movies])
    if isinstance(movies, pa.Table):
        return _table_from_arrow(movies)
    if isinstance(movies, pd.DataFrame):
        return _table_from_pandas(movies)
    if isinstance(movies, Sequence) and not isinstance(movies, str | bytes):
        return _table_from_records(movies)
    raise TypeError(
        f"movies must be a list of dicts, a pandas DataFrame or a pyarrow Table, got {type(movies).__name__}"
    )
