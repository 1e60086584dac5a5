"""Test results: the per-test record, JUnit XML, and the counts derived from them.

Parsing never raises on bad input: a truncated JSONL record keeps its complete
lines, and a malformed or truncated JUnit file keeps every ``<testcase>`` that
closed before the damage.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

__all__ = [
    "OUTCOMES",
    "RecordParse",
    "TestResult",
    "count_outcomes",
    "merge_results",
    "module_of",
    "parse_junit",
    "parse_record",
    "result_from_dict",
]

OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed", "flaky")
FAILING = frozenset({"failed", "error"})


@dataclass(frozen=True)
class TestResult:
    """One test's outcome as the report shows it."""

    __test__ = False  # not a pytest test class

    nodeid: str
    outcome: str
    duration_s: float = 0.0
    message: str = ""
    traceback: str = ""
    stdout: str = ""
    stderr: str = ""
    rerun_outcomes: tuple[str, ...] = ()

    @property
    def module(self) -> str:
        return module_of(self.nodeid)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["module"] = self.module
        data["rerun_outcomes"] = list(self.rerun_outcomes)
        return data


@dataclass(frozen=True)
class RecordParse:
    """What a plugin record says about a pytest run.

    Attributes:
        results: Finished tests, in the order they finished.
        collected: Node ids pytest collected (empty if collection never finished).
        running: The test that started but never finished, if any.
        finished: Whether pytest reached the end of its session.
    """

    results: list[TestResult] = field(default_factory=list)
    collected: list[str] = field(default_factory=list)
    running: str | None = None
    finished: bool = False
    rootdir: str = ""


def module_of(nodeid: str) -> str:
    """Return the test file part of a node id (``tests/x/test_a.py``)."""
    return nodeid.split("::", 1)[0]


def result_from_dict(data: dict[str, Any]) -> TestResult:
    """Build a TestResult from a record line or an evidence.json test entry."""
    return TestResult(
        nodeid=str(data.get("nodeid", "")),
        outcome=str(data.get("outcome", "error")),
        duration_s=float(data.get("duration_s") or 0.0),
        message=str(data.get("message") or ""),
        traceback=str(data.get("traceback") or ""),
        stdout=str(data.get("stdout") or ""),
        stderr=str(data.get("stderr") or ""),
        rerun_outcomes=tuple(data.get("rerun_outcomes") or ()),
    )


def parse_record(path: Path) -> RecordParse:
    """Read the plugin's JSONL record, skipping lines that do not parse.

    Args:
        path: The record file; a missing file gives an empty parse.

    Returns:
        The finished results, collected ids, the running test and whether the session ended.
    """
    if not path.is_file():
        return RecordParse()
    results: dict[str, TestResult] = {}
    collected: list[str] = []
    running: str | None = None
    finished = False
    rootdir = ""
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        kind = event.get("event") if isinstance(event, dict) else None
        if kind == "session_started":
            rootdir = str(event.get("rootdir") or "")
        elif kind == "collected":
            collected = [str(n) for n in event.get("nodeids", [])]
        elif kind == "started":
            running = str(event.get("nodeid"))
        elif kind == "result":
            result = result_from_dict(event)
            results[result.nodeid] = result
            running = None if running == result.nodeid else running
        elif kind == "session_finished":
            finished = True
    return RecordParse(list(results.values()), collected, running, finished, rootdir)


def parse_junit(path: Path) -> list[TestResult]:
    """Read JUnit XML, keeping every complete ``<testcase>`` even when the file is damaged.

    Args:
        path: The JUnit file; missing, empty or garbage files give an empty list.

    Returns:
        One result per test case.
    """
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        root = ET.fromstring(text)
        cases = list(root.iter("testcase"))
    except ET.ParseError:
        cases = _salvage_cases(text)
    return [_case_result(case) for case in cases]


def _salvage_cases(text: str) -> list[ET.Element]:
    cases = []
    pattern = r"<testcase\b[^>]*?/>|<testcase\b.*?</testcase>"
    for match in re.finditer(pattern, text, flags=re.DOTALL):
        try:
            cases.append(ET.fromstring(match.group(0)))
        except ET.ParseError:
            continue
    return cases


def _case_result(case: ET.Element) -> TestResult:
    nodeid = _junit_nodeid(case)
    duration = _to_float(case.get("time"))
    for tag, outcome in (("error", "error"), ("failure", "failed"), ("skipped", "skipped")):
        child = case.find(tag)
        if child is None:
            continue
        message = child.get("message") or ""
        if tag == "skipped" and child.get("type") == "pytest.xfail":
            outcome = "xfailed"
        return TestResult(nodeid, outcome, duration, _first_line(message), child.text or "")
    return TestResult(nodeid, "passed", duration, stdout=case.findtext("system-out") or "")


def _junit_nodeid(case: ET.Element) -> str:
    classname, name = case.get("classname", ""), case.get("name", "")
    parts = classname.split(".")
    # pytest writes classname as the dotted module path plus any classes; the file is the
    # longest prefix of parts that starts with a lowercase name (classes are CamelCase).
    split = len(parts)
    while split > 1 and parts[split - 1][:1].isupper():
        split -= 1
    module = "/".join(parts[:split]) + ".py" if classname else ""
    return "::".join(p for p in [module, *parts[split:], name] if p)


def _to_float(value: str | None) -> float:
    try:
        return float(value) if value else 0.0
    except ValueError:
        return 0.0


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:500]
    return ""


def merge_results(record: list[TestResult], junit: list[TestResult]) -> list[TestResult]:
    """Combine record and JUnit results; the record wins, JUnit fills the gaps.

    Args:
        record: Results from the plugin record (richer: captured output, tracebacks).
        junit: Results from JUnit XML (used for tests the record lacks).

    Returns:
        One result per node id, record order first.
    """
    merged = {r.nodeid: r for r in record}
    known_tails = {_tail(n) for n in merged}
    for result in junit:
        if result.nodeid not in merged and _tail(result.nodeid) not in known_tails:
            merged[result.nodeid] = result
    return list(merged.values())


def nodeid_tail(nodeid: str) -> str:
    """The node id with its directories dropped (how JUnit and reruns can be matched)."""
    return _tail(nodeid)


def _tail(nodeid: str) -> str:
    # JUnit loses the directory layout of node ids; compare on file name plus test path.
    module, _, rest = nodeid.partition("::")
    return module.rsplit("/", 1)[-1] + "::" + rest


def count_outcomes(results: list[TestResult]) -> dict[str, int]:
    """Count results per outcome, with every outcome key present."""
    counter = Counter(r.outcome for r in results)
    return {outcome: counter.get(outcome, 0) for outcome in OUTCOMES}


def mark_rerun(result: TestResult, outcomes: list[str]) -> TestResult:
    """Return the result with its rerun outcomes; flaky if a rerun passed."""
    passed = "passed" in outcomes
    return replace(
        result, rerun_outcomes=tuple(outcomes), outcome="flaky" if passed else result.outcome
    )
