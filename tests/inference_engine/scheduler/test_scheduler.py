"""Scheduler alone: slots, busy sessions, queue bound, timeout, cancel, shutdown."""

from __future__ import annotations

import threading
import time

import pytest

from inference_engine.config import SchedulerConfig
from inference_engine.errors import FailedPrecondition, ResourceExhausted, Unavailable
from inference_engine.scheduler.scheduler import AdmissionCancelled, Scheduler, Slot
from inference_engine.tenancy import Identity, TenancyConfig


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


# --- identities: fair turns, per-identity bounds, counts ----------------------------------

HOG, VICTIM = Identity.for_token("hog"), Identity.for_token("victim")


def queue_in_order(s: Scheduler, entries: list[tuple[str, Identity, int]]) -> list[str]:
    """Queue each (session, identity, cost) in turn behind a held slot; return grant order."""
    holder = s.admit("holder", threading.Event(), HOG)
    granted: list[str] = []
    lock = threading.Lock()

    def wait(name: str, identity: Identity, cost: int) -> None:
        slot = s.admit(name, threading.Event(), identity, cost)
        with lock:
            granted.append(name)
        s.release(slot)

    threads = []
    for index, (name, identity, cost) in enumerate(entries, start=1):
        thread = threading.Thread(target=wait, args=(name, identity, cost))
        thread.start()
        threads.append(thread)
        while s.queued < index:
            time.sleep(0.001)
    s.release(holder)
    for thread in threads:
        thread.join(10)
    return granted


def test_a_waiting_identity_is_served_before_a_hogs_backlog():
    s = Scheduler(SchedulerConfig(max_concurrent=1, max_queue=16, queue_timeout_s=10))
    backlog = [(f"hog{i}", HOG, 1000) for i in range(4)]
    order = queue_in_order(s, [*backlog, ("victim", VICTIM, 10)])
    assert order.index("victim") <= 1, order  # not behind the hog's four long generations


def test_deficit_round_robin_shares_turns_by_tokens():
    tenancy = TenancyConfig(drr_quantum_tokens=100)
    s = Scheduler(SchedulerConfig(max_concurrent=1, max_queue=16, queue_timeout_s=10), tenancy)
    entries = [(f"h{i}", HOG, 200) for i in range(3)] + [(f"v{i}", VICTIM, 50) for i in range(6)]
    order = queue_in_order(s, entries)
    # Per 200 tokens of credit the victim gets four short ones for each of the hog's long ones.
    assert order.index("v3") < order.index("h1"), order
    assert [n for n in order if n.startswith("h")] == ["h0", "h1", "h2"]  # FIFO per identity


def test_per_identity_concurrency_leaves_lanes_for_others():
    tenancy = TenancyConfig(max_concurrent_per_identity=2)
    s = Scheduler(SchedulerConfig(max_concurrent=4, max_queue=8, queue_timeout_s=0.05), tenancy)
    s.admit("h1", threading.Event(), HOG)
    s.admit("h2", threading.Event(), HOG)
    with pytest.raises(ResourceExhausted, match="no generation slot") as waited:
        s.admit("h3", threading.Event(), HOG)
    assert waited.value.reason == "queue_timeout" and waited.value.retry_after_s > 0
    assert s.admit("v1", threading.Event(), VICTIM).identity == VICTIM
    assert s.by_identity() == {HOG: (2, 0), VICTIM: (1, 0)}


def test_per_identity_queue_bound():
    tenancy = TenancyConfig(max_queued_per_identity=1)
    s = Scheduler(SchedulerConfig(max_concurrent=1, max_queue=8, queue_timeout_s=5), tenancy)
    s.admit("h0", threading.Event(), HOG)
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            s.admit("h1", threading.Event(), HOG)
        except Unavailable as error:  # the shutdown below ends the wait
            outcome.append(error)

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    while s.queued < 1:
        time.sleep(0.001)
    with pytest.raises(ResourceExhausted, match="max-queued-per-identity") as refused:
        s.admit("h2", threading.Event(), HOG)
    assert refused.value.reason == "quota"
    assert s.by_identity() == {HOG: (1, 1)}
    s.shutdown()
    waiter.join(5)
    assert len(outcome) == 1


def test_tokens_per_minute_refuse_with_the_time_to_wait():
    tenancy = TenancyConfig(tokens_per_minute_per_identity=100)
    s = Scheduler(SchedulerConfig(max_concurrent=4), tenancy)
    s.charge(HOG, 150)
    with pytest.raises(ResourceExhausted, match="tokens per minute") as refused:
        s.admit("h", threading.Event(), HOG)
    assert 50 < refused.value.retry_after_s <= 60
    assert s.admit("v", threading.Event(), VICTIM)


def test_queued_and_running_never_count_a_waiter_twice_or_not_at_all():
    s = Scheduler(SchedulerConfig(max_concurrent=2, max_queue=64, queue_timeout_s=10))
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            counts = s.by_identity()
            seen.append(sum(run + wait for run, wait in counts.values()))

    def work(index: int) -> None:
        slot = s.admit(f"s{index}", threading.Event(), HOG if index % 2 else VICTIM, 5)
        time.sleep(0.002)
        s.release(slot)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    stop.set()
    watcher.join()
    assert max(seen) <= 8 and (s.running, s.queued) == (0, 0)


def test_a_long_generation_yields_its_lane_to_another_identity_and_resumes():
    tenancy = TenancyConfig(preempt_after_tokens=4)
    s = Scheduler(SchedulerConfig(max_concurrent=1, max_queue=8, queue_timeout_s=10), tenancy)
    hog = s.admit("hog", threading.Event(), HOG, 1000)
    assert not s.should_yield(hog, 100)  # nobody else waits
    granted: list[Slot] = []
    victim = threading.Thread(
        target=lambda: granted.append(s.admit("v", threading.Event(), VICTIM, 8))
    )
    victim.start()
    while s.queued < 1:
        time.sleep(0.001)
    assert not s.should_yield(hog, 3)  # under the bound
    assert s.should_yield(hog, 4)
    resumed = threading.Event()
    s.park(hog, 900, resumed.set)
    victim.join(5)
    assert granted and granted[0].identity == VICTIM
    assert s.by_identity() == {HOG: (0, 1), VICTIM: (1, 0)}  # the parked one counts as waiting
    assert not resumed.is_set()
    s.release(granted[0])
    assert resumed.is_set() and s.by_identity() == {HOG: (1, 0)}
    s.release(hog)
    assert (s.running, s.queued) == (0, 0)


def test_a_parked_generation_that_ends_leaves_its_line():
    tenancy = TenancyConfig(preempt_after_tokens=1)
    s = Scheduler(SchedulerConfig(max_concurrent=1, max_queue=8, queue_timeout_s=10), tenancy)
    hog = s.admit("hog", threading.Event(), HOG)
    victim = threading.Thread(target=lambda: s.admit("v", threading.Event(), VICTIM))
    victim.start()
    while s.queued < 1:
        time.sleep(0.001)
    s.park(hog, 10, lambda: None)
    victim.join(5)
    s.release(hog)  # cancelled while parked
    assert s.by_identity() == {VICTIM: (1, 0)}
