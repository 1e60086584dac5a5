"""Chat messages to token ids with the project's real tokenizer, and EOS resolution."""

from __future__ import annotations

import pytest

from kakeya.tokenization import IM_END, encode_chat, render_chat, resolve_eos_ids

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "héllo 😀"}]


@pytest.fixture(scope="module")
def tokenizer():
    from inference_engine.models.tokenizer import build_tokenizer

    return build_tokenizer()


def test_encode_chat_round_trips_the_rendered_prompt(tokenizer) -> None:
    ids = encode_chat(tokenizer, MESSAGES)
    text = render_chat(tokenizer, MESSAGES)
    assert tokenizer.decode(ids) == text
    assert text.rstrip().endswith("<|im_start|>assistant")
    assert ids.count(tokenizer.convert_tokens_to_ids(IM_END)) == 2


def test_enable_thinking_false_prefills_an_empty_think_block(tokenizer) -> None:
    off = render_chat(tokenizer, MESSAGES, enable_thinking=False)
    on = render_chat(tokenizer, MESSAGES, enable_thinking=True)
    assert off.endswith("<think>\n\n</think>\n\n") and "<think>" not in on
    assert encode_chat(tokenizer, MESSAGES, enable_thinking=False) != encode_chat(
        tokenizer, MESSAGES, enable_thinking=True
    )


def test_without_generation_prompt(tokenizer) -> None:
    text = render_chat(tokenizer, MESSAGES, add_generation_prompt=False)
    assert text.endswith(f"{IM_END}\n")


def test_empty_messages_rejected(tokenizer) -> None:
    with pytest.raises(ValueError, match="messages"):
        encode_chat(tokenizer, [])


def test_eos_resolution_includes_im_end(tokenizer) -> None:
    eos = resolve_eos_ids(tokenizer)
    assert tokenizer.convert_tokens_to_ids(IM_END) in eos
    assert tokenizer.eos_token_id in eos
    assert list(eos) == sorted(set(eos))


class NoImEnd:
    eos_token_id = 7
    unk_token_id = 0
    unk_token = "<unk>"

    def convert_tokens_to_ids(self, token: str) -> int:
        return 0  # unknown -> unk id


def test_eos_resolution_ignores_unknown_im_end() -> None:
    assert resolve_eos_ids(NoImEnd()) == (7,)
