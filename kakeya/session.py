"""Sessions of the `kakeya` SDK, sync and async, and the snapshot `info()` returns.

A `Session` wraps one server-side session id; `generate` returns a `Generation`
(`kakeya.generation`). A session stops its own still-open generation before its next call,
so a chat UI's "stop, then send the next message" needs no sleep in between.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from kakeya.errors import SessionClosedError, SessionNotFoundError, from_rpc_error
from kakeya.generation import AsyncGeneration, Generation, StopReason, generate_request
from kakeya.info import ServerInfo, SessionInfo, WhenFull
from kakeya.v1 import runtime_pb2 as pb
from kakeya.v1 import runtime_pb2_grpc as pb_grpc

Request = TypeVar("Request", bound=Message)
Response = TypeVar("Response", bound=Message)


@dataclass(frozen=True)
class CallOptions:
    """Per-client call settings shared by its sessions."""

    metadata: tuple[tuple[str, str], ...] = ()
    timeout_s: float | None = None

    def timeout(self, override: float | None) -> float | None:
        return self.timeout_s if override is None else override


class _SessionBase:
    def __init__(self, session_id: str, options: CallOptions) -> None:
        self._options = options
        self.session_id = session_id
        self._closed = False

    def _cancel_request(self) -> pb.CancelGenerateRequest:
        return pb.CancelGenerateRequest(session_id=self.session_id)

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise SessionClosedError(f"session {self.session_id} is closed")

    def _kwargs(self, timeout: float | None) -> dict[str, Any]:
        return {"timeout": self._options.timeout(timeout), "metadata": self._options.metadata}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.session_id!r}, closed={self._closed})"


class Session(_SessionBase):
    """One server-side session; a context manager that closes it on exit."""

    def __init__(
        self, stub: pb_grpc.RuntimeServiceStub, session_id: str, options: CallOptions
    ) -> None:
        super().__init__(session_id, options)
        self._stub = stub
        self._generation: Generation | None = None

    def append(self, token_ids: Iterable[int], *, timeout: float | None = None) -> int:
        """Appends raw token ids; returns the new history length.

        A generation of this object still open is stopped first (see `Generation.cancel`).

        Raises:
            InvalidArgumentError: an id outside the vocabulary, an empty or oversized append.
            SessionNotFoundError: the session is closed, evicted or unknown.
        """
        self._check_open()
        self._settle()
        request = pb.AppendTokensRequest(session_id=self.session_id, token_ids=list(token_ids))
        return self._unary(self._stub.AppendTokens, request, timeout).history_tokens

    def generate(
        self,
        max_tokens: int,
        temperature: float = 0.0,
        *,
        top_p: float = 1.0,
        top_k: int = 0,
        seed: int | None = None,
        timeout: float | None = None,
        batch_tokens: bool = True,
    ) -> Generation:
        """Starts generating; iterate the result for token ids.

        The call starts at once; argument errors surface on the first iteration. A
        generation of this object still open is stopped first. With `batch_tokens` (the
        default) the server sends tokens that are ready together in one message, which
        never delays a token; `False` asks for one message per token (the wire of older
        SDKs, for comparisons).

        Raises:
            SessionClosedError: the session was closed by this object.
            KakeyaError: (while iterating) the typed error of the server's status.
        """
        self._check_open()
        self._settle()
        request = generate_request(
            self.session_id, max_tokens, temperature, top_p, top_k, seed, batch_tokens
        )
        call = self._stub.Generate(request, **self._kwargs(timeout))

        def stop() -> pb.CancelGenerateResponse:
            return self._unary(self._stub.CancelGenerate, self._cancel_request(), timeout)

        # grpc's call iterator is also a future (done, cancel); grpc-stubs types it narrower
        self._generation = Generation(call, stop)  # type: ignore[arg-type]
        return self._generation

    def _settle(self) -> None:
        """Stop this object's open generation and wait for the server to confirm."""
        if self._generation is not None and not self._generation.done:
            self._generation.cancel()

    def info(self, *, timeout: float | None = None) -> SessionInfo:
        """A snapshot of the session.

        Raises:
            SessionNotFoundError: the session is closed, evicted or unknown.
        """
        self._check_open()
        request = pb.GetSessionInfoRequest(session_id=self.session_id)
        return SessionInfo.from_proto(self._unary(self._stub.GetSessionInfo, request, timeout))

    def close(self, *, timeout: float | None = None) -> None:
        """Frees the session on the server. Idempotent; an already evicted session is fine."""
        if self._closed:
            return
        self._closed = True
        request = pb.CloseSessionRequest(session_id=self.session_id)
        with contextlib.suppress(SessionNotFoundError):
            self._unary(self._stub.CloseSession, request, timeout)

    def _unary(
        self,
        method: grpc.UnaryUnaryMultiCallable[Request, Response],
        request: Request,
        timeout: float | None,
    ) -> Response:
        try:
            return method(request, **self._kwargs(timeout))
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncSession(_SessionBase):
    """The asyncio twin of `Session`; `async with` closes it."""

    def __init__(
        self, stub: pb_grpc.RuntimeServiceAsyncStub, session_id: str, options: CallOptions
    ) -> None:
        super().__init__(session_id, options)
        self._stub = stub
        self._generation: AsyncGeneration | None = None

    async def append(self, token_ids: Iterable[int], *, timeout: float | None = None) -> int:
        """Appends raw token ids; returns the new history length.

        A generation of this object still open is stopped first (see `Generation.cancel`).

        Raises:
            InvalidArgumentError: an id outside the vocabulary, an empty or oversized append.
            SessionNotFoundError: the session is closed, evicted or unknown.
        """
        self._check_open()
        await self._settle()
        request = pb.AppendTokensRequest(session_id=self.session_id, token_ids=list(token_ids))
        return (await self._unary(self._stub.AppendTokens, request, timeout)).history_tokens

    def generate(
        self,
        max_tokens: int,
        temperature: float = 0.0,
        *,
        top_p: float = 1.0,
        top_k: int = 0,
        seed: int | None = None,
        timeout: float | None = None,
        batch_tokens: bool = True,
    ) -> AsyncGeneration:
        """A generation; `async for` over it for token ids (the call starts then).

        A generation of this object still open is stopped first. `batch_tokens` as in
        `Session.generate`.

        Raises:
            SessionClosedError: the session was closed by this object.
            KakeyaError: (while iterating) the typed error of the server's status.
        """
        self._check_open()
        request = generate_request(
            self.session_id, max_tokens, temperature, top_p, top_k, seed, batch_tokens
        )

        def start() -> grpc.aio.UnaryStreamCall[pb.GenerateRequest, pb.GenerateEvent]:
            return self._stub.Generate(request, **self._kwargs(timeout))

        async def stop() -> pb.CancelGenerateResponse:
            return await self._unary(self._stub.CancelGenerate, self._cancel_request(), timeout)

        self._generation = AsyncGeneration(start, stop, self._generation)
        return self._generation

    async def _settle(self) -> None:
        """Stop this object's open generation and wait for the server to confirm."""
        if self._generation is not None and not self._generation.done:
            await self._generation.cancel()

    async def info(self, *, timeout: float | None = None) -> SessionInfo:
        """A snapshot of the session.

        Raises:
            SessionNotFoundError: the session is closed, evicted or unknown.
        """
        self._check_open()
        request = pb.GetSessionInfoRequest(session_id=self.session_id)
        return SessionInfo.from_proto(
            await self._unary(self._stub.GetSessionInfo, request, timeout)
        )

    async def close(self, *, timeout: float | None = None) -> None:
        """Frees the session on the server. Idempotent; an already evicted session is fine."""
        if self._closed:
            return
        self._closed = True
        request = pb.CloseSessionRequest(session_id=self.session_id)
        with contextlib.suppress(SessionNotFoundError):
            await self._unary(self._stub.CloseSession, request, timeout)

    async def _unary(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[Request, Response],
        request: Request,
        timeout: float | None,
    ) -> Response:
        try:
            call: Awaitable[Response] = method(request, **self._kwargs(timeout))
            return await call
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = [
    "AsyncGeneration",
    "AsyncSession",
    "CallOptions",
    "Generation",
    "ServerInfo",
    "Session",
    "SessionInfo",
    "StopReason",
    "WhenFull",
]
