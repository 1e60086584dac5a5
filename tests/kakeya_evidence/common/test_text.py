"""Text from tests is made safe once: valid UTF-8, no ANSI, controls shown, ends kept;
files are written whatever they hold."""

from __future__ import annotations

import json
import os

import pytest

from kakeya_evidence.common.text import (
    CUT_MARK,
    clip_end,
    first_line,
    safe_data,
    safe_text,
    write_text_file,
)


def test_a_lone_surrogate_becomes_the_replacement_character_and_encodes():
    odd = os.fsdecode(b"report-\xff.txt")
    with pytest.raises(UnicodeEncodeError):
        odd.encode("utf-8")
    safe = safe_text(f"cannot open {odd}")
    assert safe == "cannot open report-\ufffd.txt"
    safe.encode("utf-8")  # does not raise


def test_bytes_are_decoded_with_replacement():
    assert safe_text(b"raw \xff\xfe bytes") == "raw \ufffd\ufffd bytes"


def test_ansi_sequences_are_stripped():
    coloured = "\x1b[31mred\x1b[0m \x1b[1;4mbold\x1b[m \x1b]0;title\x07done \x9b32mc1"
    assert safe_text(coloured) == "red bold done c1"


def test_other_controls_become_visible_escapes_but_newline_and_tab_stay():
    text = safe_text("bell\x07 nul\x00 esc\x1b del\x7f c1\x85\ttab\nnext")
    assert text == "bell\\x07 nul\\x00 esc\\x1b del\\x7f c1\\x85\ttab\nnext"


def test_carriage_returns_become_newlines():
    assert safe_text("a\r\nb\rc") == "a\nb\nc"


@pytest.mark.parametrize("value", [None, 3, ["x"]])
def test_anything_gives_text(value):
    assert isinstance(safe_text(value), str)


def test_safe_text_survives_every_encoder():
    nasty = "".join(chr(c) for c in range(0x20)) + os.fsdecode(b"\xff\xfe") + "\x1b[0m\ud800"
    safe = safe_text(nasty)
    safe.encode("utf-8")
    assert json.loads(json.dumps(safe, ensure_ascii=False)) == safe
    assert not any(ord(ch) < 0x20 and ch not in "\n\t" for ch in safe)


def test_clip_end_keeps_the_end_behind_a_mark_that_counts_the_cut():
    text = "".join(f"line {n:05d}\n" for n in range(10_000))
    clipped = clip_end(text, 1_000)
    assert clipped.endswith("line 09999\n")
    assert len(clipped) <= 1_000 + len(CUT_MARK.format(count=len(text)))
    assert clipped.splitlines()[1].startswith("line ")  # cut at a line boundary
    cut = int(clipped.split()[1].replace(",", ""))
    assert cut + len(clipped.split("\n", 1)[1]) == len(text)


def test_clipping_clipped_text_adds_to_its_count():
    text = "x" * 5_000
    once = clip_end(text, 2_000)
    twice = clip_end(once + "y" * 500, 2_000)
    assert twice.startswith("[... 3,500 characters cut ...]\n")
    assert twice.endswith("y" * 500) and len(twice.split("\n", 1)[1]) == 2_000


def test_short_text_is_untouched_and_first_line_skips_blanks():
    assert clip_end("short", 100) == "short"
    assert first_line("\n  \n  the line  \nmore") == "the line"


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
