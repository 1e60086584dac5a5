"""The engine every surface adapts: one loaded model, its sessions, scheduler and metrics.

Synchronous calls for in-process use; `agenerate` runs the same event stream in a worker
thread for asyncio servers, and stops it within one decode step when the consumer leaves.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from inference_engine.config import RuntimeConfig
from inference_engine.device import dtype_name
from inference_engine.metrics import RuntimeMetrics
from inference_engine.models.loader import LoadedModel, load_model
from inference_engine.session.coordinator import Coordinator, EventStream
from inference_engine.session.events import Event, GenerationParams, SessionInfo


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_END = object()


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

    async def agenerate(self, session_id: str, params: GenerationParams) -> AsyncIterator[Event]:
        """The same stream for asyncio; errors surface at the first `__anext__`.

        Leaving early (aclose, task cancellation, a vanished client) sets the worker's
        cancel event and waits for the worker to free its slot.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancel = threading.Event()

        def put(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone; nobody is listening any more
                cancel.set()

        def work() -> None:
            try:
                stream = self.generate(session_id, params, cancel)
            except BaseException as error:  # admission refused: hand it to the consumer
                put(_Failed(error))
                return
            try:
                for event in stream:
                    put(event)
                put(_END)
            except BaseException as error:
                put(_Failed(error))
            finally:
                stream.close()

        worker = threading.Thread(target=work, name="kakeya-generate", daemon=True)
        worker.start()
        try:
            while (item := await queue.get()) is not _END:
                if isinstance(item, _Failed):
                    raise item.error
                yield item  # type: ignore[misc]
        finally:
            cancel.set()
            self.coordinator.scheduler.wake()
            await asyncio.shield(asyncio.to_thread(worker.join))

    def shutdown(self) -> None:
        """Cancel running generations, reject queued ones, stop the TTL sweeper. Idempotent."""
        if not self._shut:
            self._shut = True
            self.coordinator.shutdown()
