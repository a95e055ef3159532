"""A scalability run directory: ``runs/<stamp>-scalability-<name>/``, written by tests/performance/scalability.

Files::

    metadata.json      what produced it: suite, scale (quick or full), command line, versions, machine (as a load run)
    results.parquet    one row per measurement (size, seconds, bytes, users, rps, ... as the suite measured them)
    scaling.json       the fits (growth exponents, USL, knees) and the printed lines, for the performance reporter
    figure.html        the measured points and the fits (plotly; plotly.js shared in ``runs/_assets/``)

The run directory is the same contract as a load run's: the performance reporter reads only these files.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import pyarrow as pa
import pyarrow.parquet as pq

from harness.recording.rundir import RunDirectory, collect_environment
from harness.report.assets import plotly_script

__all__ = ["SCALING_FILE", "ScalingRun"]

SCALING_FILE = "scaling.json"


class ScalingRun:
    """Collects one suite's rows, fits and lines, and writes them as a run directory (``write``)."""

    def __init__(self, root: Path, name: str, scale: str) -> None:
        self.root, self.name, self.scale = Path(root), name, scale
        self.rows: list[dict[str, Any]] = []
        self.fits: dict[str, Any] = {}
        self.lines: list[str] = []
        self.started_at = datetime.now(UTC)

    def add(self, **row: Any) -> None:
        """One measurement (every row of a suite should have the same keys; missing ones become null)."""
        self.rows.append(row)

    def fit(self, key: str, value: Mapping[str, Any]) -> None:
        """A fit's result, e.g. ``fit("save", growth.to_dict())``."""
        self.fits[key] = dict(value)

    def say(self, line: str) -> None:
        """Print a figure and keep it for scaling.json."""
        print(line)
        self.lines.append(line)

    def write(self, figure: go.Figure | None = None) -> Path:
        """Write the run directory; returns its path."""
        run = RunDirectory(self.root, f"scalability-{self.name}", now=self.started_at)
        keys = list(dict.fromkeys(k for row in self.rows for k in row))
        table = pa.Table.from_pylist([{k: row.get(k) for k in keys} for row in self.rows])
        pq.write_table(table, run.file("results.parquet"))
        ended = datetime.now(UTC)
        run.write_json(
            "metadata.json",
            {
                "scenario": f"scalability-{self.name}",
                "suite": self.name,
                "scale": self.scale,
                "started_at": self.started_at.isoformat(),
                "ended_at": ended.isoformat(),
                "duration_s": round((ended - self.started_at).total_seconds(), 3),
                "environment": collect_environment(os.environ, Path.cwd()),
            },
        )
        run.write_json(
            SCALING_FILE,
            {
                "suite": self.name,
                "scale": self.scale,
                "rows": len(self.rows),
                "fits": _finite(self.fits),
                "lines": self.lines,
            },
        )
        if figure is not None:
            script = plotly_script(run.path, self_contained=False)
            body = figure.to_html(include_plotlyjs=False, full_html=False)
            run.file("figure.html").write_text(
                f"<!doctype html><html><head><meta charset='utf-8'><title>{self.name}</title>{script.tag}</head>"
                f"<body><h1>scalability: {self.name} ({self.scale})</h1><pre>{_escape(self.lines)}</pre>{body}"
                "</body></html>",
                encoding="utf-8",
            )
        print(f"scalability {self.name}: {run.path}")
        return run.path


def _escape(lines: Sequence[str]) -> str:
    return "\n".join(lines).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _finite(value: Any) -> Any:
    """The same value with NaN and infinities as None (strict JSON readers refuse them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
