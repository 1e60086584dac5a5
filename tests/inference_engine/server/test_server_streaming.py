"""Event translation to protobuf, SSE framing, and UTF-8-safe incremental detokenization."""

from __future__ import annotations

import json
import math

import pytest

from inference_engine.proto_gen.kakeya.v1 import runtime_pb2 as pb
from inference_engine.server import streaming
from inference_engine.server.tokenizer import IncrementalDecoder, message_text
from inference_engine.session.events import (
    DoneEvent,
    GenerationParams,
    StopReason,
    TokenEvent,
    TruncationEvent,
)


def test_events_become_proto_messages() -> None:
    token = streaming.event_to_proto(TokenEvent(42, 3))
    assert token.WhichOneof("event") == "token" and token.token.token_id == 42
    assert token.token.index == 3
    trunc = streaming.event_to_proto(TruncationEvent(10, 64))
    assert (trunc.truncation.dropped_tokens, trunc.truncation.cached_tokens) == (10, 64)
    done = streaming.event_to_proto(DoneEvent(StopReason.EOS, 5, 7, 0.25, 0.5, 12)).done
    assert done.stop_reason == pb.STOP_REASON_EOS
    assert (done.generated_tokens, done.prefill_tokens, done.history_tokens) == (5, 7, 12)
    assert (done.prefill_s, done.total_s) == (0.25, 0.5)


@pytest.mark.parametrize("reason", list(StopReason))
def test_every_stop_reason_has_a_wire_value(reason: StopReason) -> None:
    assert streaming.STOP_REASON_TO_PROTO[reason] != pb.STOP_REASON_UNSPECIFIED


def test_params_defaults_for_unset_optionals() -> None:
    params = streaming.params_from_proto(pb.GenerateRequest(session_id="s", max_tokens=4))
    assert params == GenerationParams(max_tokens=4, temperature=0.0, top_p=1.0, top_k=0, seed=None)
    request = pb.GenerateRequest(session_id="s", max_tokens=4, top_p=0.5, seed=0, temperature=0.7)
    params = streaming.params_from_proto(request)
    assert (params.top_p, params.seed, params.temperature) == (0.5, 0, 0.7)


def test_params_pass_bad_values_through_for_the_engine_to_reject() -> None:
    request = pb.GenerateRequest(session_id="s", max_tokens=-1, temperature=math.nan)
    params = streaming.params_from_proto(request)
    assert params.max_tokens == -1 and math.isnan(params.temperature)


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


def test_message_text_joins_text_parts() -> None:
    assert message_text("hi") == "hi"
    assert message_text(None) == ""
    parts = [{"type": "text", "text": "a"}, {"type": "image_url"}, {"type": "text", "text": "b"}]
    assert message_text(parts) == "ab"
