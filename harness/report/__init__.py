"""The reports: a run's combined report (``build_report``: report.html, summary.json, summary.md) and the
comparison of two campaigns (``harness.report.comparison``).

Modules: ``rundata/`` is the reading layer (the run directory's files read back, ``RunView``: the series on one
time axis, and the findings read from it); ``build`` assembles a run's report from it; ``charts``,
``distribution``, ``open_model``, ``profile`` and ``prometheus`` draw its parts, ``tables``, ``verdict``,
``summary``, ``stress`` and ``html`` write them; ``assets`` shares plotly.js between reports; ``comparison`` and
``ab_page`` are the gate's pages.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SCHEMA_VERSION", "NotARunDirectoryError", "ReportResult", "build_report", "render_markdown"]


def __getattr__(name: str) -> Any:
    # Lazy: importing the reading layer (harness.report.rundata, e.g. for the live web UI) imports this package
    # first; importing build here eagerly would load every renderer with it.
    if name in __all__:
        from harness.report import build

        return getattr(build, name)
    raise AttributeError(f"module 'harness.report' has no attribute {name!r}")
