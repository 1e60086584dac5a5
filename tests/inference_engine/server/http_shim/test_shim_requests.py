"""Parsing and preparing shim requests alone: strict types, bounds before work, typed refusals."""

from __future__ import annotations

import json

import pytest

from inference_engine.config import LimitsConfig
from inference_engine.errors import InvalidArgument
from inference_engine.server.http_shim.requests import (
    ChatMessage,
    HttpError,
    PromptLimits,
    parse_chat,
    prepare,
)
from kakeya.tokenization import encode_chat

MODEL = "kakeya/scripted"
BOUNDS = PromptLimits(MODEL, 2000, 16, LimitsConfig(max_append_tokens=400))


def body(**extra) -> bytes:
    data = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **extra}
    return json.dumps(data).encode()


def test_a_good_request_becomes_params_and_the_templated_prompt(tokenizer) -> None:
    ready = prepare(body(max_tokens=5, temperature=1, seed=3), tokenizer, BOUNDS)
    assert (ready.params.max_tokens, ready.params.temperature, ready.params.seed) == (5, 1.0, 3)
    expected = encode_chat(tokenizer, [{"role": "user", "content": "hi"}])
    assert ready.prompt_ids == expected


def test_text_parts_are_joined_and_other_parts_carry_nothing() -> None:
    parts = [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {}}]
    message = ChatMessage.model_validate({"role": "user", "content": [*parts, parts[0]]})
    assert message.text() == "aa"
    assert ChatMessage.model_validate({"role": "user"}).text() == ""


def test_only_fields_the_template_reads_reach_it() -> None:
    message = ChatMessage.model_validate(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": "{}"}}],
            "injected": {"role": "system"},
        }
    )
    fields = message.template_fields()
    assert set(fields) == {"role", "content", "tool_calls"}
    assert fields["tool_calls"][0]["function"] == {"name": "f", "arguments": "{}"}


def test_assistant_tool_calls_render(tokenizer) -> None:
    calls = [{"type": "function", "function": {"name": "lookup", "arguments": '{"q": 1}'}}]
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "", "tool_calls": calls},
        {"role": "tool", "content": "42", "tool_call_id": "1"},
    ]
    ready = prepare(body(messages=messages), tokenizer, BOUNDS)
    assert "lookup" in tokenizer.decode(ready.prompt_ids)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"[" * 10_000 + b"]" * 10_000, 400),
        (b'{"model": "x", "max_tokens": 1' + b"0" * 5000 + b"}", 400),
        (b'{"model": "\\ud800"}', 400),
        (b"\xff\xfe", 400),
        (body(max_tokens=True), 422),
        (body(max_tokens=1.5), 422),
        (body(max_tokens=1e400), 422),
        (body(stream="yes"), 422),
        (body(messages="hi"), 422),
        (body(messages=[{"role": "user", "content": {"text": "x"}}]), 422),
        (body(messages=[{"role": "user", "content": [{"type": "text", "text": 5}]}]), 422),
        (body(messages=[{"role": "assistant", "tool_calls": [{"function": {"name": 1}}]}]), 422),
        (body(messages=[{"role": "assistant", "tool_calls": [{"type": "web"}]}]), 422),
        (body(messages=[{"role": "user"}] * 1025), 422),
        (body(n=3), 400),
    ],
)
def test_malformed_or_mistyped_bodies_are_typed_http_errors(raw: bytes, status: int) -> None:
    with pytest.raises(HttpError) as raised:
        parse_chat(raw)
    assert raised.value.status == status
    assert len(raised.value.message) < 200


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"temperature": 1e-40}, "temperature"),
        ({"temperature": 1e400}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"top_p": 0}, "top_p"),
        ({"seed": -1}, "seed"),
        ({"messages": [{"role": "user", "content": "x" * 2001}]}, "messages"),
        ({"chat_template_kwargs": {"enable_thinking": "no"}}, "chat_template_kwargs"),
    ],
)
def test_out_of_bounds_values_are_invalid_arguments(tokenizer, extra: dict, field: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        prepare(body(**extra), tokenizer, BOUNDS)
    assert raised.value.field.startswith(field)


def test_the_token_bound_applies_after_the_template(tokenizer) -> None:
    with pytest.raises(InvalidArgument, match="tokens; the limit is 400"):
        prepare(body(messages=[{"role": "user", "content": "😀" * 400}]), tokenizer, BOUNDS)


def test_the_character_bound_applies_before_the_template(tokenizer, monkeypatch) -> None:
    rendered = []
    real = tokenizer.apply_chat_template
    monkeypatch.setattr(
        tokenizer, "apply_chat_template", lambda *a, **k: rendered.append(1) or real(*a, **k)
    )
    with pytest.raises(InvalidArgument, match="characters"):
        prepare(body(messages=[{"role": "user", "content": "x" * 2001}]), tokenizer, BOUNDS)
    assert rendered == []


def test_a_template_that_fails_on_the_messages_is_an_invalid_argument(tokenizer, monkeypatch):
    def fail(*args, **kwargs):
        raise TypeError("can only concatenate str")

    monkeypatch.setattr(tokenizer, "apply_chat_template", fail)
    with pytest.raises(InvalidArgument, match="chat template"):
        prepare(body(), tokenizer, BOUNDS)


def test_unknown_models_are_quoted_short(tokenizer) -> None:
    with pytest.raises(HttpError) as raised:
        prepare(body(model="m" * 10_000), tokenizer, BOUNDS)
    assert raised.value.status == 404 and len(raised.value.message) < 120
