"""Sessions and generations of the `kakeya` SDK, sync and async.

A `Session` wraps one server-side session id; a `Generation` is one running Generate
call: iterate it for token ids, then read its stop reason, counts and timings. Leaving
the loop early (break, an exception, `cancel()`) stops the server-side generation and
waits for the server to confirm: the generation then holds every token the server put
into the history (`token_ids`, `generated_tokens`), also those generated after the break.
A session stops its own still-open generation before its next call, so a chat UI's "stop,
then send the next message" needs no sleep in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from kakeya.errors import KakeyaError, SessionClosedError, SessionNotFoundError, from_rpc_error
from kakeya.v1 import runtime_pb2 as pb


class StopReason(enum.Enum):
    """Why a generation ended."""

    MAX_TOKENS = "MAX_TOKENS"
    EOS = "EOS"
    CANCELLED = "CANCELLED"  # this client cancelled, or the session was closed
    SHUTDOWN = "SHUTDOWN"  # the server is shutting down


_STOP_FROM_PROTO = {
    pb.STOP_REASON_MAX_TOKENS: StopReason.MAX_TOKENS,
    pb.STOP_REASON_EOS: StopReason.EOS,
    pb.STOP_REASON_CANCELLED: StopReason.CANCELLED,
    pb.STOP_REASON_SHUTDOWN: StopReason.SHUTDOWN,
}


@dataclass(frozen=True)
class SessionInfo:
    """A snapshot of one session (the same fields as the wire's `SessionInfo`)."""

    session_id: str
    label: str
    eos_token_ids: tuple[int, ...]
    history_tokens: int
    cached_tokens: int
    dropped_tokens: int
    kv_live_bytes: int
    kv_bound_bytes: int
    idle_s: float
    invariant_checks: int
    generating: bool

    @classmethod
    def from_proto(cls, msg: pb.SessionInfo) -> SessionInfo:
        return cls(
            session_id=msg.session_id,
            label=msg.label,
            eos_token_ids=tuple(msg.eos_token_ids),
            history_tokens=msg.history_tokens,
            cached_tokens=msg.cached_tokens,
            dropped_tokens=msg.dropped_tokens,
            kv_live_bytes=msg.kv_live_bytes,
            kv_bound_bytes=msg.kv_bound_bytes,
            idle_s=msg.idle_s,
            invariant_checks=msg.invariant_checks,
            generating=msg.generating,
        )


@dataclass(frozen=True)
class CallOptions:
    """Per-client call settings shared by its sessions."""

    metadata: tuple[tuple[str, str], ...] = ()
    timeout_s: float | None = None

    def timeout(self, override: float | None) -> float | None:
        return self.timeout_s if override is None else override


def generate_request(
    session_id: str,
    max_tokens: int,
    temperature: float,
    top_p: float,
    top_k: int,
    seed: int | None,
) -> pb.GenerateRequest:
    request = pb.GenerateRequest(
        session_id=session_id,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
    )
    if seed is not None:
        request.seed = seed
    return request


class _GenerationState:
    """What a generation reports once it ends; filled in as events arrive."""

    def __init__(self, call: Any) -> None:
        self._call = call
        self.token_ids: list[int] = []
        self.stop_reason: StopReason | None = None
        self.generated_tokens = 0
        self.prefill_tokens = 0
        self.prefill_s = 0.0
        self.total_s = 0.0
        self.history_tokens = 0
        self.truncated_tokens = 0
        self.cached_tokens: int | None = None
        self.error: KakeyaError | None = None

    @property
    def done(self) -> bool:
        return self.stop_reason is not None

    def _drain(self, was_running: bool) -> None:
        """After a confirmed stop, read the rest of the stream up to its done event."""
        if was_running or self._call.done():
            for event in self._call:
                self._apply(event)

    def _cancel_call(self) -> None:
        """Stop without the server's word (an old server, or the stream already broke)."""
        if not self.done:
            self.stop_reason = StopReason.CANCELLED
            self.generated_tokens = len(self.token_ids)
            if self._call is not None:
                self._call.cancel()

    def _apply(self, event: pb.GenerateEvent) -> int | None:
        """Records one event; returns the token id for token events."""
        kind = event.WhichOneof("event")
        if kind == "token":
            self.token_ids.append(event.token.token_id)
            return event.token.token_id
        if kind == "truncation":
            self.truncated_tokens = event.truncation.dropped_tokens
            self.cached_tokens = event.truncation.cached_tokens
        elif kind == "done":
            done = event.done
            self.stop_reason = _STOP_FROM_PROTO.get(done.stop_reason, StopReason.CANCELLED)
            self.generated_tokens = done.generated_tokens
            self.prefill_tokens = done.prefill_tokens
            self.prefill_s = done.prefill_s
            self.total_s = done.total_s
            self.history_tokens = done.history_tokens
        return None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(stop_reason={self.stop_reason}, "
            f"generated_tokens={self.generated_tokens})"
        )


class Generation(_GenerationState):
    """A running Generate call: iterate for token ids (once); read results afterwards.

    Attributes (valid after the loop ends): `stop_reason`, `generated_tokens`,
    `prefill_tokens`, `prefill_s`, `total_s`, `history_tokens`, `truncated_tokens`,
    `token_ids`.
    """

    def __init__(self, call: Any, stop: Callable[[], Any]) -> None:
        super().__init__(call)
        self._stop = stop

    def cancel(self) -> None:
        """Stops the server-side generation and waits for its done event (no-op once done).

        Afterwards `token_ids` and `generated_tokens` hold every token the server added to
        the session's history, also those generated after the caller stopped reading.
        """
        if self.done:
            return
        try:
            self._drain(self._stop().was_running)
        except (grpc.RpcError, KakeyaError):
            pass  # an old server without CancelGenerate, or the call is gone: cancel it
        finally:
            self._cancel_call()

    def __iter__(self) -> Iterator[int]:
        return self._events()

    def _events(self) -> Iterator[int]:
        try:
            for event in self._call:
                token_id = self._apply(event)
                if token_id is not None:
                    yield token_id
        except grpc.RpcError as error:
            self.error = from_rpc_error(error)
            if not self.done:
                raise self.error from None
        finally:
            if self.error is None:
                self.cancel()  # left early: stop the server (no-op when done)

    def __enter__(self) -> Generation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class AsyncGeneration(_GenerationState):
    """The asyncio twin of `Generation`: `async for token_id in generation`.

    The Generate call starts at the first iteration, once the session's previous
    generation (if still open) has been stopped and the server has confirmed it.
    """

    def __init__(
        self,
        start: Callable[[], Any],
        stop: Callable[[], Awaitable[Any]],
        previous: AsyncGeneration | None,
    ) -> None:
        super().__init__(None)
        self._start = start
        self._stop = stop
        self._previous = previous
        self._cancelling: asyncio.Lock | None = None

    async def cancel(self) -> None:
        """Stops the server-side generation and waits for its done event (no-op once done).

        Safe to call twice at once (the session's next call and the garbage collector's
        close of an abandoned `async for` may race): the second waits for the first.
        """
        self._cancelling = self._cancelling or asyncio.Lock()
        async with self._cancelling:
            if not self.done:
                await self._stop_and_drain()

    async def _stop_and_drain(self) -> None:
        if self._call is None:  # never started: only the one before it may still run
            previous, self._previous = self._previous, None
            if previous is not None:
                await previous.cancel()
            self.stop_reason = StopReason.CANCELLED
            return
        try:
            was_running = (await self._stop()).was_running
            if was_running or self._call.done():
                async for event in self._call:
                    self._apply(event)
        except (grpc.RpcError, KakeyaError):
            pass
        finally:
            self._cancel_call()

    def __aiter__(self) -> AsyncIterator[int]:
        return self._events()

    async def _events(self) -> AsyncIterator[int]:
        if self.done:
            return
        previous, self._previous = self._previous, None
        if previous is not None:
            await previous.cancel()
        self._call = self._start()
        try:
            async for event in self._call:
                token_id = self._apply(event)
                if token_id is not None:
                    yield token_id
        except grpc.RpcError as error:
            self.error = from_rpc_error(error)
            if not self.done:
                raise self.error from None
        finally:
            if self.error is None:
                await self.cancel()

    async def __aenter__(self) -> AsyncGeneration:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.cancel()


class _SessionBase:
    def __init__(self, stub: Any, session_id: str, options: CallOptions) -> None:
        self._stub = stub
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

    def __init__(self, stub: Any, session_id: str, options: CallOptions) -> None:
        super().__init__(stub, session_id, options)
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
    ) -> Generation:
        """Starts generating; iterate the result for token ids.

        The call starts at once; argument errors surface on the first iteration. A
        generation of this object still open is stopped first.

        Raises:
            SessionClosedError: the session was closed by this object.
            KakeyaError: (while iterating) the typed error of the server's status.
        """
        self._check_open()
        self._settle()
        request = generate_request(self.session_id, max_tokens, temperature, top_p, top_k, seed)
        call = self._stub.Generate(request, **self._kwargs(timeout))

        def stop() -> Any:
            return self._unary(self._stub.CancelGenerate, self._cancel_request(), timeout)

        self._generation = Generation(call, stop)
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

    def _unary(self, method: Any, request: Any, timeout: float | None) -> Any:
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

    def __init__(self, stub: Any, session_id: str, options: CallOptions) -> None:
        super().__init__(stub, session_id, options)
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
    ) -> AsyncGeneration:
        """A generation; `async for` over it for token ids (the call starts then).

        A generation of this object still open is stopped first.

        Raises:
            SessionClosedError: the session was closed by this object.
            KakeyaError: (while iterating) the typed error of the server's status.
        """
        self._check_open()
        request = generate_request(self.session_id, max_tokens, temperature, top_p, top_k, seed)

        def start() -> Any:
            return self._stub.Generate(request, **self._kwargs(timeout))

        async def stop() -> Any:
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

    async def _unary(self, method: Any, request: Any, timeout: float | None) -> Any:
        try:
            return await method(request, **self._kwargs(timeout))
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
