"""Bounded output: each long text keeps its end, and all of them together fit a budget.

A failure shows at the end of its output, so clipping keeps the end and says how much
went. The report has a total budget (``--max-report-mb``, default 10 MB): when the
outputs do not fit, the largest are clipped first, all to one common length (water
filling), so a test that printed 50 MB costs as much as one that printed 5 KB.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import escape

from kakeya_evidence.common.schema import OUTPUT_FIELDS, TestRow
from kakeya_evidence.common.text import MAX_TEXT_CHARS, clip_end

__all__ = [
    "DEFAULT_MAX_REPORT_MB",
    "escaped_size",
    "fit_outputs",
    "water_level",
]

DEFAULT_MAX_REPORT_MB = 10.0


def escaped_size(text: str) -> int:
    """Bytes the text takes once HTML-escaped and UTF-8 encoded."""
    return len(str(escape(text)).encode("utf-8", errors="replace"))


def water_level(sizes: Sequence[int], budget: int) -> int | None:
    """The common cap that makes sum(min(size, cap)) fit budget; None when all fit as they are."""
    if sum(sizes) <= budget:
        return None
    ordered = sorted(sizes)
    spent = 0
    for index, size in enumerate(ordered):
        remaining = len(ordered) - index
        if spent + size * remaining > budget:
            return max(0, (budget - spent) // remaining)
        spent += size
    return ordered[-1]


def fit_outputs(rows: Sequence[TestRow], budget_bytes: int) -> tuple[list[TestRow], dict[str, int]]:
    """Clip outputs per field (MAX_TEXT_CHARS), then to budget_bytes in total, largest first.

    Args:
        rows: The test rows, outputs as the suite recorded them.
        budget_bytes: What all outputs together may take in report.html (escaped bytes).

    Returns:
        The rows with clipped outputs, and {clipped_fields, clipped_chars, cap_bytes}.
    """
    capped = [_cap_fields(row) for row in rows]
    sizes = {
        (index, name): escaped_size(getattr(row, name))
        for index, row in enumerate(capped)
        for name in OUTPUT_FIELDS
        if getattr(row, name)
    }
    cap = water_level(list(sizes.values()), max(0, budget_bytes))
    stats = {"clipped_fields": 0, "clipped_chars": 0, "cap_bytes": -1 if cap is None else cap}
    for index, (row, original) in enumerate(zip(capped, rows, strict=True)):
        changes: dict[str, str] = {}
        for name in OUTPUT_FIELDS:
            text = getattr(row, name)
            size = sizes.get((index, name), 0)
            if cap is not None and size > cap:
                # escaped bytes per character vary; scale the cap to this text's own ratio
                text = clip_end(text, int(cap * len(text) / size))
                changes[name] = text
            if len(text) != len(getattr(original, name)):
                stats["clipped_fields"] += 1
                stats["clipped_chars"] += len(getattr(original, name)) - len(text)
        capped[index] = row.with_outputs(changes) if changes else row
    return capped, stats


def _cap_fields(row: TestRow) -> TestRow:
    changes = {
        name: clip_end(getattr(row, name), MAX_TEXT_CHARS)
        for name in OUTPUT_FIELDS
        if len(getattr(row, name)) > MAX_TEXT_CHARS
    }
    return row.with_outputs(changes) if changes else row
