"""Bounded output: each long text keeps its end, and all of them together fit a budget.

A failure shows at the end of its output, so clipping keeps the end and says how much
went. The report has a total budget (``--max-report-mb``, default 10 MB): when the
outputs do not fit, the largest are clipped first, all to one common length (water
filling), so a test that printed 50 MB costs as much as one that printed 5 KB.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from markupsafe import escape

from kakeya_evidence.report.schema import OUTPUT_FIELDS, TestRow

__all__ = [
    "DEFAULT_MAX_REPORT_MB",
    "MAX_FIELD_CHARS",
    "clip_tail",
    "escaped_size",
    "fit_outputs",
    "water_level",
]

DEFAULT_MAX_REPORT_MB = 10.0
# Per test: each of traceback, stdout and stderr keeps at most its last this many characters.
MAX_FIELD_CHARS = 20_000
CUT_NOTE = "[... {cut:,} characters cut; the end is kept ...]\n"
_SUITE_MARK = re.compile(r"\[\.\.\. [\d,]+ characters cut \.\.\.\]\n")


def clip_tail(text: str, max_chars: int) -> str:
    """Keep the last max_chars characters of text, after a note saying how many went."""
    return _clip(text, max_chars)[0]


def _clip(text: str, max_chars: int) -> tuple[str, int]:
    """The clipped text and how many characters of it went (never negative)."""
    if len(text) <= max_chars + _upstream_mark(text):
        return text, 0  # the suite already clipped it to this length, and said so
    keep = max(0, max_chars)
    cut = len(text) - keep
    return CUT_NOTE.format(cut=cut) + (text[-keep:] if keep else ""), cut


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
    """Clip outputs per field (MAX_FIELD_CHARS), then to budget_bytes in total, largest first.

    Args:
        rows: The test rows, outputs as the suite recorded them.
        budget_bytes: What all outputs together may take in report.html (escaped bytes).

    Returns:
        The rows with clipped outputs, and {clipped_fields, clipped_chars, cap_bytes}.
    """
    capped, cut = [], 0
    for row in rows:
        row, removed = _cap_fields(row)
        capped.append(row)
        cut += removed
    sizes = {
        (index, name): escaped_size(getattr(row, name))
        for index, row in enumerate(capped)
        for name in OUTPUT_FIELDS
        if getattr(row, name)
    }
    cap = water_level(list(sizes.values()), max(0, budget_bytes))
    stats = {"clipped_fields": 0, "clipped_chars": cut, "cap_bytes": -1 if cap is None else cap}
    for index, (row, original) in enumerate(zip(capped, rows, strict=True)):
        changes: dict[str, str] = {}
        for name in OUTPUT_FIELDS:
            size = sizes.get((index, name), 0)
            if cap is not None and size > cap:
                # escaped bytes per character vary; scale the cap to this text's own ratio
                text = getattr(row, name)
                changes[name], removed = _clip(text, int(cap * len(text) / size))
                stats["clipped_chars"] += removed
            if name in changes or getattr(row, name) is not getattr(original, name):
                stats["clipped_fields"] += 1
        capped[index] = row.with_outputs(changes) if changes else row
    return capped, stats


def _upstream_mark(text: str) -> int:
    """Length of the cut mark the suite puts before text it clipped (textsafe.CUT_MARK)."""
    match = _SUITE_MARK.match(text)
    return match.end() if match else 0


def _cap_fields(row: TestRow) -> tuple[TestRow, int]:
    """The row with each output at most MAX_FIELD_CHARS (plus its note), and the cut."""
    changes, cut = {}, 0
    for name in OUTPUT_FIELDS:
        text = getattr(row, name)
        if len(text) > MAX_FIELD_CHARS + _upstream_mark(text):
            changes[name], removed = _clip(getattr(row, name), MAX_FIELD_CHARS)
            cut += removed
    return (row.with_outputs(changes) if changes else row), cut
