"""Numbers for people: byte counts in GiB/MiB, seconds, and fact values by their key's unit."""

from __future__ import annotations

from typing import Any

__all__ = ["format_fact", "format_number", "human_bytes", "to_ms"]

_BYTE_UNITS = (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))


def human_bytes(count: float) -> str:
    """``17179869184`` -> ``16.0 GiB``; under 1 KiB stays in bytes."""
    for unit, size in _BYTE_UNITS:
        if abs(count) >= size:
            return f"{count / size:.1f} {unit}"
    return f"{int(count)} B"


def format_number(value: Any, digits: int = 2) -> str:
    """A number with fixed digits, ``-`` for None, anything else as text."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return f"{value:.{digits}f}"
    return str(value)


def to_ms(seconds: Any) -> Any:
    """Seconds as milliseconds; anything that is not a number passes through (None: "-")."""
    is_number = isinstance(seconds, int | float) and not isinstance(seconds, bool)
    return seconds * 1000.0 if is_number else seconds


def format_fact(key: str, value: Any) -> str:
    """A host or cache fact as a person reads it: ``*_bytes`` keys in human units."""
    if value is None:
        return "-"
    if key.endswith("_bytes") and isinstance(value, int | float) and not isinstance(value, bool):
        return human_bytes(value)
    if key.endswith("_percent") and isinstance(value, int | float):
        return f"{value:.0f} %"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)
