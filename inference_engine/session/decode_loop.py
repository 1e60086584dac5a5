"""One decode loop per engine: every running generation steps together.

Each turn of the loop runs at most one prefill chunk (round-robin over the jobs still
prefilling) and then one batched decode step for every job in decode, so a long append
delays the others by at most one chunk's forward per step. Jobs join at the next turn and
leave at once when they finish, fail or are cancelled.

Only the loop thread touches a job's model state; other threads submit jobs, set cancel
events and mark events consumed. A job runs at most `max_unread` tokens ahead of its
consumer (its own bound, when its consumer takes tokens in batches): a slow reader holds
back its own session only, and the history never runs far past what the client has read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import torch

from inference_engine.errors import InvariantViolation, Unavailable
from inference_engine.kv_cache import SinkWindowCache
from inference_engine.session import generator as gen
from inference_engine.session.events import (
    DoneEvent,
    GenerationParams,
    StopReason,
    TokenEvent,
    TruncationEvent,
)
from inference_engine.session.store import Session

log = logging.getLogger(__name__)

STREAM_END = object()  # delivered after a job's last event
_IDLE_WAIT_S = 0.05  # bound on a wait for consumers (a missed wake-up costs at most this)


@dataclass(frozen=True)
class Failure:
    """Delivered instead of further events when a job fails; the consumer raises `error`."""

    error: BaseException


Deliver = Callable[[object], None]
OnEnd = Callable[["Job", DoneEvent | None, BaseException | None], None]


class Job:
    """One admitted generation as the loop runs it."""

    def __init__(
        self,
        session: Session,
        params: GenerationParams,
        cancel: threading.Event,
        deliver: Deliver,
        on_end: OnEnd,
        chunk: int,
        max_unread: int | None = None,
    ) -> None:
        self.session = session
        self.params = params
        self.cancel = cancel
        self.deliver = deliver
        self.on_end = on_end
        cache = session.state.cache
        pending = session.history[cache.next_position :].tolist()  # int32 array to ids
        self.pieces: deque[list[int]] = deque(
            gen.prefill_chunks(cache.next_position, pending, chunk)
        )
        self.prefill_tokens = len(pending)
        self.sampler = gen.make_generator(params)
        self.started = time.perf_counter()
        self.prefill_s = 0.0
        self.generated = 0
        self.consumed = 0  # token events taken by the consumer (marked from its thread)
        self.max_unread = max_unread  # how far it may run ahead; None: the loop's default
        self.next_token: int | None = None  # sampled, forwarded by the next decode step
        self.finished = threading.Event()
        self.wake: Callable[[], None] = lambda: None  # set by the loop it joins
        # Asked at each prefill chunk boundary; True: the job has left the loop for now (its
        # owner re-submits it later, the remaining pieces unchanged).
        self.yield_lane: Callable[[Job], bool] = lambda job: False

    @property
    def cache(self) -> SinkWindowCache:
        return self.session.state.cache

    def mark_consumed(self, tokens: int = 1) -> None:
        """The consumer took `tokens` token events (called from the consumer's thread)."""
        self.consumed += tokens
        self.wake()  # it may be held back; a notify costs microseconds, a step milliseconds


class DecodeLoop:
    """The engine's decode thread: owns the model while generations run."""

    def __init__(
        self,
        model: torch.nn.Module,
        lanes: int | None,
        max_unread: int,
        on_turn: Callable[[str, int], None],
        cut_reason: Callable[[], StopReason] = lambda: StopReason.CANCELLED,
    ) -> None:
        """`lanes`: every decode step runs this many rows (padding the unused ones), or None
        where the model's kernels give each row the same bits at any batch size."""
        self.model = model
        self.lanes = lanes
        self.max_unread = max_unread
        self._cut_reason = cut_reason  # CANCELLED, or SHUTDOWN while the server stops
        self._observers = [on_turn]  # told of each forward: ("prefill" | "decode", sessions)
        self._cond = threading.Condition()
        self._incoming: list[Job] = []
        self._prefilling: deque[Job] = deque()
        self._decoding: list[Job] = []
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="kakeya-decode", daemon=True)
        self._thread.start()

    # -- other threads ------------------------------------------------------------------
    def submit(self, job: Job) -> None:
        """Hand a job to the loop; it joins at the next turn.

        Raises:
            Unavailable: the loop is stopping.
        """
        with self._cond:
            if self._stopping:
                raise Unavailable("runtime is shutting down")
            job.wake = self.wake
            self._incoming.append(job)
            self._cond.notify()

    def observe(self, observer: Callable[[str, int], None]) -> None:
        """Also call `observer(kind, sessions)` after each forward (metrics, tests)."""
        self._observers.append(observer)

    def wake(self) -> None:
        """Re-check cancel events and consumers now (instead of at the next bounded wait)."""
        with self._cond:
            self._cond.notify()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Cancel every job, let each end with its done event, and join the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout_s)

    # -- the loop thread ------------------------------------------------------------------
    def _run(self) -> None:
        while self._take_work():
            try:
                self._turn()
            except Exception as error:  # a bug here must not strand the consumers
                log.exception("decode loop turn failed; failing its jobs")
                for job in [*self._prefilling, *self._decoding]:
                    self._fail(job, error)

    def _take_work(self) -> bool:
        """Admit submitted jobs; wait while there is nothing to run. False: stop now."""
        with self._cond:
            while True:
                self._prefilling.extend(self._incoming)
                self._incoming.clear()
                if self._stopping:  # every job ends now, with its done event
                    for job in [*self._prefilling, *self._decoding]:
                        job.cancel.set()
                    return bool(self._prefilling or self._decoding)
                if self._prefilling or self._runnable() or self._cancelled():
                    return True
                # Held-back jobs wake us when their consumer reads; the timeout covers a race.
                self._cond.wait(_IDLE_WAIT_S if self._decoding else None)

    def _cancelled(self) -> list[Job]:
        return [j for j in [*self._prefilling, *self._decoding] if j.cancel.is_set()]

    def _runnable(self) -> list[Job]:
        return [
            j
            for j in self._decoding
            if j.generated - j.consumed < (j.max_unread or self.max_unread)
        ]

    def _turn(self) -> None:
        self._retire_cancelled()
        if self._prefilling:
            self._prefill_chunk(self._prefilling[0])
        ready = self._runnable()
        if ready:
            self._decode(ready)

    def _retire_cancelled(self) -> None:
        for job in self._cancelled():
            self._finish(job, self._cut_reason())

    def _prefill_chunk(self, job: Job) -> None:
        """One chunk of the first job in line; it then goes to the back of the line."""
        state = job.session.state
        if job.pieces:
            try:
                with torch.inference_mode():
                    state.last_logits = gen.forward(self.model, job.cache, job.pieces.popleft())
            except Exception as error:
                self._fail(job, error)
                return
            self._notify("prefill", 1)
        if job.pieces:
            if job.yield_lane(job):  # hook: its slot goes to a waiting generation (coordinator)
                self._prefilling.remove(job)
                return
            self._prefilling.rotate(-1)  # round-robin: the next job prefills first
            return
        self._prefilling.remove(job)
        _synchronize(state.last_logits)
        job.prefill_s = time.perf_counter() - job.started
        if job.cache.dropped_tokens:
            job.deliver(TruncationEvent(job.cache.dropped_tokens, job.cache.cached_tokens))
        if state.last_logits is None:  # unreachable: a claimed session has history
            self._fail(job, RuntimeError("no logits to sample from"))
            return
        self._decoding.append(job)
        self._emit(job, state.last_logits)

    def _decode(self, jobs: list[Job]) -> None:
        tokens = [job.next_token for job in jobs if job.next_token is not None]
        with torch.inference_mode():
            lanes = self.lanes or len(jobs)
            logits, faults = gen.decode_step(self.model, [job.cache for job in jobs], tokens, lanes)
        self._notify("decode", len(jobs))
        for job, row, fault in zip(jobs, logits, faults, strict=True):
            job.session.state.last_logits = row
            if fault is not None:
                self._fail(job, fault)
            else:
                self._emit(job, row)

    def _notify(self, kind: str, sessions: int) -> None:
        for observer in self._observers:
            observer(kind, sessions)

    def _emit(self, job: Job, logits: torch.Tensor) -> None:
        """Sample the next token, deliver it, and finish the job when it is the last."""
        try:
            token = gen.sample(logits, job.params, job.sampler)
        except Exception as error:
            self._fail(job, error)
            return
        job.session.history.append(token)
        job.generated += 1
        job.next_token = token
        job.deliver(TokenEvent(token, job.generated - 1))
        if token in job.session.eos_token_ids:
            self._finish(job, StopReason.EOS)
        elif job.generated >= job.params.max_tokens:
            self._finish(job, StopReason.MAX_TOKENS)

    def _finish(self, job: Job, stop: StopReason) -> None:
        done = DoneEvent(
            stop_reason=stop,
            generated_tokens=job.generated,
            prefill_tokens=job.prefill_tokens,
            prefill_s=job.prefill_s,
            total_s=time.perf_counter() - job.started,
            history_tokens=len(job.session.history),
        )
        self._leave(job, done, None)

    def _fail(self, job: Job, error: BaseException) -> None:
        if not isinstance(error, InvariantViolation):
            log.error("generation failed: %s: %s", type(error).__name__, error)
        self._leave(job, None, error)

    def _leave(self, job: Job, done: DoneEvent | None, error: BaseException | None) -> None:
        """Take the job out of the batch, free its slot (on_end), then tell its consumer."""
        if job in self._decoding:
            self._decoding.remove(job)
        if job in self._prefilling:
            self._prefilling.remove(job)
        try:
            job.on_end(job, done, error)
        finally:
            job.deliver(done if error is None else Failure(error))
            job.deliver(STREAM_END)
            job.finished.set()


def _synchronize(tensor: torch.Tensor | None) -> None:
    """Make timings real on asynchronous devices."""
    if tensor is None:
        return
    if tensor.device.type == "cuda":
        torch.cuda.synchronize(tensor.device)
    elif tensor.device.type == "mps":
        torch.mps.synchronize()


__all__ = ["STREAM_END", "DecodeLoop", "Failure", "Job"]
