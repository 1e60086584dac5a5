"""A small pytest plugin that writes a per-test record as JSON lines.

Loaded with ``-p kakeya_evidence.stages.pytest_plugin``; it writes to the file named by
``KAKEYA_EVIDENCE_RECORD`` (nothing when unset). A ``started`` line is flushed
before each test runs, so if the process dies, the last started test without a
``result`` line names the test that was running. ``SIGUSR1`` dumps every
thread's stack to ``KAKEYA_EVIDENCE_STACKS`` (the runner's watchdog sends it
before killing a hung process).
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import time
from typing import IO, Any

import pytest

RECORD_ENV = "KAKEYA_EVIDENCE_RECORD"
STACKS_ENV = "KAKEYA_EVIDENCE_STACKS"
_MAX_TEXT = 20_000

_state: dict[str, Any] = {"file": None, "stacks": None, "reports": {}}


def _write(event: dict[str, Any]) -> None:
    handle: IO[str] | None = _state["file"]
    if handle is None:
        return
    handle.write(json.dumps(event, default=str) + "\n")
    handle.flush()


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "\n... [truncated]"


def pytest_configure(config: pytest.Config) -> None:
    path = os.environ.get(RECORD_ENV)
    if not path:
        return
    _state["file"] = open(path, "a", encoding="utf-8")  # noqa: SIM115 - lives for the session
    stacks = os.environ.get(STACKS_ENV)
    if stacks and hasattr(signal, "SIGUSR1"):
        _state["stacks"] = open(stacks, "w", encoding="utf-8")  # noqa: SIM115
        faulthandler.register(signal.SIGUSR1, file=_state["stacks"], all_threads=True)
    _write(
        {
            "event": "session_started",
            "pid": os.getpid(),
            "rootdir": str(config.rootpath),
            "t": time.time(),
        }
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    _write({"event": "collected", "nodeids": [item.nodeid for item in session.items]})


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _write(
            {
                "event": "result",
                "nodeid": report.nodeid,
                "outcome": "error",
                "duration_s": 0.0,
                "message": "collection failed: " + _first_line(report.longreprtext),
                "traceback": _clip(report.longreprtext),
                "stdout": "",
                "stderr": "",
            }
        )


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _state["reports"][nodeid] = []
    _write({"event": "started", "nodeid": nodeid, "t": time.time()})


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _state["reports"].setdefault(report.nodeid, []).append(report)


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    reports: list[pytest.TestReport] = _state["reports"].pop(nodeid, [])
    _write({"event": "result", "nodeid": nodeid, **summarize(reports)})


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


def summarize(reports: list[pytest.TestReport]) -> dict[str, Any]:
    """Fold a test's setup/call/teardown reports into one outcome record.

    Args:
        reports: The test's reports in the order pytest produced them.

    Returns:
        A dict with outcome, duration_s, message, traceback, stdout and stderr.
    """
    outcome, message, traceback = "passed", "", ""
    for report in reports:
        kind, text = _classify(report)
        if _rank(kind) > _rank(outcome):
            outcome, traceback = kind, text
            message = _message(report, kind)
    last = reports[-1] if reports else None
    return {
        "outcome": outcome,
        "duration_s": round(sum(r.duration for r in reports), 6),
        "message": message,
        "traceback": _clip(traceback),
        "stdout": _clip(last.capstdout) if last else "",
        "stderr": _clip(last.capstderr) if last else "",
    }


def _classify(report: pytest.TestReport) -> tuple[str, str]:
    wasxfail = hasattr(report, "wasxfail")
    if report.skipped:
        return ("xfailed" if wasxfail else "skipped"), report.longreprtext
    if report.failed:
        return ("failed" if report.when == "call" else "error"), report.longreprtext
    if wasxfail and report.when == "call":
        return "xpassed", ""
    return "passed", ""


def _rank(outcome: str) -> int:
    return {"passed": 0, "xpassed": 1, "skipped": 2, "xfailed": 2, "failed": 3, "error": 4}[outcome]


def _message(report: pytest.TestReport, kind: str) -> str:
    if kind == "xfailed":
        return str(getattr(report, "wasxfail", "")) or "xfail"
    if kind == "skipped" and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return _first_line(str(crash.message))
    return _first_line(report.longreprtext)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:500]
    return ""
