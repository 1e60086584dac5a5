"""Find and kill the processes a test run left behind, by PID.

A test may start a server and never stop it, fork a child, or start a ``setsid``
grandchild that leaves pytest's process group and, once pytest exits, its family tree
too. Three nets catch them: the descendants seen while pytest ran (polled), the members of
pytest's process group, and every process whose environment carries this run's id (set
in pytest's environment, inherited by whatever it starts). Each is terminated, then
killed, and listed, so the report can warn.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import asdict, dataclass

import psutil

from kakeya_evidence.common.text import safe_text

__all__ = ["RUN_ID_ENV", "Leftover", "ProcessWatch", "new_run_id"]

RUN_ID_ENV = "KAKEYA_EVIDENCE_RUN_ID"
_GRACE_S = 1.0
_MAX_CMDLINE = 300
_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess)
_UNREADABLE = (*_GONE, psutil.AccessDenied, OSError)


@dataclass(frozen=True)
class Leftover:
    """A process still alive after the suite: its pid, command line and whether it died."""

    pid: int
    cmdline: str
    killed: bool

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def new_run_id() -> str:
    """A fresh id to mark one pytest run's processes through their environment."""
    return uuid.uuid4().hex


class ProcessWatch:
    """Remember every descendant of a running process; kill the survivors at the end.

    Args:
        root_pid: The pytest process (also the id of its process group).
        run_id: The value of RUN_ID_ENV in pytest's environment.
    """

    def __init__(self, root_pid: int, run_id: str) -> None:
        self._root_pid = root_pid
        self._run_id = run_id
        self._seen: dict[int, psutil.Process] = {}

    def poll(self) -> None:
        """Note the root's current descendants (call it while the root runs)."""
        try:
            children = psutil.Process(self._root_pid).children(recursive=True)
        except _UNREADABLE:
            return
        for child in children:
            self._seen.setdefault(child.pid, child)

    def reap(self) -> list[Leftover]:
        """Terminate, then kill, every leftover; return them in pid order."""
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
        candidates = list(self._seen.values())
        for process in psutil.process_iter():
            if process.pid in self._seen or process.pid == os.getpid():
                continue
            if self._in_group(process) or self._marked(process):
                candidates.append(process)
        return candidates

    def _in_group(self, process: psutil.Process) -> bool:
        try:
            return os.getpgid(process.pid) == self._root_pid
        except OSError:
            return False

    def _marked(self, process: psutil.Process) -> bool:
        try:
            return process.environ().get(RUN_ID_ENV) == self._run_id
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
