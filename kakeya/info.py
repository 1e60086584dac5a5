"""The session snapshot (`SessionInfo`) and the server section in it: one value for the SDK
and the runtime alike, converted to and from the wire here and nowhere else.

Imports protobuf's generated messages only (no grpc), so the runtime's core builds the
same value its adapters send and the SDK returns.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields

from kakeya.v1 import runtime_pb2 as pb


class WhenFull(enum.Enum):
    """What the server's `CreateSession` does when its session store is full."""

    REJECT = "REJECT"  # ResourceExhaustedError; no client loses a session to another
    EVICT_IDLE = "EVICT_IDLE"  # the least recently used idle session is evicted


_WHEN_FULL_FROM_PROTO: dict[int, WhenFull] = {
    pb.WHEN_FULL_REJECT: WhenFull.REJECT,
    pb.WHEN_FULL_EVICT_IDLE: WhenFull.EVICT_IDLE,
}


@dataclass(frozen=True)
class ServerInfo:
    """The server's limits and policies (the same in every session's info).

    `when_full` is None for a policy this SDK does not know.
    """

    max_sessions: int
    when_full: WhenFull | None

    @classmethod
    def from_proto(cls, msg: pb.ServerInfo) -> ServerInfo:
        return cls(
            max_sessions=msg.max_sessions, when_full=_WHEN_FULL_FROM_PROTO.get(msg.when_full)
        )


@dataclass(frozen=True)
class SessionInfo:
    """A snapshot of one session (the same fields as the wire's `SessionInfo`).

    `server` is None when the server predates that section (and inside the runtime's core,
    which leaves it to the surface that sends the snapshot).
    """

    session_id: str
    label: str
    eos_token_ids: tuple[int, ...]
    history_tokens: int
    cached_tokens: int
    dropped_tokens: int
    kv_live_bytes: int
    kv_bound_bytes: int
    idle_s: float
    invariant_checks: int  # forwards run on the session's cache, each checked (INV-1/INV-2)
    generating: bool
    server: ServerInfo | None = None

    @classmethod
    def from_proto(cls, msg: pb.SessionInfo) -> SessionInfo:
        values = {name: getattr(msg, name) for name in _SCALARS}
        server = ServerInfo.from_proto(msg.server) if msg.HasField("server") else None
        return cls(**values, eos_token_ids=tuple(msg.eos_token_ids), server=server)

    def to_proto(self, server: pb.ServerInfo | None = None) -> pb.SessionInfo:
        """The wire message; `server` is the surface's section (this value's is not sent)."""
        values = {name: getattr(self, name) for name in _SCALARS}
        return pb.SessionInfo(**values, eos_token_ids=list(self.eos_token_ids), server=server)


# The fields that travel as they are; the tuple and the section are converted.
_SCALARS = tuple(f.name for f in fields(SessionInfo) if f.name not in {"eos_token_ids", "server"})

__all__ = ["ServerInfo", "SessionInfo", "WhenFull"]
