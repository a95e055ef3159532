"""The run's latency histograms on disk (``latency.hdr.arrows``, see ``harness.timing.hdr``): written by the master,
read back in one streaming pass for the report and the thresholds.

Writing: ``HdrLogWriter`` holds the seconds that may still receive rows (workers report every 3 s) and appends
each second once it is ``grace_s`` old, merged over every worker; a later row for the same second is appended as
another row (readers add rows of the same key). Memory: the histograms of the last ``grace_s`` seconds.

Reading: ``read_hdr`` loads the encoded rows (about 50-500 bytes each); ``merge_windows`` decodes them one at a
time in time order and adds them into one histogram per window and group, so memory is one histogram per group and
open window, whatever the run's length.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hdrh.histogram import HdrHistogram

from harness.recording.recorder import ArrowStreamWriter, read_stream
from harness.timing.hdr import (
    HDR_SCHEMA,
    HdrRow,
    IntervalHistograms,
    new_histogram,
    percentile_ms,
    release,
    rows_from_table,
)
from harness.timing.hdr import rows_to_batch as _rows_to_batch

__all__ = ["GRACE_S", "Bucket", "HdrLogWriter", "merge_windows", "read_hdr", "summarize_histogram"]

GRACE_S = 8.0  # Locust workers report every 3 s: a second is written once no worker can still add to it


class HdrLogWriter:
    """Merges rows from every worker per key and appends each finished second to ``path``."""

    def __init__(self, path: Path, grace_s: float = GRACE_S) -> None:
        self.path = path
        self.grace_s = grace_s
        self.rows_written = 0
        self._pending = IntervalHistograms()
        self._writer = ArrowStreamWriter(path, HDR_SCHEMA)

    def add(self, rows: list[HdrRow]) -> None:
        """Rows from a worker report (or from this process)."""
        self._pending.add(rows)

    def flush(self, now_s: float) -> None:
        """Append the seconds that ended ``grace_s`` before epoch ``now_s``."""
        self._write(self._pending.take(now_s - self.grace_s))

    def close(self) -> None:
        """Append everything still held and finish the stream (idempotent)."""
        self._write(self._pending.take())
        self._writer.close()

    def _write(self, rows: list[HdrRow]) -> None:
        if rows:
            rows.sort(key=lambda r: r.key)
            self._writer.write(_rows_to_batch(rows))
            self.rows_written += len(rows)
            for row in rows:
                release(row.histogram)


def read_hdr(path: Path) -> pa.Table | None:
    """The rows of ``path`` sorted by interval (encoded; a torn last batch is dropped), None if it is absent."""
    if not Path(path).is_file():
        return None
    table = read_stream(Path(path))
    if table.num_rows == 0:
        return table
    return table.take(pc.sort_indices(table, sort_keys=[("interval_s", "ascending")]))


def summarize_histogram(histogram: HdrHistogram, percentiles: tuple[float, ...] = (50, 90, 95, 99, 99.9)) -> dict:
    """count, mean_ms, max_ms and ``p<q>_ms`` (nearest rank, see harness.timing.hdr.PERCENTILE_METHOD) of one
    histogram."""
    total = histogram.get_total_count()
    out: dict[str, Any] = {"count": int(total)}
    for q in percentiles:
        out[f"p{q:g}_ms"] = percentile_ms(histogram, q)
    out["mean_ms"] = histogram.get_mean_value() / 1000.0 if total else None
    out["max_ms"] = histogram.get_max_value() / 1000.0 if total else None
    return out


@dataclass
class Bucket:
    """One window of one group: its request count, failures and merged histogram."""

    start_s: float
    count: int = 0
    failures: int = 0
    histogram: HdrHistogram = field(default_factory=new_histogram)


def merge_windows(
    table: pa.Table,
    window_s: float,
    origin_s: float,
    group: Callable[[HdrRow], Hashable | None],
    emit: Callable[[Hashable, Bucket], None],
) -> None:
    """Add the rows of ``table`` (sorted by interval) into windows [origin_s + k*window_s, ...) per group.

    ``group(row)`` names the row's group (None: skip the row); ``emit(group, bucket)`` receives each finished
    window once (in time order within a group), after which it is released: memory is one histogram per group.
    A one-second interval belongs to the window holding its start.
    """
    open_buckets: dict[Hashable, Bucket] = {}
    for batch in table.to_batches(max_chunksize=4096):
        for row in rows_from_table(batch):
            key = group(row)
            if key is None:
                continue
            start = origin_s + math.floor((row.interval_s - origin_s + 1e-9) / window_s) * window_s
            bucket = open_buckets.get(key)
            if bucket is not None and bucket.start_s != start:
                emit(key, bucket)
                release(bucket.histogram)
                bucket = None
            if bucket is None:
                bucket = open_buckets[key] = Bucket(start)
            bucket.count += row.count
            bucket.failures += row.failures
            if row.histogram.get_total_count():
                bucket.histogram.add(row.histogram)
            release(row.histogram)
    for key, bucket in open_buckets.items():
        emit(key, bucket)
        release(bucket.histogram)


def interval_starts(table: pa.Table) -> np.ndarray:
    """The distinct interval starts (epoch seconds) of ``table``."""
    return np.unique(table.column("interval_s").to_numpy()) if table.num_rows else np.zeros(0, np.int64)
