"""What an Arrow IPC stream decodes to, read from its message headers before any buffer is decompressed.

A record batch (or dictionary batch) message carries a flatbuffer header listing its row count, one node per
array (with its length) and one (offset, length) entry per body buffer. With body compression each buffer starts
with its uncompressed length as a little-endian int64 (-1: stored uncompressed). So the decoded size of a batch is
known from the header and eight bytes per buffer, even when a 1 KB zstd body would inflate to gigabytes.

Only the few fields needed are read (Message.fbs / Schema.fbs of the Arrow format, metadata version 5):

    Message        { version: short; header_type: ubyte; header: union; bodyLength: long; ... }
    RecordBatch    { length: long; nodes: [FieldNode]; buffers: [Buffer]; compression: BodyCompression; ... }
    DictionaryBatch{ id: long; data: RecordBatch; isDelta: bool }
    FieldNode      struct { length: long; null_count: long }        Buffer struct { offset: long; length: long }
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["BatchSize", "IpcHeaderError", "batch_size"]

_DICTIONARY_BATCH = 2
_RECORD_BATCH = 3
_STRUCT_BYTES = 16  # FieldNode and Buffer: two int64 each


class IpcHeaderError(ValueError):
    """The message header is not a well-formed flatbuffer of the expected shape."""


@dataclass(frozen=True)
class BatchSize:
    """A batch's decoded size: ``values`` is the sum of its arrays' lengths (rows x columns for a flat table,
    list elements included), ``nbytes`` the sum of its buffers' uncompressed sizes."""

    values: int
    nbytes: int


class _Table:
    """One flatbuffer table: its position and its vtable, with bounds-checked reads."""

    def __init__(self, data: bytes, position: int) -> None:
        self.data = data
        self.position = position
        vtable = position - _read(data, "<i", position)
        self.vtable = vtable
        self.vtable_size = _read(data, "<H", vtable)

    def _field(self, index: int) -> int | None:
        slot = 4 + 2 * index
        if slot + 2 > self.vtable_size:
            return None
        offset = _read(self.data, "<H", self.vtable + slot)
        return self.position + offset if offset else None

    def scalar(self, index: int, fmt: str, default: int) -> int:
        at = self._field(index)
        return default if at is None else _read(self.data, fmt, at)

    def table(self, index: int) -> _Table | None:
        at = self._field(index)
        return None if at is None else _Table(self.data, at + _read(self.data, "<I", at))

    def structs(self, index: int) -> list[tuple[int, int]]:
        """A vector of 16-byte structs of two int64, as pairs."""
        at = self._field(index)
        if at is None:
            return []
        start = at + _read(self.data, "<I", at)
        count = _read(self.data, "<I", start)
        if start + 4 + count * _STRUCT_BYTES > len(self.data):
            raise IpcHeaderError(f"a vector of {count} entries runs past the end of the header")
        return [struct.unpack_from("<qq", self.data, start + 4 + i * _STRUCT_BYTES) for i in range(count)]


def _read(data: bytes, fmt: str, at: int) -> int:
    if at < 0 or at + struct.calcsize(fmt) > len(data):
        raise IpcHeaderError(f"offset {at} is outside the {len(data)}-byte header")
    return int(struct.unpack_from(fmt, data, at)[0])


def batch_size(metadata: bytes, body: bytes) -> BatchSize | None:
    """The decoded size of one IPC message (its flatbuffer ``metadata`` and its ``body``), or None for messages
    that carry no batch (the schema). Raises IpcHeaderError for a malformed header or buffer outside the body."""
    message = _Table(metadata, _read(metadata, "<I", 0))
    kind = message.scalar(1, "<B", 0)
    if kind not in (_RECORD_BATCH, _DICTIONARY_BATCH):
        return None
    header = message.table(2)
    if header is not None and kind == _DICTIONARY_BATCH:
        header = header.table(1)
    if header is None:
        raise IpcHeaderError("a batch message without its RecordBatch header")
    values = sum(max(length, 0) for length, _ in header.structs(1))
    compressed = header.table(3) is not None
    nbytes = 0
    for offset, length in header.structs(2):
        if offset < 0 or length < 0 or offset + length > len(body):
            raise IpcHeaderError(f"buffer ({offset}, {length}) lies outside the {len(body)}-byte body")
        if compressed and length >= 8:
            uncompressed = struct.unpack_from("<q", body, offset)[0]
            nbytes += length - 8 if uncompressed == -1 else max(uncompressed, 0)
        else:
            nbytes += length
    return BatchSize(values, nbytes)
