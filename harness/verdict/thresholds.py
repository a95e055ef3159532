"""Declarative pass/fail thresholds, evaluated against a run's request log and resource samples.

One string per threshold, the same in profile files and on the command line (``--threshold``); the syntax is
parsed by ``profiles.threshold_syntax``, in the lower room (a profile checks its thresholds when it loads)::

    [<endpoint>: ]<metric> <op> <value>[unit] [over <N>s]

    p95 < 50ms                       latency (ms, or s), over all requests
    GET /v1/online/{group}/{feature}/{entity_id}: p99 <= 20ms
    failure_ratio < 1%               a percentage (the % is required, but for 0)
    rps >= 200                       requests per second over the run
    p95 < 50ms over 30s              must hold in EVERY 30 s window
    service.rss_growth_mb < 200      resource metric from the sampler's table

How each figure is computed is spelled out in ``PERCENTILE_METHOD``, ``WINDOW_RULE`` and ``RESOURCE_RULE``;
``Verdict.to_dict()`` carries these texts so a report can say how its numbers were made.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from profiles.threshold_syntax import (
    _PERCENTILES,
    METRICS,
    RESOURCE_METRICS,
    THRESHOLD_SEPARATORS,
    Threshold,
    parse_thresholds,
    split_thresholds,
)

__all__ = [
    "METRICS",
    "PERCENTILE_METHOD",
    "RESOURCE_METRICS",
    "RESOURCE_RULE",
    "THRESHOLD_EXIT_CODE",
    "THRESHOLD_SEPARATORS",
    "WINDOW_RULE",
    "Threshold",
    "ThresholdResult",
    "Verdict",
    "check_endpoints",
    "evaluate",
    "parse_thresholds",
    "split_thresholds",
]

# The exit code of a Locust run whose thresholds failed or could not be measured (Locust itself uses 0-2).
THRESHOLD_EXIT_CODE = 3

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq,
}  # fmt: skip
_MB = 2**20  # bytes per MB, as psutil/top count them (MiB)

PERCENTILE_METHOD = (
    "nearest rank over all requests (ok and failed, as Locust counts them): the p-th percentile of n latencies is "
    "the ceil(p/100 * n)-th smallest, always an observed value (numpy method 'inverted_cdf')"
)
WINDOW_RULE = (
    "'over Ns': tumbling windows [start + k*N, start + (k+1)*N) from the run start (the first request's ts_s "
    "unless start_s is given) to start + duration_s; a trailing partial window counts if it covers at least N/2 "
    "seconds (rps divides by the seconds it covers; 'requests' skips it); windows with no requests are skipped "
    "for latency and failure_ratio; the threshold must hold in every window and the worst window is reported"
)
RESOURCE_RULE = (
    "sampler rows with the same ts_s and scope are summed into one sample; cpu_percent is the mean (percent of one "
    "core), rss_mb the peak, rss_growth_mb the median of the last 10% of samples minus the median of the first 10% "
    "(at least one sample each, at least two samples); MB = 2**20 bytes"
)


def check_endpoints(thresholds: Sequence[Threshold], known: Sequence[str]) -> None:
    """Refuse a threshold naming an endpoint the locustfile never requests.

    ``known`` holds '<request_type> <name>' strings; a threshold may name either that or the bare name.
    Raises ValueError listing the known names."""
    accepted = {*known, *(k.split(" ", 1)[-1] for k in known)}
    for t in thresholds:
        if t.endpoint is not None and t.endpoint not in accepted:
            raise ValueError(
                f"threshold {t.text!r} names an unknown endpoint {t.endpoint!r}; this locustfile's requests are: "
                + ", ".join(known)
            )


@dataclass(frozen=True)
class ThresholdResult:
    """The outcome of one threshold. ``measured`` and ``limit`` are in ``unit`` (base units, see Threshold);
    ``window_start_s`` is the worst window's offset from the run start, None for a whole-run figure."""

    threshold: str
    status: Literal["pass", "fail", "error"]
    measured: float | None
    unit: str
    limit: float
    window_start_s: float | None
    detail: str

    def line(self) -> str:
        """One line for a person, e.g. 'FAIL  p95 < 50ms: measured 73.2 ms (1,204 requests)'."""
        return f"{self.status.upper():<5} {self.threshold}: {self.detail}"


@dataclass(frozen=True)
class Verdict:
    """All threshold results of a run; it passes only if every threshold passed (an error is not a pass)."""

    results: list[ThresholdResult]

    @property
    def passed(self) -> bool:
        return all(r.status == "pass" for r in self.results)

    def lines(self) -> list[str]:
        """One line per failed or errored threshold, in the order the thresholds were given."""
        return [r.line() for r in self.results if r.status != "pass"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN measurements become None; the method texts say how the figures were computed."""
        results = [asdict(r) for r in self.results]
        for r in results:
            if r["measured"] is not None and not math.isfinite(r["measured"]):
                r["measured"] = None
        return {
            "passed": self.passed,
            "percentile_method": PERCENTILE_METHOD,
            "window_rule": WINDOW_RULE,
            "resource_rule": RESOURCE_RULE,
            "results": results,
        }


def _fmt(value: float, unit: str) -> str:
    if unit == "ratio":
        return f"{value * 100:.2f}%"
    if unit == "requests":
        return f"{value:,.0f} requests"
    number = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"
    return f"{number}%" if unit == "%" else f"{number} {unit}"


class _Columns:
    """The request log as numpy arrays (sorted by ts_s on demand), with endpoint masks cached by name."""

    _REQUIRED = ("ts_s", "request_type", "name", "latency_ms", "ok")

    def __init__(self, requests: pa.Table | pd.DataFrame | None) -> None:
        if requests is None:
            requests = pd.DataFrame({c: pd.Series(dtype=object) for c in self._REQUIRED})
        names = list(requests.column_names if isinstance(requests, pa.Table) else requests.columns)
        if missing := [c for c in self._REQUIRED if c not in names]:
            raise ValueError(f"request log lacks columns {missing}: it needs {list(self._REQUIRED)}, has {names}")
        if isinstance(requests, pa.Table):
            col = requests.column
            self.ts_s = col("ts_s").to_numpy().astype(np.float64, copy=False)
            self.latency_ms = col("latency_ms").to_numpy().astype(np.float64, copy=False)
            self.failed = ~pc.fill_null(col("ok"), False).to_numpy().astype(bool, copy=False)
            self.type_code, self.types = _arrow_codes(col("request_type"))
            self.name_code, self.names = _arrow_codes(col("name"))
        else:
            self.ts_s = requests["ts_s"].to_numpy(dtype=np.float64)
            self.latency_ms = requests["latency_ms"].to_numpy(dtype=np.float64, na_value=np.nan)
            self.failed = ~requests["ok"].to_numpy(dtype=bool, na_value=False)
            self.type_code, self.types = _pandas_codes(requests["request_type"])
            self.name_code, self.names = _pandas_codes(requests["name"])
        self._masks: dict[str, np.ndarray] = {}

    def sort_by_time(self) -> None:
        if self.ts_s.size and not bool(np.all(self.ts_s[1:] >= self.ts_s[:-1])):
            order = np.argsort(self.ts_s, kind="stable")
            for attr in ("ts_s", "latency_ms", "failed", "type_code", "name_code"):
                setattr(self, attr, getattr(self, attr)[order])
            self._masks.clear()

    def mask(self, endpoint: str) -> np.ndarray:
        """Rows whose name, or '<request_type> <name>', equals ``endpoint``."""
        if endpoint not in self._masks:
            mask = np.zeros(self.ts_s.size, dtype=bool)
            if endpoint in self.names:
                mask |= self.name_code == self.names.index(endpoint)
            for t, rtype in enumerate(self.types):
                name = endpoint[len(rtype) + 1 :] if endpoint.startswith(f"{rtype} ") else None
                if name in self.names:
                    mask |= (self.type_code == t) & (self.name_code == self.names.index(name))
            self._masks[endpoint] = mask
        return self._masks[endpoint]

    def known_endpoints(self) -> list[str]:
        pairs = np.flatnonzero(np.bincount(self.type_code.astype(np.int64) * len(self.names) + self.name_code))
        return [f"{self.types[p // len(self.names)]} {self.names[p % len(self.names)]}".strip() for p in pairs]


def _arrow_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[str]]:
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    column = pc.fill_null(column.cast(pa.large_string()), "")
    uniques = pc.unique(column)
    return pc.index_in(column, value_set=uniques).to_numpy(), [str(u) for u in uniques.to_pylist()]


def _pandas_codes(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    codes, uniques = pd.factorize(series.fillna(""))
    return codes, [str(u) for u in uniques]


def _request_value(metric: str, latency_ms: np.ndarray, failed: np.ndarray, span_s: float) -> float | None:
    """One request metric over one set of rows; None when it needs requests and there are none."""
    n = latency_ms.size
    if metric in ("requests", "rps"):
        return float(n) if metric == "requests" else n / span_s
    if n == 0:
        return None
    if metric == "failure_ratio":
        return np.count_nonzero(failed) / n
    if metric in ("max", "mean"):
        return float(latency_ms.max() if metric == "max" else latency_ms.mean())
    num, den = _PERCENTILES[metric]
    rank = -(-num * n // den)  # ceil(p * n) in integers: the nearest rank, 1-based
    return float(np.partition(latency_ms, rank - 1)[rank - 1])


def _resource_value(kind: str, rss_bytes: np.ndarray, cpu_percent: np.ndarray) -> float | None:
    n = rss_bytes.size
    if n == 0 or (kind == "rss_growth_mb" and n < 2):
        return None
    if kind == "cpu_percent":
        return float(cpu_percent.mean())
    if kind == "rss_mb":
        return float(rss_bytes.max()) / _MB
    k = max(1, math.ceil(n / 10))
    return float(np.median(rss_bytes[-k:]) - np.median(rss_bytes[:k])) / _MB


def _windows(window_s: float, duration_s: float, allow_partial: bool) -> list[tuple[float, float]]:
    """(offset_s, length_s) of each window; see WINDOW_RULE."""
    full = math.floor(duration_s / window_s + 1e-9)
    spans = [(k * window_s, window_s) for k in range(full)]
    rest_s = duration_s - full * window_s
    if allow_partial and rest_s >= window_s / 2 - 1e-9:
        spans.append((full * window_s, rest_s))
    return spans


def _worst(values: list[float], op: str, limit: float) -> int:
    arr = np.asarray(values)
    if op in ("<", "<="):
        return int(np.argmax(arr))
    return int(np.argmin(arr)) if op in (">", ">=") else int(np.argmax(np.abs(arr - limit)))


def _samples_by_scope(samples: pa.Table | pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    if samples is None:
        return {}
    frame = samples.to_pandas() if isinstance(samples, pa.Table) else samples
    needed = ["ts_s", "scope", "cpu_percent", "rss_bytes"]
    if missing := [c for c in needed if c not in frame.columns]:
        raise ValueError(f"samples table lacks columns {missing}: it needs {needed}, has {list(frame.columns)}")
    summed = frame.groupby(["scope", "ts_s"], sort=True)[["cpu_percent", "rss_bytes"]].sum()
    return {str(scope): part.droplevel("scope") for scope, part in summed.groupby(level="scope")}


def evaluate(
    thresholds: Sequence[Threshold | str],
    requests: pa.Table | pd.DataFrame | None,
    duration_s: float,
    samples: pa.Table | pd.DataFrame | None = None,
    *,
    start_s: float | None = None,
) -> Verdict:
    """Evaluate thresholds against a run's request log (columns ts_s, request_type, name, latency_ms, ok) and
    optional sampler table (ts_s, scope, cpu_percent, rss_bytes).

    ``duration_s`` is the run's measured duration in seconds (rps = requests / duration_s); ``start_s`` the run's
    start as epoch seconds, by default the first request's ts_s (else the first sample's). A threshold that cannot
    be measured (no requests for its endpoint, no sampler data for its scope) gets status "error", never "pass".
    Raises ValueError for a bad threshold string, missing columns or duration_s <= 0.
    """
    if not duration_s > 0:
        raise ValueError(f"duration_s must be > 0 seconds (the run's measured duration), got {duration_s!r}")
    parsed = [t if isinstance(t, Threshold) else Threshold.parse(t) for t in thresholds]
    log = _Columns(requests)
    if any(t.window_s for t in parsed):
        log.sort_by_time()
    scopes = _samples_by_scope(samples) if any(t.metric in RESOURCE_METRICS for t in parsed) else {}
    if start_s is None:
        first_samples = [float(s.index.min()) for s in scopes.values()]
        start_s = float(log.ts_s.min()) if log.ts_s.size else min(first_samples, default=0.0)
    return Verdict([_evaluate_one(t, log, scopes, float(duration_s), start_s) for t in parsed])


def _evaluate_one(
    t: Threshold, log: _Columns, scopes: dict[str, pd.DataFrame], duration_s: float, start_s: float
) -> ThresholdResult:
    def result(
        status: Literal["pass", "fail", "error"], measured: float | None, window: float | None, detail: str
    ) -> ThresholdResult:
        return ThresholdResult(t.text, status, measured, t.unit, t.limit, window, detail)

    if t.metric in RESOURCE_METRICS:
        scope, kind = t.metric.split(".", 1)
        if scope not in scopes or scopes[scope].empty:
            return result("error", None, None, f"no sampler data for {scope}")
        frame = scopes[scope]
        ts = frame.index.to_numpy(dtype=np.float64)
        rss, cpu = frame["rss_bytes"].to_numpy(dtype=np.float64), frame["cpu_percent"].to_numpy(dtype=np.float64)
        what = {"cpu_percent": "mean", "rss_mb": "peak", "rss_growth_mb": "last-10% minus first-10% medians"}[kind]

        def measure(lo: int, hi: int, _span_s: float) -> float | None:
            return _resource_value(kind, rss[lo:hi], cpu[lo:hi])

        count_label, empty_reason = f"{scope} samples, {what}", f"fewer than 2 sampler samples for {scope}"
    else:
        rows = log.mask(t.endpoint) if t.endpoint is not None else slice(None)
        ts, latency, failed = log.ts_s[rows], log.latency_ms[rows], log.failed[rows]
        if t.endpoint is not None and ts.size == 0:
            known = log.known_endpoints()
            listed = ", ".join(known[:20]) + (f" and {len(known) - 20} more" if len(known) > 20 else "")
            reason = f"no requests for endpoint {t.endpoint!r}; known endpoints: {listed or 'none'}"
            return result("error", None, None, reason)

        def measure(lo: int, hi: int, span_s: float) -> float | None:
            return _request_value(t.metric, latency[lo:hi], failed[lo:hi], span_s)

        count_label, empty_reason = "requests", "no requests in the log"

    compare = _OPS[t.op]
    if t.window_s is None:
        value = measure(0, ts.size, duration_s)
        if value is None:
            return result("error", None, None, empty_reason)
        extra = f"{np.count_nonzero(failed):,} of {ts.size:,} requests failed" if t.metric == "failure_ratio" else None
        if extra is None:
            extra = f"{ts.size:,} requests in {duration_s:g} s" if t.metric == "rps" else f"{ts.size:,} {count_label}"
        detail = f"measured {_fmt(value, t.unit)} ({extra})"
        return result("pass" if compare(value, t.limit) else "fail", value, None, detail)

    spans = _windows(t.window_s, duration_s, allow_partial=t.metric != "requests")
    if not spans:
        reason = f"the run lasted {duration_s:g} s, less than half the {t.window_s:g} s window"
        return result("error", None, None, reason)
    starts = np.array([start_s + off for off, _ in spans])
    ends = starts + np.array([length for _, length in spans])
    lo, hi = np.searchsorted(ts, starts, "left"), np.searchsorted(ts, ends, "left")
    if math.isclose(spans[-1][0] + spans[-1][1], duration_s):
        hi[-1] = np.searchsorted(ts, ends[-1], "right")  # the run's last instant belongs to the last window
    values, kept = [], []
    for i, (_, length_s) in enumerate(spans):
        if (v := measure(int(lo[i]), int(hi[i]), length_s)) is not None:
            values.append(v)
            kept.append(i)
    if not values:
        return result("error", None, None, f"no window of {t.window_s:g} s had data: {empty_reason}")
    w = kept[_worst(values, t.op, t.limit)]
    value, skipped = values[kept.index(w)], len(spans) - len(kept)
    note = f"; {skipped} empty windows skipped" if skipped else ""
    detail = (
        f"measured {_fmt(value, t.unit)} in the window starting at {spans[w][0]:g} s "
        f"({int(hi[w] - lo[w]):,} {count_label}; worst of {len(spans)} windows{note})"
    )
    ok = all(compare(v, t.limit) for v in values)
    return result("pass" if ok else "fail", value, spans[w][0], detail)
