"""Session store: server-issued ids, append-only histories, idle-TTL eviction, a full policy.

Nothing is ever re-created behind a client's back: a closed or evicted id stays dead and
says why (a bounded memory of recent endings), and every eviction is counted by reason.

Capacity is counted in sessions (`max_sessions`) and in bytes (`max_session_bytes`: each
session costs its KV buffers' bound plus a fixed overhead, the same for every session of a
model). Every session has an owner (`tenancy.Identity`); one identity holds at most
`max_sessions_per_identity`. When the store (or an owner's quota) is full the operator's
`WhenFull` policy decides: `reject` (the default) refuses the new session, `evict-idle`
ends an idle one: the requesting identity's own least recently used first when it holds
its share or more (the capacity over the identities holding sessions, rounded up), else
one of an identity holding more than its share, else its own; never one of another
identity within its share, never one that is generating.
Once the runtime is stopping, no session is created or grown.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from array import array
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from inference_engine import memory
from inference_engine.config import StoreConfig, WhenFull
from inference_engine.errors import ResourceExhausted, SessionNotFound, Unavailable, quote
from inference_engine.session.validation import check_session_id
from inference_engine.tenancy import LOCAL, Identity

_REMEMBERED_ENDINGS = 4096
# Eviction reasons (the `reason` label of session_evicted_total), and what a session's
# next call is told.
TTL, LRU, OVER_SHARE = "ttl", "lru", "over_share"
EVICTION_REASONS = (TTL, LRU, OVER_SHARE)
_WHY = {
    TTL: "idle past its TTL",
    LRU: "the store was full and its owner created another session",
    OVER_SHARE: "the store was full and its owner held more than its share",
}


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
    owner: Identity = LOCAL
    pinned: bool = False  # single-shot (the HTTP shim): its creator frees it; never evicted

    def idle_s(self) -> float:
        return 0.0 if self.busy else time.monotonic() - self.touched_at


EvictHook = Callable[[Session, str], None]


class SessionStore:
    """Thread-safe map of live sessions in LRU order, with a background TTL sweep."""

    def __init__(
        self,
        config: StoreConfig,
        on_end: EvictHook | None = None,
        session_bytes: int = 0,
        max_sessions_per_identity: int = 0,
        identities: int = 0,
    ) -> None:
        """`session_bytes`: what one session may cost at most (see `memory.session_bytes`);
        `max_sessions_per_identity` 0: no fixed quota, except under `reject` when
        `identities` (how many share the store) is 2 or more: then its share, rounded up."""
        self.config = config
        self.session_bytes = session_bytes
        self.capacity = capacity_sessions(config, session_bytes)
        self.quota = max_sessions_per_identity
        if not self.quota and identities > 1 and config.when_full is WhenFull.REJECT:
            self.quota = math.ceil(self.capacity / identities)
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

    @property
    def admitted_bytes(self) -> int:
        """Bytes the live sessions may hold at most (their count times `session_bytes`)."""
        return len(self._sessions) * self.session_bytes

    def is_live(self, session: Session) -> bool:
        with self.lock:
            return self._sessions.get(session.session_id) is session

    def owners(self) -> list[Identity]:
        """The owner of every live session (one entry per session)."""
        with self.lock:
            return [s.owner for s in self._sessions.values()]

    def held_by(self, owner: Identity) -> int:
        with self.lock:
            return sum(1 for s in self._sessions.values() if s.owner == owner)

    def create(
        self,
        label: str,
        eos_token_ids: Sequence[int],
        state: Any,
        owner: Identity = LOCAL,
        pinned: bool = False,
    ) -> Session:
        """Add a session for `owner`; when its quota or the store is full, apply `when_full`.

        Raises:
            ResourceExhausted: the owner's quota or the store is full and the policy is
                `reject`, or nothing may be evicted for it (`retry_after_s` set).
            Unavailable: the runtime is shutting down.
        """
        with self.lock:
            self.check_accepting()
            if self.quota and self.held_by(owner) >= self.quota:
                self._make_room_in_quota(owner)
            if len(self._sessions) >= self.capacity:
                self._make_room(owner)
            session = Session(new_session_id(), label, tuple(eos_token_ids), state)
            session.owner, session.pinned = owner, pinned
            self._sessions[session.session_id] = session
        memory.return_freed()  # what earlier endings freed goes back before this one grows
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
                self._end(session, "evicted", reason=TTL)
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
                self._end(session, "evicted", reason=TTL)
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
            memory.return_freed()

    def _expired(self, session: Session) -> bool:
        return (
            not session.busy and not session.pinned and session.idle_s() > self.config.session_ttl_s
        )

    def _evictable(self, session: Session) -> bool:
        return not session.busy and not session.pinned

    def _make_room_in_quota(self, owner: Identity) -> None:
        """The owner holds its quota: evict-idle ends its own oldest idle session."""
        if self.config.when_full is WhenFull.EVICT_IDLE:
            for session in self._sessions.values():  # oldest first
                if session.owner == owner and self._evictable(session):
                    self._end(session, "evicted", reason=LRU)
                    return
        raise ResourceExhausted(
            f"session quota reached: {owner} holds {self.quota} sessions, its share "
            f"(--max-sessions-per-identity); close one first",
            reason="quota",
        )

    def _make_room(self, owner: Identity) -> None:
        """Expired sessions go first; then, under evict-idle, the owner's own oldest idle
        session, else the oldest idle one of an identity above its share."""
        if self.sweep() and len(self._sessions) < self.capacity:
            return
        if self.config.when_full is WhenFull.REJECT:
            raise ResourceExhausted(
                f"session store full: {self._describe_capacity()}; close one first "
                f"(the server runs with --when-full {self.config.when_full})",
                reason="store_full",
            )
        victim = self._victim(owner)
        if victim is None:
            raise ResourceExhausted(
                f"session store full: {self._describe_capacity()}, and no idle session of "
                f"{owner} or of an identity above its share",
                reason="store_full",
            )
        self._end(victim, "evicted", reason=LRU if victim.owner == owner else OVER_SHARE)

    def _victim(self, owner: Identity) -> Session | None:
        """The requester's own oldest idle session when it holds its share or more; else the
        oldest idle one of an identity above its share; else the requester's own."""
        idle = [s for s in self._sessions.values() if self._evictable(s)]  # oldest first
        own = [s for s in idle if s.owner == owner]
        held = Counter(s.owner for s in self._sessions.values())
        share = math.ceil(self.capacity / len({*held, owner}))  # holding one is never "over"
        if own and held[owner] >= share:
            return own[0]
        over = next((s for s in idle if s.owner != owner and held[s.owner] > share), None)
        return over or (own[0] if own else None)

    def _describe_capacity(self) -> str:
        text = f"{len(self._sessions)} of {self.config.max_sessions} sessions"
        if self.config.max_session_bytes:
            text += (
                f", {self.admitted_bytes} of {self.config.max_session_bytes} bytes "
                f"({self.session_bytes} per session)"
            )
        return text

    def _end(self, session: Session, outcome: str, reason: str = "") -> None:
        del self._sessions[session.session_id]
        why = f" ({_WHY[reason]})" if reason in _WHY else ""
        self._endings[session.session_id] = f"{outcome} {reason}{why}".strip()
        memory.note_freed(self.session_bytes)
        while len(self._endings) > _REMEMBERED_ENDINGS:
            self._endings.popitem(last=False)
        self._on_end(session, f"{outcome}:{reason}" if reason else outcome)


def capacity_sessions(config: StoreConfig, session_bytes: int) -> int:
    """How many sessions the store admits: `max_sessions`, or fewer where the byte bound
    is tighter."""
    if config.max_session_bytes <= 0 or session_bytes <= 0:
        return config.max_sessions
    return min(config.max_sessions, config.max_session_bytes // session_bytes)
