"""The report: evidence.json, summary.md and the self-contained report.html from the stages."""

from __future__ import annotations

from kakeya_evidence.report.writer import RUNNER_STAGE, Report, build_figures, write_report

__all__ = ["RUNNER_STAGE", "Report", "build_figures", "write_report"]
