"""The runtime's one error taxonomy; surfaces map it to wire codes at their edge.

    RuntimeFault                  base: every error the core raises on purpose
    ├── InvalidArgument           bad user input; nothing was changed
    ├── SessionNotFound           unknown, closed or evicted session
    ├── ResourceExhausted         store full, queue full or timed out, history bound, RPC caps
    │   └── ReaderStalled         a stream's reader was away past `max_unread_s`
    ├── FailedPrecondition        invariant violation, session busy
    ├── Unauthenticated           missing or wrong bearer token
    ├── DeadlineExceeded          the caller's deadline passed
    ├── Unavailable               shutting down, model not loadable
    └── ModelNotCached            model missing from the HF cache (names the prewarm command)

Anything else that reaches a surface is a bug: it is sent as `ErrorCode.INTERNAL` with a
short message and logged once. The core imports neither grpc nor FastAPI:
`inference_engine.server.errors` holds the single table from `ErrorCode` to wire statuses.
Messages quote client-supplied strings through `quote`, never whole.
"""

from __future__ import annotations

import enum

QUOTE_MAX_CHARS = 32  # how much of a client-supplied string an error message may repeat


class ErrorCode(enum.Enum):
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"


class RuntimeFault(Exception):
    """Base of every deliberate runtime error. `code` picks the wire status."""

    code: ErrorCode = ErrorCode.UNAVAILABLE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(RuntimeFault):
    """A request argument is out of bounds; `field` names it."""

    code = ErrorCode.INVALID_ARGUMENT

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class SessionNotFound(RuntimeFault):
    code = ErrorCode.NOT_FOUND


class ResourceExhausted(RuntimeFault):
    code = ErrorCode.RESOURCE_EXHAUSTED


class ReaderStalled(ResourceExhausted):
    """A generation's consumer did not read for `bound_s` in all; the generation was
    cancelled so that its decode lane is free for others."""

    def __init__(self, bound_s: float) -> None:
        super().__init__(f"stream not read for {bound_s:g}s (max_unread_s); generation cancelled")
        self.bound_s = bound_s


class FailedPrecondition(RuntimeFault):
    code = ErrorCode.FAILED_PRECONDITION


class InvariantViolation(FailedPrecondition):
    """A KV-cache invariant broke; `kind` is the metric label (inv1, inv2)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"cache invariant {kind} violated: {message}")
        self.kind = kind


class Unauthenticated(RuntimeFault):
    code = ErrorCode.UNAUTHENTICATED


class DeadlineExceeded(RuntimeFault):
    code = ErrorCode.DEADLINE_EXCEEDED


class Unavailable(RuntimeFault):
    code = ErrorCode.UNAVAILABLE


class ModelNotCached(Unavailable):
    """The model is not in the Hugging Face cache and may not be downloaded."""

    def __init__(self, model_id: str, detail: str = "") -> None:
        command = prewarm_command(model_id)
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"model {model_id!r} is not in the Hugging Face cache{extra}; run: {command}"
        )
        self.model_id = model_id
        self.command = command


def prewarm_command(model_id: str) -> str:
    """The exact command that puts `model_id` into the cache."""
    return f"kakeya-runtime prewarm --model {model_id}"


def quote(value: str, max_chars: int = QUOTE_MAX_CHARS) -> str:
    """A client-supplied string for an error message: its repr, clipped to a short prefix.

    Errors travel in gRPC trailers and log lines; echoing a megabyte id would turn a
    NOT_FOUND into a metadata-size failure and flood the log.
    """
    if len(value) <= max_chars:
        return repr(value)
    return f"{value[:max_chars]!r}... ({len(value)} characters)"
