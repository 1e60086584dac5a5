"""Read the pytest plugin's JSONL record: the one place test output enters the evidence.

Every string is made safe here (``textsafe.safe_text``) and long ones are end-clipped,
so nothing downstream handles raw test output. Reading never raises on bad input: a
missing file is an empty record, a torn or garbled line is skipped.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kakeya_evidence.common.text import clip_end, safe_text

__all__ = ["Phase", "Record", "parse_record"]

_LONG_FIELDS = ("longrepr", "stdout", "stderr")
_SHORT_FIELDS = ("nodeid", "when", "category", "message", "exception", "path", "worker")


@dataclass(frozen=True)
class Phase:
    """One report pytest produced for a node (setup, call, teardown, or collect)."""

    nodeid: str
    when: str
    category: str
    counted: bool = True
    message: str = ""
    exception: str = ""
    longrepr: str = ""
    stdout: str = ""
    stderr: str = ""
    path: str = ""
    line: int | None = None
    duration_s: float = 0.0
    start: float | None = None
    stop: float | None = None
    worker: str = ""
    wasxfail: bool = False


@dataclass(frozen=True)
class Record:
    """What a plugin record says about one pytest run.

    Attributes:
        phases: Every report, in the order pytest produced them.
        collected: Node ids pytest collected (empty if collection never finished).
        running: Tests that started but never finished, in start order.
        finished: Whether pytest reached the end of its session.
        exitstatus: pytest's exit status when it finished, else None.
        rootdir: The rootdir pytest chose.
        cwd: pytest's invocation directory.
        started_t: Epoch seconds when the session started (the suite clock's zero).
    """

    phases: list[Phase] = field(default_factory=list)
    collected: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    finished: bool = False
    exitstatus: int | None = None
    rootdir: str = ""
    cwd: str = ""
    started_t: float | None = None


def parse_record(path: Path) -> Record:
    """Read the plugin's JSONL record, skipping lines that do not parse.

    Args:
        path: The record file; a missing file gives an empty record.

    Returns:
        The record, every string in it safe text.
    """
    events = list(_events(path))
    session: dict[str, Any] = {}
    collected: list[str] = []
    phases: list[Phase] = []
    running: dict[str, None] = {}
    end: dict[str, Any] | None = None
    for event in events:
        kind = event.get("event")
        if kind == "session_started":
            session = event
        elif kind == "collected":
            collected = [safe_text(n) for n in event.get("nodeids") or []]
        elif kind == "started":
            running[safe_text(event.get("nodeid"))] = None
        elif kind == "finished":
            running.pop(safe_text(event.get("nodeid")), None)
        elif kind == "report":
            phases.append(_phase(event))
        elif kind == "session_finished":
            end = event
    return Record(
        phases=phases,
        collected=collected,
        running=list(running),
        finished=end is not None,
        exitstatus=_number(end.get("exitstatus"), int) if end else None,
        rootdir=safe_text(session.get("rootdir")),
        cwd=safe_text(session.get("cwd")),
        started_t=_number(session.get("t"), float),
    )


def _events(path: Path) -> list[dict[str, Any]]:
    try:
        data = path.read_bytes()
    except OSError:
        return []
    events = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def _phase(event: dict[str, Any]) -> Phase:
    text = {name: safe_text(event.get(name)) for name in _SHORT_FIELDS}
    text.update({name: clip_end(safe_text(event.get(name))) for name in _LONG_FIELDS})
    return Phase(
        **text,
        counted=bool(event.get("counted", True)),
        line=_number(event.get("line"), int),
        duration_s=_number(event.get("duration_s"), float) or 0.0,
        start=_number(event.get("start"), float),
        stop=_number(event.get("stop"), float),
        wasxfail=bool(event.get("wasxfail")),
    )


def _number(value: Any, kind: type[int] | type[float]) -> Any:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = kind(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None
