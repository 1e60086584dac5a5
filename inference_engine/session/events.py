"""Frozen values that flow out of the core: generation parameters, events, session facts.

Every surface (in-process, gRPC, HTTP) is a thin adapter over a stream of these.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# The one session snapshot, shared with the SDK (kakeya.info converts it to the wire).
from kakeya.info import SessionInfo as SessionInfo


class StopReason(enum.Enum):
    MAX_TOKENS = "MAX_TOKENS"
    EOS = "EOS"
    CANCELLED = "CANCELLED"  # the client left, or its session was closed
    SHUTDOWN = "SHUTDOWN"  # the server is stopping


@dataclass(frozen=True)
class GenerationParams:
    """What one Generate call asks for. `temperature == 0` means greedy."""

    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None


@dataclass(frozen=True)
class TokenEvent:
    token_id: int
    index: int  # 0-based position among this call's generated tokens


@dataclass(frozen=True)
class TruncationEvent:
    """History has left the cache: `dropped_tokens` in all, `cached_tokens` still attended."""

    dropped_tokens: int
    cached_tokens: int


@dataclass(frozen=True)
class DoneEvent:
    stop_reason: StopReason
    generated_tokens: int
    prefill_tokens: int
    prefill_s: float
    total_s: float
    history_tokens: int


Event = TokenEvent | TruncationEvent | DoneEvent
