"""Thresholds judged on the run's HDR histograms (``harness.timing.hdr``): whole run and ``over Ns`` windows, in memory
bounded by the number of endpoints, whatever the run's length or the request log's mode (``--request-log``).

Request metrics (latency percentiles, max, mean, failure_ratio, rps, requests) come from the "response"
histograms: the latency a user saw (from the intended start in the open model). Counts are exact; a percentile is
within 0.1% (``harness.timing.hdr.PERCENTILE_METHOD``). A histogram second belongs to the window holding its start (the
windows follow ``harness.verdict.thresholds.WINDOW_RULE`` on whole seconds). Resource metrics are judged by
``harness.verdict.thresholds.evaluate`` on the sampler's table, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from harness.timing.hdr import PERCENTILE_METHOD as HDR_PERCENTILE_METHOD
from harness.timing.hdr import HdrRow, percentile_ms
from harness.timing.hdr_log import Bucket, merge_windows, read_hdr
from harness.verdict.thresholds import (
    _OPS,
    _PERCENTILES,
    RESOURCE_METRICS,
    Threshold,
    ThresholdResult,
    Verdict,
    _fmt,
    _windows,
    _worst,
    evaluate,
)

__all__ = ["HdrVerdict", "evaluate_hdr", "evaluate_run"]


@dataclass(frozen=True)
class HdrVerdict(Verdict):
    """A verdict whose request figures came from the HDR histograms; ``to_dict`` says so."""

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["percentile_method"] = HDR_PERCENTILE_METHOD
        out["percentile_source"] = "hdr"
        return out


def _matches(threshold: Threshold, row: HdrRow) -> bool:
    endpoint = threshold.endpoint
    return endpoint is None or endpoint in (row.name, f"{row.request_type} {row.name}".strip())


def _value(metric: str, bucket: Bucket, span_s: float) -> float | None:
    if metric in ("requests", "rps"):
        return float(bucket.count) if metric == "requests" else bucket.count / span_s
    if bucket.count == 0:
        return None
    if metric == "failure_ratio":
        return bucket.failures / bucket.count
    histogram = bucket.histogram
    if metric == "max":
        return histogram.get_max_value() / 1000.0
    if metric == "mean":
        return histogram.get_mean_value() / 1000.0
    num, den = _PERCENTILES[metric]
    return percentile_ms(histogram, 100.0 * num / den)


def evaluate_hdr(threshold: Threshold, table: pa.Table, duration_s: float, start_s: float) -> ThresholdResult:
    """One request threshold on the histograms of ``table`` (rows of ``harness.timing.hdr.HDR_SCHEMA``)."""

    def result(status: Literal["pass", "fail", "error"], measured: float | None, window: float | None,
               detail: str) -> ThresholdResult:  # fmt: skip
        return ThresholdResult(threshold.text, status, measured, threshold.unit, threshold.limit, window, detail)

    compare = _OPS[threshold.op]
    window_s = threshold.window_s or 1e12  # without "over": one window holds the whole run
    found: list[Bucket] = []
    seen = {"endpoint": False}

    def group(row: HdrRow) -> str | None:
        if row.kind != "response" or not _matches(threshold, row):
            return None
        seen["endpoint"] = True
        return "all"

    origin = start_s if threshold.window_s else 0.0
    merge_windows(table, window_s, origin, group, lambda _key, bucket: found.append(bucket))
    if threshold.endpoint is not None and not seen["endpoint"]:
        return result("error", None, None, f"no requests for endpoint {threshold.endpoint!r} in the histograms")
    if threshold.window_s is None:
        bucket = found[0] if found else Bucket(start_s)
        value = _value(threshold.metric, bucket, duration_s)
        if value is None:
            return result("error", None, None, "no requests in the histograms")
        detail = f"measured {_fmt(value, threshold.unit)} ({bucket.count:,} requests, HDR histograms)"
        return result("pass" if compare(value, threshold.limit) else "fail", value, None, detail)
    spans = _windows(threshold.window_s, duration_s, allow_partial=threshold.metric != "requests")
    if not spans:
        reason = f"the run lasted {duration_s:g} s, less than half the {threshold.window_s:g} s window"
        return result("error", None, None, reason)
    by_offset = {round(b.start_s - start_s, 6): b for b in found}
    values, kept = [], []
    for i, (offset, length_s) in enumerate(spans):
        bucket = by_offset.get(round(offset, 6), Bucket(start_s + offset))
        if (v := _value(threshold.metric, bucket, length_s)) is not None:
            values.append(v)
            kept.append((i, bucket.count))
    if not values:
        return result("error", None, None, f"no window of {threshold.window_s:g} s had requests in the histograms")
    worst = _worst(values, threshold.op, threshold.limit)
    (w, count), value = kept[worst], values[worst]
    detail = (f"measured {_fmt(value, threshold.unit)} in the window starting at {spans[w][0]:g} s ({count:,} "
              f"requests; worst of {len(spans)} windows; HDR histograms)")  # fmt: skip
    ok = all(compare(v, threshold.limit) for v in values)
    return result("pass" if ok else "fail", value, spans[w][0], detail)


def evaluate_run(
    thresholds: Sequence[Threshold],
    requests: pa.Table | None,
    duration_s: float,
    samples: pa.Table | None = None,
    *,
    start_s: float,
    hdr_path: Path | None = None,
) -> Verdict:
    """The run's verdict: request thresholds on the HDR histograms at ``hdr_path`` when it holds any (an
    ``HdrVerdict``), else on the request log as ``harness.verdict.thresholds.evaluate`` does; resource thresholds on
    ``samples``. Results keep the thresholds' order."""
    table = read_hdr(hdr_path) if hdr_path is not None else None
    if table is None or table.num_rows == 0:
        return evaluate(thresholds, requests, duration_s, samples, start_s=start_s)
    resource = [t for t in thresholds if t.metric in RESOURCE_METRICS]
    judged = iter(evaluate(resource, None, duration_s, samples, start_s=start_s).results if resource else [])
    results = [next(judged) if t.metric in RESOURCE_METRICS else evaluate_hdr(t, table, duration_s, start_s)
               for t in thresholds]  # fmt: skip
    return HdrVerdict(results)
