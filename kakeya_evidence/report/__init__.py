"""The report: evidence.json, summary.md, tests.csv and the self-contained report.html.

The writer (and matplotlib with it) loads on first use, so that the suite stage can use
the typed schema (`report.schema`) without paying for the plotting stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kakeya_evidence.report.writer import (
        RUNNER_STAGE,
        Report,
        ReportConfig,
        write_report,
    )

__all__ = ["RUNNER_STAGE", "Report", "ReportConfig", "write_report"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("kakeya_evidence.report.writer"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
