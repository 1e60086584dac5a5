"""Scheduler alone: slots, busy sessions, queue bound, timeout, cancel, shutdown."""

from __future__ import annotations

import threading

import pytest

from inference_engine.config import SchedulerConfig
from inference_engine.errors import FailedPrecondition, ResourceExhausted, Unavailable
from inference_engine.scheduler.scheduler import AdmissionCancelled, Scheduler


def test_slots_up_to_max_concurrent_then_busy_session_refused():
    s = Scheduler(SchedulerConfig(max_concurrent=2, max_queue=0, queue_timeout_s=0.05))
    a = s.admit("a", threading.Event())
    s.admit("b", threading.Event())
    with pytest.raises(FailedPrecondition):
        s.admit("a", threading.Event())
    with pytest.raises(ResourceExhausted, match="queue full"):
        s.admit("c", threading.Event())
    s.release(a)
    assert s.admit("c", threading.Event()).session_id == "c"


def test_wait_times_out():
    s = Scheduler(SchedulerConfig(max_concurrent=1, max_queue=4, queue_timeout_s=0.05))
    s.admit("a", threading.Event())
    with pytest.raises(ResourceExhausted, match="no generation slot"):
        s.admit("b", threading.Event())
    assert s.queued == 0


def test_waiter_gets_the_slot_in_fifo_order():
    s = Scheduler(SchedulerConfig(max_concurrent=1, max_queue=4, queue_timeout_s=10))
    first = s.admit("a", threading.Event())
    granted: list[str] = []
    entered = threading.Event()

    def wait(name: str) -> None:
        entered.set()
        slot = s.admit(name, threading.Event())
        granted.append(name)
        s.release(slot)

    t = threading.Thread(target=wait, args=("b",))
    t.start()
    entered.wait()
    while s.queued == 0:
        entered.wait(0.001)
    s.release(first)
    t.join(5)
    assert granted == ["b"]


def test_cancel_while_queued_and_shutdown():
    s = Scheduler(SchedulerConfig(max_concurrent=1, max_queue=4, queue_timeout_s=10))
    running = s.admit("a", threading.Event())
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(AdmissionCancelled):
        s.admit("b", cancel)
    s.shutdown()
    assert running.cancel.is_set()
    with pytest.raises(Unavailable):
        s.admit("c", threading.Event())
