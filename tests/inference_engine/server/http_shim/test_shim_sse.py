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


def lone_lead_byte_ids(tokenizer, count: int) -> list[int]:
    """`count` tokens that are each a lone UTF-8 lead byte (0xE6: the start of a CJK char)."""
    lead = next(
        token_id
        for token_id in range(len(tokenizer))
        if tokenizer.decode([token_id]) == "\ufffd"
        and tokenizer.convert_ids_to_tokens(token_id) == "æ"  # byte 0xE6, GPT-2 byte map
    )
    return [lead] * count


def test_incremental_decoder_matches_one_shot_decoding_on_random_streams(tokenizer) -> None:
    """Any ids, broken UTF-8 and special tokens included: deltas + flush == one decode."""
    import random

    rng = random.Random(26)
    vocab = len(tokenizer)
    for _ in range(40):
        ids = [rng.randrange(vocab) for _ in range(rng.randrange(1, 60))]
        decoder = IncrementalDecoder(tokenizer)
        text = "".join(decoder.push(i) for i in ids) + decoder.flush()
        assert text == tokenizer.decode(ids, skip_special_tokens=True), ids


def test_incremental_decoder_is_linear_on_a_broken_utf8_tail(tokenizer) -> None:
    """4,096 lone lead bytes cost about what 4,096 ordinary tokens cost (it was quadratic:
    1.8-2.5 s), and each one's U+FFFD streams as soon as the next byte shows it is lone."""
    import time

    broken = lone_lead_byte_ids(tokenizer, 4096)
    ordinary = (tokenizer.encode("plain ascii text ", add_special_tokens=False) * 4096)[:4096]
    costs = {}
    for name, ids in (("broken", broken), ("ordinary", ordinary)):
        decoder = IncrementalDecoder(tokenizer)
        started = time.perf_counter()
        deltas = [decoder.push(i) for i in ids] + [decoder.flush()]
        costs[name] = time.perf_counter() - started
        assert "".join(deltas) == tokenizer.decode(ids, skip_special_tokens=True)
        if name == "broken":
            assert sum(1 for d in deltas if d) >= 4095  # streamed, not all at the end
    print(
        f"\ndecoder: 4096 lone lead bytes {costs['broken']:.3f}s; ordinary {costs['ordinary']:.3f}s"
    )
    assert costs["broken"] < 0.25
