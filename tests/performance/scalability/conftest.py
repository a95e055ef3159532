"""Fixtures of the scalability suites: the scale (quick in ``make test``, full on demand) and their run directory.

    FEATURELOAD_SCALE=full pytest tests/performance/scalability -s      # the documented, minutes-long sweep
    pytest tests/performance/scalability -s                             # quick: seconds, the same code paths

Quick runs write their run directories under pytest's temporary directory unless ``FEATURELOAD_RUNS_DIR`` names
one; full runs write into ``runs/`` (or ``FEATURELOAD_RUNS_DIR``), where the performance reporter finds them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.suites.scaling_run import ScalingRun

SCALES = ("quick", "full")


@pytest.fixture(scope="session")
def scale() -> str:
    """``quick`` (default) or ``full``, from FEATURELOAD_SCALE."""
    value = os.environ.get("FEATURELOAD_SCALE", "quick").strip().lower() or "quick"
    if value not in SCALES:
        raise pytest.UsageError(f"FEATURELOAD_SCALE={value!r} is not a scale: use one of {', '.join(SCALES)}")
    return value


@pytest.fixture(scope="session")
def scaling_root(scale: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the suites' run directories go."""
    chosen = os.environ.get("FEATURELOAD_RUNS_DIR")
    if chosen:
        return Path(chosen)
    return Path("runs") if scale == "full" else tmp_path_factory.mktemp("scalability-runs")


@pytest.fixture
def new_scaling_run(scaling_root: Path, scale: str) -> Callable[[str], ScalingRun]:
    """A factory: ``new_scaling_run("data_scaling-store")`` -> a ScalingRun writing runs/<stamp>-scalability-<name>/."""
    return lambda name: ScalingRun(scaling_root, name, scale)
