"""pytest's console output, kept gzip-compressed and capped: its head and its tail.

A suite can print gigabytes. The reader thread drains the pipe (pytest never blocks on
it), compresses the first ``max_bytes`` into the log, keeps a rolling tail, and at the end
appends a line saying how much was cut and then the tail, where the summary and any crash
are. The evidence directory never holds more than about ``max_bytes`` of log, compressed.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import select
import threading
from pathlib import Path
from typing import IO

__all__ = ["MAX_LOG_BYTES", "TAIL_BYTES", "CappedLog"]

MAX_LOG_BYTES = 8 * 1024 * 1024  # uncompressed head kept in the log
TAIL_BYTES = 256 * 1024
_CHUNK = 64 * 1024


class CappedLog:
    """Drain a pipe into a capped gzip file from a thread.

    Args:
        path: The .gz file to write.
        max_bytes: How many bytes of the head to keep.
        tail_bytes: How many bytes of the tail to keep after a cut.
    """

    def __init__(
        self, path: Path, max_bytes: int = MAX_LOG_BYTES, tail_bytes: int = TAIL_BYTES
    ) -> None:
        self.path = path
        self.total_bytes = 0
        self._max_bytes = max_bytes
        self._tail_bytes = tail_bytes
        self._tail = bytearray()
        self._file = gzip.open(path, "wb")  # noqa: SIM115 - closed by close()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self, pipe: IO[bytes]) -> None:
        """Start draining pipe (its read end) until end of file or close()."""
        self._thread = threading.Thread(target=self._drain, args=(pipe,), daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 2.0) -> None:
        """Wait up to timeout_s for the pipe to end, then write the tail and close the log.

        A process the tests left behind may still hold the pipe open; the log does not
        wait for it beyond timeout_s.
        """
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._stop.set()
            self._thread.join()
        if self.total_bytes > self._max_bytes:
            tail_start = max(self.total_bytes - len(self._tail), self._max_bytes)
            cut = tail_start - self._max_bytes
            if cut:
                self._file.write(f"\n[... {cut:,} bytes of output cut ...]\n".encode())
            self._file.write(bytes(self._tail[len(self._tail) - (self.total_bytes - tail_start) :]))
        self._file.close()

    def tail(self, max_bytes: int) -> bytes:
        """The last max_bytes of everything read so far (at most tail_bytes)."""
        return bytes(self._tail[-max_bytes:])

    def _drain(self, pipe: IO[bytes]) -> None:
        fd = pipe.fileno()
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([fd], [], [], 0.2)
                chunk = os.read(fd, _CHUNK) if ready else None
            except OSError:
                break
            if chunk == b"":
                break
            if chunk:
                self._keep(chunk)
        with contextlib.suppress(OSError):
            pipe.close()

    def _keep(self, chunk: bytes) -> None:
        room = self._max_bytes - self.total_bytes
        if room > 0:
            self._file.write(chunk[:room])
        self.total_bytes += len(chunk)
        self._tail += chunk
        if len(self._tail) > 2 * self._tail_bytes:
            del self._tail[: -self._tail_bytes]
