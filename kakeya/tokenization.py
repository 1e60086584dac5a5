"""Opt-in helpers: chat messages to token ids with a given tokenizer, and EOS resolution.

The runtime itself never applies a chat template; these helpers let an SDK user do it
client-side with the model's own tokenizer (any `transformers` tokenizer with a chat
template). They import nothing heavy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

IM_END = "<|im_end|>"


class ChatTokenizer(Protocol):
    """The parts of a `transformers` tokenizer these helpers use."""

    eos_token_id: int | None

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...

    def encode(self, text: str, **kwargs: Any) -> list[int]: ...

    def convert_tokens_to_ids(self, tokens: str) -> Any: ...


def render_chat(
    tokenizer: ChatTokenizer,
    messages: Sequence[Mapping[str, Any]],
    *,
    enable_thinking: bool | None = None,
    add_generation_prompt: bool = True,
) -> str:
    """Renders chat messages to prompt text with the tokenizer's chat template.

    Args:
        tokenizer: a tokenizer carrying a chat template.
        messages: `{"role": ..., "content": ...}` mappings, oldest first.
        enable_thinking: passed to templates with a thinking branch; `None` leaves the
            template's default.
        add_generation_prompt: open an assistant turn at the end.

    Raises:
        ValueError: `messages` is empty.
    """
    if not messages:
        raise ValueError("messages: at least one message is required")
    kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": add_generation_prompt}
    if enable_thinking is not None:
        kwargs["enable_thinking"] = enable_thinking
    rendered: str = tokenizer.apply_chat_template([dict(m) for m in messages], **kwargs)
    return rendered


def encode_chat(
    tokenizer: ChatTokenizer,
    messages: Sequence[Mapping[str, Any]],
    *,
    enable_thinking: bool | None = None,
    add_generation_prompt: bool = True,
) -> list[int]:
    """Chat messages to the token ids to append to a session.

    Renders with `render_chat`, then encodes without adding special tokens again (the
    template already wrote them).

    Raises:
        ValueError: `messages` is empty.
    """
    text = render_chat(
        tokenizer,
        messages,
        enable_thinking=enable_thinking,
        add_generation_prompt=add_generation_prompt,
    )
    return list(tokenizer.encode(text, add_special_tokens=False))


def resolve_eos_ids(tokenizer: ChatTokenizer) -> tuple[int, ...]:
    """The ids that end a chat turn: the tokenizer's EOS plus `<|im_end|>` when present.

    Sorted and without duplicates, ready for `create_session(eos_token_ids=...)`.
    """
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    im_end = _token_id(tokenizer, IM_END)
    if im_end is not None:
        ids.add(im_end)
    return tuple(sorted(ids))


def _token_id(tokenizer: ChatTokenizer, token: str) -> int | None:
    """The id of `token` when it is one vocabulary entry, else None (never the unk id)."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(token_id, int) or token_id < 0:
        return None
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is not None and token_id == unk and token != getattr(tokenizer, "unk_token", None):
        return None
    return token_id


__all__ = ["IM_END", "ChatTokenizer", "encode_chat", "render_chat", "resolve_eos_ids"]
