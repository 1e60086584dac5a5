"""Optional bearer-token auth for both surfaces: constant-time compare, token never logged.

The gRPC health service is exempt so that probes need no secret; it reveals nothing but
"serving". On HTTP `/healthz` is exempt for the same reason.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

import grpc

HEALTH_SERVICE_PREFIX = "/grpc.health.v1.Health/"
AUTH_HEADER = "authorization"
BEARER = "bearer "


def bearer_token(header_value: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value, else `None`."""
    if not header_value or not header_value.lower().startswith(BEARER):
        return None
    return header_value[len(BEARER) :].strip()


def token_matches(presented: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented token against the expected one."""
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def authorized(header_value: str | None, expected: str | None) -> bool:
    """True when auth is off, or the header carries the expected bearer token."""
    if not expected:
        return True
    return token_matches(bearer_token(header_value), expected)


def _metadata_value(metadata: tuple[tuple[str, str | bytes], ...] | None, key: str) -> str | None:
    for name, value in metadata or ():
        if name == key:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return None


class BearerAuthInterceptor(grpc.aio.ServerInterceptor):
    """Rejects calls without the right bearer token with UNAUTHENTICATED (health exempt)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "BearerAuthInterceptor(token=<redacted>)"

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(HEALTH_SERVICE_PREFIX):
            return handler
        header = _metadata_value(handler_call_details.invocation_metadata, AUTH_HEADER)
        if authorized(header, self._token):
            return handler
        return _rejecting_handler(handler)


async def _reject(request: object, context: grpc.aio.ServicerContext) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")


async def _reject_stream(request: object, context: grpc.aio.ServicerContext):
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")
    yield  # pragma: no cover - abort raises; the yield makes this an async generator


def _rejecting_handler(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that aborts with UNAUTHENTICATED."""
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(_reject_stream, **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(_reject, **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(_reject_stream, **kwargs)
    return grpc.unary_unary_rpc_method_handler(_reject, **kwargs)
