"""The project's byte-level BPE tokenizer and its Qwen3-style chat template."""

from __future__ import annotations

import json

import pytest
from transformers import PreTrainedTokenizerBase

from inference_engine.models.tokenizer import (
    CORPUS_DIR,
    ENDOFTEXT,
    IM_END,
    IM_START,
    SPECIAL_TOKENS,
    build_tokenizer,
    special_token_ids,
    train_bpe,
)

SAMPLES = [
    "Hello, world!",
    "Crème brûlée, naïve café, Zażółć gęślą jaźń, Příliš žluťoučký kůň",
    "键值缓存 キャッシュ 캐시 кэш ذاكرة מטמון कैश แคช",
    "emoji 🎉 👩‍👩‍👧 🇫🇷 🧑🏽‍🚀 ✅",
    "def f(x: int) -> int:\n\treturn x ** 2  # square\n\n\n",
    "  leading and trailing spaces  \r\n\tmixed\u00a0whitespace\u2003",
    "unseen bytes: \x00\x01\x7f \ufeff \U0001f9ec \u0301e",
    "",
]


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerBase:
    return build_tokenizer()


def test_corpus_is_shipped_and_small() -> None:
    files = sorted(CORPUS_DIR.glob("*.txt"))
    assert files
    assert sum(path.stat().st_size for path in files) < 400_000


def test_vocabulary_has_4096_ids_and_thousands_of_merges(
    tokenizer: PreTrainedTokenizerBase,
) -> None:
    assert len(tokenizer) == 4096
    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    assert model["type"] == "BPE"
    assert len(model["merges"]) >= 2000
    assert len(model["merges"]) == 4096 - 256 - len(SPECIAL_TOKENS)


@pytest.mark.parametrize("text", SAMPLES)
def test_utf8_round_trips(tokenizer: PreTrainedTokenizerBase, text: str) -> None:
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text


def test_common_words_are_single_tokens(tokenizer: PreTrainedTokenizerBase) -> None:
    # A trained BPE, not a byte fallback: frequent corpus words need one id each.
    for word in [" the", " cache", " model", " return", " token"]:
        assert len(tokenizer.encode(word, add_special_tokens=False)) == 1, word


def test_special_tokens_are_single_ids_at_the_top(tokenizer: PreTrainedTokenizerBase) -> None:
    ids = special_token_ids(tokenizer)
    assert sorted(ids.values()) == list(range(4096 - len(SPECIAL_TOKENS), 4096))
    for token, token_id in ids.items():
        assert tokenizer.encode(token, add_special_tokens=False) == [token_id]
        assert token in tokenizer.all_special_tokens
    assert tokenizer.eos_token == IM_END
    assert tokenizer.pad_token == ENDOFTEXT
    text = f"{IM_START}user\nhi{IM_END}"
    assert tokenizer.encode(text, add_special_tokens=False)[0] == ids[IM_START]


def test_training_is_deterministic() -> None:
    assert train_bpe().to_str() == train_bpe().to_str()


def test_chat_template_renders_chatml(tokenizer: PreTrainedTokenizerBase) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi there"},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi there<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_enable_thinking_false_prefills_an_empty_think_block(
    tokenizer: PreTrainedTokenizerBase,
) -> None:
    messages = [{"role": "user", "content": "2+2?"}]
    thinking = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, enable_thinking=True
    )
    plain = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, enable_thinking=False
    )
    assert thinking.endswith("<|im_start|>assistant\n")
    assert plain == thinking + "<think>\n\n</think>\n\n"


def test_earlier_reasoning_is_dropped_and_the_last_kept(tokenizer: PreTrainedTokenizerBase) -> None:
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "<think>\nold\n</think>\n\nA"},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": "B", "reasoning_content": "new"},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert "old" not in text
    assert "<|im_start|>assistant\nA<|im_end|>\n" in text
    assert text.endswith("<|im_start|>assistant\n<think>\nnew\n</think>\n\nB<|im_end|>\n")


def test_tools_and_tool_results(tokenizer: PreTrainedTokenizerBase) -> None:
    tool = {"type": "function", "function": {"name": "get_time", "parameters": {}}}
    messages = [
        {"role": "user", "content": "time?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_time", "arguments": {"tz": "UTC"}}}],
        },
        {"role": "tool", "content": "12:00"},
    ]
    text = tokenizer.apply_chat_template(messages, tools=[tool], tokenize=False)
    assert text.startswith("<|im_start|>system\n# Tools")
    assert '"name": "get_time"' in text
    assert '<tool_call>\n{"name": "get_time", "arguments": {"tz": "UTC"}}\n</tool_call>' in text
    assert "<|im_start|>user\n<tool_response>\n12:00\n</tool_response><|im_end|>\n" in text


def test_chat_template_ids_use_the_special_tokens(tokenizer: PreTrainedTokenizerBase) -> None:
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, return_dict=False
    )
    specials = special_token_ids(tokenizer)
    assert ids[0] == specials[IM_START]
    assert ids.count(specials[IM_END]) == 1
