"""A campaign directory as written by ``harness.gate.campaign`` and read by compare, baselines and the campaign
report: the Parquet schemas of its tables and ``load_campaign``, which reads one back as ``CampaignData``.

Below the campaign runner and the reports, so that reading a campaign needs neither (see the layout in
``harness.gate.campaign``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from harness.gate.metrics_table import read_json_object, read_parquet

__all__ = ["CURVES_SCHEMA", "METRICS_SCHEMA", "RESOURCES_SCHEMA", "CampaignData", "load_campaign"]

METRICS_SCHEMA = pa.schema(
    [
        ("run", pa.int32()),
        ("run_dir", pa.string()),
        ("endpoint", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("unit", pa.string()),
    ]
)
CURVES_SCHEMA = pa.schema(
    [("run", pa.int32()), ("endpoint", pa.string()), ("quantile", pa.float64()), ("latency_ms", pa.float64())]
)
RESOURCES_SCHEMA = pa.schema(
    [
        ("run", pa.int32()),
        ("t_s", pa.float64()),
        ("service_cpu_percent", pa.float64()),
        ("service_rss_mb", pa.float64()),
        ("generator_cpu_percent", pa.float64()),
        ("generator_rss_mb", pa.float64()),
    ]
)


@dataclass
class CampaignData:
    """A finished campaign as compare and baseline read it."""

    path: Path
    info: dict[str, Any]
    metrics: pa.Table
    curves: pa.Table | None = None
    resources: pa.Table | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def load_campaign(path: Path) -> CampaignData:
    """Read a campaign directory. Raises BadInputError (one line) when it is not one or a file is corrupt."""
    info_path = path / "campaign.json"
    info = read_json_object(info_path, f"{path} is not a campaign directory: it has no campaign.json", ("scenario",),
                            f"{info_path} lacks its scenario: not written by `python -m harness campaign`")  # fmt: skip
    metrics = read_parquet(path / "metrics.parquet", tuple(METRICS_SCHEMA.names))
    curves = (
        read_parquet(path / "percentiles.parquet", tuple(CURVES_SCHEMA.names))
        if (path / "percentiles.parquet").exists()
        else None
    )
    resources = (
        read_parquet(path / "resources.parquet", ("run", "t_s")) if (path / "resources.parquet").exists() else None
    )
    return CampaignData(path=path, info=info, metrics=metrics, curves=curves, resources=resources)
