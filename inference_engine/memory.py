"""What a session costs in bytes, and giving freed memory back to the operating system.

A session's KV buffers grow to at most `sink + window - 1 + prefill_chunk` slots per layer
(keys and values, the model's dtype); `session_bytes` adds the logits row a session keeps
between calls and a fixed overhead for its bookkeeping (slot positions, masks, the
session's Python objects), measured on this runtime and documented in
docs/performance.md. The store admits by that figure.

On CPU the buffers come from glibc malloc: freed, they stay in the process's heap (the
growth steps leave holes, and glibc raises its mmap threshold after the first large
free), so RSS does not come back when sessions close. `return_freed` calls
`malloc_trim(0)` once enough session bytes were freed since the last call: glibc then
gives every free page back (the heap's top and the holes inside it). Where there is no
glibc (macOS, musl) it does nothing; accelerator memory goes back through torch's own
allocator.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from typing import Any

# Per-session bytes above the KV buffers: slot positions (8 bytes a slot), the boolean
# masks of a forward, the session's objects. Measured (docs/performance.md) and rounded up.
SESSION_OVERHEAD_BYTES = 256 * 1024
# The buffers grow by doubling up to their bound; while sessions live, the heap keeps the
# freed smaller buffers as holes only partly reused: measured 12.4% of the buffers' bound
# on the 0.6B shape (docs/performance.md), counted as an eighth.
HEAP_SLACK_FRACTION = 0.125
TRIM_MIN_FREED_BYTES = 16 * 1024 * 1024  # trimming costs a walk of the heap: batch it

_lock = threading.Lock()
_freed_since_trim = 0
_libc: Any = None
_libc_checked = False


def kv_buffer_bytes(bytes_per_token: int, sink: int, window: int, prefill_chunk: int) -> int:
    """The most bytes a session's KV buffers reach (every layer, keys and values)."""
    return (sink + window - 1 + prefill_chunk) * bytes_per_token


def session_bytes(
    bytes_per_token: int, sink: int, window: int, prefill_chunk: int, logits_bytes: int = 0
) -> int:
    """What the store counts for one session: the KV buffers' bound plus the heap slack of
    their growth, the logits row it keeps between calls (`logits_bytes`: vocabulary x
    element size), and the fixed overhead."""
    kv = kv_buffer_bytes(bytes_per_token, sink, window, prefill_chunk)
    slack = int(kv * HEAP_SLACK_FRACTION)
    return kv + slack + logits_bytes + SESSION_OVERHEAD_BYTES


def note_freed(nbytes: int) -> None:
    """A session ended; up to `nbytes` will be free once its last reference goes."""
    global _freed_since_trim
    with _lock:
        _freed_since_trim += nbytes


def return_freed(force: bool = False) -> bool:
    """Give free heap pages back to the OS if enough was freed since the last time.

    A session's buffers are freed when it ends (`SinkWindowCache.release`), without
    waiting for the cycle collector (a full collection costs most of a second here).

    Returns:
        Whether `malloc_trim` ran.
    """
    global _freed_since_trim
    with _lock:
        if not force and _freed_since_trim < TRIM_MIN_FREED_BYTES:
            return False
        _freed_since_trim = 0
    return trim()


def trim() -> bool:
    """`malloc_trim(0)` where glibc provides it; False where it does not."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def _glibc() -> Any:
    global _libc, _libc_checked
    if not _libc_checked:
        _libc_checked = True
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name) if name else None
            if libc is not None and hasattr(libc, "malloc_trim"):
                libc.malloc_trim.argtypes = [ctypes.c_size_t]
                libc.malloc_trim.restype = ctypes.c_int
                _libc = libc
        except OSError:
            _libc = None
    return _libc


def rss_bytes() -> int:
    """This process's resident set size (Linux /proc; 0 where unknown)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")
