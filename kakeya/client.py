"""`Client` and `AsyncClient`: a gRPC channel to a Kakeya runtime, and the sessions on it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kakeya.errors import from_rpc_error
from kakeya.session import AsyncSession, CallOptions, Session
from kakeya.v1 import runtime_pb2 as pb
from kakeya.v1 import runtime_pb2_grpc as pb_grpc

DEFAULT_ADDRESS = "127.0.0.1:50051"
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def _options(token: str | None, timeout: float | None) -> CallOptions:
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    return CallOptions(metadata=metadata, timeout_s=timeout)


def _channel_options(max_message_bytes: int) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


def _create_request(eos_token_ids: Iterable[int], label: str) -> pb.CreateSessionRequest:
    return pb.CreateSessionRequest(eos_token_ids=list(eos_token_ids), label=label)


class Client:
    """A blocking client; a context manager that closes its channel.

    Args:
        address: `host:port` of the runtime's gRPC endpoint.
        token: bearer token, sent on every call when set.
        timeout: default deadline in seconds for every call (a whole Generate stream
            included); `None` means no deadline. Each method takes its own `timeout=`.
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        token: str | None = None,
        timeout: float | None = None,
        *,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self.address = address
        self._options = _options(token, timeout)
        self._channel = grpc.insecure_channel(address, options=_channel_options(max_message_bytes))
        self._stub = pb_grpc.RuntimeServiceStub(self._channel)

    def create_session(
        self, eos_token_ids: Iterable[int] = (), label: str = "", *, timeout: float | None = None
    ) -> Session:
        """Creates a session on the server.

        Raises:
            InvalidArgumentError: bad EOS ids or label.
            ResourceExhaustedError: the session store is full.
            UnauthenticatedError: the token is missing or wrong.
            RuntimeUnavailableError: the server cannot be reached.
        """
        request = _create_request(eos_token_ids, label)
        try:
            response = self._stub.CreateSession(
                request, timeout=self._options.timeout(timeout), metadata=self._options.metadata
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        return Session(self._stub, response.session.session_id, self._options)

    def session(self, session_id: str) -> Session:
        """A handle on an existing session id (no RPC; errors surface on use)."""
        return Session(self._stub, session_id, self._options)

    def healthy(self, *, timeout: float | None = 5.0) -> bool:
        """True when the server's health service reports SERVING."""
        stub = health_pb2_grpc.HealthStub(self._channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError:
            return False
        serving: bool = reply.status == health_pb2.HealthCheckResponse.SERVING
        return serving

    def close(self) -> None:
        """Closes the channel (sessions stay on the server until closed or expired)."""
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.address!r})"


class AsyncClient:
    """The asyncio twin of `Client`; `async with` closes its channel.

    Create it inside the event loop that uses it.
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        token: str | None = None,
        timeout: float | None = None,
        *,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self.address = address
        self._options = _options(token, timeout)
        self._channel = grpc.aio.insecure_channel(
            address, options=_channel_options(max_message_bytes)
        )
        self._stub = pb_grpc.RuntimeServiceStub(self._channel)

    async def create_session(
        self, eos_token_ids: Iterable[int] = (), label: str = "", *, timeout: float | None = None
    ) -> AsyncSession:
        """Creates a session on the server.

        Raises:
            InvalidArgumentError: bad EOS ids or label.
            ResourceExhaustedError: the session store is full.
            UnauthenticatedError: the token is missing or wrong.
            RuntimeUnavailableError: the server cannot be reached.
        """
        request = _create_request(eos_token_ids, label)
        try:
            response = await self._stub.CreateSession(
                request, timeout=self._options.timeout(timeout), metadata=self._options.metadata
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        return AsyncSession(self._stub, response.session.session_id, self._options)

    def session(self, session_id: str) -> AsyncSession:
        """A handle on an existing session id (no RPC; errors surface on use)."""
        return AsyncSession(self._stub, session_id, self._options)

    async def healthy(self, *, timeout: float | None = 5.0) -> bool:
        """True when the server's health service reports SERVING."""
        stub = health_pb2_grpc.HealthStub(self._channel)
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError:
            return False
        serving: bool = reply.status == health_pb2.HealthCheckResponse.SERVING
        return serving

    async def close(self) -> None:
        """Closes the channel."""
        await self._channel.close(None)  # no grace: calls still running are cancelled

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncClient({self.address!r})"


__all__ = ["DEFAULT_ADDRESS", "AsyncClient", "Client"]
