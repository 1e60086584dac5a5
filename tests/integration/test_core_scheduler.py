"""Admission, cancellation, shutdown and metrics on the real model."""

from __future__ import annotations

import asyncio
import threading

import pytest
from prometheus_client import generate_latest
from test_core_sessions import generate, history, wait_until

from inference_engine.errors import FailedPrecondition, ResourceExhausted, Unavailable
from inference_engine.session.events import DoneEvent, GenerationParams, StopReason, TokenEvent


def started_stream(engine, max_tokens: int = 500):
    """A session with a generate admitted and one token already out."""
    sid = engine.create_session().session_id
    engine.append(sid, history(9, 8, engine.vocab_size))
    stream = engine.generate(sid, GenerationParams(max_tokens=max_tokens))
    assert isinstance(next(stream), TokenEvent)
    return sid, stream


class Waiter(threading.Thread):
    """Runs one generate in a thread and keeps what happened."""

    def __init__(self, engine, sid: str, cancel: threading.Event | None = None) -> None:
        super().__init__(daemon=True)
        self.engine, self.sid, self.cancel = engine, sid, cancel
        self.events: list = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for event in self.engine.generate(
                self.sid, GenerationParams(max_tokens=3), self.cancel
            ):
                self.events.append(event)
        except BaseException as error:
            self.error = error


def fresh(engine) -> str:
    sid = engine.create_session().session_id
    engine.append(sid, [1, 2, 3])
    return sid


def test_second_generate_on_a_busy_session_is_failed_precondition(engine):
    sid, stream = started_stream(engine)
    with pytest.raises(FailedPrecondition):
        engine.generate(sid, GenerationParams(max_tokens=2))
    with pytest.raises(FailedPrecondition):
        engine.append(sid, [1])
    stream.close()
    assert engine.info(sid).generating is False


def test_queued_generate_runs_when_the_slot_frees(make_engine):
    engine = make_engine(max_concurrent=1)
    _, running = started_stream(engine)
    waiter = Waiter(engine, fresh(engine))
    waiter.start()
    assert wait_until(lambda: engine.coordinator.scheduler.queued == 1)
    running.close()
    waiter.join(timeout=30)
    assert waiter.error is None
    assert waiter.events[-1].stop_reason is StopReason.MAX_TOKENS


def test_wait_queue_timeout_and_overflow_are_resource_exhausted(make_engine):
    engine = make_engine(max_concurrent=1, max_queue=1, queue_timeout_s=0.3)
    _, running = started_stream(engine)
    waiter = Waiter(engine, fresh(engine))
    waiter.start()
    assert wait_until(lambda: engine.coordinator.scheduler.queued == 1)
    with pytest.raises(ResourceExhausted, match="queue full"):
        engine.generate(fresh(engine), GenerationParams(max_tokens=2))
    waiter.join(timeout=30)
    assert isinstance(waiter.error, ResourceExhausted)
    assert "no generation slot" in str(waiter.error)
    running.close()


def test_cancel_stops_within_one_step_and_frees_the_slot(make_engine):
    engine = make_engine(max_concurrent=1)
    sid = fresh(engine)
    cancel = threading.Event()
    stream = engine.generate(sid, GenerationParams(max_tokens=500), cancel)
    events = [next(stream), next(stream)]
    cancel.set()
    events.extend(stream)
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.stop_reason is StopReason.CANCELLED
    # the loop runs at most max_unread_tokens ahead of its reader, and every token it made
    # is delivered and counted
    ahead = engine.config.scheduler.max_unread_tokens
    assert 2 <= len(tokens) <= 2 + ahead
    assert len(tokens) == done.generated_tokens
    assert engine.info(sid).history_tokens == 3 + done.generated_tokens
    assert engine.coordinator.scheduler.running == 0
    generate(engine, fresh(engine), max_tokens=2)  # the one slot is free again


def test_async_consumer_leaving_early_cancels_the_worker(make_engine):
    engine = make_engine(max_concurrent=1)
    sid = fresh(engine)

    async def take_two() -> list[int]:
        got = []
        async for event in engine.agenerate(sid, GenerationParams(max_tokens=500)):
            got.append(event.token_id)
            if len(got) == 2:
                break
        return got

    assert len(asyncio.run(take_two())) == 2
    assert engine.coordinator.scheduler.running == 0
    ahead = engine.config.scheduler.max_unread_tokens  # how far the loop may run past a reader
    assert 3 + 2 <= engine.info(sid).history_tokens <= 3 + 2 + ahead


def test_shutdown_cancels_running_and_rejects_queued_and_new_work(make_engine):
    engine = make_engine(max_concurrent=1)
    _, running = started_stream(engine)
    waiter = Waiter(engine, fresh(engine))
    waiter.start()
    assert wait_until(lambda: engine.coordinator.scheduler.queued == 1)
    later = fresh(engine)
    engine.shutdown()
    rest = list(running)
    assert rest[-1].stop_reason is StopReason.SHUTDOWN
    waiter.join(timeout=30)
    assert isinstance(waiter.error, Unavailable)
    with pytest.raises(Unavailable):
        engine.generate(later, GenerationParams(max_tokens=2))


def test_metrics_values_move_with_the_work(engine):
    m = engine.metrics
    sid = engine.create_session().session_id
    assert m.session_active._value.get() == 1
    engine.append(sid, history(8, 30, engine.vocab_size))
    generate(engine, sid, max_tokens=5)
    assert m.generate_prefill_tokens._sum.get() == 30
    assert m.generate_decode_tokens_total._value.get() == 5
    assert m.generate_total.labels(stop_reason="MAX_TOKENS")._value.get() == 1
    assert m.session_kv_live_bytes._value.get() == engine.info(sid).kv_live_bytes > 0
    assert m.session_history_tokens._value.get() == 35
    engine.close(sid)
    assert m.session_active._value.get() == 0
    assert m.session_kv_live_bytes._value.get() == 0
    text = generate_latest(m.registry).decode()
    assert 'session_total{outcome="closed"} 1.0' in text
    assert "generate_prefill_duration_seconds_count 1.0" in text
    assert sid not in text
