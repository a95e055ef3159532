"""Baselines: a campaign's metrics kept under a name, small enough for a team to commit, and their history.

``python -m harness baseline save CAMPAIGN --as NAME`` copies what a comparison needs (no run directories)::

    baselines/<name>/
        baseline.json          name, saved_at, the machine fingerprint key, the source campaign, git commit
        campaign.json          the campaign's record (scenario, fingerprint, conditions, faults)
        metrics.parquet, percentiles.parquet, resources.parquet   as in the campaign (tens of KB)
        history.csv            one row per save, endpoint and metric: the median over the campaign's runs

Saving again under the same name replaces the metrics and appends to ``history.csv``, the series that
``python -m harness baseline history NAME`` searches for steps (``harness.gate.stats.change_points``). A campaign
whose service injected a fault is refused as a baseline unless ``allow_faults`` says it is meant, and so is one
with too few runs for a comparison against as many candidate runs to reach significance (``MIN_BASELINE_RUNS``;
3 vs 3 runs: the smallest possible p is 0.1) unless ``force``.
"""

from __future__ import annotations

import csv
import math
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from harness.gate import stats
from harness.gate.campaign_data import load_campaign
from harness.gate.metrics_table import BadInputError, write_json
from harness.target.faults import describe_faults

__all__ = ["HISTORY_FIELDS", "MIN_BASELINE_RUNS", "HistoryStep", "baseline_history", "find_steps", "save_baseline"]

HISTORY_FIELDS = ("saved_at", "commit", "endpoint", "metric", "median", "runs")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MIN_BASELINE_RUNS = stats.min_runs_to_reach(0.05)  # 4: 2 / C(8, 4) = 0.029 < 0.05 (the gate's default alpha)
_FILES = ("campaign.json", "metrics.parquet", "percentiles.parquet", "resources.parquet")


def _check_name(name: str) -> None:
    if not _NAME.match(name) or name in (".", ".."):
        raise BadInputError(f"baseline name {name!r} is invalid: use [A-Za-z0-9_.-], 1-64 characters")


def save_baseline(
    campaign_dir: Path, name: str, root: Path, *, allow_faults: bool = False, force: bool = False
) -> Path:
    """Store the campaign at ``campaign_dir`` as baseline ``name`` under ``root``; returns its directory.

    Raises BadInputError for an invalid name, a directory that is not a campaign, (without ``allow_faults``) a
    campaign that ran with an injected fault, or (without ``force``) one with fewer than ``MIN_BASELINE_RUNS`` runs
    with metrics: every comparison against it would be inconclusive.
    """
    _check_name(name)
    data = load_campaign(campaign_dir)
    banner = describe_faults(data.info.get("faults"))
    if banner and not allow_faults:
        raise BadInputError(f"{campaign_dir} ran with an {banner}; refused as a baseline (--allow-faults to keep it)")
    runs = len(set(data.metrics.column("run").to_pylist()))
    if runs < MIN_BASELINE_RUNS and not force:
        raise BadInputError(
            f"{campaign_dir} has {runs} run(s) with metrics: a comparison against it with as many candidate runs "
            f"cannot reach significance (smallest possible p {stats.min_p_value(runs, runs):.2g}); refused as a "
            f"baseline (campaign --repeat >= {MIN_BASELINE_RUNS}, 10 recommended; --force to keep it)"
        )
    target = root / name
    target.mkdir(parents=True, exist_ok=True)
    for file in _FILES:
        if (campaign_dir / file).is_file():
            shutil.copyfile(campaign_dir / file, target / f".{file}.tmp")
            (target / f".{file}.tmp").replace(target / file)
    fingerprint = data.info.get("fingerprint") or {}
    saved_at = datetime.now(UTC).isoformat()
    commit = ((fingerprint.get("software") or {}).get("git") or {}).get("commit")
    write_json(
        target / "baseline.json",
        {
            "name": name,
            "saved_at": saved_at,
            "fingerprint_key": fingerprint.get("key"),
            "machine": fingerprint.get("machine"),
            "source_campaign": str(campaign_dir),
            "commit": commit,
            "runs": data.info.get("runs_with_metrics"),
            "faults": data.info.get("faults") or {},
        },
    )
    _append_history(target / "history.csv", data.metrics, saved_at, commit)
    return target


def _append_history(path: Path, metrics: Any, saved_at: str, commit: str | None) -> None:
    endpoints = metrics.column("endpoint").to_pylist()
    names = metrics.column("metric").to_pylist()
    values = metrics.column("value").to_numpy(zero_copy_only=False).astype(float)
    grouped: dict[tuple[str, str], list[float]] = {}
    for endpoint, metric, value in zip(endpoints, names, values, strict=True):
        if math.isfinite(value):
            grouped.setdefault((endpoint, metric), []).append(value)
    new = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(HISTORY_FIELDS)
        for (endpoint, metric), vals in sorted(grouped.items()):
            writer.writerow([saved_at, commit or "", endpoint, metric, f"{float(np.median(vals)):.6g}", len(vals)])


def baseline_history(name: str, root: Path) -> dict[tuple[str, str], list[tuple[str, str, float]]]:
    """Per (endpoint, metric): the (saved_at, commit, median) of every save, oldest first. BadInputError when the
    baseline or its history is missing or unreadable."""
    _check_name(name)
    path = root / name / "history.csv"
    if not path.is_file():
        raise BadInputError(f"no history for baseline {name!r}: {path} does not exist (save a campaign first)")
    series: dict[tuple[str, str], list[tuple[str, str, float]]] = {}
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                key = (row["endpoint"], row["metric"])
                series.setdefault(key, []).append((row["saved_at"], row["commit"], float(row["median"])))
    except (OSError, KeyError, ValueError, csv.Error) as error:
        raise BadInputError(f"{path} is not a readable history ({type(error).__name__}: {error})") from None
    for points in series.values():
        points.sort(key=lambda point: point[0])
    return series


@dataclass
class HistoryStep:
    """A step in a baseline's history: from ``index`` on (the save at ``saved_at``) the metric moved by ``change``."""

    endpoint: str
    metric: str
    index: int
    saved_at: str
    commit: str
    before_median: float
    after_median: float

    @property
    def change_percent(self) -> float:
        return (self.after_median / self.before_median - 1.0) * 100.0 if self.before_median else math.nan


def find_steps(
    series: dict[tuple[str, str], list[tuple[str, str, float]]], min_size: int = 3, alpha: float = 0.01
) -> list[HistoryStep]:
    """The change points of every series (``harness.gate.stats.change_points``), each with the medians on both sides.

    ``alpha`` is per series; the default 1% keeps a history of many metrics from crying wolf.
    """
    steps: list[HistoryStep] = []
    for (endpoint, metric), points in sorted(series.items()):
        values = np.asarray([p[2] for p in points])
        cuts = stats.change_points(values, min_size=min_size, alpha=alpha)
        bounds = [0, *cuts, values.size]
        for i, cut in enumerate(cuts):
            before = float(np.median(values[bounds[i] : cut]))
            after = float(np.median(values[cut : bounds[i + 2]]))
            steps.append(HistoryStep(endpoint, metric, cut, points[cut][0], points[cut][1], before, after))
    return steps
