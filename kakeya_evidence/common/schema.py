"""The report's typed schema: outcome and status names, one test row, one stage row.

The names are the contract between the suite stage (which writes
``stages/integration_suite.json``), the report, and ``publish`` (which reads
``evidence.json``); they are defined here once. Readers accept rows from older
suites: every field added later (``exception``, ``path``, ``line``, ``phases``,
``start_s``, ``stop_s``, ``worker``) may be absent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

__all__ = [
    "EXIT_CODES",
    "FAILING",
    "OUTPUT_FIELDS",
    "SLIM_FIELDS",
    "Outcome",
    "Phase",
    "StageRow",
    "StageStatus",
    "TestRow",
    "Verdict",
    "module_of",
]


class Outcome(StrEnum):
    """A test's outcome (the worst of its phases)."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"
    XFAILED = "xfailed"
    XPASSED = "xpassed"
    FLAKY = "flaky"  # failed, then passed on a re-run
    NOT_RUN = "not_run"  # collected, never ran (a crash or a stage timeout came first)


class StageStatus(StrEnum):
    """How a stage ended."""

    OK = "ok"
    FAILED = "failed"
    CRASHED = "crashed"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"


class Verdict(StrEnum):
    """The run's verdict; each maps to one exit code."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"


EXIT_CODES = {Verdict.PASSED: 0, Verdict.FAILED: 1, Verdict.ERROR: 2}
FAILING = frozenset({Outcome.FAILED, Outcome.ERROR})
# Long texts a row carries; evidence.json leaves them to report.html and the stage file.
OUTPUT_FIELDS = ("traceback", "stdout", "stderr")
# What every row in evidence.json keeps (the fields publish reads).
SLIM_FIELDS = (
    "nodeid",
    "outcome",
    "duration_s",
    "message",
    "exception",
    "path",
    "line",
    "module",
    "start_s",
    "stop_s",
    "worker",
    "rerun_outcomes",
)


def module_of(nodeid: str) -> str:
    """The test file part of a node id (``tests/x/test_a.py``)."""
    return nodeid.split("::", 1)[0]


@dataclass(frozen=True)
class Phase:
    """One report pytest counted for a node: setup, call, teardown or collect."""

    when: str
    category: str
    message: str = ""


@dataclass(frozen=True)
class TestRow:
    """One test as the report shows it (the contract's TEST shape)."""

    __test__ = False  # not a pytest test class

    nodeid: str
    outcome: Outcome
    duration_s: float = 0.0
    message: str = ""
    exception: str = ""
    traceback: str = ""
    stdout: str = ""
    stderr: str = ""
    path: str = ""
    line: int | None = None
    phases: tuple[Phase, ...] = ()
    start_s: float | None = None
    stop_s: float | None = None
    worker: str = ""
    rerun_outcomes: tuple[str, ...] = ()
    device: str = ""  # set by merge when the merged runs differ in device

    @property
    def module(self) -> str:
        """The node id's file part (``path`` may differ: it is relative to pytest's rootdir)."""
        return module_of(self.nodeid)

    @property
    def name(self) -> str:
        """The node id without its module (``TestX::test_y[p]``); "" for a module's own row."""
        return self.nodeid.partition("::")[2]

    def with_outputs(self, outputs: dict[str, str]) -> TestRow:
        """The row with some of traceback, stdout and stderr replaced."""
        return replace(
            self,
            traceback=outputs.get("traceback", self.traceback),
            stdout=outputs.get("stdout", self.stdout),
            stderr=outputs.get("stderr", self.stderr),
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TestRow:
        """Build a row from a stage file or evidence.json entry; absent fields get defaults.

        An outcome this schema does not know becomes ``error`` with the unknown name kept
        in the message, so nothing is lost and nothing passes by accident.
        """
        raw = str(data.get("outcome") or "error")
        message = _text(data.get("message"))
        try:
            outcome = Outcome(raw)
        except ValueError:
            outcome, message = Outcome.ERROR, f"unknown outcome {raw!r}: {message}"
        return cls(
            nodeid=_text(data.get("nodeid")),
            outcome=outcome,
            duration_s=_number(data.get("duration_s")) or 0.0,
            message=message,
            exception=_text(data.get("exception")),
            traceback=_text(data.get("traceback")),
            stdout=_text(data.get("stdout")),
            stderr=_text(data.get("stderr")),
            path=_text(data.get("path")),
            line=_line(data.get("line")),
            phases=tuple(_phase(p) for p in data.get("phases") or () if isinstance(p, dict)),
            start_s=_number(data.get("start_s")),
            stop_s=_number(data.get("stop_s")),
            worker=_text(data.get("worker")),
            rerun_outcomes=tuple(str(o) for o in data.get("rerun_outcomes") or ()),
            device=_text(data.get("device")),
        )

    def to_dict(self, *, outputs: bool = True) -> dict[str, Any]:
        """The row as JSON data; ``outputs=False`` leaves out traceback, stdout and stderr."""
        data: dict[str, Any] = {
            "nodeid": self.nodeid,
            "outcome": str(self.outcome),
            "duration_s": self.duration_s,
            "message": self.message,
            "exception": self.exception,
            "path": self.path or self.module,
            "line": self.line,
            "module": self.module,
            "start_s": self.start_s,
            "stop_s": self.stop_s,
            "worker": self.worker,
            "rerun_outcomes": list(self.rerun_outcomes),
        }
        if self.phases:
            data["phases"] = [vars(p) for p in self.phases]
        if self.device:
            data["device"] = self.device
        if outputs:
            data.update(traceback=self.traceback, stdout=self.stdout, stderr=self.stderr)
        return data


@dataclass(frozen=True)
class StageRow:
    """One stage in the stage table."""

    name: str
    status: StageStatus
    duration_s: float | None = None
    reason: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StageRow:
        """Build a stage row; an unknown status reads as failed (with the name in the reason)."""
        raw = str(data.get("status") or "skipped")
        reason = _text(data.get("reason"))
        try:
            status = StageStatus(raw)
        except ValueError:
            status, reason = StageStatus.FAILED, f"unknown status {raw!r}: {reason}"
        return cls(_text(data.get("name")), status, _number(data.get("duration_s")), reason)

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON data."""
        return {
            "name": self.name,
            "status": str(self.status),
            "duration_s": self.duration_s,
            "reason": self.reason,
        }


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _line(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if value > 0 else None


def _phase(data: dict[str, Any]) -> Phase:
    return Phase(_text(data.get("when")), _text(data.get("category")), _text(data.get("message")))
