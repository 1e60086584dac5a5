"""Find and kill the processes a test run left behind, by process tree and session.

A test may start a server and never stop it, fork a child, or start a ``setsid``
daemon with a scrubbed environment that leaves pytest's process group, its session and,
once its parent exits, its family tree too. The nets that catch them need nothing from
the processes' environment: the descendants seen while pytest ran (polled); the members
of pytest's process group and session (pytest starts as the leader of both); and, on
Linux, every orphan of pytest's tree, which the kernel re-parents to this process while
the watch is on (``PR_SET_CHILD_SUBREAPER``). Each is terminated, then killed, and
listed, so the report can warn.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import time
from dataclasses import asdict, dataclass

import psutil

from kakeya_evidence.common.text import safe_text

__all__ = ["Leftover", "ProcessWatch", "become_subreaper"]

_GRACE_S = 1.0
_MAX_CMDLINE = 300
_PR_SET_CHILD_SUBREAPER = 36
_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess)
_UNREADABLE = (*_GONE, psutil.AccessDenied, OSError)


def become_subreaper(on: bool = True) -> bool:
    """Make orphaned descendants re-parent to this process (Linux), or stop; True if done."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


@dataclass(frozen=True)
class Leftover:
    """A process still alive after the suite: its pid, command line and whether it died."""

    pid: int
    cmdline: str
    killed: bool

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class ProcessWatch:
    """Remember every descendant of a running process; kill the survivors at the end.

    Args:
        root_pid: The pytest process (the leader of its own process group and session).
        started_t: Epoch seconds just before it started: an orphan re-parented to this
            process is the run's only if it was born after that.
    """

    def __init__(self, root_pid: int, started_t: float | None = None) -> None:
        self._root_pid = root_pid
        self._started_t = time.time() if started_t is None else started_t
        # psutil's create times carry the kernel's boot-time rounding (up to a second): an
        # orphan is compared with the root's create time, read on the same clock
        with contextlib.suppress(*_UNREADABLE):
            self._started_t = min(self._started_t, psutil.Process(root_pid).create_time())
        self._seen: dict[int, psutil.Process] = {}
        self._subreaper = become_subreaper()

    def poll(self) -> None:
        """Note the root's current descendants (call it while the root runs)."""
        try:
            children = psutil.Process(self._root_pid).children(recursive=True)
        except _UNREADABLE:
            return
        for child in children:
            self._seen.setdefault(child.pid, child)

    def reap(self) -> list[Leftover]:
        """Terminate, then kill, every leftover; return them in pid order.

        Orphans re-parented here that already exited are reaped too, and this process
        stops being a subreaper, so nothing of the run lingers as a zombie of it.
        """
        try:
            return self._reap()
        finally:
            if self._subreaper:
                self._reap_zombies()
                become_subreaper(False)

    def _reap_zombies(self) -> None:
        for child in self._orphans():
            with contextlib.suppress(*_UNREADABLE, ChildProcessError):
                if child.pid != self._root_pid and child.status() == psutil.STATUS_ZOMBIE:
                    os.waitpid(child.pid, os.WNOHANG)

    def _reap(self) -> list[Leftover]:
        found = {p.pid: p for p in self._candidates() if _alive(p)}
        found.pop(os.getpid(), None)
        found.pop(self._root_pid, None)
        if not found:
            return []
        names = {pid: _cmdline(p) for pid, p in found.items()}
        for process in found.values():
            with contextlib.suppress(*_UNREADABLE):
                process.terminate()
        _, alive = psutil.wait_procs(list(found.values()), timeout=_GRACE_S)
        for process in alive:
            with contextlib.suppress(*_UNREADABLE):
                process.kill()
        _, alive = psutil.wait_procs(alive, timeout=_GRACE_S)
        survivors = {p.pid for p in alive}
        return [Leftover(pid, names[pid], pid not in survivors) for pid in sorted(found)]

    def _candidates(self) -> list[psutil.Process]:
        candidates = list(self._seen.values()) + self._orphans()
        for process in psutil.process_iter():
            if process.pid in self._seen or process.pid == os.getpid():
                continue
            if self._in_group_or_session(process.pid):
                candidates.append(process)
        return candidates

    def _in_group_or_session(self, pid: int) -> bool:
        try:
            return self._root_pid in (os.getpgid(pid), os.getsid(pid))
        except OSError:
            return False

    def _orphans(self) -> list[psutil.Process]:
        """Descendants of this process born during the run: pytest's tree, and its orphans
        re-parented here (this process starts nothing else while pytest runs)."""
        if not self._subreaper:
            return []
        try:
            children = psutil.Process().children(recursive=True)
        except _UNREADABLE:
            return []
        return [c for c in children if _born_after(c, self._started_t)]


def _born_after(process: psutil.Process, t: float) -> bool:
    try:
        return process.create_time() >= t - 0.05
    except _UNREADABLE:
        return False


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except _UNREADABLE:
        return False


def _cmdline(process: psutil.Process) -> str:
    try:
        text = " ".join(process.cmdline()) or process.name()
    except _UNREADABLE:
        text = "?"
    return safe_text(text)[:_MAX_CMDLINE]
