"""Latency in bounded memory: one HdrHistogram per endpoint, latency kind and 1-second interval.

Every process that sends requests (the only Locust process, or each worker) records each request into the
histogram of its (second, kind, endpoint); a finished second is taken out as rows, which a worker ships to the
master inside Locust's own worker reports. Histograms of the same key are added exactly (HdrHistogram addition is
exact: counts per bucket), so merging workers, or rows of one second that arrived late, loses nothing.

Values are recorded in microseconds, rounded, from LOWEST_US to HIGHEST_US with SIGNIFICANT_DIGITS digits: a
value read back is the highest value of its bucket, within 0.1% of the recorded value (HdrHistogram's guarantee
for 3 digits; PERCENTILE_METHOD says it to the reader). Memory per histogram is fixed (about 190 KB of counts
while it is being filled, 50-500 bytes encoded), whatever the number of requests.

Kinds (``KINDS``):

    response   what a user saw: in the open model from the intended start of the arrival to completion (queueing in
               the generator and the service included), otherwise Locust's own response time
    service    open model only: from the actual send to completion (Locust's response time)
    lag        open model only, endpoint "" : the generator's scheduling lag (actual send minus intended start) of
               each arrival sent; ``count`` is the arrivals sent, ``failures`` the arrivals dropped (the in-flight
               bound was reached), so offered = count + failures

On disk (``HDR_FILE`` in the run directory) an Arrow IPC stream with ``HDR_SCHEMA``: one row per key and flush,
``histogram`` holding HdrHistogram's V2 compressed encoding (base64, as ``HdrHistogram.encode()`` returns it).
A key may appear in several rows (a late worker report): readers add them.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from hdrh.histogram import HdrHistogram

__all__ = [
    "HDR_FILE",
    "HDR_SCHEMA",
    "HIGHEST_US",
    "KINDS",
    "PERCENTILE_METHOD",
    "HdrRow",
    "IntervalHistograms",
    "new_histogram",
    "percentile_ms",
    "release",
    "rows_from_table",
    "rows_to_batch",
]

HDR_FILE = "latency.hdr.arrows"
LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour; a longer value is clamped to it
SIGNIFICANT_DIGITS = 3
KINDS = ("response", "service", "lag")
PERCENTILE_METHOD = (
    "HdrHistogram (3 significant digits, microseconds): nearest rank ceil(p/100 * n) over the merged histograms "
    "of every worker and second, read as the highest value of its bucket: within 0.1% of the exact nearest-rank "
    "value (at most 1 us below 1 ms)"
)

HDR_SCHEMA = pa.schema(
    [
        ("interval_s", pa.int64()),  # epoch second the interval starts
        ("kind", pa.string()),
        ("request_type", pa.string()),
        ("name", pa.string()),
        ("count", pa.int64()),
        ("failures", pa.int64()),
        ("histogram", pa.binary()),
    ]
)


def new_histogram() -> HdrHistogram:
    """An empty histogram of the harness's range and precision (microseconds)."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def release(histogram: HdrHistogram) -> None:
    """Break the histogram's reference cycle with its encoder, so its 190 KB of counts are freed as soon as the
    last reference goes (not at the garbage collector's next full pass): memory stays flat in long runs."""
    encoder = getattr(histogram, "encoder", None)
    if encoder is not None:
        encoder.histogram = None


def _us(value_ms: float) -> int:
    if not value_ms > 0:  # negative clock steps and NaN are recorded as 0
        return 0
    return min(round(value_ms * 1000.0), HIGHEST_US)


def counts(histogram: HdrHistogram) -> np.ndarray:
    """The histogram's bucket counts as a numpy view (no copy)."""
    return np.ctypeslib.as_array(histogram.counts)


def percentile_ms(histogram: HdrHistogram, percentile: float) -> float | None:
    """The nearest-rank ``percentile`` (0-100) of ``histogram`` in ms (see PERCENTILE_METHOD); None when empty."""
    total = histogram.get_total_count()
    if total <= 0:
        return None
    if percentile >= 100:
        return histogram.get_max_value() / 1000.0
    rank = max(1, math.ceil(round(percentile * total, 9) / 100.0))
    index = int(np.searchsorted(np.cumsum(counts(histogram)), rank))
    value = histogram.get_highest_equivalent_value(histogram.get_value_from_index(index))
    return min(value, histogram.get_max_value()) / 1000.0


@dataclass
class HdrRow:
    """One histogram of one key: ``interval_s`` (epoch second), ``kind``, endpoint, request ``count``,
    ``failures`` (failed requests; for kind "lag" the dropped arrivals) and the ``histogram`` (microseconds)."""

    interval_s: int
    kind: str
    request_type: str
    name: str
    count: int
    failures: int
    histogram: HdrHistogram

    @property
    def key(self) -> tuple[int, str, str, str]:
        return self.interval_s, self.kind, self.request_type, self.name

    def add(self, other: HdrRow) -> None:
        """Add ``other`` (same key) into this row, exactly."""
        self.count += other.count
        self.failures += other.failures
        if other.histogram.get_total_count():
            self.histogram.add(other.histogram)


class IntervalHistograms:
    """Histograms per (second, kind, endpoint), filled by ``record`` and emptied by ``take`` (thread-safe).

    ``record`` only appends the value (microseconds) to its key's buffer; a buffer is folded into its histogram in
    one numpy pass (``fold``: exactly what hdrh's pure-Python ``record_value`` would do, value by value) when it
    holds FOLD_VALUES values and before a row leaves (``take``) or is merged (``add``).

    Memory is bounded by the seconds not yet taken: the harness takes every finished second about once a second.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[int, str, str, str], HdrRow] = {}
        self._pending: dict[tuple[int, str, str, str], list[int]] = {}  # values (us) not yet in their histogram

    def record(self, ts_s: float, kind: str, request_type: str, name: str, value_ms: float, failed: bool) -> None:
        """One value of ``value_ms`` milliseconds at epoch second ``ts_s`` (its completion)."""
        key = (int(ts_s), kind, request_type, name)
        value_us = min(round(value_ms * 1000.0), HIGHEST_US) if value_ms > 0 else 0  # _us(), inlined
        with self._lock:
            row = self._rows.get(key)
            if row is None:
                row = self._rows[key] = HdrRow(*key, 0, 0, new_histogram())
                pending = self._pending[key] = []
            else:
                pending = self._pending[key]
            row.count += 1
            if failed:
                row.failures += 1
            pending.append(value_us)
            if len(pending) >= FOLD_VALUES:
                fold(row.histogram, pending)
                pending.clear()

    def count_dropped(self, ts_s: float, dropped: int = 1) -> None:
        """Arrivals dropped at epoch second ``ts_s`` (kind "lag", no value recorded)."""
        key = (int(ts_s), "lag", "", "")
        with self._lock:
            row = self._rows.get(key)
            if row is None:
                row = self._rows[key] = HdrRow(*key, 0, 0, new_histogram())
                self._pending[key] = []
            row.failures += dropped

    def add(self, rows: Iterable[HdrRow]) -> None:
        """Merge ``rows`` (from another process, or late) into the held histograms."""
        with self._lock:
            for row in rows:
                held = self._rows.get(row.key)
                if held is None:
                    self._rows[row.key] = row
                    self._pending[row.key] = []
                else:
                    held.add(row)
                    release(row.histogram)

    def take(self, before_s: float | None = None) -> list[HdrRow]:
        """Remove and return the rows of seconds that ended at or before epoch ``before_s`` (None: all rows)."""
        with self._lock:
            done = list(self._rows) if before_s is None else [key for key in self._rows if key[0] + 1 <= before_s]
            taken = []
            for key in done:
                row = self._rows.pop(key)
                pending = self._pending.pop(key, None)
                if pending:
                    fold(row.histogram, pending)
                taken.append(row)
            return taken

    def __len__(self) -> int:
        return len(self._rows)


FOLD_VALUES = 4096  # a key's buffered values are folded into its histogram at this many


def fold(histogram: HdrHistogram, values_us: list[int]) -> None:
    """Record ``values_us`` (integers, 0..HIGHEST_US) into ``histogram`` in one numpy pass: the same bucket counts,
    total, min and max as hdrh's ``record_value`` called once per value."""
    if not values_us:
        return
    values = np.asarray(values_us, dtype=np.int64)
    # hdrh's _counts_index_for, vectorized: bit_length via frexp is exact below 2**53 (HIGHEST_US < 2**32)
    pow2ceiling = np.frexp((values | histogram.sub_bucket_mask).astype(np.float64))[1].astype(np.int64)
    bucket = pow2ceiling - histogram.unit_magnitude - (histogram.sub_bucket_half_count_magnitude + 1)
    sub_bucket = values >> (bucket + histogram.unit_magnitude)
    index = (bucket + 1 << histogram.sub_bucket_half_count_magnitude) + sub_bucket - histogram.sub_bucket_half_count
    buckets = counts(histogram)
    buckets += np.bincount(index, minlength=buckets.size)[: buckets.size].astype(buckets.dtype)
    histogram.total_count += values.size
    histogram.min_value = min(histogram.min_value, int(values.min()))
    histogram.max_value = max(histogram.max_value, int(values.max()))


def rows_to_batch(rows: list[HdrRow]) -> pa.RecordBatch | None:
    """``rows`` as one Arrow record batch of HDR_SCHEMA (histograms encoded), or None when there are none."""
    if not rows:
        return None
    columns = [
        [r.interval_s for r in rows], [r.kind for r in rows], [r.request_type for r in rows], [r.name for r in rows],
        [r.count for r in rows], [r.failures for r in rows], [r.histogram.encode() for r in rows],
    ]  # fmt: skip
    return pa.RecordBatch.from_arrays(
        [pa.array(values, type=f.type) for values, f in zip(columns, HDR_SCHEMA, strict=True)], schema=HDR_SCHEMA
    )


def rows_from_table(table: pa.Table | pa.RecordBatch) -> Iterator[HdrRow]:
    """Decode the rows of a table (or batch) of HDR_SCHEMA, one at a time (memory: one histogram each)."""
    columns = [table.column(name).to_pylist() for name in HDR_SCHEMA.names]
    for interval_s, kind, request_type, name, count, failures, encoded in zip(*columns, strict=True):
        histogram = HdrHistogram.decode(encoded) if encoded else new_histogram()
        yield HdrRow(interval_s, kind, request_type or "", name or "", count, failures, histogram)
