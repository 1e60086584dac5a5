"""Progress on the terminal while the pipeline runs: each stage, and the suite's tests.

The suite runs in a notebook kernel, in a pytest subprocess; its plugin flushes a record
line per event. A thread here follows the newest record under DIR/pytest and prints
tests done/total, failures so far and elapsed time: a bar redrawn in place on a TTY,
a plain line at least every ``interval_s`` elsewhere (CI logs). ``enabled=False``
(``--quiet``) prints nothing.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TextIO

from kakeya_evidence.common.schema import FAILING

__all__ = ["Progress", "SuiteTally"]

INTERVAL_S = 5.0
_TTY_TICK_S = 0.25
_BAR_CHARS = 24


@dataclass
class SuiteTally:
    """Tests done/total and failures so far, from a record read as it grows."""

    label: str = "suite"
    total: int | None = None
    finished: set[str] = field(default_factory=set)
    failing: set[str] = field(default_factory=set)
    _handle: IO[bytes] | gzip.GzipFile | None = None
    _partial: bytes = b""

    def read(self, record: Path) -> None:
        """Take in the complete lines appended to record since the last read.

        The file stays open, so its last lines are read even after it is moved away.
        """
        try:
            if self._handle is None:  # kept open across reads
                self._handle = _open_binary(record)
            data = self._handle.read()
        except (OSError, EOFError, zlib.error):
            return
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            with contextlib.suppress(ValueError):
                self._take(json.loads(line))

    def close(self) -> None:
        """Close the record (reading again reopens it)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _take(self, event: object) -> None:
        if not isinstance(event, dict):
            return
        kind = event.get("event")
        if kind == "collected":
            self.total = len(event.get("nodeids") or [])
        elif kind == "finished":
            self.finished.add(str(event.get("nodeid")))
        elif kind == "report" and event.get("category") in FAILING:
            self.failing.add(str(event.get("nodeid")))

    def line(self, elapsed_s: float) -> str:
        """One line: "suite: 12/40 tests done, 1 failed, 23 s"."""
        if self.total is None:
            return f"{self.label}: collecting tests, {elapsed_s:.0f} s"
        failed = len(self.failing)
        return (
            f"{self.label}: {len(self.finished)}/{self.total} tests done, "
            f"{failed} failed, {elapsed_s:.0f} s"
        )

    def bar(self, elapsed_s: float) -> str:
        """The same as a bar: "suite [#####-----] 12/40, 1 failed, 23 s"."""
        if not self.total:
            return self.line(elapsed_s)
        filled = round(_BAR_CHARS * min(1.0, len(self.finished) / self.total))
        bar = "#" * filled + "-" * (_BAR_CHARS - filled)
        return (
            f"{self.label} [{bar}] {len(self.finished)}/{self.total}, "
            f"{len(self.failing)} failed, {elapsed_s:.0f} s"
        )


class Progress:
    """Prints stage lines and, around the suite, live test progress.

    Args:
        stream: Where to print (default: stderr).
        enabled: False prints nothing (``--quiet``).
        interval_s: The longest gap between two progress lines.
        tty: Whether to draw a bar in place (default: whether stream is a terminal).
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        enabled: bool = True,
        interval_s: float = INTERVAL_S,
        tty: bool | None = None,
    ) -> None:
        self._stream = stream or sys.stderr
        self._enabled = enabled
        self._interval_s = interval_s
        self._tty = self._stream.isatty() if tty is None else tty

    def stage_started(self, name: str, index: int, total: int) -> None:
        """Say a stage begins: "[3/4] integration_suite ..."."""
        self._print(f"[{index}/{total}] {name} ...")

    def stage_finished(
        self, name: str, index: int, total: int, status: str, duration_s: float, reason: str = ""
    ) -> None:
        """Say how a stage ended: "[3/4] integration_suite ok in 41.2 s"."""
        why = f": {reason}" if reason and status != "ok" else ""
        self._print(f"[{index}/{total}] {name} {status} in {duration_s:.1f} s{why}")

    @contextlib.contextmanager
    def suite(self, pytest_dir: Path) -> Iterator[None]:
        """Follow the records pytest writes under pytest_dir while the body runs."""
        if not self._enabled:
            yield
            return
        watcher = _SuiteWatcher(pytest_dir, self._emit, self._tty, self._interval_s)
        watcher.start()
        try:
            yield
        finally:
            watcher.stop()

    def _print(self, text: str) -> None:
        if self._enabled:
            self._emit(text, False)

    def _emit(self, text: str, in_place: bool) -> None:
        self._stream.write("\r" + text + "\x1b[K" if in_place else text + "\n")
        self._stream.flush()


class _SuiteWatcher(threading.Thread):
    """Reads the newest record under pytest_dir and emits its progress."""

    def __init__(
        self,
        pytest_dir: Path,
        emit: Callable[[str, bool], None],
        tty: bool,
        interval_s: float,
    ) -> None:
        super().__init__(daemon=True, name="suite-progress")
        self._dir = pytest_dir
        self._emit = emit
        self._tty = tty
        self._interval_s = interval_s
        self._since_t = time.time()
        self._start_mono = time.monotonic()
        self._stopping = threading.Event()
        self._record: Path | None = None
        self._tally = SuiteTally()

    def run(self) -> None:
        tick = _TTY_TICK_S if self._tty else min(1.0, self._interval_s)
        last = time.monotonic()
        while not self._stopping.wait(tick):
            self._follow()
            if self._tty:
                self._emit(self._tally.bar(self._elapsed()), True)
            elif time.monotonic() - last >= self._interval_s:
                self._emit(self._tally.line(self._elapsed()), False)
                last = time.monotonic()

    def stop(self) -> None:
        """Stop following and print the final state."""
        self._stopping.set()
        self.join()
        self._follow()
        self._tally.close()
        if self._tty:
            self._emit(self._tally.bar(self._elapsed()), True)
            self._emit("", False)
        else:
            self._emit(self._tally.line(self._elapsed()), False)

    def _elapsed(self) -> float:
        return time.monotonic() - self._start_mono

    def _follow(self) -> None:
        newest = self._newest_record()
        if newest is not None and newest != self._record:
            self._tally.close()
            self._record = newest
            run = newest.parent.name
            self._tally = SuiteTally(label="suite" if run == "run0" else f"suite {run}")
        if self._record is not None:
            self._tally.read(self._record)

    def _newest_record(self) -> Path | None:
        """The record being written, or one finished and compressed before it was seen."""
        for pattern in ("*/record.jsonl", "*/record.jsonl.gz"):
            found = []
            for path in self._dir.glob(pattern):
                with contextlib.suppress(OSError):
                    modified = path.stat().st_mtime
                    if modified >= self._since_t - 1.0:
                        found.append((modified, path))
            if found:
                newest = max(found)[1]
                same_run = self._record and self._record.parent == newest.parent
                return self._record if same_run else newest
        return self._record


def _open_binary(path: Path) -> IO[bytes] | gzip.GzipFile:
    """The record for reading, gzip or plain by its suffix."""
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return path.open("rb")
