"""Typed errors of the `kakeya` SDK; every one derives from `KakeyaError`.

    KakeyaError                     base: every error the SDK raises
    ├── InvalidArgumentError        INVALID_ARGUMENT / OUT_OF_RANGE: bad request, nothing changed
    ├── SessionNotFoundError        NOT_FOUND: unknown, closed or evicted session
    │   └── SessionClosedError      the session was closed by this client (raised locally)
    ├── ResourceExhaustedError      RESOURCE_EXHAUSTED: store, quota or queue full, queue timeout
    ├── FailedPreconditionError     FAILED_PRECONDITION / ABORTED: invariant, session busy
    ├── UnauthenticatedError        UNAUTHENTICATED / PERMISSION_DENIED: token missing or wrong
    ├── DeadlineExceededError       DEADLINE_EXCEEDED: the call's deadline passed
    ├── RuntimeUnavailableError     UNAVAILABLE: server unreachable or shutting down
    ├── CancelledError              CANCELLED: the call was cancelled
    └── InternalError               INTERNAL, UNKNOWN, UNIMPLEMENTED, DATA_LOSS, ALREADY_EXISTS

Errors are translated once, at the edge (`from_rpc_error`); the gRPC status name stays on
`error.code` and the server's message on `error.message`. A `ResourceExhaustedError`
carries the server's hint of when to try again, `retry_after_s` (from the `retry-after`
trailing metadata; None when the server sent none).
"""

from __future__ import annotations

from typing import Any

import grpc


class KakeyaError(Exception):
    """Base of every SDK error. `code` is the gRPC status name (None for local errors)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class InvalidArgumentError(KakeyaError):
    """A request argument is out of bounds; the session is unchanged."""


class SessionNotFoundError(KakeyaError):
    """The session is unknown, closed or evicted."""


class SessionClosedError(SessionNotFoundError):
    """The session was closed through this SDK object; raised without an RPC."""


class ResourceExhaustedError(KakeyaError):
    """The server is at capacity (sessions, a per-client quota, or concurrent generations).

    `retry_after_s`: seconds after which trying again may succeed (the server's hint).
    """

    def __init__(
        self, message: str, code: str | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, code)
        self.retry_after_s = retry_after_s


class FailedPreconditionError(KakeyaError):
    """A cache invariant broke, or a Generate is already running on the session."""


class UnauthenticatedError(KakeyaError):
    """The bearer token is missing or wrong."""


class DeadlineExceededError(KakeyaError):
    """The call's deadline passed before it finished."""


class RuntimeUnavailableError(KakeyaError):
    """The runtime cannot be reached, or is shutting down."""


class CancelledError(KakeyaError):
    """The call was cancelled (by this client or by the server)."""


class InternalError(KakeyaError):
    """The server failed in a way that is not the caller's fault."""


RETRY_AFTER_KEY = "retry-after"  # trailing metadata key of a RESOURCE_EXHAUSTED status

STATUS_TO_ERROR: dict[grpc.StatusCode, type[KakeyaError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: SessionNotFoundError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.ABORTED: FailedPreconditionError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: UnauthenticatedError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNAVAILABLE: RuntimeUnavailableError,
    grpc.StatusCode.CANCELLED: CancelledError,
    grpc.StatusCode.INTERNAL: InternalError,
    grpc.StatusCode.UNKNOWN: InternalError,
    grpc.StatusCode.UNIMPLEMENTED: InternalError,
    grpc.StatusCode.DATA_LOSS: InternalError,
    grpc.StatusCode.ALREADY_EXISTS: InternalError,
}


def from_status(
    code: grpc.StatusCode, details: str | None, retry_after_s: float | None = None
) -> KakeyaError:
    """The typed error for a gRPC status and its details."""
    error_type = STATUS_TO_ERROR.get(code, InternalError)
    if error_type is ResourceExhaustedError:
        return ResourceExhaustedError(details or code.name, code.name, retry_after_s)
    return error_type(details or code.name, code.name)


def from_rpc_error(error: grpc.RpcError) -> KakeyaError:
    """The typed error for a failed gRPC call (sync or aio)."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    return from_status(code or grpc.StatusCode.UNKNOWN, details, retry_after(error))


def retry_after(error: grpc.RpcError) -> float | None:
    """The `retry-after` seconds in a failed call's trailing metadata, else None."""
    try:
        trailers = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    except Exception:  # an aio call that never reached the server has none to give
        return None
    pairs: Any = trailers or ()  # (key, value) pairs; grpc-stubs types them loosely
    for key, value in pairs:
        if key == RETRY_AFTER_KEY:
            text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
            try:
                seconds = float(text)
            except ValueError:
                return None
            return seconds if seconds >= 0 else None
    return None


__all__ = [
    "STATUS_TO_ERROR",
    "CancelledError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InternalError",
    "InvalidArgumentError",
    "KakeyaError",
    "ResourceExhaustedError",
    "RuntimeUnavailableError",
    "SessionClosedError",
    "SessionNotFoundError",
    "UnauthenticatedError",
    "from_rpc_error",
    "from_status",
]
