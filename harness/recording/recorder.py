"""Every request of a run, as columns: recorded in the Locust process, streamed to the run directory.

Locust's own statistics keep rounded response-time buckets; thresholds and the report need exact percentiles over
any window, so each request is also kept raw (one row: completion time, type, name, latency, outcome, size).
Rows are appended to an Arrow IPC stream in chunks, so the file is readable while the run goes on and a killed
run loses at most the last chunk. Workers ship their chunks to the master inside Locust's own reports.
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["REQUEST_SCHEMA", "ArrowStreamWriter", "RequestRecorder", "read_stream"]

REQUEST_SCHEMA = pa.schema(
    [
        ("ts_s", pa.float64()),  # epoch seconds at completion
        ("request_type", pa.string()),
        ("name", pa.string()),
        ("latency_ms", pa.float64()),
        ("ok", pa.bool_()),
        ("response_bytes", pa.int64()),
        ("error", pa.string()),
        ("worker", pa.string()),
    ]
)


class RequestRecorder:
    """Buffers request rows in memory until ``drain()`` turns them into one Arrow record batch."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self._lock = threading.Lock()
        self._columns: tuple[list[Any], ...] = self._empty()

    @staticmethod
    def _empty() -> tuple[list[Any], ...]:
        return tuple([] for _ in REQUEST_SCHEMA)

    def record(
        self,
        start_time_s: float,
        request_type: str,
        name: str,
        latency_ms: float,
        response_bytes: int,
        error: str | None,
    ) -> None:
        """One finished request; ``start_time_s`` is epoch seconds at its start (Locust's ``start_time``)."""
        with self._lock:
            ts, types, names, latencies, oks, sizes, errors, workers = self._columns
            ts.append(start_time_s + latency_ms / 1000.0)
            types.append(request_type)
            names.append(name)
            latencies.append(float(latency_ms))
            oks.append(error is None)
            sizes.append(int(response_bytes or 0))
            errors.append(error)
            workers.append(self.worker)

    def drain(self) -> pa.RecordBatch | None:
        """The rows recorded since the last drain, or None if there are none."""
        with self._lock:
            columns, self._columns = self._columns, self._empty()
        if not columns[0]:
            return None
        return pa.RecordBatch.from_arrays(
            [pa.array(values, type=f.type) for values, f in zip(columns, REQUEST_SCHEMA, strict=True)],
            schema=REQUEST_SCHEMA,
        )


class ArrowStreamWriter:
    """Appends record batches to an Arrow IPC stream file, flushing each one; keeps a short recent history.

    ``recent_s`` seconds of batches stay in memory (by their newest ``ts_s``) for live checks such as the
    stress profile's threshold probe.
    """

    def __init__(self, path: Path, schema: pa.Schema, recent_s: float = 0.0) -> None:
        self.path = path
        self.schema = schema
        self.rows = 0
        self._recent_s = recent_s
        self._recent: deque[pa.RecordBatch] = deque()
        self._lock = threading.Lock()
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = pa.ipc.new_stream(self._sink, schema)

    def write(self, batch: pa.RecordBatch | None) -> None:
        """Append ``batch`` (None is ignored) and flush it to disk."""
        if batch is None or batch.num_rows == 0:
            return
        with self._lock:
            if self._writer is None:
                raise ValueError(f"{self.path} is closed")
            self._writer.write_batch(batch)
            self._sink.flush()
            self.rows += batch.num_rows
            if self._recent_s > 0:
                self._remember(batch)

    def _remember(self, batch: pa.RecordBatch) -> None:
        self._recent.append(batch)
        newest = pc.max(batch.column("ts_s")).as_py()
        while self._recent and pc.max(self._recent[0].column("ts_s")).as_py() < newest - self._recent_s:
            self._recent.popleft()

    def recent(self, since_s: float) -> pa.Table:
        """Rows completed at or after epoch second ``since_s`` among the batches still held in memory."""
        with self._lock:
            batches = list(self._recent)
        table = pa.Table.from_batches(batches, schema=self.schema)
        return table.filter(pc.greater_equal(table.column("ts_s"), since_s))

    def close(self) -> None:
        """Finish the stream (idempotent)."""
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._sink.close()
                self._writer = None


def read_stream(path: Path) -> pa.Table:
    """Read an Arrow IPC stream written by ``ArrowStreamWriter``, tolerating a torn final batch."""
    batches = []
    schema = None
    with pa.OSFile(str(path), "rb") as source:
        try:
            reader = pa.ipc.open_stream(source)
            schema = reader.schema
            for batch in reader:
                batches.append(batch)
        except (pa.ArrowInvalid, OSError):
            pass  # a run killed mid-write: keep the complete batches
    if schema is None:
        raise ValueError(f"{path} holds no Arrow stream header")
    return pa.Table.from_batches(batches, schema=schema)


def batch_to_bytes(batch: pa.RecordBatch) -> bytes:
    """Serialize one batch (with its schema) for shipping inside a Locust worker report."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def batch_from_bytes(payload: bytes) -> pa.Table:
    """The inverse of ``batch_to_bytes``."""
    return pa.ipc.open_stream(pa.py_buffer(payload)).read_all()
