"""Event translation for the surfaces: core events to protobuf, and OpenAI SSE framing.

Pure functions over the core's frozen events; no I/O, no business logic.
"""

from __future__ import annotations

import json
import math
from typing import Any

from inference_engine.proto_gen.kakeya.v1 import runtime_pb2 as pb
from inference_engine.session.events import (
    DoneEvent,
    Event,
    GenerationParams,
    SessionInfo,
    StopReason,
    TokenEvent,
    TruncationEvent,
)

STOP_REASON_TO_PROTO: dict[StopReason, int] = {
    StopReason.MAX_TOKENS: pb.STOP_REASON_MAX_TOKENS,
    StopReason.EOS: pb.STOP_REASON_EOS,
    StopReason.CANCELLED: pb.STOP_REASON_CANCELLED,
}
FINISH_REASON: dict[StopReason, str | None] = {
    StopReason.MAX_TOKENS: "length",
    StopReason.EOS: "stop",
    StopReason.CANCELLED: None,
}
SSE_DONE = b"data: [DONE]\n\n"


# --- gRPC -------------------------------------------------------------------------------


def event_to_proto(event: Event) -> pb.GenerateEvent:
    """One core event as a `GenerateEvent` message."""
    if isinstance(event, TokenEvent):
        return pb.GenerateEvent(token=pb.TokenEvent(token_id=event.token_id, index=event.index))
    if isinstance(event, TruncationEvent):
        return pb.GenerateEvent(
            truncation=pb.TruncationEvent(
                dropped_tokens=event.dropped_tokens, cached_tokens=event.cached_tokens
            )
        )
    if isinstance(event, DoneEvent):
        return pb.GenerateEvent(done=done_to_proto(event))
    raise TypeError(f"unknown event type {type(event).__name__}")


def done_to_proto(event: DoneEvent) -> pb.DoneEvent:
    return pb.DoneEvent(
        stop_reason=STOP_REASON_TO_PROTO[event.stop_reason],
        generated_tokens=event.generated_tokens,
        prefill_tokens=event.prefill_tokens,
        prefill_s=event.prefill_s,
        total_s=event.total_s,
        history_tokens=event.history_tokens,
    )


def info_to_proto(info: SessionInfo) -> pb.SessionInfo:
    """A session snapshot as a `SessionInfo` message (same field names)."""
    return pb.SessionInfo(
        session_id=info.session_id,
        label=info.label,
        eos_token_ids=list(info.eos_token_ids),
        history_tokens=info.history_tokens,
        cached_tokens=info.cached_tokens,
        dropped_tokens=info.dropped_tokens,
        kv_live_bytes=info.kv_live_bytes,
        kv_bound_bytes=info.kv_bound_bytes,
        idle_s=info.idle_s,
        invariant_checks=info.invariant_checks,
        invariant_violations=info.invariant_violations,
        generating=info.generating,
    )


def params_from_proto(request: pb.GenerateRequest) -> GenerationParams:
    """Generation parameters from a request; unset optional fields take the core's defaults.

    No bounds are checked here: the engine validates every field before model work.
    """
    return GenerationParams(
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p if request.HasField("top_p") else 1.0,
        top_k=request.top_k,
        seed=request.seed if request.HasField("seed") else None,
    )


# --- HTTP / SSE ---------------------------------------------------------------------------


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
