"""Failure categories: failures and errors grouped by a masked signature.

A signature is the exception type plus the first error line with everything that
differs between otherwise identical failures masked: addresses, UUIDs, long hex
ids, file paths and numbers. Fifty ``ConnectionError: port 50123 refused`` failures
are one category, not fifty.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from kakeya_evidence.common.schema import FAILING, TestRow

__all__ = ["categorize", "exception_of", "mask_message", "signature_of"]

_MASKS = (
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<id>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<addr>"),
    (re.compile(r"(?:[A-Za-z]:)?(?:[\\/][\w.@+~-]+){2,}[\\/]?"), "<path>"),
    # long tokens that mix letters and digits: session ids, hashes, tokens
    (re.compile(r"(?<![\w-])(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[\w-]{16,}(?![\w-])"), "<id>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b", re.I), "<id>"),
    # numbers that are not part of a name (float32 and test_x0 stay)
    (re.compile(r"(?<![A-Za-z_\d.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?"), "<n>"),
)
_EXCEPTION_PREFIX = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Timeout)\w*):")
_MAX_SIGNATURE_CHARS = 300


def mask_message(message: str) -> str:
    """Mask the parts of an error line that vary between runs of the same failure."""
    text = " ".join(message.split())
    for pattern, mask in _MASKS:
        text = pattern.sub(mask, text)
    return text[:_MAX_SIGNATURE_CHARS]


def exception_of(row: TestRow) -> str:
    """The exception type: the row's own field, else read from the message, else ""."""
    if row.exception:
        return row.exception
    message = row.message.strip()
    match = _EXCEPTION_PREFIX.match(message)
    if match:
        return match.group(1).rsplit(".", 1)[-1]
    if message.startswith("assert "):
        return "AssertionError"
    return ""


def signature_of(row: TestRow) -> str:
    """``ExceptionType: masked message`` (the exception prefix is not repeated)."""
    exception = exception_of(row)
    message = row.message.strip()
    prefix = _EXCEPTION_PREFIX.match(message)
    if prefix:
        message = message[prefix.end() :].strip()
    masked = mask_message(message)
    return f"{exception}: {masked}" if exception else masked or "(no message)"


def categorize(rows: Sequence[TestRow]) -> list[dict[str, Any]]:
    """Group failing and erroring tests by signature, largest group first.

    Args:
        rows: Every test row (only failed and error rows are grouped).

    Returns:
        ``categories`` for evidence.json: signature, exception, count and member node ids.
    """
    groups: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.outcome not in FAILING:
            continue
        signature = signature_of(row)
        group = groups.setdefault(
            signature,
            {"signature": signature, "exception": exception_of(row), "count": 0, "nodeids": []},
        )
        group["count"] += 1
        group["nodeids"].append(row.nodeid)
    return sorted(groups.values(), key=lambda g: (-g["count"], g["signature"]))
