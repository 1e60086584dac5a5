"""The report: evidence.json, summary.md, tests.csv and the self-contained report.html."""

from __future__ import annotations

from kakeya_evidence.report.writer import RUNNER_STAGE, Report, ReportConfig, write_report

__all__ = ["RUNNER_STAGE", "Report", "ReportConfig", "write_report"]
