"""Frozen configuration for the runtime core, built once at the edge (CLI, tests)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

DEFAULT_MODEL_ID = "kakeya/tiny-qwen3"


@dataclass(frozen=True)
class ModelConfig:
    """Which model to load, on what device, in what dtype (`auto` resolves per DESIGN §2)."""

    model_id: str = DEFAULT_MODEL_ID
    device: str = "auto"
    dtype: str = "auto"
    weights: str = field(
        default="native",
        metadata={
            "help": "native: the weights in `dtype`; int8: weight-only int8 linears "
            "(per-row scales, activations in `dtype`; half the bytes a decode step reads)"
        },
    )


@dataclass(frozen=True)
class CacheConfig:
    """Attention sink (first `sink_tokens`) plus a window of the last `window_tokens`.

    `prefill_chunk_tokens` bounds one prefill forward; chunks are aligned to absolute
    positions so the decomposition never depends on how the history arrived.
    """

    sink_tokens: int = 4
    window_tokens: int = 1020
    prefill_chunk_tokens: int = 128


@dataclass(frozen=True)
class LimitsConfig:
    """Bounds checked before any model work."""

    max_append_tokens: int = 8192
    max_generate_tokens: int = 4096
    max_eos_ids: int = 16
    max_label_chars: int = 256


class WhenFull(enum.StrEnum):
    """What creating a session does when the store is at `max_sessions`."""

    REJECT = "reject"  # RESOURCE_EXHAUSTED: no client loses a session to another
    EVICT_IDLE = "evict-idle"  # the least recently used idle session makes room


@dataclass(frozen=True)
class StoreConfig:
    """Session store capacity, what a full store does, and idle eviction."""

    max_sessions: int = 64
    when_full: WhenFull = WhenFull.REJECT
    session_ttl_s: float = 600.0
    sweep_interval_s: float = 5.0


class LanePadding(enum.StrEnum):
    """Whether decode steps pad their batch to `max_concurrent` lanes (see SchedulerConfig)."""

    AUTO = "auto"  # pad only as far as the real step needs (checked at start)
    ALWAYS = "always"


@dataclass(frozen=True)
class SchedulerConfig:
    """Generations running together, the bounded timed wait queue, and how calls wait.

    `max_concurrent` is the decode batch. A session's tokens never depend on which others
    share a step: at start the engine runs the real decode step on this device and dtype
    and picks the cheapest shape that keeps every row's bits (unpadded, at least two rows,
    or one row per linear; see `session.step_shape`); with `lane_padding` "always" every
    step also runs `max_concurrent` lanes (padding the unused ones).
    A generation runs at most `max_unread_tokens` ahead of its reader, or
    `max_unread_batched_tokens` when the reader takes all ready tokens at once (a gRPC
    stream with `batch_tokens`: what piles up while it sends one message goes out in the
    next). A call on a session whose generate's client has gone waits up to `wind_down_s`
    for it to end; one whose client still reads is refused after `abandon_grace_s` (a
    cancel may be on its way).
    """

    max_concurrent: int = 4
    lane_padding: LanePadding = LanePadding.AUTO
    max_queue: int = 32
    queue_timeout_s: float = 30.0
    max_unread_tokens: int = 2
    max_unread_batched_tokens: int = 16
    wind_down_s: float = 5.0
    abandon_grace_s: float = 0.5


@dataclass(frozen=True)
class RuntimeConfig:
    model: ModelConfig = ModelConfig()
    cache: CacheConfig = CacheConfig()
    limits: LimitsConfig = LimitsConfig()
    store: StoreConfig = StoreConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
