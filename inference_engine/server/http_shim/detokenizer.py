"""Streamed text for the shim: token ids in, UTF-8-safe text deltas out.

The runtime core sees only token ids; templating lives in `kakeya.tokenization` (shared
with the SDK) and runs in `requests`; detokenization is here.

A byte-level BPE tokenizer (Qwen3, the embedded model) maps each token to fixed bytes, so
decoding is a byte stream through Python's incremental UTF-8 decoder: each token costs its
own bytes, whatever came before (a run of lone lead bytes included), and a byte that can
never complete a character becomes U+FFFD as soon as that is known, exactly where a
one-shot decode puts it. Other tokenizers decode against a short window of earlier tokens.
"""

from __future__ import annotations

import codecs
import functools
import json
from collections.abc import Sequence
from typing import Any, Protocol

REPLACEMENT_CHAR = "\ufffd"
# A windowed decoder emits text that still ends in U+FFFD once this many tokens are held,
# so that a tail that never completes costs a bounded window, not the whole stream.
MAX_HELD_TOKENS = 8


class Detokenizer(Protocol):
    def decode(self, token_ids: Sequence[int], **kwargs: Any) -> str: ...


class IncrementalDecoder:
    """Turns a stream of token ids into text deltas that never split a UTF-8 character.

    Byte-level BPE tokens can end mid-character: the bytes wait in the UTF-8 decoder until
    they form whole characters. The concatenation of `push` deltas and `flush` equals
    decoding all ids at once (skipping special tokens and `skip_ids`).
    """

    def __init__(self, tokenizer: Detokenizer, skip_ids: Sequence[int] = ()) -> None:
        self._tokenizer = tokenizer
        self._skip = frozenset(skip_ids)
        self._ids: list[int] = []
        table = byte_table(tokenizer)
        self._window = None if table is not None else WindowDecoder(tokenizer)
        self._bytes = table
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    @property
    def token_ids(self) -> list[int]:
        return list(self._ids)

    def push(self, token_id: int) -> str:
        """Adds one token; returns the text it completes (often "", never a partial char)."""
        if token_id in self._skip:
            return ""
        self._ids.append(token_id)
        if self._window is not None:
            return self._window.push(token_id)
        return self._utf8.decode(self._bytes_of(token_id))

    def flush(self) -> str:
        """Whatever is still held back (at the end of a stream)."""
        if self._window is not None:
            return self._window.flush()
        return self._utf8.decode(b"", final=True)

    def text(self) -> str:
        """All pushed tokens decoded at once."""
        if not self._ids:
            return ""
        return self._tokenizer.decode(list(self._ids), skip_special_tokens=True)

    def _bytes_of(self, token_id: int) -> bytes:
        assert self._bytes is not None
        return self._bytes(token_id)


class WindowDecoder:
    """The general case: decode a short window of tokens, emit what it adds once it no
    longer ends in U+FFFD (or once `MAX_HELD_TOKENS` are held)."""

    def __init__(self, tokenizer: Detokenizer) -> None:
        self._tokenizer = tokenizer
        self._ids: list[int] = []
        self._prefix = 0  # start of the context window
        self._read = 0  # end of what has been emitted

    def push(self, token_id: int) -> str:
        self._ids.append(token_id)
        prefix_text = self._decode(self._ids[self._prefix : self._read])
        new_text = self._decode(self._ids[self._prefix :])
        held = len(self._ids) - self._read
        if len(new_text) <= len(prefix_text):
            return ""
        if new_text.endswith(REPLACEMENT_CHAR) and held < MAX_HELD_TOKENS:
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return new_text[len(prefix_text) :]

    def flush(self) -> str:
        prefix_text = self._decode(self._ids[self._prefix : self._read])
        new_text = self._decode(self._ids[self._prefix :])
        self._prefix = self._read = len(self._ids)
        return new_text[len(prefix_text) :]

    def _decode(self, ids: Sequence[int]) -> str:
        if not ids:
            return ""
        return self._tokenizer.decode(list(ids), skip_special_tokens=True)


def byte_table(tokenizer: Any) -> Any:
    """`token id -> bytes` for a byte-level BPE tokenizer (special tokens: no bytes), or
    None when the tokenizer is not one (its decoder is not `ByteLevel` alone)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    try:
        decoder = json.loads(backend.to_str()).get("decoder") or {}
    except (TypeError, ValueError):
        return None
    if decoder.get("type") != "ByteLevel":
        return None
    added = {
        token_id: b"" if token.special else token.content.encode("utf-8")
        for token_id, token in tokenizer.added_tokens_decoder.items()
    }
    chars = _unicode_to_byte()

    @functools.lru_cache(maxsize=65536)
    def token_bytes(token_id: int) -> bytes:
        if token_id in added:
            return added[token_id]
        piece = tokenizer.convert_ids_to_tokens(token_id)
        if piece is None:
            return b""
        return b"".join(bytes([chars[c]]) if c in chars else c.encode("utf-8") for c in piece)

    return token_bytes


@functools.cache
def _unicode_to_byte() -> dict[str, int]:
    """The inverse of GPT-2's byte-to-printable-character map that byte-level BPE uses."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("\xa1"), ord("\xac") + 1),
        *range(ord("\xae"), ord("\xff") + 1),
    ]
    codes = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {chr(code): byte for byte, code in zip(printable, codes, strict=True)}
