"""The request log as sorted numpy arrays: per-endpoint statistics and per-bucket latency percentiles.

Percentiles are nearest rank (``harness.verdict.thresholds.PERCENTILE_METHOD``), the same figures the thresholds verdict
uses: whole-endpoint figures come from ``harness.verdict.thresholds._request_value`` itself; per-bucket ones from
``nearest_rank``, its vectorized twin (the same integer rank ceil(p * n), on groups sorted once).

Sorting is done once: latencies by value (one float argsort), then stable integer sorts by bucket and endpoint
(numpy uses radix sort for 8/16-bit keys), so every (endpoint, bucket) group is a sorted, contiguous slice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from harness.verdict.thresholds import _PERCENTILES, _request_value

__all__ = [
    "ENDPOINT_PERCENTILES", "SERIES_PERCENTILES", "BucketSeries", "LatencyHistogram", "RequestIndex", "nearest_rank",
]  # fmt: skip

ENDPOINT_PERCENTILES = ("p50", "p90", "p95", "p99")
SERIES_PERCENTILES = ("p50", "p95", "p99")
TOTAL = "Aggregated"


def nearest_rank(sorted_values: np.ndarray, starts: np.ndarray, counts: np.ndarray, percentile: str) -> np.ndarray:
    """The nearest-rank ``percentile`` ("p95") of each group ``sorted_values[starts[i]:starts[i] + counts[i]]``
    (each slice sorted ascending); NaN for an empty group."""
    num, den = _PERCENTILES[percentile]
    counts = counts.astype(np.int64)
    rank = -(-num * counts // den)  # ceil(p * n) in integers, 1-based
    index = np.where(counts > 0, starts + np.maximum(rank, 1) - 1, 0)
    values = sorted_values[index] if sorted_values.size else np.zeros(counts.size)
    return np.where(counts > 0, values, np.nan)


def _small_uint(values: np.ndarray, limit: int) -> np.ndarray:
    """Integer codes in the narrowest unsigned type, so a stable argsort is a radix sort."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if limit <= np.iinfo(dtype).max:
            return values.astype(dtype, copy=False)
    return values.astype(np.int64, copy=False)


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    """Dictionary codes (int32) and the distinct strings of a string column (null counts as "")."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if column.nbytes > 2**30:
        column = column.cast(pa.large_string())
    encoded = pc.dictionary_encode(pc.fill_null(column.combine_chunks(), ""))
    return encoded.indices.to_numpy(zero_copy_only=False), [str(v) for v in encoded.dictionary.to_pylist()]


@dataclass(frozen=True)
class BucketSeries:
    """Per-bucket figures: ``centers_s`` (seconds since the run start), requests/s and failures/s per bucket,
    nearest-rank latency percentiles per endpoint (``latency_ms[p][e]``) and over all requests (``total_ms[p]``),
    NaN where a bucket holds no request."""

    bucket_s: float
    centers_s: np.ndarray
    requests: np.ndarray
    failures: np.ndarray
    latency_ms: dict[str, np.ndarray]
    total_ms: dict[str, np.ndarray]


@dataclass(frozen=True)
class LatencyHistogram:
    """Request counts per latency bin: ``edges_ms`` (bins + 1 log-spaced edges), ``ok`` and ``ko`` counts."""

    edges_ms: np.ndarray
    ok: np.ndarray
    ko: np.ndarray


class RequestIndex:
    """The request log of a run, relative to its start ``t0_s`` (epoch s), bucketed by ``bucket_s`` seconds."""

    def __init__(self, table: pa.Table, t0_s: float, bucket_s: float, first_bucket: int, buckets: int) -> None:
        self.t0_s, self.bucket_s = t0_s, bucket_s
        self.first_bucket, self.buckets = first_bucket, buckets
        type_code, types = _codes(table.column("request_type"))
        name_code, names = _codes(table.column("name"))
        pair = type_code.astype(np.int64) * max(len(names), 1) + name_code
        present = np.flatnonzero(np.bincount(pair, minlength=1)) if pair.size else np.zeros(0, np.int64)
        remap = np.zeros(max(len(types), 1) * max(len(names), 1), dtype=np.int64)
        remap[present] = np.arange(present.size)
        pairs = [(types[p // max(len(names), 1)], names[p % max(len(names), 1)]) for p in present]
        order = sorted(range(len(pairs)), key=lambda i: (pairs[i][1], pairs[i][0]))  # by name, then type
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        self.endpoint_parts: list[tuple[str, str]] = [pairs[i] for i in order]
        self.endpoints: list[str] = [f"{t} {n}".strip() for t, n in self.endpoint_parts]
        self.endpoint = _small_uint(rank[remap[pair]], len(self.endpoints))
        self.ts_rel_s = pc.subtract(table.column("ts_s"), t0_s).to_numpy().astype(np.float64, copy=False)
        self.latency_ms = table.column("latency_ms").to_numpy().astype(np.float64, copy=False)
        self.failed = ~pc.fill_null(table.column("ok"), False).to_numpy().astype(bool, copy=False)
        self.errors = table.column("error") if "error" in table.column_names else None
        self.response_bytes: np.ndarray | None = None  # NaN where a row has none
        if "response_bytes" in table.column_names:
            self.response_bytes = table.column("response_bytes").cast(pa.float64()).to_numpy()
        bucket = np.floor(self.ts_rel_s / bucket_s).astype(np.int64) - first_bucket
        self.bucket = _small_uint(np.clip(bucket, 0, buckets - 1), buckets)
        # sorted views: by latency; by (bucket, latency); by (endpoint, latency); by (endpoint, bucket, latency)
        by_latency = np.argsort(self.latency_ms)  # ties in any order: percentiles only read values
        by_bucket = by_latency[np.argsort(self.bucket[by_latency], kind="stable")]
        self._by_endpoint = by_latency[np.argsort(self.endpoint[by_latency], kind="stable")]
        self._by_endpoint_bucket = by_bucket[np.argsort(self.endpoint[by_bucket], kind="stable")]
        self._by_bucket = by_bucket
        self._sorted_all = self.latency_ms[by_latency]

    @property
    def size(self) -> int:
        return int(self.latency_ms.size)

    def percentile(self, metric: str, rows: np.ndarray | None = None) -> float | None:
        """``metric`` (p50, p95, max, mean...) over ``rows`` (a boolean mask; all rows when None); None if empty."""
        if rows is None:
            return _request_value(metric, self._sorted_all, self.failed, 1.0)
        return _request_value(metric, self.latency_ms[rows], self.failed[rows], 1.0)

    def endpoint_stats(self, duration_s: float) -> list[dict[str, Any]]:
        """One dict per endpoint, then the Aggregated row: requests, failures, failure_ratio, rps (over
        ``duration_s``), min_ms, mean_ms, nearest-rank p50/p90/p95/p99, max_ms, and the response bytes received
        (``bytes_total``, ``bytes_mean``: a response's body size as the recorder logged it; None unrecorded)."""
        counts = np.bincount(self.endpoint, minlength=len(self.endpoints))
        failures = np.bincount(self.endpoint, weights=self.failed, minlength=len(self.endpoints)).astype(np.int64)
        starts = np.cumsum(counts) - counts
        sorted_latency = self.latency_ms[self._by_endpoint]
        sizes = self.response_bytes
        has_size = np.isfinite(sizes) if sizes is not None else None
        byte_sums = byte_counts = None
        if sizes is not None:
            byte_sums = np.bincount(self.endpoint[has_size], weights=sizes[has_size], minlength=len(self.endpoints))
            byte_counts = np.bincount(self.endpoint[has_size], minlength=len(self.endpoints))
        rows = []
        for e, ((rtype, name), label) in enumerate(zip(self.endpoint_parts, self.endpoints, strict=True)):
            part = sorted_latency[starts[e] : starts[e] + counts[e]]
            row = self._stats(label, rtype, name, part, int(failures[e]), duration_s)
            rows.append(_with_bytes(row, byte_sums, byte_counts, e))
        row = self._stats(TOTAL, "", TOTAL, self._sorted_all, int(failures.sum()), duration_s)
        sums = None if byte_sums is None else np.array([byte_sums.sum()])
        rows.append(_with_bytes(row, sums, None if byte_counts is None else np.array([byte_counts.sum()]), 0))
        return rows

    def ok_ko_stats(self) -> list[dict[str, Any]]:
        """Latency of the successful (OK) and the failed (KO) requests apart, then of all: requests, min_ms,
        mean_ms, nearest-rank p50/p95/p99, max_ms (None where a group is empty)."""
        rows = []
        for label, mask in (("OK", ~self.failed), ("KO", self.failed), ("all", None)):
            latency = self._sorted_all if mask is None else self.latency_ms[mask]
            flags = np.zeros(latency.size, dtype=bool)
            row: dict[str, Any] = {"outcome": label, "requests": int(latency.size)}
            row["min_ms"] = float(latency.min()) if latency.size else None
            for metric in ("mean", *SERIES_PERCENTILES, "max"):
                row[f"{metric}_ms"] = _request_value(metric, latency, flags, 1.0)
            rows.append(row)
        return rows

    def histogram(self, bins_per_decade: int = 12) -> LatencyHistogram | None:
        """OK and KO request counts in log-spaced latency bins (``bins_per_decade`` per factor of 10) from the
        fastest to the slowest request; None without requests of positive latency."""
        positive = self._sorted_all[self._sorted_all > 0]
        if positive.size == 0:
            return None
        low, high = np.log10(positive[0]), np.log10(positive[-1])
        lo = np.floor(low * bins_per_decade) / bins_per_decade
        hi = max(np.ceil(high * bins_per_decade) / bins_per_decade, lo + 1.0 / bins_per_decade)
        edges = 10.0 ** np.linspace(lo, hi, round((hi - lo) * bins_per_decade) + 1)
        latency = np.clip(self.latency_ms, edges[0], edges[-1])  # a 0 ms request counts in the first bin
        ok, _ = np.histogram(latency[~self.failed], bins=edges)
        ko, _ = np.histogram(latency[self.failed], bins=edges)
        return LatencyHistogram(edges, ok, ko)

    @staticmethod
    def _stats(label: str, rtype: str, name: str, latency: np.ndarray, failures: int, duration_s: float) -> dict:
        n = int(latency.size)
        stats: dict[str, Any] = {
            "endpoint": label, "request_type": rtype, "name": name, "requests": n, "failures": failures,
            "failure_ratio": failures / n if n else None, "rps": n / duration_s if duration_s > 0 else None,
        }  # fmt: skip
        flags = np.zeros(n, dtype=bool)  # _request_value needs the failure flags only for failure_ratio
        stats["min_ms"] = float(latency[0]) if n else None  # ``latency`` is sorted
        for metric in ("mean", *ENDPOINT_PERCENTILES, "max"):
            stats[f"{metric}_ms"] = _request_value(metric, latency, flags, 1.0)
        return stats

    def percentile_curves(self, quantiles: np.ndarray) -> np.ndarray:
        """Nearest-rank latency (ms) at each quantile (0 < q <= 1) per endpoint, then over all requests:
        an array of shape (endpoints + 1, quantiles), NaN for an endpoint without requests."""
        counts = np.bincount(self.endpoint, minlength=len(self.endpoints))
        starts = np.cumsum(counts) - counts
        sorted_latency = self.latency_ms[self._by_endpoint]
        curves = np.full((len(self.endpoints) + 1, quantiles.size), np.nan)
        for e, (start, n) in enumerate([*zip(starts, counts, strict=True), (0, self.size)]):
            if n:
                rank = np.clip(np.ceil(quantiles * n - 1e-9).astype(np.int64), 1, n)
                part = self._sorted_all if e == len(self.endpoints) else sorted_latency[start : start + n]
                curves[e] = part[rank - 1]
        return curves

    def bucket_series(self) -> BucketSeries:
        """Requests/s, failures/s and nearest-rank p50/p95/p99 per bucket, per endpoint and over all requests."""
        nb, ne = self.buckets, len(self.endpoints)
        counts = np.bincount(self.bucket, minlength=nb)
        failures = np.bincount(self.bucket, weights=self.failed, minlength=nb)
        key = self.endpoint.astype(np.int64) * nb + self.bucket
        group_counts = np.bincount(key, minlength=ne * nb)
        group_starts = np.cumsum(group_counts) - group_counts
        by_group = self.latency_ms[self._by_endpoint_bucket]
        by_bucket = self.latency_ms[self._by_bucket]
        bucket_starts = np.cumsum(counts) - counts
        latency, total = {}, {}
        for p in SERIES_PERCENTILES:
            latency[p] = nearest_rank(by_group, group_starts, group_counts, p).reshape(ne, nb)
            total[p] = nearest_rank(by_bucket, bucket_starts, counts, p)
        centers = (self.first_bucket + np.arange(nb) + 0.5) * self.bucket_s
        return BucketSeries(self.bucket_s, centers, counts / self.bucket_s, failures / self.bucket_s, latency, total)

    def failures_by_error(self, limit: int = 50) -> list[dict[str, Any]]:
        """Failed requests grouped by (endpoint, error message), most frequent first, at most ``limit`` rows."""
        rows = np.flatnonzero(self.failed)
        if rows.size == 0:
            return []
        if self.errors is None:
            messages = np.array(["(no error message recorded)"] * rows.size, dtype=object)
        else:
            taken = pc.fill_null(self.errors.take(pa.array(rows)), "(no error message recorded)")
            messages = np.asarray(taken.to_numpy(zero_copy_only=False), dtype=object)
        distinct, message_code = np.unique(messages, return_inverse=True)
        key = self.endpoint[rows].astype(np.int64) * distinct.size + message_code
        uniq, counts = np.unique(key, return_counts=True)
        top = np.argsort(-counts, kind="stable")[:limit]
        return [
            {
                "endpoint": self.endpoints[int(uniq[i] // distinct.size)],
                "error": str(distinct[int(uniq[i] % distinct.size)]),
                "count": int(counts[i]),
            }
            for i in top
        ]


def _with_bytes(row: dict[str, Any], sums: np.ndarray | None, counts: np.ndarray | None, e: int) -> dict[str, Any]:
    """``row`` with bytes_total and bytes_mean (per response that recorded a size); None when not recorded."""
    if sums is None or counts is None or counts[e] == 0:
        return {**row, "bytes_total": None, "bytes_mean": None}
    return {**row, "bytes_total": int(sums[e]), "bytes_mean": float(sums[e] / counts[e])}
