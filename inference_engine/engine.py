"""The engine every surface adapts: one loaded model, its sessions, scheduler and metrics.

Synchronous calls for in-process use; the `a`-prefixed coroutines are the same calls for
asyncio servers (`EngineClient`, the protocol the adapters are typed against). They never
block the event loop on a session: waits for a generate to wind down are async polls, and
the few calls that must block (admission while queued, large validations) run in small
bounded pools of their own, never in the loop's default executor, so one client's waits
cannot hold another's calls. The decode loop delivers events straight onto the caller's
event loop. A consumer that leaves stops its generation within one decode step.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from inference_engine.config import RuntimeConfig
from inference_engine.device import dtype_name
from inference_engine.errors import ReaderStalled, Unavailable
from inference_engine.metrics import RuntimeMetrics
from inference_engine.models.loader import LoadedModel, load_model
from inference_engine.session.coordinator import Coordinator, EventStream
from inference_engine.session.decode_loop import STREAM_END, Failure, Job
from inference_engine.session.events import Event, GenerationParams, SessionInfo, TokenEvent
from inference_engine.session.validation import check_params

T = TypeVar("T")
# How often an async wait re-checks a session that a winding-down generate still holds.
POLL_S = 0.01
# Appends up to this many ids are validated on the event loop (well under a millisecond).
INLINE_APPEND_IDS = 1024
WORK_THREADS = 4  # the pool for CPU-bound blocking calls (validation, decoding, tokenizing)


class EngineClient(Protocol):
    """What the serving adapters (gRPC, the HTTP shim) use of an engine: the model's
    identity, its configuration and metrics, and async calls that never block the loop."""

    config: RuntimeConfig
    metrics: RuntimeMetrics

    @property
    def model_id(self) -> str: ...
    @property
    def device(self) -> str: ...
    @property
    def dtype(self) -> str: ...
    @property
    def tokenizer(self) -> Any: ...
    @property
    def max_concurrent(self) -> int: ...
    @property
    def decode_lanes(self) -> int | None: ...

    async def acreate_session(
        self, eos_token_ids: Sequence[int] = (), label: str = ""
    ) -> SessionInfo: ...
    async def aappend(self, session_id: str, token_ids: Sequence[int]) -> int: ...
    async def ainfo(self, session_id: str) -> SessionInfo: ...
    async def aclose(self, session_id: str) -> None: ...
    async def acancel_generate(self, session_id: str) -> bool: ...
    def agenerate(self, session_id: str, params: GenerationParams) -> AsyncGenerator[Event]: ...
    def agenerate_batches(
        self, session_id: str, params: GenerationParams
    ) -> AsyncGenerator[list[Event]]: ...
    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T: ...
    def shutdown(self) -> None: ...


class Engine:
    """Facade over the coordinator, with the model's identity for surfaces to report."""

    def __init__(self, loaded: LoadedModel, config: RuntimeConfig) -> None:
        self.loaded = loaded
        self.config = config
        self.metrics = RuntimeMetrics()
        self.coordinator = Coordinator(loaded.model, loaded.vocab_size, config, self.metrics)
        self.coordinator.store.start_sweeper()
        s = config.scheduler
        # Admission blocks only while queued: at most max_queue wait, max_concurrent pass.
        self._admission = ThreadPoolExecutor(
            s.max_queue + s.max_concurrent + 1, thread_name_prefix="kakeya-admit"
        )
        self._work = ThreadPoolExecutor(WORK_THREADS, thread_name_prefix="kakeya-work")
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
    def tokenizer(self) -> Any:
        return self.loaded.tokenizer

    @property
    def max_concurrent(self) -> int:
        """Generations decoded together, as one batch per step."""
        return self.config.scheduler.max_concurrent

    @property
    def decode_lanes(self) -> int | None:
        """The rows every decode step runs (padded), or None: only the sessions' own rows."""
        return self.coordinator.lanes

    # -- sessions ----------------------------------------------------------------
    def create_session(self, eos_token_ids: Sequence[int] = (), label: str = "") -> SessionInfo:
        return self.coordinator.create_session(eos_token_ids, label)

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

    # -- the same calls for asyncio (EngineClient) ------------------------------------
    async def acreate_session(
        self, eos_token_ids: Sequence[int] = (), label: str = ""
    ) -> SessionInfo:
        return self.coordinator.create_session(eos_token_ids, label)

    async def aappend(self, session_id: str, token_ids: Sequence[int]) -> int:
        """`append` without blocking the loop: a generate still winding down is awaited.

        Raises:
            InvalidArgument, SessionNotFound, FailedPrecondition, ResourceExhausted,
            Unavailable: nothing was appended.
        """
        c = self.coordinator
        if len(token_ids) <= INLINE_APPEND_IDS:
            ids = c.check_append(token_ids, session_id)
        else:
            ids = await self.run_blocking(c.check_append, token_ids, session_id)
        return await _until_ready(lambda started: c.try_append(session_id, ids, started))

    async def ainfo(self, session_id: str) -> SessionInfo:
        return self.coordinator.info(session_id)

    async def aclose(self, session_id: str) -> None:
        self.coordinator.close(session_id)

    async def acancel_generate(self, session_id: str) -> bool:
        """`cancel_generate` without blocking the loop: the wind-down is awaited (bounded)."""
        session = self.coordinator.request_cancel(session_id)
        if session is None:
            return False
        deadline = time.monotonic() + self.config.scheduler.wind_down_s
        while session.busy and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
        return True

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a CPU-bound blocking call (tokenizing, decoding a big message) in the
        engine's small pool, so it neither stalls the loop nor queues behind waits.

        Raises:
            Unavailable: the engine has shut down.
        """
        self._check_running()
        return await asyncio.get_running_loop().run_in_executor(self._work, fn, *args)

    async def agenerate(self, session_id: str, params: GenerationParams) -> AsyncGenerator[Event]:
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
    ) -> AsyncGenerator[list[Event]]:
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

        s = self.config.scheduler
        window = s.max_unread_batched_tokens if drain else s.max_unread_tokens
        job = await self._admit(session_id, params, deliver, cancel, window)
        reader = ReaderClock(s.max_unread_s)
        watch = asyncio.ensure_future(reader.watch(job, items))
        try:
            end: object = None
            while end is None:
                batch, end = _take(items, [await items.get()], drain)
                if reader.stalled:
                    raise ReaderStalled(s.max_unread_s)
                if batch:
                    tokens = sum(isinstance(event, TokenEvent) for event in batch)
                    if tokens:
                        job.mark_consumed(tokens)
                    with reader.away():
                        yield batch
            if isinstance(end, Failure):
                raise end.error
        finally:
            watch.cancel()
            await asyncio.shield(_wind_down(job, self.config.scheduler.wind_down_s))

    async def _admit(
        self,
        session_id: str,
        params: GenerationParams,
        deliver: Callable[[object], None],
        cancel: threading.Event,
        window: int,
    ) -> Job:
        """Validate and claim on the loop (a winding-down generate is awaited), then admit
        in the bounded admission pool: only a queued generation waits there."""
        c = self.coordinator
        check_params(params, self.config.limits)
        session = await _until_ready(
            lambda started: c.try_claim(session_id, cancel, started, params.max_tokens)
        )
        loop = asyncio.get_running_loop()
        try:
            self._check_running()
        except BaseException:
            c.release_claim(session)
            raise
        admitted = loop.run_in_executor(
            self._admission, c.admit, session, params, deliver, cancel, window
        )
        try:
            return await asyncio.shield(admitted)
        except asyncio.CancelledError:
            cancel.set()  # still queued: admission sees it and gives up
            c.scheduler.wake()
            with contextlib.suppress(BaseException):
                job = await admitted  # admitted meanwhile: end it at once
                await _wind_down(job, self.config.scheduler.wind_down_s)
            raise

    def _check_running(self) -> None:
        if self._shut:
            raise Unavailable("runtime is shutting down")

    def shutdown(self) -> None:
        """Cancel running generations, reject queued ones, stop the TTL sweeper. Idempotent."""
        if not self._shut:
            self._shut = True
            self.coordinator.shutdown()
            self._admission.shutdown(wait=False)
            self._work.shutdown(wait=False)


class ReaderClock:
    """How long a generation's consumer has been away (sending what it took) while events
    waited for it. Past `bound_s` in all, the generation is cancelled: a reader that never
    reads, or reads a few bytes a second, must not hold a decode lane for hours."""

    def __init__(self, bound_s: float) -> None:
        self.bound_s = bound_s
        self.stalled = False
        self._away_s = 0.0
        self._since: float | None = None  # when the consumer left with a batch

    @contextlib.contextmanager
    def away(self) -> Iterator[None]:
        self._since = time.monotonic()
        try:
            yield
        finally:
            self._away_s += time.monotonic() - self._since
            self._since = None

    def away_s(self) -> float:
        ongoing = 0.0 if self._since is None else time.monotonic() - self._since
        return self._away_s + ongoing

    async def watch(self, job: Job, items: asyncio.Queue[object]) -> None:
        """Cancel `job` (lane freed at the next step) once its reader has been away past
        the bound while events waited; the consumer then raises `ReaderStalled`."""
        while not job.finished.is_set():
            await asyncio.sleep(min(1.0, self.bound_s / 4))
            if not items.empty() and self.away_s() > self.bound_s:
                self.stalled = True
                job.cancel.set()
                job.wake()
                return


async def _until_ready(attempt: Callable[[float], T | None]) -> T:
    """Call a non-blocking `attempt(started)` until it gives a value (it raises once its
    own bound has passed), sleeping on the loop in between."""
    started = time.monotonic()
    while (result := attempt(started)) is None:
        await asyncio.sleep(POLL_S)
    return result


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
    deadline = time.monotonic() + timeout_s
    while not job.finished.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(POLL_S)


def as_client(engine: Engine) -> EngineClient:
    """The engine as the adapters see it (mypy checks here that it keeps the protocol)."""
    return engine
