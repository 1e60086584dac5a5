"""The engine every surface adapts: one loaded model, its sessions, scheduler and metrics.

Synchronous calls for in-process use; `agenerate` is the same event stream for asyncio
servers: admission waits in a thread of its own, then the decode loop delivers the events
straight onto the caller's event loop. A consumer that leaves stops its generation within
one decode step.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from typing import Any, TypeVar

from inference_engine.config import RuntimeConfig
from inference_engine.device import dtype_name
from inference_engine.metrics import RuntimeMetrics
from inference_engine.models.loader import LoadedModel, load_model
from inference_engine.session.coordinator import Coordinator, EventStream
from inference_engine.session.decode_loop import STREAM_END, Failure, Job
from inference_engine.session.events import Event, GenerationParams, SessionInfo, TokenEvent
from inference_engine.tenancy import Identity

T = TypeVar("T")


class Engine:
    """Facade over the coordinator, with the model's identity for surfaces to report."""

    def __init__(self, loaded: LoadedModel, config: RuntimeConfig) -> None:
        self.loaded = loaded
        self.config = config
        self.metrics = RuntimeMetrics()
        self.coordinator = Coordinator(loaded.model, loaded.vocab_size, config, self.metrics)
        self.coordinator.store.start_sweeper()
        self._shut = False

    @classmethod
    def start(cls, config: RuntimeConfig) -> Engine:
        """Load the model from the HF cache (never downloads) and start serving sessions."""
        return cls(load_model(config.model), config)

    @classmethod
    def from_loaded(cls, loaded: LoadedModel, config: RuntimeConfig) -> Engine:
        """An engine over an already loaded model (tests share one load across engines)."""
        return cls(loaded, config)

    # -- identity ----------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return self.loaded.model_id

    @property
    def revision(self) -> str:
        return self.loaded.revision

    @property
    def device(self) -> str:
        return str(self.loaded.device)

    @property
    def dtype(self) -> str:
        return dtype_name(self.loaded.dtype)

    @property
    def vocab_size(self) -> int:
        return self.loaded.vocab_size

    @property
    def tokenizer(self):
        return self.loaded.tokenizer

    # -- sessions ----------------------------------------------------------------
    def create_session(
        self,
        eos_token_ids: Sequence[int] = (),
        label: str = "",
        owner: Identity | None = None,
        pinned: bool = False,
    ) -> SessionInfo:
        """See `Coordinator.create_session` (owner: the calling identity by default)."""
        return self.coordinator.create_session(eos_token_ids, label, owner, pinned)

    def append(self, session_id: str, token_ids: Sequence[int]) -> int:
        return self.coordinator.append(session_id, token_ids)

    def info(self, session_id: str) -> SessionInfo:
        return self.coordinator.info(session_id)

    def close(self, session_id: str) -> None:
        self.coordinator.close(session_id)

    def generate(
        self, session_id: str, params: GenerationParams, cancel: threading.Event | None = None
    ) -> EventStream:
        """See `Coordinator.generate`: validated and admitted before it returns."""
        return self.coordinator.generate(session_id, params, cancel)

    def cancel_generate(self, session_id: str) -> bool:
        """Stop the session's running generate and wait (bounded) until it has ended.

        Returns:
            Whether a generate was running.

        Raises:
            SessionNotFound: unknown, closed or evicted session.
        """
        return self.coordinator.cancel_generate(session_id, self.config.scheduler.wind_down_s)

    async def agenerate(self, session_id: str, params: GenerationParams) -> AsyncIterator[Event]:
        """The same stream for asyncio; errors surface at the first `__anext__`.

        Each token counts as read when it is yielded. Leaving early (aclose, task
        cancellation, a vanished client) cancels the generation and waits until it has left
        the decode loop, so its slot is free afterwards.
        """
        async with contextlib.aclosing(self._astream(session_id, params, drain=False)) as batches:
            async for batch in batches:
                yield batch[0]

    async def agenerate_batches(
        self, session_id: str, params: GenerationParams
    ) -> AsyncIterator[list[Event]]:
        """Like `agenerate`, but each item is every event that is ready when the consumer
        asks (never empty; no event waits for others to arrive).

        For a consumer with a cost per item (a network message): when the model runs ahead
        of it, the tokens that piled up go out together. The tokens of a batch count as
        read when it is yielded, so the decode loop runs on while the batch is sent.
        """
        async with contextlib.aclosing(self._astream(session_id, params, drain=True)) as batches:
            async for batch in batches:
                yield batch

    async def _astream(
        self, session_id: str, params: GenerationParams, drain: bool
    ) -> AsyncGenerator[list[Event]]:
        """Admit the generation, then yield its events: one at a time, or (`drain`) all that
        are ready at once. A job failure is raised after the events before it."""
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[object] = asyncio.Queue()
        cancel = threading.Event()

        def deliver(item: object) -> None:
            try:
                loop.call_soon_threadsafe(items.put_nowait, item)
            except RuntimeError:  # the event loop is gone; nobody is listening any more
                cancel.set()

        try:
            s = self.config.scheduler
            window = s.max_unread_batched_tokens if drain else s.max_unread_tokens
            start = self.coordinator.start
            job = await _in_thread(start, session_id, params, deliver, cancel, window)
        except asyncio.CancelledError:
            cancel.set()  # still queued: admission sees it and gives up
            self.coordinator.scheduler.wake()
            raise
        try:
            end: object = None
            while end is None:
                batch, end = _take(items, [await items.get()], drain)
                if batch:
                    tokens = sum(isinstance(event, TokenEvent) for event in batch)
                    if tokens:
                        job.mark_consumed(tokens)
                    yield batch
            if isinstance(end, Failure):
                raise end.error
        finally:
            await asyncio.shield(_wind_down(job, self.config.scheduler.wind_down_s))

    def shutdown(self) -> None:
        """Cancel running generations, reject queued ones, stop the TTL sweeper. Idempotent."""
        if not self._shut:
            self._shut = True
            self.coordinator.shutdown()


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking call in a thread of its own (admission may wait for a long time, and
    must not take a worker of the loop's small default executor)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(setter: Callable[[Any], None], value: Any) -> None:
        if not future.done():
            setter(value)

    def work() -> None:
        try:
            result = fn(*args)
        except BaseException as error:
            loop.call_soon_threadsafe(settle, future.set_exception, error)
        else:
            loop.call_soon_threadsafe(settle, future.set_result, result)

    threading.Thread(target=work, name="kakeya-admit", daemon=True).start()
    return await future


def _take(
    items: asyncio.Queue[object], taken: list[object], drain: bool
) -> tuple[list[Event], object]:
    """Split what was taken (plus, with `drain`, all that is queued) into the events before
    the stream's end, and the end (`STREAM_END`, a `Failure`, or None: not yet)."""
    while drain and not items.empty():
        taken.append(items.get_nowait())
    events: list[Event] = []
    for item in taken:
        if item is STREAM_END or isinstance(item, Failure):
            return events, item  # nothing follows the end
        events.append(item)  # type: ignore[arg-type]
    return events, None


async def _wind_down(job: Job, timeout_s: float) -> None:
    """Cancel the job if it still runs and wait until it has left the decode loop."""
    if job.finished.is_set():
        return
    job.cancel.set()
    job.wake()
    await asyncio.to_thread(job.finished.wait, timeout_s)
