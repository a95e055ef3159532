"""Decoded-size caps for written frames: a small body must not decode into a huge table.

A Parquet or Arrow IPC body of a few KB can describe hundreds of millions of rows (run-length and dictionary
encodings, zstd, null columns), so ``max_body_bytes`` alone bounds nothing once the body is decoded. Every write
is held to ``max_frame_cells`` values and ``max_frame_bytes`` decoded bytes (the latter also capped by
``max_request_memory_mb``), checked *before* the memory is spent:

* Arrow IPC: each batch's size is read from its message header (``service.ipc_sizes``), for the whole stream,
  before anything is decoded or decompressed; then dictionary columns are counted at their expanded size.
* Parquet: rows, values and uncompressed sizes from the footer first; then the file is decoded batch by batch,
  top-level string columns as dictionaries whose expanded size is computed before they are expanded, and the
  running total is checked after every batch. Values encoded so one can be as long as its column chunk
  (DELTA_BYTE_ARRAY, dictionary-encoded strings inside lists) are decoded in batches small enough that even
  then one batch stays within the cap.
* JSON: the body cap bounds the parse; the value count is checked before the table is built.

A frame over a cap is refused with ``ApiError`` 413 naming the setting.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from service.errors import ApiError
from service.ipc_sizes import IpcHeaderError, batch_size
from service.settings import Settings

__all__ = ["FrameLimits", "check_values", "read_arrow_stream", "read_parquet"]

_BATCH_ROWS = 65_536
_BYTE_ARRAY_TYPES = (pa.types.is_string, pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary)
_FIXED_WIDTH_BYTES = {"BOOLEAN": 1, "INT32": 4, "INT64": 8, "INT96": 12, "FLOAT": 4, "DOUBLE": 8, "BYTE_ARRAY": 4}
_DICTIONARY_ENCODINGS = {"PLAIN_DICTIONARY", "RLE_DICTIONARY"}
_MB = 1 << 20


@dataclass(frozen=True)
class FrameLimits:
    """The caps for one decoded frame: ``max_values`` values, ``max_bytes`` bytes; ``bytes_setting`` names the
    setting that sets ``max_bytes`` (for the error message)."""

    max_values: int
    max_bytes: int
    bytes_setting: str = "max_frame_bytes"

    @classmethod
    def from_settings(cls, settings: Settings) -> FrameLimits:
        """``max_frame_cells``, and the smaller of ``max_frame_bytes`` and ``max_request_memory_mb``."""
        request_bytes = int(settings.max_request_memory_mb * _MB)
        if request_bytes < settings.max_frame_bytes:
            return cls(settings.max_frame_cells, request_bytes, "max_request_memory_mb")
        return cls(settings.max_frame_cells, settings.max_frame_bytes)


def _too_many_values(count: int | str, limits: FrameLimits) -> ApiError:
    return ApiError(
        413,
        "frame_too_large",
        f"the frame holds {count} values (rows x columns, list elements included); the limit is "
        f"{limits.max_values} (max_frame_cells): send fewer rows or split the frame",
    )


def _too_many_bytes(nbytes: int | str, limits: FrameLimits) -> ApiError:
    return ApiError(
        413,
        "frame_too_large",
        f"the frame decodes to {nbytes} bytes; the limit is {limits.max_bytes} bytes ({limits.bytes_setting}): "
        "send fewer rows or split the frame",
    )


def check_values(count: int, limits: FrameLimits) -> None:
    """ApiError 413 when ``count`` values exceed ``limits``."""
    if count > limits.max_values:
        raise _too_many_values(count, limits)


def _check(values: int, nbytes: int, limits: FrameLimits, exact: bool = True) -> None:
    check_values(values, limits)
    if nbytes > limits.max_bytes:
        raise _too_many_bytes(nbytes if exact else f"at least {nbytes}", limits)


def read_arrow_stream(body: bytes, limits: FrameLimits) -> pa.Table:
    """Decode an Arrow IPC stream once its headers show it fits ``limits``.

    Raises ApiError 400 for a stream that is not valid, 413 for one over a cap (nothing decompressed then).
    """
    values = nbytes = 0
    try:
        reader = pa.ipc.MessageReader.open_stream(pa.BufferReader(body))
        for message in reader:
            size = batch_size(memoryview(message.metadata), memoryview(message.body) if message.body else b"")
            if size is not None:
                values, nbytes = values + size.values, nbytes + size.nbytes
                _check(values, nbytes, limits, exact=False)
        table = pa.ipc.open_stream(pa.BufferReader(body)).read_all()
    except (pa.ArrowException, OSError, ValueError, IpcHeaderError) as error:
        raise ApiError(400, "invalid_arrow", f"the body is not a valid Arrow IPC stream: {error}") from None
    # Dictionary columns stay encoded in the store, but every read expands them (JSON rows, pandas objects):
    # a 1 MB dictionary value indexed by every row must count as that many bytes.
    _check(0, sum(_expanded_bytes(batch) for batch in table.to_batches()), limits)
    return table


def read_parquet(body: bytes, limits: FrameLimits) -> pa.Table:
    """Decode a Parquet file batch by batch, refusing it as soon as it is known to pass ``limits``.

    Raises ApiError 400 for a file that is not valid Parquet, 413 for one over a cap.
    """
    try:
        parquet = pq.ParquetFile(pa.BufferReader(body))
        metadata, schema = parquet.metadata, parquet.schema_arrow
        batch_rows, delta_columns = _precheck(metadata, limits)
        # Arrow cannot read DELTA_BYTE_ARRAY columns as dictionaries: those are bounded by batch_rows instead.
        strings = [
            f.name
            for f in schema
            if any(is_type(f.type) for is_type in _BYTE_ARRAY_TYPES) and f.name not in delta_columns
        ]
        if strings:
            parquet = pq.ParquetFile(pa.BufferReader(body), read_dictionary=strings)
        batches: list[pa.RecordBatch] = []
        nbytes = 0
        for batch in parquet.iter_batches(batch_size=batch_rows, use_threads=False):
            expanded = _expanded_bytes(batch)
            _check(0, nbytes + expanded, limits)
            batch = _undictionary(batch, schema, strings)
            nbytes += batch.nbytes
            _check(0, nbytes, limits)
            batches.append(batch)
        return pa.Table.from_batches(batches, schema=schema)
    except (pa.ArrowException, OSError, ValueError) as error:
        raise ApiError(400, "invalid_parquet", f"the body is not a valid Parquet file: {error}") from None


def _precheck(metadata: pq.FileMetaData, limits: FrameLimits) -> tuple[int, set[str]]:
    """Check the footer's counts against ``limits``; returns the rows per batch to decode with and the columns
    stored with DELTA_BYTE_ARRAY."""
    values = encoded = fixed = longest = 0
    delta_columns: set[str] = set()
    for group_index in range(metadata.num_row_groups):
        group = metadata.row_group(group_index)
        encoded += max(group.total_byte_size, 0)
        for column_index in range(group.num_columns):
            chunk = group.column(column_index)
            values += max(chunk.num_values, 0)
            physical = chunk.physical_type
            width = _FIXED_WIDTH_BYTES.get(physical)
            if width is None:  # FIXED_LEN_BYTE_ARRAY
                width = max(metadata.schema.column(column_index).length or 1, 1)
            fixed += width * max(chunk.num_values, 0)
            encodings = set(chunk.encodings)
            nested_dictionary = "." in chunk.path_in_schema and bool(_DICTIONARY_ENCODINGS & encodings)
            if "DELTA_BYTE_ARRAY" in encodings:
                delta_columns.add(chunk.path_in_schema)
            if physical == "BYTE_ARRAY" and ("DELTA_BYTE_ARRAY" in encodings or nested_dictionary):
                longest = max(longest, chunk.total_uncompressed_size)
    _check(max(values, metadata.num_rows * metadata.num_columns), max(encoded, fixed), limits, exact=False)
    if longest == 0:
        return _BATCH_ROWS, delta_columns
    # One value of such a column can be as long as its whole chunk: keep a batch's worst case within the cap.
    return max(1, min(_BATCH_ROWS, limits.max_bytes // (4 * longest))), delta_columns


def _expanded_bytes(batch: pa.RecordBatch) -> int:
    """``batch.nbytes`` once its dictionary columns are expanded, computed without expanding them."""
    total = 0
    for column in batch.columns:
        if pa.types.is_dictionary(column.type):
            lengths = pc.binary_length(column.dictionary).cast(pa.int64())
            total += int(pc.sum(lengths.take(column.indices)).as_py() or 0) + 8 * len(column)
        else:
            total += column.nbytes
    return total


def _undictionary(batch: pa.RecordBatch, schema: pa.Schema, names: list[str]) -> pa.RecordBatch:
    """``batch`` with the columns read as dictionaries (``names``) back in their stored type."""
    if not names:
        return batch
    columns = [
        column.dictionary_decode() if pa.types.is_dictionary(column.type) and field.name in names else column
        for column, field in zip(batch.columns, schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)
