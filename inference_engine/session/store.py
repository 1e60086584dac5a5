"""Session store: server-issued ids, append-only histories, idle-TTL eviction, a full policy.

Nothing is ever re-created behind a client's back: a closed or evicted id stays dead and
says why (a bounded memory of recent endings), and every eviction is counted by reason.
When the store is full the operator's `WhenFull` policy decides: `reject` (the default)
refuses the new session, `evict-idle` ends the least recently used idle one. Once the
runtime is stopping, no session is created or grown.
"""

from __future__ import annotations

import secrets
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from inference_engine.config import StoreConfig, WhenFull
from inference_engine.errors import ResourceExhausted, SessionNotFound, Unavailable, quote
from inference_engine.session.validation import check_session_id

_REMEMBERED_ENDINGS = 4096


def new_session_id() -> str:
    """128 bits from the OS CSPRNG: unguessable, never derived from anything else."""
    return "sess_" + secrets.token_urlsafe(16)


@dataclass
class Session:
    """One session's history and bookkeeping; `state` is the coordinator's model state."""

    session_id: str
    label: str
    eos_token_ids: tuple[int, ...]
    state: Any
    # int32, 4 bytes a token (a list of ints costs ~36): bounded by `max_history_tokens`
    history: array[int] = field(default_factory=lambda: array("i"))
    touched_at: float = field(default_factory=time.monotonic)
    busy: bool = False  # a generate is queued or running: never evicted meanwhile

    def idle_s(self) -> float:
        return 0.0 if self.busy else time.monotonic() - self.touched_at


EvictHook = Callable[[Session, str], None]


class SessionStore:
    """Thread-safe map of live sessions in LRU order, with a background TTL sweep."""

    def __init__(self, config: StoreConfig, on_end: EvictHook | None = None) -> None:
        self.config = config
        self.lock = threading.RLock()
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._endings: OrderedDict[str, str] = OrderedDict()
        self._on_end = on_end or (lambda session, outcome: None)
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        self.stopping = False

    def stop_accepting(self) -> None:
        """From now on creating or growing a session is UNAVAILABLE (shutdown has begun)."""
        self.stopping = True

    def check_accepting(self) -> None:
        """Refuses new work once shutdown has begun.

        Raises:
            Unavailable: the runtime is shutting down.
        """
        if self.stopping:
            raise Unavailable("runtime is shutting down; no new sessions or tokens")

    def __len__(self) -> int:
        return len(self._sessions)

    def sessions(self) -> list[Session]:
        with self.lock:
            return list(self._sessions.values())

    def create(self, label: str, eos_token_ids: Sequence[int], state: Any) -> Session:
        """Add a session; when the store is full, apply the `when_full` policy.

        Raises:
            ResourceExhausted: the store is full and the policy is `reject`, or every
                session is busy.
            Unavailable: the runtime is shutting down.
        """
        with self.lock:
            self.check_accepting()
            if len(self._sessions) >= self.config.max_sessions:
                self._make_room()
            session = Session(new_session_id(), label, tuple(eos_token_ids), state)
            self._sessions[session.session_id] = session
            return session

    def get(self, session_id: str) -> Session:
        """The live session, marked most recently used.

        Raises:
            InvalidArgument: not an id this server could have issued (too long).
            SessionNotFound: unknown, closed, or evicted (the message says which).
        """
        check_session_id(session_id)
        with self.lock:
            session = self._sessions.get(session_id)
            if session is not None and self._expired(session):
                self._end(session, "evicted", reason="ttl")
                session = None
            if session is None:
                ending = self._endings.get(session_id)
                detail = f" ({ending})" if ending else ""
                raise SessionNotFound(f"session {quote(session_id)} not found{detail}")
            self._sessions.move_to_end(session_id)
            session.touched_at = time.monotonic()
            return session

    def find(self, session_id: str) -> Session | None:
        """The live session, or None; marks nothing and raises nothing (for pre-checks)."""
        with self.lock:
            return self._sessions.get(session_id)

    def close(self, session_id: str) -> Session:
        with self.lock:
            session = self.get(session_id)
            self._end(session, "closed")
            return session

    def fail(self, session: Session, why: str) -> None:
        """End a session that can no longer be trusted (e.g. an invariant broke)."""
        with self.lock:
            if session.session_id in self._sessions:
                self._end(session, "failed", reason=why)

    def sweep(self) -> int:
        """Evict every idle session past its TTL; return how many."""
        with self.lock:
            expired = [s for s in self._sessions.values() if self._expired(s)]
            for session in expired:
                self._end(session, "evicted", reason="ttl")
            return len(expired)

    def start_sweeper(self) -> None:
        self._sweeper = threading.Thread(target=self._sweep_loop, name="kakeya-ttl", daemon=True)
        self._sweeper.start()

    def stop_sweeper(self) -> None:
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join()

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self.config.sweep_interval_s):
            self.sweep()

    def _expired(self, session: Session) -> bool:
        return not session.busy and session.idle_s() > self.config.session_ttl_s

    def _make_room(self) -> None:
        limit = self.config.max_sessions
        if self.sweep() and len(self._sessions) < limit:  # expired ones go first, by TTL
            return
        if self.config.when_full is WhenFull.REJECT:
            raise ResourceExhausted(
                f"session store full: {limit} sessions; close one first "
                f"(the server runs with --when-full {self.config.when_full})"
            )
        for session in self._sessions.values():  # oldest first
            if not session.busy:
                self._end(session, "evicted", reason="lru")
                return
        raise ResourceExhausted(f"session store full: {limit} sessions, all generating")

    def _end(self, session: Session, outcome: str, reason: str = "") -> None:
        del self._sessions[session.session_id]
        self._endings[session.session_id] = f"{outcome} {reason}".strip()
        while len(self._endings) > _REMEMBERED_ENDINGS:
            self._endings.popitem(last=False)
        self._on_end(session, f"{outcome}:{reason}" if reason else outcome)
