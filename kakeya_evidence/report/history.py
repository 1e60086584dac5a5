"""History over earlier runs: per-test status strips, unstable tests, and trends.

``--history DIR`` names a directory of earlier evidence.json files (any names, any
depth, e.g. the last ten main runs). They are ordered by their ``generated_at``;
this run comes last. A strip holds one letter per run (see ``STRIP_LETTERS``); a
test is unstable when its result flipped between passing and failing two or more
times across the runs in which it ran.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kakeya_evidence.common.schema import Outcome, TestRow
from kakeya_evidence.common.text import safe_data
from kakeya_evidence.report.baseline import perf_metrics

__all__ = [
    "MAX_HISTORY_RUNS",
    "STRIP_LETTERS",
    "UNSTABLE_FLIPS",
    "build_history",
    "count_flips",
    "load_history",
]

MAX_HISTORY_RUNS = 30
UNSTABLE_FLIPS = 2
ABSENT = "-"
STRIP_LETTERS = {
    Outcome.PASSED: "P",
    Outcome.FAILED: "F",
    Outcome.ERROR: "E",
    Outcome.SKIPPED: "S",
    Outcome.XFAILED: "x",
    Outcome.XPASSED: "X",
    Outcome.FLAKY: "K",
    Outcome.NOT_RUN: "N",
}
# Letters that count as a pass or a failure when counting flips; the rest did not run.
_GOOD = frozenset("PxX")
_BAD = frozenset("FEK")


def load_history(directory: Path | str) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Read every evidence.json-shaped file under directory, oldest first.

    Files that are not evidence (no ``tests`` list or no ``generated_at``) or do not
    parse are skipped and listed with the reason, never fatal.

    Args:
        directory: The history directory.

    Returns:
        (runs, skipped): the evidence dicts in generated_at order (the newest
        MAX_HISTORY_RUNS), and {path, reason} for each file left out.

    Raises:
        NotADirectoryError: directory does not exist or is not a directory.
    """
    root = Path(directory)
    if not root.is_dir():
        raise NotADirectoryError(f"history directory {root} does not exist")
    runs: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for path in sorted(root.rglob("*.json")):
        data, reason = _read_evidence(path)
        if data is None:
            skipped.append({"path": str(path.relative_to(root)), "reason": reason})
        else:
            data["_source"] = str(path.relative_to(root))
            runs.append(data)
    runs.sort(key=lambda run: str(run.get("generated_at")))
    return runs[-MAX_HISTORY_RUNS:], skipped


def build_history(
    earlier: Sequence[dict[str, Any]], evidence: dict[str, Any], rows: Sequence[TestRow]
) -> dict[str, Any]:
    """The ``history`` section: runs (earlier ones, then this one), strips, unstable, trends.

    Args:
        earlier: Earlier evidence dicts, oldest first (from load_history).
        evidence: This run's evidence (counts, perf, generated_at, provenance).
        rows: This run's test rows.

    Returns:
        {runs, legend, strips, unstable}; strips only for tests of this run.
    """
    outcomes = [_outcomes_of(run.get("tests") or []) for run in earlier]
    outcomes.append({row.nodeid: STRIP_LETTERS[row.outcome] for row in rows})
    strips = {row.nodeid: "".join(run.get(row.nodeid, ABSENT) for run in outcomes) for row in rows}
    unstable: list[dict[str, Any]] = [
        {"nodeid": nodeid, "flips": flips, "strip": strip}
        for nodeid, strip in strips.items()
        if (flips := count_flips(strip)) >= UNSTABLE_FLIPS
    ]
    unstable.sort(key=lambda item: (-item["flips"], item["nodeid"]))
    runs = [_run_summary(run, run.get("_source", "")) for run in earlier]
    runs.append(_run_summary(evidence, "this run"))
    return {
        "runs": runs,
        "legend": {letter: str(outcome) for outcome, letter in STRIP_LETTERS.items()}
        | {ABSENT: "absent"},
        "strips": strips,
        "unstable": unstable,
    }


def count_flips(strip: str) -> int:
    """How often a strip changes between passing and failing (runs without a result ignored)."""
    states = [letter in _BAD for letter in strip if letter in _GOOD or letter in _BAD]
    return sum(1 for before, after in itertools.pairwise(states) if before != after)


def _read_evidence(path: Path) -> tuple[dict[str, Any] | None, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError) as exc:
        return None, f"not JSON: {type(exc).__name__}"
    if not isinstance(data, dict) or not isinstance(data.get("tests"), list):
        return None, "not an evidence.json (no tests list)"
    if not data.get("generated_at"):
        return None, "not an evidence.json (no generated_at)"
    return safe_data(data), ""


def _outcomes_of(tests: list[Any]) -> dict[str, str]:
    letters: dict[str, str] = {}
    for test in tests:
        if isinstance(test, dict) and test.get("nodeid"):
            row = TestRow.from_dict(test)
            letters[row.nodeid] = STRIP_LETTERS[row.outcome]
    return letters


def _run_summary(run: dict[str, Any], source: str) -> dict[str, Any]:
    counts = run.get("counts") or {}
    ran = sum(int(counts.get(k) or 0) for k in ("passed", "failed", "error", "flaky", "xpassed"))
    passed = sum(int(counts.get(k) or 0) for k in ("passed", "xpassed"))
    perf = run.get("perf") if isinstance(run.get("perf"), dict) else {}
    return {
        "source": source,
        "generated_at": run.get("generated_at"),
        "commit": (run.get("provenance") or {}).get("commit"),
        "verdict": run.get("verdict"),
        "pass_rate": round(passed / ran, 4) if ran else None,
        "pytest_wall_s": run.get("pytest_wall_s"),
        "perf": {name: value for name, (value, _, _) in perf_metrics(perf or {}).items()},
    }
