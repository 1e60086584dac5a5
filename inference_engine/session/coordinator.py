"""The session lifecycle over one loaded model: create, append, generate, info, close.

A generate is validated, claimed and admitted in the caller's thread, then runs as a job of
the engine's decode loop (`session.decode_loop`), batched with every other running
generation. It prefills only what was appended since the last forward (generated tokens join
the history too, the last one pending), then decodes until EOS, `max_tokens`, or cancel.

A call on a session whose generate's client has left (its cancel is set) waits, bounded,
for that generate to wind down; one whose client is still reading is FailedPrecondition.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch

from inference_engine.config import LanePadding, RuntimeConfig
from inference_engine.errors import FailedPrecondition, InvariantViolation
from inference_engine.kv_cache import CacheShape, SinkWindowCache
from inference_engine.metrics import RuntimeMetrics
from inference_engine.scheduler.scheduler import Scheduler, Slot
from inference_engine.session.decode_loop import STREAM_END, DecodeLoop, Deliver, Failure, Job
from inference_engine.session.events import (
    DoneEvent,
    Event,
    GenerationParams,
    SessionInfo,
    StopReason,
    TokenEvent,
)
from inference_engine.session.step_shape import choose_step_shape
from inference_engine.session.store import Session, SessionStore
from inference_engine.session.validation import check_params, check_session_args, check_token_ids

log = logging.getLogger(__name__)
_POLL_S = 0.05  # bound on one wait for a session to become idle
FAILED_OUTCOME = "FAILED"  # generate_total's label for a generation that ended in an error


@dataclass
class ModelState:
    """What a session keeps on the model side between calls."""

    cache: SinkWindowCache
    last_logits: torch.Tensor | None = None  # logits after the newest forwarded position
    cancel: threading.Event | None = None  # the running generate's, so close can stop it


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
        self.store = SessionStore(config.store, on_end=self._on_session_end)
        self._idle = threading.Condition(self.store.lock)  # notified when a session frees up
        self.scheduler = Scheduler(config.scheduler)
        metrics.watch(self.scheduler, config.store)
        s = config.scheduler
        # the cheapest shape the real step proves invariant on this device and dtype
        self.step = choose_step_shape(model, s.max_concurrent)
        # fixed lanes (every decode step pads to max_concurrent), or None: its sessions' rows
        self.lanes = s.max_concurrent if s.lane_padding is LanePadding.ALWAYS else None
        metrics.decode_lanes.set(self.lanes or 0)
        self.loop = DecodeLoop(
            model,
            self.step.shape,
            s.max_unread_tokens,
            self._on_turn,
            self._cut_reason,
            fixed_lanes=self.lanes,
        )

    # -- lifecycle ---------------------------------------------------------------
    def create_session(self, eos_token_ids: Sequence[int] = (), label: str = "") -> SessionInfo:
        eos = check_session_args(eos_token_ids, label, self.vocab_size, self.config.limits)
        c = self.config.cache
        cache = SinkWindowCache(self.shape, c.sink_tokens, c.window_tokens, c.prefill_chunk_tokens)
        session = self.store.create(label, eos, ModelState(cache))
        self.metrics.session_total.labels(outcome="created").inc()
        self._refresh_gauges()
        return self._info(session)

    def append(self, session_id: str, token_ids: Sequence[int]) -> int:
        limit = self.config.limits.max_append_tokens
        ids = check_token_ids("token_ids", token_ids, self.vocab_size, limit)
        with self.store.lock:
            self.store.check_accepting()
            session = self._idle_session(session_id, "is generating; append after it")
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
            self.loop.wake()

    def shutdown(self) -> None:
        """Refuse new work (UNAVAILABLE), end running generations (SHUTDOWN), stop the threads."""
        self.store.stop_accepting()  # first: a stream cut from here on ends as SHUTDOWN
        self.scheduler.shutdown()
        self.loop.stop()
        self.store.stop_sweeper()

    # -- generate ----------------------------------------------------------------
    def generate(
        self, session_id: str, params: GenerationParams, cancel: threading.Event | None = None
    ) -> EventStream:
        """Validate and admit now; the decode loop runs it; iterate the stream for its events.

        Raises:
            InvalidArgument, SessionNotFound, FailedPrecondition, ResourceExhausted,
            Unavailable: before any model work.
        """
        events: queue.SimpleQueue[object] = queue.SimpleQueue()
        job = self.start(session_id, params, events.put, cancel)
        return EventStream(job, events, self.config.scheduler.wind_down_s)

    def start(
        self,
        session_id: str,
        params: GenerationParams,
        deliver: Deliver,
        cancel: threading.Event | None = None,
        max_unread: int | None = None,
    ) -> Job:
        """Validate, claim and admit (blocking while queued), then hand the job to the loop.

        `deliver` receives every event, then a `Failure` if the job failed, then `STREAM_END`;
        it is called from the loop's thread. `max_unread` bounds how far the job runs ahead
        of its consumer (default: `SchedulerConfig.max_unread_tokens`).

        Raises:
            InvalidArgument, SessionNotFound, FailedPrecondition, ResourceExhausted,
            Unavailable: nothing ran and the session is unchanged.
        """
        check_params(params, self.config.limits)
        cancel = cancel or threading.Event()
        session = self._claim(session_id, cancel)
        try:
            slot = self.scheduler.admit(session_id, cancel)
        except BaseException:
            self._unclaim(session)
            raise
        chunk = self.config.cache.prefill_chunk_tokens
        job = Job(session, params, cancel, deliver, partial(self._end, slot), chunk, max_unread)
        try:
            self.loop.submit(job)
        except BaseException:
            self.scheduler.release(slot)
            self._unclaim(session)
            raise
        return job

    def cancel_generate(self, session_id: str, timeout_s: float) -> bool:
        """Stop the session's generate, if one runs, and wait until it has ended.

        Returns:
            True when a generate was running (it has ended, or `timeout_s` passed).

        Raises:
            SessionNotFound: unknown, closed or evicted session.
        """
        with self.store.lock:
            session = self.store.get(session_id)
            cancel = session.state.cancel
            if not session.busy or cancel is None:
                return False
            cancel.set()
        self.scheduler.wake()
        self.loop.wake()
        with self._idle:
            self._idle.wait_for(lambda: not session.busy, timeout_s)
        return True

    def _claim(self, session_id: str, cancel: threading.Event) -> Session:
        with self.store.lock:
            session = self._idle_session(session_id, "already has a generate in flight")
            if not session.history:
                raise FailedPrecondition(f"session {session_id!r} has no tokens; append first")
            session.busy = True
            session.state.cancel = cancel
            return session

    def _idle_session(self, session_id: str, conflict: str) -> Session:
        """The session once no generate holds it (call with the store lock held).

        A generate whose client has gone (cancel set) ends within a step: wait for it, up to
        `wind_down_s`. One whose client still reads is a conflict once `abandon_grace_s` has
        passed (the grace covers a client's cancel that is still on its way).

        Raises:
            SessionNotFound: unknown, closed or evicted.
            FailedPrecondition: a generate holds the session.
        """
        s = self.config.scheduler
        started = time.monotonic()
        while True:
            session = self.store.get(session_id)
            if not session.busy:
                return session
            waited = time.monotonic() - started
            cancel = session.state.cancel
            abandoned = cancel is not None and cancel.is_set()
            if waited >= (s.wind_down_s if abandoned else s.abandon_grace_s):
                raise FailedPrecondition(f"session {session_id!r} {conflict}")
            self._idle.wait(_POLL_S)

    def _unclaim(self, session: Session) -> None:
        with self.store.lock:
            session.busy = False
            session.state.cancel = None
            session.touched_at = time.monotonic()
            self._idle.notify_all()

    def _end(
        self, slot: Slot, job: Job, done: DoneEvent | None, error: BaseException | None
    ) -> None:
        """The loop's word that a job left: free its slot and its session, count the outcome."""
        self.scheduler.release(slot)
        if isinstance(error, InvariantViolation):
            self.metrics.cache_invariant_violations_total.labels(kind=error.kind).inc()
            self.store.fail(job.session, f"invariant {error.kind}")
        elif error is not None:  # a forward or sampling failed: the cache may be half-written
            self.store.fail(job.session, type(error).__name__)
        self._unclaim(job.session)
        self._record(done)

    def _cut_reason(self) -> StopReason:
        """Why a generation stopped early: the server is stopping, or its client left."""
        return StopReason.SHUTDOWN if self.store.stopping else StopReason.CANCELLED

    def _on_turn(self, kind: str, sessions: int) -> None:
        if kind == "decode":
            self.metrics.decode_batch_sessions.observe(sessions)

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
            invariant_checks=cache.forwards,
            generating=session.busy,
        )

    def _record(self, done: DoneEvent | None) -> None:
        m = self.metrics
        reason = done.stop_reason.value if done else FAILED_OUTCOME
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
    """An admitted generation's events, for a synchronous consumer.

    Iterating takes events as the decode loop delivers them (a job failure is raised);
    `close` (or leaving early and dropping the stream) cancels the job and waits until it
    has left the loop, so its slot and session are free when `close` returns.
    """

    def __init__(self, job: Job, events: queue.SimpleQueue[object], wind_down_s: float) -> None:
        self._job = job
        self._events = events
        self._wind_down_s = wind_down_s
        self._ended = False

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> Event:
        if self._ended:
            raise StopIteration
        item = self._events.get()
        if item is STREAM_END or isinstance(item, Failure):
            self._ended = True
            if isinstance(item, Failure):
                raise item.error
            raise StopIteration
        if isinstance(item, TokenEvent):
            self._job.mark_consumed()
        return item  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the generation (if running) and wait until it has ended; idempotent."""
        job = self._job
        if not job.finished.is_set():
            job.cancel.set()
            job.wake()
            job.finished.wait(self._wind_down_s)

    def __del__(self) -> None:
        self.close()
