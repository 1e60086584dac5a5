"""The one table from the runtime's `ErrorCode` to wire statuses (docs/protocol.md).

Both surfaces translate here and nowhere else:

    ErrorCode             gRPC status           HTTP
    INVALID_ARGUMENT      INVALID_ARGUMENT      400 (422: body fails the request schema)
    NOT_FOUND             NOT_FOUND             404
    RESOURCE_EXHAUSTED    RESOURCE_EXHAUSTED    429
    FAILED_PRECONDITION   FAILED_PRECONDITION   409
    UNAUTHENTICATED       UNAUTHENTICATED       401
    DEADLINE_EXCEEDED     DEADLINE_EXCEEDED     504
    UNAVAILABLE           UNAVAILABLE           503
    INTERNAL              INTERNAL              500

Any exception that is not a `RuntimeFault` is a bug: `internal_fault` turns it into an
INTERNAL fault with a short, fixed message, and logs it once, with its traceback but
without its text (which could hold request content).
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass

import grpc

from inference_engine.errors import ErrorCode, InvalidArgument, RuntimeFault

log = logging.getLogger(__name__)
INTERNAL_MESSAGE = "internal error; the server logged it"


@dataclass(frozen=True)
class WireStatus:
    """How one `ErrorCode` travels: gRPC status, HTTP status, OpenAI error `type`."""

    grpc_code: grpc.StatusCode
    http_status: int
    openai_type: str


STATUS_TABLE: dict[ErrorCode, WireStatus] = {
    ErrorCode.INVALID_ARGUMENT: WireStatus(
        grpc.StatusCode.INVALID_ARGUMENT, 400, "invalid_request_error"
    ),
    ErrorCode.NOT_FOUND: WireStatus(grpc.StatusCode.NOT_FOUND, 404, "not_found_error"),
    ErrorCode.RESOURCE_EXHAUSTED: WireStatus(
        grpc.StatusCode.RESOURCE_EXHAUSTED, 429, "rate_limit_error"
    ),
    ErrorCode.FAILED_PRECONDITION: WireStatus(
        grpc.StatusCode.FAILED_PRECONDITION, 409, "conflict_error"
    ),
    ErrorCode.UNAUTHENTICATED: WireStatus(
        grpc.StatusCode.UNAUTHENTICATED, 401, "authentication_error"
    ),
    ErrorCode.DEADLINE_EXCEEDED: WireStatus(
        grpc.StatusCode.DEADLINE_EXCEEDED, 504, "timeout_error"
    ),
    ErrorCode.UNAVAILABLE: WireStatus(grpc.StatusCode.UNAVAILABLE, 503, "server_error"),
    ErrorCode.INTERNAL: WireStatus(grpc.StatusCode.INTERNAL, 500, "server_error"),
}


class InternalFault(RuntimeFault):
    """A bug that reached a surface, carried as INTERNAL with a fixed message."""

    code = ErrorCode.INTERNAL

    def __init__(self) -> None:
        super().__init__(INTERNAL_MESSAGE)


def internal_fault(error: BaseException, where: str) -> InternalFault:
    """Logs an unexpected exception once (traceback, no message text) and wraps it.

    The message of an arbitrary exception can quote request content (ids, text), so only
    its type and the stack go to the log.
    """
    stack = "".join(traceback.format_tb(error.__traceback__))
    log.error("internal error in %s: %s\n%s", where, type(error).__name__, stack.rstrip())
    return InternalFault()


def wire_status(fault: RuntimeFault) -> WireStatus:
    """The wire status for one fault (every `ErrorCode` has a row)."""
    return STATUS_TABLE[fault.code]


def grpc_status(fault: RuntimeFault) -> grpc.StatusCode:
    """The gRPC status code a fault is sent with."""
    return wire_status(fault).grpc_code


def http_status(fault: RuntimeFault) -> int:
    """The HTTP status a fault is sent with."""
    return wire_status(fault).http_status


def openai_error(fault: RuntimeFault) -> dict[str, object]:
    """The OpenAI error envelope for a fault: `{"error": {message, type, param, code}}`."""
    param = fault.field if isinstance(fault, InvalidArgument) else None
    return error_envelope(fault.message, wire_status(fault).openai_type, fault.code.value, param)


def error_envelope(
    message: str, error_type: str, code: str, param: str | None = None
) -> dict[str, object]:
    """An OpenAI-shaped error body."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}
