"""Text that no content can break: safe strings in, files written whatever they hold.

The suite stage makes every test string safe where it enters the evidence; the report
does it once more at its own edge (older stage files, hand-written baselines, history
files), and writes its files with replacement, so a lone surrogate, a NUL or an escape
sequence can neither make a write fail nor reach report.html or summary.md raw.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

__all__ = ["safe_data", "safe_text", "write_text_file"]

# CSI/OSC/other ESC sequences as terminals interpret them.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
# C0 controls except tab and newline, DEL, C1 controls, and lone surrogates.
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def safe_text(text: str) -> str:
    """Return text with ANSI sequences removed and other control characters made visible.

    Carriage returns become newlines; other controls become ``\\xNN`` escapes; lone
    surrogates (from ``os.fsdecode`` of odd bytes) become U+FFFD.
    """
    if not _UNSAFE.search(text):
        return text
    text = _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    return _UNSAFE.sub(_visible, text)


def safe_data(value: Any) -> Any:
    """Apply safe_text to every string (keys included) in nested JSON-like data."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {safe_text(str(k)): safe_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [safe_data(v) for v in value]
    return value


def write_text_file(path: Path | str, text: str) -> Path:
    """Write UTF-8 text atomically; characters UTF-8 cannot hold are replaced, not fatal.

    Raises:
        OSError: The file system refused the write (disk full, permissions).
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        tmp.write_bytes(text.encode("utf-8", errors="replace"))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _visible(match: re.Match[str]) -> str:
    char = match.group(0)
    if "\ud800" <= char <= "\udfff":
        return "\ufffd"
    return f"\\x{ord(char):02x}"
