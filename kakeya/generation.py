"""Generations of the `kakeya` SDK, sync and async: one running Generate call each.

Iterate a generation for token ids, then read its stop reason, counts and timings. The
server may send tokens that were ready together in one message (the SDK asks for that); a
generation still yields them one id at a time. Leaving the loop early (break, an exception,
`cancel()`) stops the server-side generation and waits for the server to confirm: the
generation then holds every token the server put into the history (`token_ids`,
`generated_tokens`), also those generated after the break.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Protocol

import grpc

from kakeya.errors import KakeyaError, from_rpc_error
from kakeya.v1 import runtime_pb2 as pb


class StopReason(enum.Enum):
    """Why a generation ended."""

    MAX_TOKENS = "MAX_TOKENS"
    EOS = "EOS"
    CANCELLED = "CANCELLED"  # this client cancelled, or the session was closed
    SHUTDOWN = "SHUTDOWN"  # the server is shutting down


_STOP_FROM_PROTO: dict[int, StopReason] = {
    pb.STOP_REASON_MAX_TOKENS: StopReason.MAX_TOKENS,
    pb.STOP_REASON_EOS: StopReason.EOS,
    pb.STOP_REASON_CANCELLED: StopReason.CANCELLED,
    pb.STOP_REASON_SHUTDOWN: StopReason.SHUTDOWN,
}


class EventCall(Protocol):
    """What a `Generation` uses of a blocking Generate call (grpc's call iterator)."""

    def __iter__(self) -> Iterator[pb.GenerateEvent]: ...

    def done(self) -> bool: ...

    def cancel(self) -> bool: ...


AsyncEventCall = grpc.aio.UnaryStreamCall[pb.GenerateRequest, pb.GenerateEvent]
StopCall = Callable[[], pb.CancelGenerateResponse]


def generate_request(
    session_id: str,
    max_tokens: int,
    temperature: float,
    top_p: float,
    top_k: int,
    seed: int | None,
    batch_tokens: bool = True,
) -> pb.GenerateRequest:
    """The wire request of one generate call (see `Session.generate` for the arguments)."""
    request = pb.GenerateRequest(
        session_id=session_id,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        batch_tokens=batch_tokens,
    )
    if seed is not None:
        request.seed = seed
    return request


class _GenerationState:
    """What a generation reports once it ends; filled in as events arrive."""

    def __init__(self) -> None:
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

    def _mark_cancelled(self) -> None:
        """Ends the generation without the server's word (an old server, a broken stream)."""
        self.stop_reason = StopReason.CANCELLED
        self.generated_tokens = len(self.token_ids)

    def _apply(self, event: pb.GenerateEvent) -> list[int]:
        """Records one event; returns the token ids it carries (none for other events)."""
        kind = event.WhichOneof("event")
        if kind == "token":
            self.token_ids.append(event.token.token_id)
            return [event.token.token_id]
        if kind == "tokens":
            ids = list(event.tokens.token_ids)
            self.token_ids.extend(ids)
            return ids
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
        return []

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

    def __init__(self, call: EventCall, stop: StopCall) -> None:
        super().__init__()
        self._call = call
        self._stop = stop

    def cancel(self) -> None:
        """Stops the server-side generation and waits for its done event (no-op once done).

        Afterwards `token_ids` and `generated_tokens` hold every token the server added to
        the session's history, also those generated after the caller stopped reading.
        """
        if self.done:
            return
        try:
            if self._stop().was_running or self._call.done():
                for event in self._call:  # the rest of the stream, up to its done event
                    self._apply(event)
        except (grpc.RpcError, KakeyaError):
            pass  # an old server without CancelGenerate, or the call is gone: cancel it
        finally:
            if not self.done:
                self._mark_cancelled()
                self._call.cancel()

    def __iter__(self) -> Iterator[int]:
        return self._events()

    def _events(self) -> Iterator[int]:
        try:
            for event in self._call:
                yield from self._apply(event)
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
        start: Callable[[], AsyncEventCall],
        stop: Callable[[], Awaitable[pb.CancelGenerateResponse]],
        previous: AsyncGeneration | None,
    ) -> None:
        super().__init__()
        self._call: AsyncEventCall | None = None
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
        call = self._call
        if call is None:  # never started: only the one before it may still run
            previous, self._previous = self._previous, None
            if previous is not None:
                await previous.cancel()
            self.stop_reason = StopReason.CANCELLED
            return
        try:
            if (await self._stop()).was_running or call.done():
                async for event in call:
                    self._apply(event)
        except (grpc.RpcError, KakeyaError):
            pass
        finally:
            if not self.done:
                self._mark_cancelled()
                call.cancel()

    def __aiter__(self) -> AsyncIterator[int]:
        return self._events()

    async def _events(self) -> AsyncIterator[int]:
        if self.done:
            return
        previous, self._previous = self._previous, None
        if previous is not None:
            await previous.cancel()
        self._call = call = self._start()
        try:
            async for event in call:
                for token_id in self._apply(event):
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


__all__ = ["AsyncGeneration", "Generation", "StopReason", "generate_request"]
