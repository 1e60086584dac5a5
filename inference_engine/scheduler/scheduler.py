"""Admission for generations: `max_concurrent` run, a bounded timed wait, fair across identities.

One in-flight generate per session (queued or running); a second is FailedPrecondition.
Each identity (`tenancy.Identity`, a session's owner) has its own wait line; when a slot
frees up, the identities that wait are served by deficit round-robin over tokens (each
turn adds `drr_quantum_tokens` to the identity's credit; a generation costs the tokens it
may use: what it prefills plus `max_tokens`), so one identity's burst of long
generations cannot starve another's short ones. Per identity at most
`max_concurrent_per_identity` run and `max_queued_per_identity` wait (0: the scheduler's
own bounds); past `tokens_per_minute_per_identity` an identity is refused with the time
until its minute frees up. Shutdown cancels running work through its cancel event and
rejects everything queued.

Preemption at step boundaries: a generation that has run `preempt_after_tokens` since its
grant while another identity waits gives its lane back (`should_yield`, `park`); it keeps
its KV and waits first in its own identity's line, and resumes where it stopped when the
round-robin grants it a lane again, so no waiter times out while one identity holds
every lane, and the tokens are the same (a step never depends on who else runs).

`running`, `queued` and `by_identity` are read under the scheduler's lock: a waiter moves
from queued to running in one step, so the gauges never count it twice or not at all.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from inference_engine.config import SchedulerConfig
from inference_engine.errors import FailedPrecondition, ResourceExhausted, Unavailable
from inference_engine.tenancy import LOCAL, Identity, TenancyConfig, TokenBudget

QUEUE_RETRY_AFTER_S = 1.0  # the hint for a full queue or a timed-out wait


class AdmissionCancelled(Exception):
    """The caller gave up while queued; nothing ran."""


@dataclass(eq=False)
class Slot:
    """A granted place to run; `cancel` is how shutdown stops the holder."""

    session_id: str
    cancel: threading.Event = field(default_factory=threading.Event)
    identity: Identity = LOCAL


@dataclass(eq=False)
class _Waiter:
    session_id: str
    identity: Identity
    cost: int
    cancel: threading.Event
    slot: Slot | None = None  # set (under the lock) when granted
    parked: Slot | None = None  # a preempted generation's own slot, given back on grant
    on_grant: Callable[[], None] | None = None  # how a parked generation resumes


class Scheduler:
    """Thread-safe admission control shared by every surface."""

    def __init__(self, config: SchedulerConfig, tenancy: TenancyConfig | None = None) -> None:
        self.config = config
        self.tenancy = tenancy or TenancyConfig()
        self.budget = TokenBudget(self.tenancy.tokens_per_minute_per_identity)
        self._cond = threading.Condition()
        self._running: dict[str, Slot] = {}
        self._lines: dict[Identity, deque[_Waiter]] = {}  # identities waiting, in turn order
        self._credit: dict[Identity, int] = {}
        self._turn_open = False  # the identity first in line has had this turn's quantum
        self._closed = False

    # -- what runs and waits -------------------------------------------------------------
    @property
    def running(self) -> int:
        with self._cond:
            return len(self._running)

    @property
    def queued(self) -> int:
        with self._cond:
            return self._queued()

    def by_identity(self) -> dict[Identity, tuple[int, int]]:
        """`{identity: (running, queued)}` for every identity that has either."""
        with self._cond:
            counts: dict[Identity, tuple[int, int]] = {}
            for slot in self._running.values():
                running, queued = counts.get(slot.identity, (0, 0))
                counts[slot.identity] = (running + 1, queued)
            for identity, line in self._lines.items():
                running, _ = counts.get(identity, (0, 0))
                counts[identity] = (running, len(line))
            return counts

    # -- admission -----------------------------------------------------------------------
    def admit(
        self,
        session_id: str,
        cancel: threading.Event,
        identity: Identity = LOCAL,
        cost_tokens: int = 0,
    ) -> Slot:
        """Block until a slot is granted, the wait times out, or the caller cancels.

        Raises:
            FailedPrecondition: this session already has a generate in flight.
            ResourceExhausted: the queue (or the identity's share of it) is full, the wait
                passed `queue_timeout_s`, or the identity spent its tokens per minute.
            Unavailable: the scheduler is shutting down.
            AdmissionCancelled: `cancel` was set while waiting.
        """
        with self._cond:
            self._refuse_if_closed()
            if session_id in self._running or self._waiting(session_id):
                raise FailedPrecondition(f"session {session_id!r} already has a generate in flight")
            self._refuse_if_over_budget(identity)
            if not self._lines and self._has_room(identity):
                return self._grant(_Waiter(session_id, identity, cost_tokens, cancel))
            self._refuse_if_queue_full(identity)
            waiter = _Waiter(session_id, identity, cost_tokens, cancel)
            self._lines.setdefault(identity, deque()).append(waiter)
            try:
                self._wait_turn(waiter)
            finally:
                if waiter.slot is None:
                    self._drop(waiter)
                    self._dispatch()
                self._cond.notify_all()
            assert waiter.slot is not None
            return waiter.slot

    def release(self, slot: Slot) -> None:
        """The generation ended (also while parked): its lane or its place in line is free."""
        with self._cond:
            if self._running.get(slot.session_id) is slot:
                del self._running[slot.session_id]
            for line in list(self._lines.values()):
                for waiter in [w for w in line if w.parked is slot]:
                    self._drop(waiter)
            self._dispatch()
            self._cond.notify_all()

    def should_yield(self, slot: Slot, tokens_since_grant: int) -> bool:
        """Whether a running generation should give its lane up now: it ran at least
        `preempt_after_tokens` since its grant and another identity waits for a lane."""
        bound = self.tenancy.preempt_after_tokens
        if bound <= 0 or tokens_since_grant < bound:
            return False
        with self._cond:
            if self._closed or self._running.get(slot.session_id) is not slot:
                return False
            return any(
                identity != slot.identity and self._running_for(identity) < self._cap()
                for identity in self._lines
            )

    def park(self, slot: Slot, remaining_tokens: int, on_grant: Callable[[], None]) -> None:
        """Take a running generation's lane back (step boundary; its KV stays); it waits
        first in its identity's line, without a timeout, and `on_grant` resumes it."""
        with self._cond:
            if self._running.get(slot.session_id) is not slot:
                return
            del self._running[slot.session_id]
            waiter = _Waiter(slot.session_id, slot.identity, remaining_tokens, slot.cancel)
            waiter.parked, waiter.on_grant = slot, on_grant
            self._lines.setdefault(slot.identity, deque()).appendleft(waiter)
            self._dispatch()
            self._cond.notify_all()

    def charge(self, identity: Identity, tokens: int) -> None:
        """Count tokens an identity used (prefill plus decode) against its minute."""
        self.budget.charge(identity, tokens)

    def shutdown(self) -> None:
        """Reject queued and future work; ask running work to stop."""
        with self._cond:
            self._closed = True
            for slot in self._running.values():
                slot.cancel.set()
            for line in self._lines.values():
                for waiter in line:
                    if waiter.parked is not None:
                        waiter.cancel.set()
            self._cond.notify_all()

    def wake(self) -> None:
        """Let waiters re-check their cancel events."""
        with self._cond:
            self._cond.notify_all()

    # -- under the lock ------------------------------------------------------------------
    def _queued(self) -> int:
        return sum(len(line) for line in self._lines.values())

    def _waiting(self, session_id: str) -> bool:
        return any(w.session_id == session_id for line in self._lines.values() for w in line)

    def _cap(self) -> int:
        return self.tenancy.max_concurrent_per_identity or self.config.max_concurrent

    def _running_for(self, identity: Identity) -> int:
        return sum(1 for slot in self._running.values() if slot.identity == identity)

    def _has_room(self, identity: Identity) -> bool:
        free = len(self._running) < self.config.max_concurrent
        return free and self._running_for(identity) < self._cap()

    def _refuse_if_over_budget(self, identity: Identity) -> None:
        wait_s = self.budget.retry_after_s(identity)
        if wait_s is not None:
            limit = self.tenancy.tokens_per_minute_per_identity
            raise ResourceExhausted(
                f"{identity} used its {limit} tokens per minute; retry in {wait_s:.1f}s",
                retry_after_s=wait_s,
                reason="tokens_per_minute",
            )

    def _refuse_if_queue_full(self, identity: Identity) -> None:
        if self._queued() >= self.config.max_queue:
            raise ResourceExhausted(
                f"wait queue full ({self.config.max_queue} waiting)",
                retry_after_s=QUEUE_RETRY_AFTER_S,
                reason="queue_full",
            )
        per_identity = self.tenancy.max_queued_per_identity
        if per_identity and len(self._lines.get(identity, ())) >= per_identity:
            raise ResourceExhausted(
                f"{identity} has {per_identity} generations waiting (--max-queued-per-identity)",
                retry_after_s=QUEUE_RETRY_AFTER_S,
                reason="quota",
            )

    def _wait_turn(self, waiter: _Waiter) -> None:
        deadline = time.monotonic() + self.config.queue_timeout_s
        self._dispatch()
        while waiter.slot is None:
            self._refuse_if_closed()
            if waiter.cancel.is_set():
                raise AdmissionCancelled(waiter.session_id)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ResourceExhausted(
                    f"no generation slot within {self.config.queue_timeout_s:g}s "
                    f"({len(self._running)} running, {self._queued()} waiting)",
                    retry_after_s=QUEUE_RETRY_AFTER_S,
                    reason="queue_timeout",
                )
            self._cond.wait(min(remaining, 0.1))

    def _dispatch(self) -> None:
        """Grant free slots to waiters by deficit round-robin over identities."""
        if self._closed:
            return
        idle_turns = 0  # turns in a row that granted nothing: stop once every line had one
        while self._lines and len(self._running) < self.config.max_concurrent:
            identity = next(iter(self._lines))
            line = self._lines[identity]
            if self._running_for(identity) >= self._cap():
                self._end_turn(identity)
            else:
                if not self._turn_open:
                    self._credit[identity] = self._credit.get(identity, 0)
                    self._credit[identity] += self.tenancy.drr_quantum_tokens
                    self._turn_open = True
                head = line[0]
                if head.cost <= self._credit[identity]:
                    self._credit[identity] -= head.cost
                    line.popleft()
                    self._grant(head)
                    idle_turns = 0
                    if not line:
                        self._forget(identity)
                    continue
                self._end_turn(identity)
            idle_turns += 1
            if idle_turns > 2 * len(self._lines) + max(1, self._max_turns_needed()):
                return

    def _max_turns_needed(self) -> int:
        """Turns of quanta until the costliest head is affordable (bounds `_dispatch`)."""
        quantum = max(1, self.tenancy.drr_quantum_tokens)
        heads = [line[0].cost for line in self._lines.values() if line]
        return max((cost // quantum + 1 for cost in heads), default=1) * len(self._lines)

    def _end_turn(self, identity: Identity) -> None:
        """The identity first in line goes to the back; the next one's turn starts."""
        line = self._lines.pop(identity)
        self._lines[identity] = line
        self._turn_open = False

    def _forget(self, identity: Identity) -> None:
        """An identity whose line emptied leaves the rotation and loses its credit (DRR)."""
        if next(iter(self._lines)) == identity:
            self._turn_open = False
        del self._lines[identity]
        self._credit.pop(identity, None)

    def _drop(self, waiter: _Waiter) -> None:
        """A waiter that gave up (timeout, cancel, shutdown) leaves its line."""
        line = self._lines.get(waiter.identity)
        if line is not None and waiter in line:
            line.remove(waiter)
            if not line:
                self._forget(waiter.identity)

    def _grant(self, waiter: _Waiter) -> Slot:
        slot = waiter.parked or Slot(waiter.session_id, waiter.cancel, waiter.identity)
        self._running[waiter.session_id] = slot
        waiter.slot = slot
        if waiter.on_grant is not None:
            waiter.on_grant()
        self._cond.notify_all()
        return slot

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise Unavailable("runtime is shutting down")
