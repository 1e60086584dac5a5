"""Recompute the suite's verdict from the raw plugin record and junit.xml, with main's code.

``evidence.json`` is written on the Mac by the code under test: a pull request that
edits ``kakeya_evidence/report`` could make it say ``exit_code: 0`` whatever ran.
``publish`` runs main's code on a GitHub-hosted runner, so it reads the raw files of
the same evidence directory itself and checks that they agree:

- ``pytest/run0/record.jsonl(.gz)``: the plugin's event per pytest report. A node's
  outcome is the worst category among its reports; failed and error nodes that
  passed in a ``pytest/rerunN`` record are flaky, not failing;
- ``junit.xml``: pytest's own (or one written from the record after a crash): the
  test cases with a ``<failure>`` or ``<error>`` must be the record's failing nodes
  (pytest writes a test that fails and then errors in teardown as two test cases of
  the same name: they count once).

A passing ``evidence.json`` must agree with both: the suite finished, tests ran, no
node failed, and its failing rows are exactly the record's. Any disagreement is a
failure of the check, named in its title. Standard library only.
"""

from __future__ import annotations

import gzip
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FAILING", "RawSuite", "Recheck", "read_raw_suite", "recheck"]

FAILING = ("failed", "error")
_RANK = {"passed": 0, "xpassed": 1, "skipped": 2, "xfailed": 2, "failed": 3, "error": 4}
MAX_RECORD_BYTES = 256 * 1024 * 1024
_RERUN_DIR = re.compile(r"^rerun(\d+)$")


@dataclass(frozen=True)
class RawSuite:
    """What the raw files say about the suite."""

    finished: bool
    nodes: int  # node ids with at least one report
    failing: frozenset[str]  # failed or error, and not passed on a re-run
    flaky: frozenset[str]
    junit_failing: int | None  # test cases with <failure>/<error>; None: no junit.xml
    first_failing: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Recheck:
    """Whether evidence.json's verdict agrees with the raw files."""

    agrees: bool
    reason: str = ""


def read_raw_suite(evidence_dir: Path) -> RawSuite | None:
    """Fold the first run's record (and the re-runs'); None when there is no record."""
    work = evidence_dir / "pytest"
    events = _record_events(work / "run0")
    if events is None:
        return None
    finished = any(e.get("event") == "session_finished" for e in events)
    outcomes = _fold(events)
    first_failing = {n for n, o in outcomes.items() if o in FAILING}
    passed_later: set[str] = set()
    for rerun in _rerun_dirs(work):
        for node, outcome in _fold(_record_events(rerun) or []).items():
            if outcome == "passed":
                passed_later.add(node)
    flaky = first_failing & passed_later
    return RawSuite(
        finished=finished,
        nodes=len(outcomes),
        failing=frozenset(first_failing - flaky),
        flaky=frozenset(flaky),
        junit_failing=_junit_failing(evidence_dir / "junit.xml"),
        first_failing=frozenset(first_failing),
    )


def recheck(evidence: Mapping[str, Any], raw: RawSuite | None) -> Recheck:
    """Check evidence.json's verdict against the raw files (see the module docstring)."""
    exit_code = evidence.get("exit_code")
    if exit_code == 2:
        return Recheck(True)  # an error verdict is a failure already; nothing to forge
    if raw is None:
        return Recheck(False, "no raw pytest record (pytest/run0/record.jsonl) to check it")
    if raw.junit_failing is None:
        return Recheck(False, "no junit.xml to check it")
    if raw.junit_failing != len(raw.first_failing):
        return Recheck(
            False,
            f"junit.xml has {raw.junit_failing} failing test cases, "
            f"the record {len(raw.first_failing)}",
        )
    claimed = {
        str(row.get("nodeid"))
        for row in evidence.get("tests") or []
        if isinstance(row, Mapping) and row.get("outcome") in FAILING
    }
    if claimed != raw.failing:
        missing = sorted(raw.failing - claimed)
        extra = sorted(claimed - raw.failing)
        shown = (missing or extra)[0]
        return Recheck(
            False,
            f"evidence.json lists {len(claimed)} failing tests, the record {len(raw.failing)} "
            f"(first difference: {shown[:120]})",
        )
    if exit_code == 0 and not raw.finished:
        return Recheck(False, "evidence.json says passed, but pytest never finished")
    if exit_code == 0 and raw.nodes == 0:
        return Recheck(False, "evidence.json says passed, but the record holds no test")
    return Recheck(True)


def _record_events(run_dir: Path) -> list[dict[str, Any]] | None:
    for name, opener in (("record.jsonl.gz", gzip.open), ("record.jsonl", open)):
        path = run_dir / name
        if not path.is_file():
            continue
        try:
            with opener(path, "rb") as fh:
                data = fh.read(MAX_RECORD_BYTES + 1)
        except (OSError, EOFError):
            return []
        return _parse_lines(data[:MAX_RECORD_BYTES])
    return None


def _parse_lines(data: bytes) -> list[dict[str, Any]]:
    events = []
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a torn last line after a kill
        if isinstance(event, dict):
            events.append(event)
    return events


def _fold(events: list[dict[str, Any]]) -> dict[str, str]:
    """Each node's worst category over its reports (as the pipeline's own fold ranks them)."""
    worst: dict[str, str] = {}
    for event in events:
        if event.get("event") != "report":
            continue
        node = str(event.get("nodeid") or "")
        category = str(event.get("category") or "").removeprefix("subtests ")
        if category not in _RANK:
            worst.setdefault(node, "passed")
            continue
        if _RANK[category] >= _RANK.get(worst.get(node, "passed"), 0):
            worst[node] = category
    return worst


def _rerun_dirs(work: Path) -> list[Path]:
    if not work.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in work.iterdir() if (m := _RERUN_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def _junit_failing(path: Path) -> int | None:
    try:
        # Untrusted (the PR ran): expat >= 2.4.1 refuses entity-expansion bombs.
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    failing = {
        (case.get("file"), case.get("classname"), case.get("name"))
        for case in root.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    }
    return len(failing)
