"""Text that no content can break: the one edge where test output enters evidence.

Tests print anything: undecodable bytes, lone surrogates (``os.fsdecode`` of an odd file
name), terminal colours, ESC/BEL/NUL. Everything that reaches the evidence passes through
``safe_text``: the suite stage where test strings come in, the report once more at its own
edge (older stage files, hand-written baselines, history files). Every later writer (JSON,
HTML, Markdown, JUnit XML) can then encode it, files are written with replacement, and no
terminal control reaches a reader. Long text keeps its end, where failures are, behind one
marked cut (``clip_end``), in the stage files and the report's size budget alike.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

__all__ = [
    "CUT_MARK",
    "MAX_TEXT_CHARS",
    "clip_end",
    "first_line",
    "safe_data",
    "safe_text",
    "write_text_file",
]

MAX_TEXT_CHARS = 20_000  # per test, each of traceback, stdout and stderr
FIRST_LINE_CHARS = 500
CUT_MARK = "[... {count:,} characters cut ...]\n"

# CSI (ESC [ ... final, or the 8-bit CSI byte), OSC (ESC ] ... BEL or ESC \), and
# two-character escapes (ESC X), as terminals interpret them.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b\n]*(?:\x07|\x1b\\)?"
    r"|\x1b[@-Z\\-_]"
    r"|\x9b[0-?]*[ -/]*[@-~]"
)
_MARK = re.compile(r"\[\.\.\. ([\d,]+) characters cut \.\.\.\]\n")
# C0 controls except tab and newline, DEL, C1 controls, and lone surrogates.
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def safe_text(value: object) -> str:
    """Return value as printable text: valid UTF-8, no ANSI, no controls but newline and tab.

    Bytes are decoded as UTF-8 with replacement; lone surrogates become U+FFFD; ANSI escape
    sequences are removed; carriage returns become newlines; every other control character
    is shown as a visible escape (``\\x1b``). Text that is already safe is returned as is.

    Args:
        value: Text, bytes or anything with a ``str()`` (None gives "").

    Returns:
        The safe text.
    """
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        text = bytes(value).decode("utf-8", errors="replace")
    else:
        text = value if isinstance(value, str) else str(value)
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


def clip_end(text: str, max_chars: int = MAX_TEXT_CHARS) -> str:
    """Keep the last max_chars characters of text behind a line saying how many were cut.

    The cut starts at a line boundary where one is near, so the kept text starts cleanly.
    Clipping clipped text again adds to the count in its mark instead of hiding it.
    """
    earlier = 0
    mark = _MARK.match(text)
    if mark:
        earlier = int(mark.group(1).replace(",", ""))
        text = text[mark.end() :]
    if len(text) <= max_chars:
        return CUT_MARK.format(count=earlier) + text if earlier else text
    kept = text[-max_chars:] if max_chars > 0 else ""
    newline = kept.find("\n", 0, 200)
    if newline >= 0:
        kept = kept[newline + 1 :]
    return CUT_MARK.format(count=earlier + len(text) - len(kept)) + kept


def first_line(text: str, max_chars: int = FIRST_LINE_CHARS) -> str:
    """The first non-blank line of text, stripped and at most max_chars long."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:max_chars]
    return ""


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
