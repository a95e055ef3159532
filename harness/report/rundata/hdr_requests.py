"""Per-endpoint request figures from the HDR histograms (``latency.hdr.arrows``), for runs whose raw request log
is not complete (``--request-log sample:P|off``, or ``auto`` after it switched to sampling).

The histograms count every request of every Locust process, so their counts are exact (they equal Locust's own
totals); their percentiles are nearest rank read as the highest value of a bucket, within 0.1% of the exact
nearest-rank value (``harness.timing.hdr.PERCENTILE_METHOD``; tested within 1%). ``log_completeness`` decides which
source the report uses: the request log when it holds every request, else these figures.

``hdr_bucket_series`` gives the timeline the same source: requests/s, failures/s and p50/p95/p99 per chart
bucket from the histograms, where a sampled log would show the sample's throughput (1% of it, say).

Memory: one histogram per endpoint plus one for all requests, decoded one row at a time.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.report.rundata.requests import SERIES_PERCENTILES, BucketSeries
from harness.timing.hdr import HDR_FILE, HdrRow, new_histogram, percentile_ms, release, rows_from_table
from harness.timing.hdr_log import Bucket, merge_windows, read_hdr

__all__ = ["EXACT", "HDR", "hdr_bucket_series", "hdr_endpoint_stats", "log_completeness"]

EXACT = "exact, every request"
HDR = "HDR, within 1%"
TOTAL = "Aggregated"
_PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0))


def log_completeness(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """Whether requests.arrows holds every request of the run, from metadata.json: ``{"complete": bool, "mode",
    "recorded", "total", "why"}``. A log is incomplete when ``--request-log`` was ``off`` or ``sample:P`` (P < 1),
    or when it recorded fewer rows than Locust counted requests (``auto`` switched to sampling). Without metadata
    the log is taken as complete (nothing says otherwise)."""
    meta = metadata or {}
    policy = meta.get("request_log") if isinstance(meta.get("request_log"), dict) else {}
    mode = policy.get("mode")
    recorded = meta.get("requests_recorded")
    total = (meta.get("locust_totals") or {}).get("requests")
    out = {"complete": True, "mode": mode, "recorded": recorded, "total": total, "why": None}
    if mode == "off":
        out.update(complete=False, why="--request-log off: the request log holds no request")
    elif mode == "sample" and float(policy.get("probability") or 0.0) < 1.0:
        held = f"{recorded} of {total}" if recorded is not None else "a sample of the"
        why = f"--request-log sample:{policy.get('probability'):g}: the request log holds {held} requests"
        out.update(complete=False, why=why)
    elif isinstance(recorded, int) and isinstance(total, int) and recorded < total:
        why = f"--request-log {mode}: the request log holds {recorded:,} of {total:,} requests (sampled later)"
        out.update(complete=False, why=why)
    return out


def _content_sizes(locust_stats: pd.DataFrame | None) -> dict[tuple[str, str], float]:
    """Locust's mean response size per (type, name), from locust_stats.csv (it counts every request)."""
    if locust_stats is None or "Average Content Size" not in locust_stats.columns:
        return {}
    sizes = {}
    for record in locust_stats.to_dict("records"):
        value = pd.to_numeric(record.get("Average Content Size"), errors="coerce")
        rtype = record.get("Type")
        if pd.notna(value):
            sizes[("" if pd.isna(rtype) else str(rtype), str(record.get("Name")))] = float(value)
    return sizes


def hdr_endpoint_stats(run_dir: Path, duration_s: float,
                       locust_stats: pd.DataFrame | None = None) -> list[dict[str, Any]] | None:  # fmt: skip
    """One dict per endpoint (sorted by name, then type), then the Aggregated row, from the "response" histograms
    of ``run_dir/latency.hdr.arrows``: requests, failures, failure_ratio, rps (over ``duration_s``), min_ms,
    mean_ms, p50/p90/p95/p99_ms, max_ms, and bytes (Locust's mean size per response from ``locust_stats`` times
    the requests; None without it). None when the run recorded no histograms."""
    table = read_hdr(Path(run_dir) / HDR_FILE)
    if table is None or table.num_rows == 0:
        return None
    merged: dict[tuple[str, str], list[Any]] = {}  # (type, name) -> [count, failures, histogram]
    for batch in table.to_batches(max_chunksize=4096):
        for row in rows_from_table(batch):
            if row.kind != "response":
                release(row.histogram)
                continue
            for key in ((row.request_type, row.name), ("", TOTAL)):
                held = merged.setdefault(key, [0, 0, new_histogram()])
                held[0] += row.count
                held[1] += row.failures
                if row.histogram.get_total_count():
                    held[2].add(row.histogram)
            release(row.histogram)
    merged.setdefault(("", TOTAL), [0, 0, new_histogram()])
    sizes = _content_sizes(locust_stats)
    rows = []
    order = sorted(merged.items(), key=lambda item: (item[0][1] == TOTAL, item[0][1], item[0][0]))
    for (rtype, name), (count, failures, histogram) in order:
        stats: dict[str, Any] = {
            "endpoint": name if name == TOTAL else f"{rtype} {name}".strip(), "request_type": rtype, "name": name,
            "requests": count, "failures": failures, "failure_ratio": failures / count if count else None,
            "rps": count / duration_s if duration_s > 0 else None,
            "min_ms": histogram.get_min_value() / 1000.0 if count else None,
            "mean_ms": histogram.get_mean_value() / 1000.0 if count else None,
            **{f"{label}_ms": percentile_ms(histogram, q) for label, q in _PERCENTILES},
            "max_ms": histogram.get_max_value() / 1000.0 if count else None,
        }  # fmt: skip
        mean_size = sizes.get((rtype, name))
        stats["bytes_mean"] = mean_size
        stats["bytes_total"] = round(mean_size * count) if mean_size is not None else None
        rows.append(stats)
        release(histogram)
    return rows


def _ms(bucket: Bucket, percentile: str) -> float:
    """The bucket's ``percentile`` ("p95") in ms, NaN when empty."""
    value = percentile_ms(bucket.histogram, float(percentile[1:]))
    return np.nan if value is None else value


def hdr_bucket_series(
    run_dir: Path, t0_s: float, bucket_s: float, first_bucket: int, buckets: int, endpoints: list[tuple[str, str]]
) -> BucketSeries | None:
    """Requests/s, failures/s and nearest-rank p50/p95/p99 per chart bucket (bucket k covers [t0_s + (first_bucket
    + k) * bucket_s, ...)), per endpoint of ``endpoints`` ((type, name), in the chart's order) and over all
    requests, from the "response" histograms of ``run_dir/latency.hdr.arrows``; NaN where a bucket holds no request.
    None when the run recorded no histograms. Two streaming passes: memory is one histogram per endpoint."""
    table = read_hdr(Path(run_dir) / HDR_FILE)
    if table is None or table.num_rows == 0:
        return None
    origin_s = t0_s + first_bucket * bucket_s
    position = {key: e for e, key in enumerate(endpoints)}
    counts, failures = np.zeros(buckets), np.zeros(buckets)
    latency = {p: np.full((len(endpoints), buckets), np.nan) for p in SERIES_PERCENTILES}
    total = {p: np.full(buckets, np.nan) for p in SERIES_PERCENTILES}

    def index(bucket: Bucket) -> int | None:
        k = math.floor((bucket.start_s - origin_s) / bucket_s + 1e-9)
        return k if 0 <= k < buckets else None

    def by_endpoint(row: HdrRow) -> Hashable | None:
        return position.get((row.request_type, row.name)) if row.kind == "response" else None

    def endpoint_bucket(e: Hashable, bucket: Bucket) -> None:
        k = index(bucket)
        if k is not None and bucket.count:
            for p in SERIES_PERCENTILES:
                latency[p][int(e), k] = _ms(bucket, p)

    def all_requests(row: HdrRow) -> Hashable | None:
        return TOTAL if row.kind == "response" else None

    def total_bucket(_: Hashable, bucket: Bucket) -> None:
        k = index(bucket)
        if k is not None:
            counts[k] += bucket.count
            failures[k] += bucket.failures
            if bucket.count:
                for p in SERIES_PERCENTILES:
                    total[p][k] = _ms(bucket, p)

    merge_windows(table, bucket_s, origin_s, by_endpoint, endpoint_bucket)
    merge_windows(table, bucket_s, origin_s, all_requests, total_bucket)
    centers = (first_bucket + np.arange(buckets) + 0.5) * bucket_s
    return BucketSeries(bucket_s, centers, counts / bucket_s, failures / bucket_s, latency, total)
