"""The reports: a run's combined report (``build_report``: report.html, summary.json, summary.md) and the
comparison of two campaigns (``harness.report.comparison``).

Modules: ``build`` assembles a run's report from ``load`` (the run directory's files) and ``view`` (the series on
one time axis); ``charts``, ``distribution``, ``open_model``, ``profile`` draw its parts, ``tables``, ``verdict``,
``summary`` and ``html`` write them; ``assets`` shares plotly.js between reports.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SCHEMA_VERSION", "NotARunDirectoryError", "ReportResult", "build_report", "render_markdown"]


def __getattr__(name: str) -> Any:
    # Lazy: harness.analysis imports harness.report.view, and build imports harness.analysis; importing build here
    # eagerly would make every ``harness.report.<module>`` import go round that circle.
    if name in __all__:
        from harness.report import build

        return getattr(build, name)
    raise AttributeError(f"module 'harness.report' has no attribute {name!r}")
