"""tests.csv: one row per test, for spreadsheets and scripts.

Safe to open in a spreadsheet: a cell that starts with ``=``, ``+``, ``-``, ``@``,
tab or carriage return (what spreadsheets read as a formula) is prefixed with ``'``
(OWASP's advice for CSV injection); quoting is the csv module's own.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from kakeya_evidence.common.schema import TestRow

__all__ = ["CSV_COLUMNS", "render_csv", "spreadsheet_safe"]

CSV_COLUMNS = (
    "nodeid",
    "module",
    "outcome",
    "duration_s",
    "message",
    "exception",
    "path",
    "line",
    "worker",
    "start_s",
    "stop_s",
    "rerun_outcomes",
    "device",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> str:
    """A cell's text, defused when a spreadsheet would read it as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def render_csv(rows: Sequence[TestRow]) -> str:
    """The CSV text: a header, then one line per test in the given order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        data = row.to_dict(outputs=False)
        data["rerun_outcomes"] = " ".join(row.rerun_outcomes)
        data["device"] = row.device
        writer.writerow([_cell(data.get(name)) for name in CSV_COLUMNS])
    return buffer.getvalue()


def _cell(value: Any) -> str:
    # numbers stay numbers (a negative start time is still a number, not a formula)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return spreadsheet_safe(value)
