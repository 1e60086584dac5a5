"""A pytest plugin that records every report pytest counts, one JSON object a line.

Loaded with ``-p kakeya_evidence.stages.pytest_plugin``; it writes to the file named by
``KAKEYA_EVIDENCE_RECORD`` (nothing when unset). Each event is flushed as it happens, so
a killed process leaves everything up to its last moment:

    session_started  pid, rootdir, inifile, cwd, args, t
    collected        nodeids (after any deselection)
    started          nodeid, t                  (a test began; no ``finished`` = running)
    report           nodeid, when, outcome, category (pytest's own, from
                     ``pytest_report_teststatus``), counted, duration_s, start, stop,
                     worker, message, exception, longrepr, stdout, stderr, path, line
    finished         nodeid, t
    session_finished exitstatus, t

A report's stdout/stderr hold that phase's capture only. ``SIGUSR1`` dumps every thread's
stack to ``KAKEYA_EVIDENCE_STACKS`` (the watchdog sends it before killing a hang).
``KAKEYA_EVIDENCE_SHARD=K/N`` keeps every N-th collected test starting at the K-th; a
collection error or module-level skip is recorded in one shard only (chosen by a hash of
its node id), so the shards' counts add up to the whole suite's. Under pytest-xdist the
controller records; workers only shard and dump stacks.
"""

from __future__ import annotations

import faulthandler
import json
import os
import re
import signal
import time
from pathlib import Path
from typing import IO, Any

import pytest

from kakeya_evidence.common.text import clip_end, first_line
from kakeya_evidence.stages.shard import in_shard, owns_node, parse_shard

RECORD_ENV = "KAKEYA_EVIDENCE_RECORD"
STACKS_ENV = "KAKEYA_EVIDENCE_STACKS"
SHARD_ENV = "KAKEYA_EVIDENCE_SHARD"

_state: dict[str, Any] = {"file": None, "stacks": None, "config": None, "collected": False}
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.<>]*)(?::\s|$)")
_SYNTAX_AT = re.compile(r'^E\s+File "(.+?)", line (\d+)')
_FRAME_AT = re.compile(r"^(\S+?\.py):(\d+): in ")


def _write(event: dict[str, Any]) -> None:
    handle: IO[str] | None = _state["file"]
    if handle is None:
        return
    handle.write(json.dumps(event, default=str) + "\n")
    handle.flush()


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    _state["config"] = config
    stacks = os.environ.get(STACKS_ENV)
    if stacks and hasattr(signal, "SIGUSR1"):
        if _is_worker(config):
            stacks += "." + str(config.workerinput.get("workerid", "worker"))  # type: ignore[attr-defined]
        _state["stacks"] = open(stacks, "w", encoding="utf-8")  # noqa: SIM115 - whole session
        faulthandler.register(signal.SIGUSR1, file=_state["stacks"], all_threads=True)
    path = os.environ.get(RECORD_ENV)
    if not path or _is_worker(config):
        return
    _state["file"] = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives for the session
    _write(
        {
            "event": "session_started",
            "pid": os.getpid(),
            "rootdir": str(config.rootpath),
            "inifile": str(config.inipath or ""),
            "cwd": str(config.invocation_params.dir),
            "args": [str(a) for a in config.invocation_params.args],
            "t": time.time(),
        }
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shard = parse_shard(os.environ.get(SHARD_ENV, ""))
    if shard is None:
        return
    kept = [item for index, item in enumerate(items) if in_shard(index, shard)]
    dropped = [item for index, item in enumerate(items) if not in_shard(index, shard)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = kept


def pytest_collection_finish(session: pytest.Session) -> None:
    if not _is_worker(session.config):
        _collected([item.nodeid for item in session.items])


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    _collected(list(ids))  # every worker collects the same ids; the first one counts


def _collected(nodeids: list[str]) -> None:
    if _state["collected"] or _state["file"] is None:
        return
    _state["collected"] = True
    _write({"event": "collected", "nodeids": nodeids})


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.passed or _state["file"] is None:
        return
    if not owns_node(report.nodeid, parse_shard(os.environ.get(SHARD_ENV, ""))):
        return
    # The terminal counts a failed collection as an error and a skipped one as skipped.
    category = "error" if report.failed else "skipped"
    _write(_report_event(report, category, counted=True))


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _write({"event": "started", "nodeid": nodeid, "t": time.time()})


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    config = _state["config"]
    if _state["file"] is None or config is None:
        return
    status = config.hook.pytest_report_teststatus(report=report, config=config)
    category = str(status[0]) if status else report.outcome
    counted = bool(getattr(report, "count_towards_summary", True))
    _write(_report_event(report, category, counted=counted))


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _write({"event": "finished", "nodeid": nodeid, "t": time.time()})


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _write({"event": "session_finished", "exitstatus": int(exitstatus), "t": time.time()})


def pytest_unconfigure(config: pytest.Config) -> None:
    if _state["stacks"] is not None and hasattr(signal, "SIGUSR1"):
        faulthandler.unregister(signal.SIGUSR1)
        _state["stacks"].close()
        _state["stacks"] = None
    if _state["file"] is not None:
        _state["file"].close()
        _state["file"] = None
    _state.update(config=None, collected=False)


def _report_event(
    report: pytest.TestReport | pytest.CollectReport, category: str, *, counted: bool
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event": "report",
        "nodeid": report.nodeid,
        "when": getattr(report, "when", None) or "collect",
        "outcome": report.outcome,
        "category": category,
        "counted": counted,
        "duration_s": round(float(getattr(report, "duration", 0.0) or 0.0), 6),
        "start": getattr(report, "start", None),
        "stop": getattr(report, "stop", None),
        "worker": _worker(report),
    }
    try:
        event.update(_describe(report))
    except Exception as exc:  # a report we cannot read must not break the user's run
        event.update(message=f"(could not read the report: {type(exc).__name__}: {exc})")
    return event


def _worker(report: Any) -> str:
    worker = getattr(report, "worker_id", None)
    if worker is None:
        gateway = getattr(getattr(report, "node", None), "gateway", None)
        worker = getattr(gateway, "id", None)
    return str(worker or "")


def _describe(report: Any) -> dict[str, Any]:
    text = report.longreprtext if report.longrepr is not None else ""
    when = getattr(report, "when", None) or "collect"
    path, line = _location(report)
    message, exception = _message(report, text)
    if when == "collect" and report.failed:
        message, exception, path, line = _collect_error(text, path, message, exception)
    elif report.failed:
        line = _failure_line(report, path) or line
    return {
        "message": message,
        "exception": exception,
        "longrepr": clip_end(text),
        "stdout": clip_end(_captured(report, "stdout", when)),
        "stderr": clip_end(_captured(report, "stderr", when)),
        "path": path,
        "line": line,
        "wasxfail": hasattr(report, "wasxfail"),
    }


def _location(report: Any) -> tuple[str, int | None]:
    """The test's file relative to the rootdir, and the line pytest points at."""
    longrepr = report.longrepr
    skip = longrepr if isinstance(longrepr, tuple | list) and len(longrepr) == 3 else None
    if (getattr(report, "when", None) or "collect") == "collect":
        path = report.nodeid.split("::", 1)[0]
        return (_relative(str(skip[0])) or path, _int(skip[1])) if skip else (path, None)
    path, line = str(report.location[0]), report.location[1]
    if skip and _relative(str(skip[0])) == path:
        return path, _int(skip[1])
    return path, line + 1 if isinstance(line, int) else None


def _message(report: Any, text: str) -> tuple[str, str]:
    longrepr = report.longrepr
    if hasattr(report, "wasxfail") and not report.failed:
        return str(report.wasxfail or "xfail"), ""
    if report.skipped and isinstance(longrepr, tuple | list) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: "), ""
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        message = first_line(str(crash.message))
        return message, _exception_name(message)
    return first_line(text), ""


def _exception_name(line: str) -> str:
    match = _EXCEPTION_LINE.match(line)
    if not match or " " in match.group(1):
        return ""
    name = match.group(1).rsplit(".", 1)[-1]
    return name if name[:1].isupper() else ""


def _collect_error(
    text: str, path: str, message: str, exception: str
) -> tuple[str, str, str, int | None]:
    """The user's file, line and exception of a collection error (not _pytest's frames)."""
    errors = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    last = next((e for e in reversed(errors) if e), "")
    exception = _exception_name(last) or exception
    where: tuple[str, int] | None = None
    for line in text.splitlines():
        syntax = _SYNTAX_AT.match(line)
        frame = _FRAME_AT.match(line)
        if syntax:
            where = (_relative(syntax.group(1)), int(syntax.group(2)))
        elif frame and _relative(frame.group(1)) == path:
            where = (path, int(frame.group(2)))
    if where is None:
        return (last or message), exception, path, None
    return f"{where[0]}:{where[1]}: {last or message}", exception, where[0], where[1]


def _failure_line(report: Any, path: str) -> int | None:
    """The line of the innermost traceback entry in the test's own file."""
    entries = getattr(getattr(report.longrepr, "reprtraceback", None), "reprentries", None)
    for entry in reversed(entries or []):
        location = getattr(entry, "reprfileloc", None)
        if location is not None and _relative(str(location.path)) == path:
            return _int(location.lineno)
    return None


def _relative(path: str) -> str:
    """path (absolute, or relative to the invocation directory) relative to the rootdir."""
    config = _state["config"]
    if config is None:
        return path
    full = Path(config.invocation_params.dir, path)
    try:
        return full.resolve().relative_to(config.rootpath.resolve()).as_posix()
    except (ValueError, OSError):
        return path


def _captured(report: Any, stream: str, when: str) -> str:
    title = f"Captured {stream} {when}"
    return "".join(content for name, content in getattr(report, "sections", []) if name == title)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
