"""Streamed text for the shim: token ids in, UTF-8-safe text deltas out.

The runtime core sees only token ids; templating lives in `kakeya.tokenization` (shared
with the SDK) and runs in `requests`; detokenization is here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

REPLACEMENT_CHAR = "\ufffd"


class Detokenizer(Protocol):
    def decode(self, token_ids: Sequence[int], **kwargs: Any) -> str: ...


class IncrementalDecoder:
    """Turns a stream of token ids into text deltas that never split a UTF-8 character.

    Byte-level BPE tokens can end mid-character; decoding such a prefix yields U+FFFD.
    The decoder holds text back until the pending bytes form whole characters, and decodes
    against a short window of earlier tokens so that context-dependent spacing is right.
    The concatenation of `push` deltas and `flush` equals decoding all ids at once.
    """

    def __init__(self, tokenizer: Detokenizer, skip_ids: Sequence[int] = ()) -> None:
        self._tokenizer = tokenizer
        self._skip = frozenset(skip_ids)
        self._ids: list[int] = []
        self._prefix = 0  # start of the context window
        self._read = 0  # end of what has been emitted

    @property
    def token_ids(self) -> list[int]:
        return list(self._ids)

    def push(self, token_id: int) -> str:
        """Adds one token; returns the text it completes (often "", never a partial char)."""
        if token_id in self._skip:
            return ""
        self._ids.append(token_id)
        prefix_text = self._decode(self._ids[self._prefix : self._read])
        new_text = self._decode(self._ids[self._prefix :])
        if len(new_text) <= len(prefix_text) or new_text.endswith(REPLACEMENT_CHAR):
            return ""
        self._prefix, self._read = self._read, len(self._ids)
        return new_text[len(prefix_text) :]

    def flush(self) -> str:
        """Whatever is still held back (at the end of a stream)."""
        prefix_text = self._decode(self._ids[self._prefix : self._read])
        new_text = self._decode(self._ids[self._prefix :])
        self._prefix = self._read = len(self._ids)
        return new_text[len(prefix_text) :]

    def text(self) -> str:
        """All pushed tokens decoded at once."""
        return self._decode(self._ids)

    def _decode(self, ids: Sequence[int]) -> str:
        if not ids:
            return ""
        return self._tokenizer.decode(list(ids), skip_special_tokens=True)
