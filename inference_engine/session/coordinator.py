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
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch

from inference_engine.config import LanePadding, RuntimeConfig, SchedulerConfig
from inference_engine.errors import FailedPrecondition, InvariantViolation, RuntimeFault
from inference_engine.kv_cache import CacheShape, SinkWindowCache
from inference_engine.metrics import RuntimeMetrics
from inference_engine.scheduler.scheduler import AdmissionCancelled, Scheduler, Slot
from inference_engine.session import generator as gen
from inference_engine.session.decode_loop import STREAM_END, DecodeLoop, Deliver, Failure, Job
from inference_engine.session.events import (
    DoneEvent,
    Event,
    GenerationParams,
    SessionInfo,
    StopReason,
    TokenEvent,
)
from inference_engine.session.store import Session, SessionStore
from inference_engine.session.validation import (
    check_history_room,
    check_params,
    check_session_args,
    check_token_ids,
)

log = logging.getLogger(__name__)
_POLL_S = 0.05  # bound on one wait for a session to become idle
FAILED_OUTCOME = "FAILED"  # generate_total's label for a generation that ended in an error


@dataclass
class ModelState:
    """What a session keeps on the model side between calls."""

    cache: SinkWindowCache
    last_logits: torch.Tensor | None = None  # logits after the newest forwarded position
    cancel: threading.Event | None = None  # the running generate's, so close can stop it


# Per model, the batch sizes its kernels were found invariant up to (engines share models).
_CHECKED: weakref.WeakKeyDictionary[torch.nn.Module, dict[int, bool]] = weakref.WeakKeyDictionary()


def decode_lanes(model: torch.nn.Module, config: SchedulerConfig) -> int | None:
    """The fixed lane count every decode step runs, or None where no padding is needed."""
    max_concurrent = config.max_concurrent
    if config.lane_padding is LanePadding.AUTO and _invariant(model, max_concurrent):
        log.debug("decode steps run their sessions' rows only (batch-invariant kernels)")
        return None
    log.debug("decode steps run %d lanes (kernels depend on the batch size)", max_concurrent)
    return max_concurrent


def _invariant(model: torch.nn.Module, max_concurrent: int) -> bool:
    known = _CHECKED.setdefault(model, {})
    if max_concurrent not in known:
        known[max_concurrent] = gen.rows_batch_invariant(model, max_concurrent)
    return known[max_concurrent]


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
        self.lanes = decode_lanes(model, s)
        metrics.decode_lanes.set(self.lanes or 0)
        self.loop = DecodeLoop(
            model, self.lanes, s.max_unread_tokens, self._on_turn, self._cut_reason
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
        ids = self.check_append(token_ids, session_id)
        started = time.monotonic()
        with self._idle:
            while (length := self.try_append(session_id, ids, started)) is None:
                self._idle.wait(_POLL_S)
        return length

    def check_append(self, token_ids: Sequence[int], session_id: str | None = None) -> list[int]:
        """The ids of an append once they are valid (no state is changed). With
        `session_id`, a session whose history has no room for them is refused first, before
        the ids are read one by one (a burst against a full history costs no validation).

        Raises:
            InvalidArgument: empty, over `max_append_tokens`, or an id outside the vocab.
            ResourceExhausted: the history would outgrow `max_history_tokens`.
        """
        limits = self.config.limits
        if session_id is not None and len(token_ids) <= limits.max_append_tokens:
            with self.store.lock:
                session = self.store.find(session_id)
                if session is not None:
                    check_history_room(len(session.history), len(token_ids), limits)
        return check_token_ids("token_ids", token_ids, self.vocab_size, limits.max_append_tokens)

    def try_append(self, session_id: str, ids: list[int], started: float) -> int | None:
        """Append checked ids now, or None while a generate winding down still holds the
        session (call again; `started` is when the caller first tried). Never blocks.

        Raises:
            SessionNotFound, FailedPrecondition, Unavailable: nothing was appended.
            ResourceExhausted: the history would outgrow `max_history_tokens`.
        """
        with self.store.lock:
            self.store.check_accepting()
            session = self._try_idle(session_id, "is generating; append after it", started)
            if session is None:
                return None
            check_history_room(len(session.history), len(ids), self.config.limits)
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
        session = self._claim(session_id, cancel, params.max_tokens)
        return self.admit(session, params, deliver, cancel, max_unread)

    def admit(
        self,
        session: Session,
        params: GenerationParams,
        deliver: Deliver,
        cancel: threading.Event,
        max_unread: int | None = None,
    ) -> Job:
        """A claimed session's generation, admitted (blocking while queued) and handed to
        the loop; on any refusal the claim is undone.

        Raises:
            ResourceExhausted, Unavailable, AdmissionCancelled: nothing ran.
        """
        try:
            slot = self.scheduler.admit(session.session_id, cancel)
        except BaseException:
            self._unclaim(session)
            raise
        chunk = self.config.cache.prefill_chunk_tokens
        job = Job(session, params, cancel, deliver, partial(self._end, slot), chunk, max_unread)
        self._hand_slot(job, slot)
        try:
            self.loop.submit(job)
        except BaseException:
            self.scheduler.release(slot)
            self._unclaim(session)
            raise
        return job

    # -- a long prefill lends its slot to those waiting ---------------------------------
    def _hand_slot(self, job: Job, slot: Slot) -> None:
        """Give the job its slot: its end frees it; a long prefill may lend it out."""
        since = time.monotonic()
        job.on_end = partial(self._end, slot)
        job.yield_lane = partial(self._yield_lane, slot=slot, since=since)

    def _yield_lane(self, job: Job, slot: Slot, since: float) -> bool:
        """At a prefill chunk boundary (loop thread): once others wait for a slot and this
        prefill has held its own past `max_prefill_hold_s`, free the slot and queue the job
        again (at the back); it resumes at the next chunk when admitted again. The pieces
        are aligned to absolute positions, so the tokens do not depend on the pause."""
        held_s = time.monotonic() - since
        if not self.scheduler.queued or held_s < self.config.scheduler.max_prefill_hold_s:
            return False
        self.scheduler.release(slot)
        requeue = threading.Thread(target=self._requeue, args=(job,), name="kakeya-requeue")
        requeue.daemon = True  # one per job in the wait queue: bounded by max_queue
        requeue.start()
        return True

    def _requeue(self, job: Job) -> None:
        """Wait for a slot again, then hand the job back to the loop."""
        slot: Slot | None = None
        try:
            slot = self.scheduler.admit(job.session.session_id, job.cancel)
            self._hand_slot(job, slot)
        except AdmissionCancelled:
            pass  # the loop retires it as cancelled, with its done event
        except RuntimeFault as fault:  # queue full, wait timed out, shutting down
            self._abandon(job, fault)
            return
        try:
            self.loop.submit(job)
        except RuntimeFault as fault:
            if slot is not None:
                self.scheduler.release(slot)
            self._abandon(job, fault)

    def _abandon(self, job: Job, fault: RuntimeFault) -> None:
        """End a job that is out of the loop: the session stays as it is (its cache holds
        the chunks prefilled so far), the consumer gets the fault."""
        self._unclaim(job.session)
        self._record(None)
        job.deliver(Failure(fault))
        job.deliver(STREAM_END)
        job.finished.set()

    def release_claim(self, session: Session) -> None:
        """Undo a `try_claim` whose generation was never admitted."""
        self._unclaim(session)

    def cancel_generate(self, session_id: str, timeout_s: float) -> bool:
        """Stop the session's generate, if one runs, and wait until it has ended.

        Returns:
            True when a generate was running (it has ended, or `timeout_s` passed).

        Raises:
            SessionNotFound: unknown, closed or evicted session.
        """
        session = self.request_cancel(session_id)
        if session is None:
            return False
        with self._idle:
            self._idle.wait_for(lambda: not session.busy, timeout_s)
        return True

    def request_cancel(self, session_id: str) -> Session | None:
        """Ask the session's generate to stop (never blocks); the session, or None when no
        generate was running. It is over once `session.busy` is False.

        Raises:
            SessionNotFound: unknown, closed or evicted session.
        """
        with self.store.lock:
            session = self.store.get(session_id)
            cancel = session.state.cancel
            if not session.busy or cancel is None:
                return None
            cancel.set()
        self.scheduler.wake()
        self.loop.wake()
        return session

    def _claim(self, session_id: str, cancel: threading.Event, max_tokens: int) -> Session:
        started = time.monotonic()
        with self._idle:
            while (session := self.try_claim(session_id, cancel, started, max_tokens)) is None:
                self._idle.wait(_POLL_S)
        return session

    def try_claim(
        self, session_id: str, cancel: threading.Event, started: float, max_tokens: int
    ) -> Session | None:
        """Mark the session as generating, or None while a winding-down generate still
        holds it (call again). Never blocks.

        Raises:
            SessionNotFound, FailedPrecondition: nothing was claimed.
            ResourceExhausted: the history has no room left for `max_tokens` more.
        """
        with self.store.lock:
            session = self._try_idle(session_id, "already has a generate in flight", started)
            if session is None:
                return None
            if not session.history:
                raise FailedPrecondition(f"session {session_id!r} has no tokens; append first")
            check_history_room(len(session.history), max_tokens, self.config.limits)
            session.busy = True
            session.state.cancel = cancel
            return session

    def _try_idle(self, session_id: str, conflict: str, started: float) -> Session | None:
        """The session if no generate holds it, else None while it may still come free
        (call with the store lock held; `started`: when the caller first asked).

        A generate whose client has gone (cancel set) ends within a step: it is waited for,
        up to `wind_down_s`. One whose client still reads is a conflict once
        `abandon_grace_s` has passed (the grace covers a client's cancel still on its way).

        Raises:
            SessionNotFound: unknown, closed or evicted.
            FailedPrecondition: a generate holds the session past the bound.
        """
        s = self.config.scheduler
        session = self.store.get(session_id)
        if not session.busy:
            return session
        cancel = session.state.cancel
        abandoned = cancel is not None and cancel.is_set()
        if time.monotonic() - started >= (s.wind_down_s if abandoned else s.abandon_grace_s):
            raise FailedPrecondition(f"session {session_id!r} {conflict}")
        return None

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
