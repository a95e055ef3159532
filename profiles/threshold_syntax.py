"""The threshold syntax, one string per threshold, shared by profile files (``thresholds = [...]``, checked when a
profile loads) and the harness's ``--threshold`` (``harness.verdict.thresholds`` evaluates them against a run)::

    [<endpoint>: ]<metric> <op> <value>[unit] [over <N>s]

Pure parsing (no numpy, no Locust), below both ``profiles.model`` and ``harness.verdict.thresholds``:
``Threshold.parse`` turns a string into a ``Threshold`` whose ``limit`` is in base units, or raises ValueError quoting
it and saying what was expected; ``split_thresholds`` splits one option value holding several.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "LATENCY_METRICS",
    "METRICS",
    "REQUEST_METRICS",
    "RESOURCE_METRICS",
    "RESOURCE_SCOPES",
    "THRESHOLD_SEPARATORS",
    "Threshold",
    "parse_thresholds",
    "split_thresholds",
]

# One option value may hold several thresholds, separated by ';' or a newline (see split_thresholds).
THRESHOLD_SEPARATORS = ";\n"
# Percentiles as exact fractions, so the nearest rank is computed in integers (99.9/100*1000 is not 999.0).
_PERCENTILES: dict[str, tuple[int, int]] = {
    "p50": (50, 100), "p75": (75, 100), "p90": (90, 100), "p95": (95, 100), "p99": (99, 100), "p99.9": (999, 1000),
}  # fmt: skip
LATENCY_METRICS = (*_PERCENTILES, "max", "mean")
REQUEST_METRICS = (*LATENCY_METRICS, "failure_ratio", "rps", "requests")
RESOURCE_SCOPES = ("service", "generator", "host")
RESOURCE_METRICS = tuple(f"{s}.{k}" for s in RESOURCE_SCOPES for k in ("cpu_percent", "rss_mb", "rss_growth_mb"))
METRICS = REQUEST_METRICS + RESOURCE_METRICS

_GRAMMAR = "'[<endpoint>: ]<metric> <op> <value>[ms|s|%] [over <N>s]', e.g. 'p95 < 50ms over 30s'"
_OP_RE = re.compile(r"\s*(<=|>=|==|<|>)\s*")
_VALUE_RE = re.compile(r"([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(ms|s|%)?")
_WINDOW_RE = re.compile(r"\s+over\s+(\d+(?:\.\d*)?)\s*s\s*$")


def _invalid(text: str, problem: str, *, grammar: bool = True) -> ValueError:
    return ValueError(f"invalid threshold {text!r}: {problem}" + (f"; expected {_GRAMMAR}" if grammar else ""))


@dataclass(frozen=True)
class Threshold:
    """One parsed threshold. ``limit`` is in base units: ms for latency, a ratio 0..1 for failure_ratio,
    requests/s for rps, MB for rss metrics, percent of one core for cpu_percent."""

    endpoint: str | None
    metric: str
    op: str
    limit: float
    window_s: float | None
    text: str

    @classmethod
    def parse(cls, text: str) -> Threshold:
        """Parse one threshold string; raises ValueError quoting it and saying what was expected."""
        body = text.strip()
        if not body:
            raise _invalid(text, "it is empty")
        endpoint = None
        if ": " in body:  # endpoint names may hold ': ' too; the metric part never does, so split on the last
            endpoint, body = (part.strip() for part in body.rsplit(": ", 1))
            if not endpoint:
                raise _invalid(text, "the endpoint name before ': ' is empty")
        match = re.match(r"[A-Za-z_][\w.]*", body)
        metric = match.group() if match else body.split(" ", 1)[0]
        if metric not in METRICS:
            hint = "" if endpoint else " (to scope it to an endpoint, write '<endpoint>: <metric> ...')"
            raise _invalid(text, f"unknown metric {metric!r}, known: {' '.join(METRICS)}{hint}")
        rest = body[len(metric) :]
        window_s = None
        if window := _WINDOW_RE.search(rest):
            window_s, rest = float(window.group(1)), rest[: window.start()]
            if window_s <= 0:
                raise _invalid(text, f"the window must be longer than 0 s, got {window.group(1)}s", grammar=False)
        if not (op := _OP_RE.match(rest)):
            raise _invalid(text, f"expected an operator (< <= > >= ==) after {metric!r}, got {rest.strip()!r}")
        value = _VALUE_RE.fullmatch(rest[op.end() :].rstrip())
        if not value:
            raise _invalid(text, f"expected a number with optional unit ms|s|%, got {rest[op.end() :].strip()!r}")
        if endpoint is not None and metric in RESOURCE_METRICS:
            raise _invalid(text, f"{metric} is a resource metric and cannot be scoped to an endpoint", grammar=False)
        limit = _to_base_units(text, metric, float(value.group(1)), value.group(2))
        return cls(endpoint, metric, op.group(1), limit, window_s, text.strip())

    @property
    def unit(self) -> str:
        """The unit of ``limit`` and of measured values: ms, ratio, req/s, requests, % or MB."""
        return _unit(self.metric)


def _unit(metric: str) -> str:
    if metric in LATENCY_METRICS:
        return "ms"
    return {"failure_ratio": "ratio", "rps": "req/s", "requests": "requests"}.get(
        metric, "%" if metric.endswith("cpu_percent") else "MB"
    )


def _to_base_units(text: str, metric: str, value: float, unit: str | None) -> float:
    def bad(problem: str) -> ValueError:
        return _invalid(text, problem, grammar=False)

    if value < 0:
        raise bad(f"the limit must be >= 0, got {value:g}")
    if metric in LATENCY_METRICS:
        if unit == "%":
            raise bad(f"{metric} is a latency: use ms (the default) or s, not %")
        return value * 1000.0 if unit == "s" else value
    if metric == "failure_ratio":
        if unit in ("ms", "s"):
            raise bad(f"failure_ratio takes a percentage (1%), not {unit}")
        if unit is None and value != 0:  # 'failure_ratio < 1' read as a ratio meant 100%: it always passed
            raise bad(
                f"failure_ratio needs the % sign: write {value:g}% (a bare number is ambiguous; only 0 may omit it)"
            )
        if value > 100:
            raise bad(f"failure_ratio is within 0%..100%, got {value:g}%")
        return value / 100.0
    if unit is not None and not (unit == "%" and metric.endswith("cpu_percent")):
        raise bad(f"{metric} takes a plain number in {_unit(metric)}, without the unit {unit!r}")
    return value


def parse_thresholds(texts: Sequence[str]) -> list[Threshold]:
    """Parse several threshold strings; the first bad one raises ValueError."""
    return [Threshold.parse(text) for text in texts]


def split_thresholds(values: Sequence[str]) -> list[str]:
    """Split each value on THRESHOLD_SEPARATORS (';' and newlines), dropping empty parts: one option value
    (``--threshold``, ``FEATURELOAD_THRESHOLD``, ``make run THRESHOLDS=``) may hold several thresholds."""
    return [part.strip() for value in values for part in re.split(r"[;\n]", value) if part.strip()]
