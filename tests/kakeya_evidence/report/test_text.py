from __future__ import annotations

import os

import pytest

from kakeya_evidence.common.text import safe_data, safe_text, write_text_file

SURROGATE = os.fsdecode(b"report-\xff.txt")  # a lone surrogate, as odd file names give


def test_safe_text_replaces_surrogates_and_shows_control_characters():
    text = safe_text(f"{SURROGATE} a\x00b\x07c\x1b[31mred\x1b[0m\r\nnext\tend")
    assert "\ud8ff" not in text and "\ufffd" in text
    assert "\\x00" in text and "\\x07" in text
    assert "\x1b" not in text and "red" in text and "[31m" not in text
    assert text.endswith("\nnext\tend")
    text.encode("utf-8")  # would raise on a surrogate


def test_clean_text_is_returned_unchanged():
    text = "plain ✓ text\nwith\ttabs"
    assert safe_text(text) is text


def test_safe_data_reaches_nested_strings_and_keys():
    data = safe_data({"a\x00": [SURROGATE, {"b": "\x1b[1mx"}], "n": 3})
    assert data == {"a\\x00": ["report-\ufffd.txt", {"b": "x"}], "n": 3}


@pytest.mark.parametrize("content", [SURROGATE, "\x00\x01", "\udc80" * 10, "é" * 5])
def test_writing_never_fails_on_content(tmp_path, content):
    path = write_text_file(tmp_path / "f.txt", f"before {content} after")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("before ") and text.endswith(" after")
    assert not list(tmp_path.glob(".*.tmp"))
