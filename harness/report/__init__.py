"""The reports: a run's combined report (``build_report``: report.html, summary.json, summary.md) and the
comparison of two campaigns (``harness.report.comparison``).

Modules: ``build`` assembles a run's report from ``load`` (the run directory's files) and ``view`` (the series on
one time axis); ``charts``, ``distribution``, ``open_model``, ``profile`` draw its parts, ``tables``, ``verdict``,
``summary`` and ``html`` write them; ``assets`` shares plotly.js between reports.
"""

from __future__ import annotations

from harness.report.build import SCHEMA_VERSION, NotARunDirectoryError, ReportResult, build_report, render_markdown

__all__ = ["SCHEMA_VERSION", "NotARunDirectoryError", "ReportResult", "build_report", "render_markdown"]
