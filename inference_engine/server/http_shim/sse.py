"""OpenAI shapes and SSE framing for the shim: pure functions, no I/O, no business logic."""

from __future__ import annotations

import json
import math
from typing import Any

from inference_engine.session.events import StopReason

# None: the generation did not finish; the shim answers UNAVAILABLE instead of a choice.
FINISH_REASON: dict[StopReason, str | None] = {
    StopReason.MAX_TOKENS: "length",
    StopReason.EOS: "stop",
    StopReason.CANCELLED: None,
    StopReason.SHUTDOWN: None,
}
SSE_DONE = b"data: [DONE]\n\n"


def sse_event(payload: dict[str, Any]) -> bytes:
    """One SSE event, framed exactly `data: {json}\\n\\n` (compact JSON, UTF-8)."""
    return b"data: " + dumps(payload).encode("utf-8") + b"\n\n"


def dumps(payload: Any) -> str:
    """Compact JSON; non-finite floats become null so the output is always valid JSON."""
    return json.dumps(_finite(payload), separators=(",", ":"), ensure_ascii=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chunk(
    completion_id: str,
    created: int,
    model: str,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    usage_counts: dict[str, int] | None = None,
) -> dict[str, Any]:
    """A `chat.completion.chunk` object."""
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    if usage_counts is not None:
        body["usage"] = usage_counts
    return body


def completion(
    completion_id: str,
    created: int,
    model: str,
    text: str,
    finish_reason: str | None,
    usage_counts: dict[str, int],
) -> dict[str, Any]:
    """A non-streamed `chat.completion` object."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage_counts,
    }
