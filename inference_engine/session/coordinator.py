"""The session lifecycle over one loaded model: create, append, generate, info, close.

A generate prefills only what was appended since the last forward (generated tokens join
the history too, the last one pending), then decodes until EOS, `max_tokens`, or cancel.
Validation and admission happen before the first forward; the stream is a generator of
frozen events that every surface adapts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from inference_engine.config import RuntimeConfig
from inference_engine.errors import FailedPrecondition, InvariantViolation
from inference_engine.kv_cache import CacheShape, SinkWindowCache
from inference_engine.metrics import RuntimeMetrics
from inference_engine.scheduler.scheduler import Scheduler, Slot
from inference_engine.session import generator as gen
from inference_engine.session.cuda_graph import GraphDecoder, graphs_available
from inference_engine.session.events import (
    DoneEvent,
    Event,
    GenerationParams,
    SessionInfo,
    StopReason,
    TokenEvent,
    TruncationEvent,
)
from inference_engine.session.store import Session, SessionStore
from inference_engine.session.validation import check_params, check_session_args, check_token_ids

log = logging.getLogger(__name__)


@dataclass
class ModelState:
    """What a session keeps on the model side between calls."""

    cache: SinkWindowCache
    graph: GraphDecoder | bool | None = None  # CUDA only: the captured step; False: failed
    last_logits: torch.Tensor | None = None  # logits after the newest forwarded position
    cancel: threading.Event | None = None  # the running generate's, so close can stop it
    invariant_checks: int = 0


class Coordinator:
    """Sessions over one model; thread-safe, one generate per session at a time."""

    def __init__(
        self,
        model: torch.nn.Module,
        vocab_size: int,
        config: RuntimeConfig,
        metrics: RuntimeMetrics,
    ) -> None:
        self.model = model
        self.vocab_size = vocab_size
        self.config = config
        self.metrics = metrics
        self.shape = CacheShape.of(model)
        self.graphs = config.cache.cuda_graphs and graphs_available(self.shape.device)
        self.store = SessionStore(config.store, on_end=self._on_session_end)
        self.scheduler = Scheduler(config.scheduler)
        metrics.watch(self.scheduler, config.store)

    # -- lifecycle ---------------------------------------------------------------
    def create_session(self, eos_token_ids: Sequence[int] = (), label: str = "") -> SessionInfo:
        eos = check_session_args(eos_token_ids, label, self.vocab_size, self.config.limits)
        c = self.config.cache
        cache = SinkWindowCache(
            self.shape, c.sink_tokens, c.window_tokens, c.prefill_chunk_tokens, self.graphs
        )
        session = self.store.create(label, eos, ModelState(cache))
        self.metrics.session_total.labels(outcome="created").inc()
        self._refresh_gauges()
        return self._info(session)

    def append(self, session_id: str, token_ids: Sequence[int]) -> int:
        limit = self.config.limits.max_append_tokens
        ids = check_token_ids("token_ids", token_ids, self.vocab_size, limit)
        with self.store.lock:
            self.store.check_accepting()
            session = self.store.get(session_id)
            if session.busy:
                raise FailedPrecondition(f"session {session_id!r} is generating; append after it")
            session.history.extend(ids)
            length = len(session.history)
        self._refresh_gauges()
        return length

    def info(self, session_id: str) -> SessionInfo:
        with self.store.lock:
            return self._info(self.store.get(session_id))

    def close(self, session_id: str) -> None:
        session = self.store.close(session_id)
        if session.state.cancel is not None:
            session.state.cancel.set()

    def shutdown(self) -> None:
        self.store.stop_accepting()  # first: a stream cut from here on ends as SHUTDOWN
        self.scheduler.shutdown()
        self.store.stop_sweeper()

    # -- generate ----------------------------------------------------------------
    def generate(
        self, session_id: str, params: GenerationParams, cancel: threading.Event | None = None
    ) -> EventStream:
        """Validate and admit now; return the event stream (runs as it is iterated).

        Raises:
            InvalidArgument, SessionNotFound, FailedPrecondition, ResourceExhausted,
            Unavailable: before any model work.
        """
        check_params(params, self.config.limits)
        cancel = cancel or threading.Event()
        session = self._claim(session_id, cancel)
        try:
            slot = self.scheduler.admit(session_id, cancel)
        except BaseException:
            self._unclaim(session)
            raise
        return self._stream(session, params, slot)

    def _claim(self, session_id: str, cancel: threading.Event) -> Session:
        with self.store.lock:
            session = self.store.get(session_id)
            if session.busy:
                raise FailedPrecondition(f"session {session_id!r} already has a generate in flight")
            if not session.history:
                raise FailedPrecondition(f"session {session_id!r} has no tokens; append first")
            session.busy = True
            session.state.cancel = cancel
            return session

    def _unclaim(self, session: Session) -> None:
        with self.store.lock:
            session.busy = False
            session.state.cancel = None
            session.touched_at = time.monotonic()

    def _stream(self, session: Session, params: GenerationParams, slot: Slot) -> EventStream:
        done: list[DoneEvent] = []
        failed: list[Exception] = []

        def events() -> Iterator[Event]:
            try:
                for event in self._run(session, params, slot.cancel):
                    if isinstance(event, DoneEvent):
                        done.append(event)
                    yield event
            except InvariantViolation as violation:
                failed.append(violation)
                self.metrics.cache_invariant_violations_total.labels(kind=violation.kind).inc()
                self.store.fail(session, f"invariant {violation.kind}")
                raise
            except Exception as error:  # GeneratorExit (a consumer leaving) is no failure
                failed.append(error)
                raise

        def finish() -> None:
            self.scheduler.release(slot)
            self._unclaim(session)
            self._record(done[-1] if done else None, failed=bool(failed))

        return EventStream(events(), finish)

    def _run(
        self, session: Session, params: GenerationParams, cancel: threading.Event
    ) -> Iterator[Event]:
        started = time.perf_counter()
        state: ModelState = session.state
        pending = session.history[state.cache.next_position :]
        logits = self._prefill(state, pending)
        prefill_s = time.perf_counter() - started
        if state.cache.dropped_tokens:
            yield TruncationEvent(state.cache.dropped_tokens, state.cache.cached_tokens)
        sampler = gen.make_generator(params)
        generated, stop = 0, StopReason.MAX_TOKENS
        while not cancel.is_set():
            token = gen.sample(logits, params, sampler)
            session.history.append(token)
            generated += 1
            yield TokenEvent(token, generated - 1)
            if token in session.eos_token_ids:
                stop = StopReason.EOS
                break
            if generated >= params.max_tokens or cancel.is_set():
                break
            logits = self._decode(state, token)
        if cancel.is_set() and stop is StopReason.MAX_TOKENS and generated < params.max_tokens:
            stop = StopReason.SHUTDOWN if self.store.stopping else StopReason.CANCELLED
        yield DoneEvent(
            stop_reason=stop,
            generated_tokens=generated,
            prefill_tokens=len(pending),
            prefill_s=prefill_s,
            total_s=time.perf_counter() - started,
            history_tokens=len(session.history),
        )

    def _prefill(self, state: ModelState, pending: list[int]) -> torch.Tensor:
        if pending:
            chunk = self.config.cache.prefill_chunk_tokens
            with torch.inference_mode():
                state.last_logits = gen.prefill(self.model, state.cache, pending, chunk)
            state.invariant_checks += len(gen.prefill_chunks(0, pending, chunk))
            _synchronize(state.last_logits)
        if state.last_logits is None:  # unreachable: a claimed session has history
            raise FailedPrecondition("no logits to sample from")
        return state.last_logits

    def _decode(self, state: ModelState, token: int) -> torch.Tensor:
        with torch.inference_mode():
            state.last_logits = self._decode_step(state, token)
        state.invariant_checks += 1
        return state.last_logits

    def _decode_step(self, state: ModelState, token: int) -> torch.Tensor:
        if self.graphs and state.graph is not False:
            try:
                state.graph = state.graph or GraphDecoder(self.model, state.cache)
                return state.graph.step(token).clone()  # the graph reuses its output buffer
            except RuntimeError as error:  # capture failed before touching live state
                log.warning("CUDA graph capture failed, decoding eagerly: %s", error)
                state.graph = False
        return gen.decode_one_token(self.model, state.cache, token)

    # -- facts and metrics -----------------------------------------------------
    def _info(self, session: Session) -> SessionInfo:
        state: ModelState = session.state
        cache = state.cache
        return SessionInfo(
            session_id=session.session_id,
            label=session.label,
            eos_token_ids=session.eos_token_ids,
            history_tokens=len(session.history),
            cached_tokens=cache.cached_tokens,
            dropped_tokens=cache.dropped_tokens,
            kv_live_bytes=cache.live_bytes,
            kv_bound_bytes=cache.bound_bytes,
            idle_s=session.idle_s(),
            invariant_checks=state.invariant_checks,
            invariant_violations=0,
            generating=session.busy,
        )

    def _record(self, done: DoneEvent | None, failed: bool) -> None:
        m = self.metrics
        if failed:
            reason = "FAILED"
        else:
            reason = done.stop_reason.value if done else StopReason.CANCELLED.value
        m.generate_total.labels(stop_reason=reason).inc()
        if done is not None:
            m.generate_prefill_tokens.observe(done.prefill_tokens)
            m.generate_prefill_duration_seconds.observe(done.prefill_s)
            m.generate_decode_tokens_total.inc(done.generated_tokens)
            decode_s = done.total_s - done.prefill_s
            if done.generated_tokens > 1 and decode_s > 0:
                m.generate_decode_tokens_per_second.observe((done.generated_tokens - 1) / decode_s)
        self._refresh_gauges()

    def _on_session_end(self, session: Session, outcome: str) -> None:
        kind, _, reason = outcome.partition(":")
        self.metrics.session_total.labels(outcome=kind).inc()
        if kind == "evicted":
            self.metrics.session_evicted_total.labels(reason=reason).inc()
        self._refresh_gauges()

    def _refresh_gauges(self) -> None:
        sessions = self.store.sessions()
        self.metrics.session_active.set(len(sessions))
        self.metrics.session_kv_live_bytes.set(sum(s.state.cache.live_bytes for s in sessions))
        self.metrics.session_history_tokens.set(sum(len(s.history) for s in sessions))


class EventStream:
    """An admitted generation: iterate it for events; closing it (or finishing) frees the slot.

    A plain generator would not run its cleanup if dropped before its first `next`, which
    would leak the scheduler slot; this wrapper releases exactly once in every case.
    """

    def __init__(self, events: Iterator[Event], finish: Callable[[], None]) -> None:
        self._events = events
        self._finish: Callable[[], None] | None = finish

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> Event:
        try:
            return next(self._events)
        except BaseException:
            self._release()
            raise

    def close(self) -> None:
        """Stop the generation (if running) and free its slot; idempotent."""
        try:
            self._events.close()
        finally:
            self._release()

    def __del__(self) -> None:
        self.close()

    def _release(self) -> None:
        finish, self._finish = self._finish, None
        if finish is not None:
            finish()


def _synchronize(tensor: torch.Tensor) -> None:
    """Make timings real on asynchronous devices."""
    if tensor.device.type == "cuda":
        torch.cuda.synchronize(tensor.device)
    elif tensor.device.type == "mps":
        torch.mps.synchronize()
