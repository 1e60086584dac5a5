"""Make any text a test produced safe to keep: the one edge where test output enters evidence.

Tests print anything: undecodable bytes, lone surrogates (``os.fsdecode`` of an odd file
name), terminal colours, ESC/BEL/NUL. Everything that reaches the evidence passes through
``safe_text`` once, so every later writer (JSON, HTML, Markdown, JUnit XML) can encode it
without a failure and no terminal control reaches a reader. Long text keeps its end, where
failures are, behind a marked cut (``clip_end``).
"""

from __future__ import annotations

import re

__all__ = ["CUT_MARK", "MAX_TEXT_CHARS", "clip_end", "first_line", "safe_text"]

MAX_TEXT_CHARS = 20_000  # per test, each of traceback, stdout and stderr
CUT_MARK = "[... {count:,} characters cut ...]\n"

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), and two-character escapes (ESC X).
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b\n]*(?:\x07|\x1b\\)?"
    r"|\x1b[@-Z\\-_]"
    r"|\x9b[0-?]*[ -/]*[@-~]"
)
_MARK = re.compile(r"\[\.\.\. ([\d,]+) characters cut \.\.\.\]\n")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe_text(value: object) -> str:
    """Return value as printable text: valid UTF-8, no ANSI, no controls but newline and tab.

    Bytes are decoded as UTF-8 with replacement; lone surrogates become U+FFFD; ANSI escape
    sequences are removed; carriage returns become newlines; every other control character
    is shown as a visible escape (``\\x1b``).

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
    text = _SURROGATE.sub("\ufffd", text)
    text = _ANSI.sub("", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


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
    kept = text[-max_chars:]
    newline = kept.find("\n", 0, 200)
    if newline >= 0:
        kept = kept[newline + 1 :]
    return CUT_MARK.format(count=earlier + len(text) - len(kept)) + kept


def first_line(text: str, max_chars: int = 500) -> str:
    """The first non-blank line of text, stripped and at most max_chars long."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:max_chars]
    return ""
