"""SSE framing, OpenAI shapes, and UTF-8-safe incremental detokenization."""

from __future__ import annotations

import json
import math

import pytest

from inference_engine.server.http_shim import sse as streaming
from inference_engine.server.http_shim.detokenizer import IncrementalDecoder
from inference_engine.session.events import StopReason


def test_sse_event_framing_is_exact() -> None:
    frame = streaming.sse_event({"a": "é", "b": [1, 2]})
    assert frame == 'data: {"a":"é","b":[1,2]}\n\n'.encode()
    assert streaming.SSE_DONE == b"data: [DONE]\n\n"
    assert json.loads(streaming.sse_event({"x": math.inf})[6:]) == {"x": None}


def test_chunk_and_completion_shapes() -> None:
    chunk = streaming.chunk("id", 1, "m", {"content": "hi"}, "stop", streaming.usage(3, 2))
    assert chunk["object"] == "chat.completion.chunk"
    assert chunk["choices"][0] == {"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}
    assert chunk["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    body = streaming.completion("id", 1, "m", "hi", "length", streaming.usage(1, 1))
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "hi"}


TEXTS = ["héllo wörld", "日本語のテキスト", "emoji 😀🎉 mixed ü", "plain ascii text"]


@pytest.mark.parametrize("text", TEXTS)
def test_incremental_decoder_never_splits_a_character(tokenizer, text: str) -> None:
    ids = tokenizer.encode(text, add_special_tokens=False)
    decoder = IncrementalDecoder(tokenizer)
    deltas = [decoder.push(i) for i in ids] + [decoder.flush()]
    assert all("\ufffd" not in d for d in deltas)
    assert "".join(deltas) == tokenizer.decode(ids, skip_special_tokens=True) == text


def test_incremental_decoder_holds_back_partial_bytes(tokenizer) -> None:
    ids = tokenizer.encode("😀", add_special_tokens=False)
    assert len(ids) > 1, "the emoji should span several byte-level tokens"
    decoder = IncrementalDecoder(tokenizer)
    assert [decoder.push(i) for i in ids[:-1]] == [""] * (len(ids) - 1)
    assert decoder.push(ids[-1]) == "😀"


def test_incremental_decoder_skips_eos(tokenizer) -> None:
    eos = tokenizer.eos_token_id
    decoder = IncrementalDecoder(tokenizer, skip_ids=[eos])
    ids = tokenizer.encode("ok", add_special_tokens=False)
    text = "".join(decoder.push(i) for i in [*ids, eos]) + decoder.flush()
    assert text == "ok" and eos not in decoder.token_ids


@pytest.mark.parametrize("reason", list(StopReason))
def test_every_stop_reason_has_a_finish_reason_or_none(reason: StopReason) -> None:
    assert reason in streaming.FINISH_REASON
