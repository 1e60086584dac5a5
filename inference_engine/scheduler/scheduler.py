"""Admission for generations: `max_concurrent` running, a bounded FIFO queue with a timeout.

One in-flight generate per session (queued or running); a second is FailedPrecondition.
Shutdown cancels running work through its cancel event and rejects everything queued.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

from inference_engine.config import SchedulerConfig
from inference_engine.errors import FailedPrecondition, ResourceExhausted, Unavailable


class AdmissionCancelled(Exception):
    """The caller gave up while queued; nothing ran."""


@dataclass(eq=False)
class Slot:
    """A granted place to run; `cancel` is how shutdown stops the holder."""

    session_id: str
    cancel: threading.Event = field(default_factory=threading.Event)


class Scheduler:
    """Thread-safe admission control shared by every surface."""

    def __init__(self, config: SchedulerConfig) -> None:
        self.config = config
        self._cond = threading.Condition()
        self._running: dict[str, Slot] = {}
        self._queue: deque[str] = deque()
        self._closed = False

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def admit(self, session_id: str, cancel: threading.Event) -> Slot:
        """Block until a slot is free, the wait times out, or the caller cancels.

        Raises:
            FailedPrecondition: this session already has a generate in flight.
            ResourceExhausted: the queue is full, or the wait passed `queue_timeout_s`.
            Unavailable: the scheduler is shutting down.
            AdmissionCancelled: `cancel` was set while waiting.
        """
        with self._cond:
            self._refuse_if_closed()
            if session_id in self._running or session_id in self._queue:
                raise FailedPrecondition(f"session {session_id!r} already has a generate in flight")
            if not self._queue and len(self._running) < self.config.max_concurrent:
                return self._grant(session_id, cancel)
            if len(self._queue) >= self.config.max_queue:
                raise ResourceExhausted(f"wait queue full ({self.config.max_queue} waiting)")
            self._queue.append(session_id)
            try:
                self._wait_turn(session_id, cancel)
            finally:
                self._queue.remove(session_id)
                self._cond.notify_all()
            return self._grant(session_id, cancel)

    def release(self, slot: Slot) -> None:
        with self._cond:
            if self._running.get(slot.session_id) is slot:
                del self._running[slot.session_id]
            self._cond.notify_all()

    def shutdown(self) -> None:
        """Reject queued and future work; ask running work to stop."""
        with self._cond:
            self._closed = True
            for slot in self._running.values():
                slot.cancel.set()
            self._cond.notify_all()

    def wake(self) -> None:
        """Let waiters re-check their cancel events."""
        with self._cond:
            self._cond.notify_all()

    def _wait_turn(self, session_id: str, cancel: threading.Event) -> None:
        deadline = time.monotonic() + self.config.queue_timeout_s
        while True:
            self._refuse_if_closed()
            if cancel.is_set():
                raise AdmissionCancelled(session_id)
            is_next = self._queue[0] == session_id
            if is_next and len(self._running) < self.config.max_concurrent:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ResourceExhausted(
                    f"no generation slot within {self.config.queue_timeout_s:g}s "
                    f"({self.config.max_concurrent} running)"
                )
            self._cond.wait(min(remaining, 0.1))

    def _grant(self, session_id: str, cancel: threading.Event) -> Slot:
        slot = Slot(session_id, cancel)
        self._running[session_id] = slot
        return slot

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise Unavailable("runtime is shutting down")
