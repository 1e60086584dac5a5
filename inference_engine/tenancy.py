"""Who is calling, and how much of the runtime one caller may hold.

An `Identity` names one client: the name of the bearer token it presented (several named
tokens come from `--token-file`, one `name:token` per line), else its peer address (host
only: a client opening more connections stays one identity). In-process callers are
`LOCAL`. The surfaces find the identity while they authenticate a call and set it for the
rest of that call (`calling_as`); the engine reads it where it acts for the caller
(`current_identity`), so every surface charges the same identity the same way. A session
belongs to the identity that created it: its generations, tokens and evictions are
charged to that owner.

`TenancyConfig` holds the per-identity limits, configured once for every identity. Each
limit's 0 keeps one identity from taking more than its share only while others want
some (work-conserving): alone, an identity may use the whole runtime; once others wait,
the scheduler serves identities in turn (deficit round-robin over tokens), a long
generation yields its lane at a step boundary, and a full `evict-idle` store evicts only
from identities above their share. A `reject` store evicts nothing, so there, when the
number of identities is known (named tokens), each holds at most its share of the store.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

TOKEN_PREFIX = "token:"
PEER_PREFIX = "peer:"
DEFAULT_TOKEN_NAME = "default"  # the identity of a one-token (old format) token file
TOKENS_PER_MINUTE_WINDOW_S = 60.0
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


@dataclass(frozen=True, order=True)
class Identity:
    """One caller, as metrics label it (`token:alice`, `peer:127.0.0.1`, `local`).

    Never holds a secret: a token identity carries the token's name, not the token.
    """

    name: str

    @classmethod
    def for_token(cls, token_name: str) -> Identity:
        return cls(TOKEN_PREFIX + token_name)

    @classmethod
    def for_peer(cls, peer: str | None) -> Identity:
        """From a gRPC peer string (`ipv4:127.0.0.1:5000`, `ipv6:[::1]:5000`) or a host."""
        return cls(PEER_PREFIX + peer_host(peer or "unknown"))

    def __str__(self) -> str:
        return self.name


LOCAL = Identity("local")


def peer_host(peer: str) -> str:
    """The host of a peer address, without scheme or port."""
    for scheme in ("ipv4:", "ipv6:", "unix:"):
        if peer.startswith(scheme):
            peer = peer[len(scheme) :]
            break
    if peer.startswith("["):  # [::1]:5000
        return peer[1:].split("]", 1)[0]
    if peer.count(":") == 1:  # host:port
        return peer.split(":", 1)[0]
    return peer


@dataclass(frozen=True)
class TenancyConfig:
    """Per-identity limits; 0 means the runtime's own bound, shared fairly (see module doc)."""

    max_sessions_per_identity: int = field(
        default=0,
        metadata={
            "help": "most sessions one identity (bearer-token name, else peer address) holds; "
            "0: the store's --max-sessions, and a full store evicts (evict-idle) only from "
            "identities above their share"
        },
    )
    identities: int = field(
        default=0,
        metadata={
            "help": "how many identities share the runtime (serve counts the named tokens of "
            "--token-file); with two or more and --when-full reject, each identity holds at "
            "most its share of the store (--max-sessions over this, rounded up) unless "
            "--max-sessions-per-identity says otherwise; 0: unknown"
        },
    )
    max_concurrent_per_identity: int = field(
        default=0,
        metadata={
            "help": "most generations one identity runs at once; 0: --max-concurrent, shared "
            "in turn with the other identities that wait"
        },
    )
    max_queued_per_identity: int = field(
        default=0,
        metadata={"help": "most generations one identity has waiting; 0: --max-queue"},
    )
    tokens_per_minute_per_identity: int = field(
        default=0,
        metadata={
            "help": "prefill plus decode tokens one identity may use per minute (a sliding "
            "minute); past it a generate is RESOURCE_EXHAUSTED with a retry-after; 0: no limit"
        },
    )
    preempt_after_tokens: int = field(
        default=32,
        metadata={
            "help": "a generation that has decoded this many tokens since it got its lane "
            "gives the lane to another identity that waits, and resumes (its KV kept, the "
            "same tokens) when its turn comes again; 0: never preempt"
        },
    )
    drr_quantum_tokens: int = field(
        default=256,
        metadata={
            "help": "deficit round-robin quantum: tokens an identity's turn adds to its credit "
            "when several identities wait for a generation slot"
        },
    )


_current: contextvars.ContextVar[Identity] = contextvars.ContextVar("kakeya_identity")


def current_identity() -> Identity:
    """The identity the surface set for this call, else `LOCAL` (in-process use)."""
    return _current.get(LOCAL)


@contextlib.contextmanager
def calling_as(identity: Identity) -> Iterator[Identity]:
    """Run the body (and the threads it starts with `asyncio.to_thread`) as `identity`."""
    token = _current.set(identity)
    try:
        yield identity
    finally:
        _current.reset(token)


def set_identity(identity: Identity) -> None:
    """Set the identity for the rest of the current context (a surface's call task)."""
    _current.set(identity)


# --- named tokens -----------------------------------------------------------------------


def parse_token_lines(text: str, source: str = "token file") -> dict[str, str]:
    """`{token: name}` from a token file's text.

    Either one `name:token` per line (blank lines and `#` comments skipped), or the old
    format: the whole file is one token, named `default`. A file is read as named tokens
    when its first line starts with a name (letters, digits, `_.-`) and a colon.

    Raises:
        ValueError: empty, a line without a name, a name or a token twice.
    """
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines:
        raise ValueError(f"the {source} is empty")
    if not _is_named(lines[0]):
        if len(lines) > 1:
            raise ValueError(f"the {source}: write several tokens as one 'name:token' per line")
        return {lines[0]: DEFAULT_TOKEN_NAME}
    tokens: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        if not _is_named(line):
            raise ValueError(f"the {source}, entry {number}: expected 'name:token'")
        name, token = (part.strip() for part in line.split(":", 1))
        if name in tokens.values() or token in tokens:
            raise ValueError(f"the {source}, entry {number}: name or token {name!r} repeated")
        tokens[token] = name
    return tokens


def _is_named(line: str) -> bool:
    name, colon, token = line.partition(":")
    return bool(colon) and bool(token.strip()) and _NAME.fullmatch(name.strip()) is not None


# --- tokens per minute ------------------------------------------------------------------


class TokenBudget:
    """Tokens each identity used over a sliding minute, and whether it may start more."""

    def __init__(self, per_minute: int, window_s: float = TOKENS_PER_MINUTE_WINDOW_S) -> None:
        self.per_minute = per_minute
        self.window_s = window_s
        self._lock = threading.Lock()
        self._spent: dict[Identity, deque[tuple[float, int]]] = {}

    def charge(self, identity: Identity, tokens: int) -> None:
        if self.per_minute <= 0 or tokens <= 0:
            return
        with self._lock:
            self._spent.setdefault(identity, deque()).append((time.monotonic(), tokens))

    def used(self, identity: Identity) -> int:
        with self._lock:
            return sum(tokens for _, tokens in self._window(identity))

    def retry_after_s(self, identity: Identity) -> float | None:
        """None when the identity may start work now, else seconds until it may."""
        if self.per_minute <= 0:
            return None
        with self._lock:
            spent = self._window(identity)
            total = sum(tokens for _, tokens in spent)
            if total < self.per_minute:
                return None
            now = time.monotonic()
            for at, tokens in spent:  # oldest first: when enough has left the window
                total -= tokens
                if total < self.per_minute:
                    return max(0.001, at + self.window_s - now)
        return self.window_s  # unreachable: the loop ends below the limit

    def _window(self, identity: Identity) -> deque[tuple[float, int]]:
        spent = self._spent.get(identity, deque())
        horizon = time.monotonic() - self.window_s
        while spent and spent[0][0] <= horizon:
            spent.popleft()
        return spent


def retry_after_header(seconds: float) -> str:
    """An HTTP `Retry-After` value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


__all__ = [
    "LOCAL",
    "Identity",
    "TenancyConfig",
    "TokenBudget",
    "calling_as",
    "current_identity",
    "parse_token_lines",
    "peer_host",
    "retry_after_header",
    "set_identity",
]
