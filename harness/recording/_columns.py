"""Python lists to Arrow arrays without ``pa.array``, which imports pandas on first use.

Importing pandas would add about 50 MB of RSS and a third of a second of start-up to a sidecar meant to be
small, for nothing the sampler uses; building from buffers is also faster on the sampler's small columns.
Supported types: int32, int64, float64, string, list<float64>; None is null.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["LOCAL_HOST", "column", "local_rows", "record_batch"]

# The host column of rows sampled on the machine that writes the run directory (the sidecar, in-process
# workers). A fixed word rather than the hostname: a report rebuilt elsewhere still tells them apart from agents'.
LOCAL_HOST = "local"

_NUMERIC = {pa.int32(): np.int32, pa.int64(): np.int64, pa.float64(): np.float64}


def _validity(values: Sequence[Any]) -> tuple[pa.Buffer | None, int]:
    """The validity bitmap (None when nothing is null) and the null count."""
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    nulls = len(values) - int(valid.sum())
    if nulls == 0:
        return None, 0
    return pa.py_buffer(np.packbits(valid, bitorder="little")), nulls


def _offsets(lengths: Sequence[int]) -> pa.Buffer:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.py_buffer(offsets)


def column(values: Sequence[Any], type_: pa.DataType) -> pa.Array:
    """``values`` as an Arrow array of ``type_``; raises TypeError for an unsupported type."""
    validity, nulls = _validity(values)
    size = len(values)
    if type_ in _NUMERIC:
        data = np.fromiter((0 if v is None else v for v in values), dtype=_NUMERIC[type_], count=size)
        return pa.Array.from_buffers(type_, size, [validity, pa.py_buffer(data)], null_count=nulls)
    if type_ == pa.string():
        encoded = [b"" if v is None else v.encode("utf-8", "replace") for v in values]
        buffers = [validity, _offsets([len(e) for e in encoded]), pa.py_buffer(b"".join(encoded))]
        return pa.Array.from_buffers(type_, size, buffers, null_count=nulls)
    if pa.types.is_list(type_) and type_.value_type in _NUMERIC:
        items = [v or () for v in values]
        child = column([x for item in items for x in item], type_.value_type)
        return pa.Array.from_buffers(
            type_, size, [validity, _offsets([len(i) for i in items])], null_count=nulls, children=[child]
        )
    raise TypeError(f"no column builder for Arrow type {type_}: use int32, int64, float64, string, list<float64>")


def record_batch(rows: Sequence[Sequence[Any]], schema: pa.Schema) -> pa.RecordBatch:
    """Row tuples (in ``schema`` order) as one record batch."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    return pa.RecordBatch.from_arrays(
        [column(values, f.type) for values, f in zip(columns, schema, strict=True)], schema=schema
    )


def local_rows(table: pa.Table) -> pa.Table:
    """The rows of ``table`` sampled on this machine: ``host`` "local" or null, or every row of a file from
    before the column. Thresholds judge these only: an agent's service on another host is shown, not judged."""
    if "host" not in table.column_names:
        return table
    import pyarrow.compute as pc  # only where rows are filtered: the sampler never needs it

    host = table.column("host")
    return table.filter(pc.or_(pc.is_null(host), pc.equal(host, LOCAL_HOST)))
