"""Ctrl-C and SIGTERM during ``kakeya-evidence run``: stop the tests, keep the evidence.

The first SIGINT or SIGTERM (a terminal's Ctrl-C, a CI cancel) says so in one line on
stderr and stops what runs: pytest's whole process group gets SIGINT (pytest then ends
its session, writes its record, junit.xml and log), is waited for (bounded), and is
killed if it lingers; a stage without a pytest stops at once. The runner then writes
report.html, evidence.json and summary.md with verdict ``interrupted``: the stages that
ran, the one that was cut short, those that never ran. The exit code is 128 + the
signal's number (130 for SIGINT, 143 for SIGTERM), as a shell reports it.

A second signal stops at once: pytest's groups are killed and the process exits with
the same code; every file written so far stays readable (stage files are replaced
atomically, the record is one JSON object a line).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

import psutil

__all__ = ["GRACE_S", "InterruptGuard", "Interrupted", "interrupted_stages"]

GRACE_S = 10.0  # how long pytest may take to end its session after SIGINT
SETTLE_S = 20.0  # how long the stage may then take to hand back before it is cut
_SIGNALS = ("SIGINT", "SIGTERM")
_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied, OSError)


class Interrupted(BaseException):
    """Raised in the main thread when a signal stops the run; not caught by ``except
    Exception``, so no stage mistakes it for its own failure."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class InterruptGuard:
    """Handle SIGINT and SIGTERM while the pipeline runs (a no-op off the main thread).

    Args:
        stages: The runner's per-stage rows so far (read when a signal comes, to name
            the stage it cut short).
        order: Every stage's name, in run order.
        say: Where the one line for the user goes.
    """

    def __init__(
        self,
        stages: dict[str, Any],
        order: tuple[str, ...],
        say: Callable[[str], None] | None = None,
    ) -> None:
        self._stages, self._order = stages, order
        self._say = say or _stderr
        self._previous: dict[int, Any] = {}
        self._escalate = False
        self._started = time.monotonic()
        self.signum: int | None = None
        self.stage: str | None = None  # the stage the signal cut short
        self.elapsed_s = 0.0

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is threading.main_thread():
            for name in _SIGNALS:
                number = getattr(signal, name)
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    @property
    def exit_code(self) -> int:
        """128 + the signal's number (130 SIGINT, 143 SIGTERM); 0 when none came."""
        return 128 + self.signum if self.signum else 0

    def check(self) -> None:
        """Raise Interrupted if a signal came (the runner calls it between stages).

        Raises:
            Interrupted: A signal came.
        """
        if self.signum is not None:
            raise Interrupted(self.signum)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._escalate:  # our own nudge: the stage did not hand back in time
            self._escalate = False
            raise Interrupted(self.signum or signum)
        if self.signum is not None:
            _signal_groups(_pytest_groups(), signal.SIGKILL)
            self._say(f"kakeya-evidence: {_name(signum)} again: stopped at once")
            os._exit(128 + self.signum)
        self.signum, self.elapsed_s = signum, time.monotonic() - self._started
        self.stage = next((n for n in self._order if n not in self._stages), None)
        logging.disable(logging.CRITICAL)  # no asyncio/nbclient noise after this line
        self._say(
            f"kakeya-evidence: {_name(signum)}: stopping the tests and writing the report"
            " (again to stop at once)"
        )
        groups = _pytest_groups()
        if not groups:
            raise Interrupted(signum)
        _signal_groups(groups, signal.SIGINT)
        threading.Thread(target=self._wind_down, args=(groups,), daemon=True).start()

    def _wind_down(self, groups: list[psutil.Process]) -> None:
        """Kill pytest if it lingers; cut the stage if it then does not hand back."""
        _, alive = psutil.wait_procs(groups, timeout=GRACE_S)
        if alive:
            _signal_groups(alive, signal.SIGKILL)
        deadline = time.monotonic() + SETTLE_S
        while time.monotonic() < deadline:
            if self.stage in self._stages or self._previous == {}:
                return  # the runner took over
            time.sleep(0.2)
        self._escalate = True
        with contextlib.suppress(OSError, ValueError):
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)


def interrupted_stages(
    stages: dict[str, dict[str, Any]], guard: InterruptGuard, order: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    """Every stage's row after an interrupt: what ran, what was cut short, what never ran."""
    name = _name(guard.signum or signal.SIGINT)
    rows: dict[str, dict[str, Any]] = {}
    cut = guard.stage
    for stage in order:
        row = stages.get(stage)
        if stage == cut:
            took = (row or {}).get("duration_s") or 0.0
            reason = f"interrupted by {name} after {guard.elapsed_s:.0f} s of the run"
            rows[stage] = {"status": "interrupted", "duration_s": took, "reason": reason}
        elif row is not None:
            rows[stage] = row
        else:
            rows[stage] = {"status": "skipped", "duration_s": 0.0, "reason": f"not run: {name}"}
    return rows


def _pytest_groups() -> list[psutil.Process]:
    """pytest processes in this process's tree that lead their own process group."""
    try:
        tree = psutil.Process().children(recursive=True)
    except _GONE:
        return []
    found = []
    for process in tree:
        try:
            if os.getpgid(process.pid) == process.pid and "pytest" in process.cmdline():
                found.append(process)
        except _GONE:
            continue
    return found


def _signal_groups(groups: list[psutil.Process], sig: int) -> None:
    for process in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)


def _name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _stderr(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
