"""prometheus.arrows (``harness.recording.prometheus``) read back as series on the run's time axis: one
``PromSeries`` per query and label set, times in seconds since the run start. The report's Prometheus panels and
summary (``harness.report.prometheus``) draw and sum them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["PromSeries", "prometheus_series"]


@dataclass(frozen=True)
class PromSeries:
    """One series of one query: its labels, times (s since the run start) and values."""

    name: str
    labels: dict[str, str]
    ticks_s: np.ndarray
    values: np.ndarray

    def label(self) -> str:
        """The query's name, with the series' labels when it has any: ``name{route="/x"}``."""
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()) if k != "__name__")
        return f"{self.name}{{{inner}}}" if inner else self.name


def _labels(value: Any) -> dict[str, str]:
    """A labels cell: a JSON object string, or an Arrow map (a list of pairs)."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return {"labels": value}
        return {str(k): str(v) for k, v in parsed.items()} if isinstance(parsed, dict) else {}
    if isinstance(value, list):
        return {str(k): str(v) for k, v in value}
    return {}


def prometheus_series(table: pa.Table | None, t0_s: float) -> dict[str, list[PromSeries]]:
    """The series of prometheus.arrows by query name, in the file's order of names (empty without the file)."""
    if table is None or table.num_rows == 0:
        return {}
    ts = table.column("ts_s").cast(pa.float64()).to_numpy() - t0_s
    values = table.column("value").cast(pa.float64()).to_numpy()
    names = table.column("name").to_pylist()
    labels = table.column("labels").to_pylist()
    rows: dict[tuple[str, str], list[int]] = {}
    for i, (name, label) in enumerate(zip(names, labels, strict=True)):
        rows.setdefault((name, json.dumps(_labels(label), sort_keys=True)), []).append(i)
    result: dict[str, list[PromSeries]] = {}
    for (name, label), index in rows.items():
        order = np.array(index)[np.argsort(ts[index], kind="stable")]
        result.setdefault(name, []).append(PromSeries(name, json.loads(label), ts[order], values[order]))
    return result
