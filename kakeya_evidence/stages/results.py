"""Test results: one row per node id, folded from the plugin record, and the counts.

Counts are pytest's own: one per report in pytest's terminal category (a test that fails
in call and errors in teardown counts once in failed and once in error; a collection
error or module-level skip counts once), plus ``flaky`` (failed, then passed on a
re-run, counted instead of its failures) and ``not_run`` (collected, never ran).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from kakeya_evidence.stages.record import Phase, Record
from kakeya_evidence.stages.textsafe import clip_end, safe_text

__all__ = [
    "COUNTED",
    "FAILING",
    "OUTCOMES",
    "TestResult",
    "count_outcomes",
    "fold_record",
    "mark_rerun",
    "module_of",
    "not_run",
    "result_from_dict",
]

COUNTED = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
OUTCOMES = (*COUNTED, "flaky", "not_run")
FAILING = frozenset({"failed", "error"})
_RANK = {"passed": 0, "xpassed": 1, "skipped": 2, "xfailed": 2, "failed": 3, "error": 4}


@dataclass(frozen=True)
class TestResult:
    """One test's row: its outcome (worst phase), texts, location, phases and timing."""

    __test__ = False  # not a pytest test class

    nodeid: str
    outcome: str
    duration_s: float = 0.0
    message: str = ""
    traceback: str = ""
    stdout: str = ""
    stderr: str = ""
    rerun_outcomes: tuple[str, ...] = ()
    exception: str = ""
    path: str = ""
    line: int | None = None
    phases: tuple[dict[str, str], ...] = ()
    start_s: float | None = None
    stop_s: float | None = None
    worker: str = ""

    @property
    def module(self) -> str:
        return module_of(self.nodeid)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["module"] = self.module
        data["rerun_outcomes"] = list(self.rerun_outcomes)
        data["phases"] = [dict(p) for p in self.phases]
        return data


def module_of(nodeid: str) -> str:
    """Return the test file part of a node id (``tests/x/test_a.py``)."""
    return nodeid.split("::", 1)[0]


def result_from_dict(data: dict[str, Any]) -> TestResult:
    """Build a TestResult from an evidence.json test entry (new fields may be absent)."""
    line = data.get("line")
    return TestResult(
        nodeid=safe_text(data.get("nodeid", "")),
        outcome=str(data.get("outcome", "error")),
        duration_s=float(data.get("duration_s") or 0.0),
        message=safe_text(data.get("message") or ""),
        traceback=safe_text(data.get("traceback") or ""),
        stdout=safe_text(data.get("stdout") or ""),
        stderr=safe_text(data.get("stderr") or ""),
        rerun_outcomes=tuple(str(o) for o in data.get("rerun_outcomes") or ()),
        exception=safe_text(data.get("exception") or ""),
        path=safe_text(data.get("path") or ""),
        line=line if isinstance(line, int) and not isinstance(line, bool) else None,
        phases=tuple(p for p in data.get("phases") or () if isinstance(p, dict)),
        start_s=_float_or_none(data.get("start_s")),
        stop_s=_float_or_none(data.get("stop_s")),
        worker=safe_text(data.get("worker") or ""),
    )


def fold_record(record: Record) -> list[TestResult]:
    """One row per node id from the record's reports, in the order pytest reported them."""
    by_node: dict[str, list[Phase]] = {}
    for phase in record.phases:
        by_node.setdefault(phase.nodeid, []).append(phase)
    return [_fold(nodeid, phases, record.started_t) for nodeid, phases in by_node.items()]


def _fold(nodeid: str, phases: list[Phase], zero_t: float | None) -> TestResult:
    ranked = [p for p in phases if _outcome(p) in _RANK]
    worst = max(ranked, key=lambda p: _RANK[_outcome(p)], default=None)
    outcome = _outcome(worst) if worst else "passed"
    failing = [p for p in phases if p.category in FAILING]
    lead = failing[0] if failing else worst
    starts = [p.start for p in phases if p.start is not None]
    stops = [p.stop for p in phases if p.stop is not None]
    return TestResult(
        nodeid=nodeid,
        outcome=outcome,
        duration_s=round(sum(p.duration_s for p in phases), 6),
        message=lead.message if lead else "",
        traceback=_traceback(failing, worst),
        stdout=clip_end("".join(p.stdout for p in phases)),
        stderr=clip_end("".join(p.stderr for p in phases)),
        exception=lead.exception if lead else "",
        path=(lead or phases[0]).path,
        line=lead.line if lead else None,
        phases=tuple(
            {"when": p.when, "category": p.category, "message": p.message}
            for p in phases
            if p.category and p.counted
        ),
        start_s=_since(min(starts), zero_t) if starts else None,
        stop_s=_since(max(stops), zero_t) if stops else None,
        worker=next((p.worker for p in phases if p.worker), ""),
    )


def _outcome(phase: Phase) -> str:
    # Plugins add categories ("subtests passed"); they rank as the outcome they end in.
    return phase.category.removeprefix("subtests ")


def _traceback(failing: list[Phase], worst: Phase | None) -> str:
    if len(failing) == 1:
        return failing[0].longrepr
    if failing:
        parts = [f"--- {p.when}: {p.category} ---\n{p.longrepr}" for p in failing]
        return clip_end("\n\n".join(parts))
    return worst.longrepr if worst and worst.category == "xfailed" else ""


def _since(t: float, zero_t: float | None) -> float | None:
    return round(t - zero_t, 6) if zero_t is not None else None


def not_run(nodeids: list[str], reason: str) -> list[TestResult]:
    """Rows for tests pytest collected but never ran (after a crash, timeout or stop)."""
    return [TestResult(n, "not_run", message=f"not run: {reason}") for n in nodeids]


def count_outcomes(results: list[TestResult]) -> dict[str, int]:
    """Count as pytest's terminal summary does, plus flaky and not_run; every key present."""
    counts = dict.fromkeys(OUTCOMES, 0)
    for result in results:
        if result.outcome in ("flaky", "not_run"):
            counts[result.outcome] += 1
            continue
        for phase in result.phases:
            if phase.get("category") in counts:
                counts[phase["category"]] += 1
    return {name: counts[name] for name in OUTCOMES}


def mark_rerun(result: TestResult, outcomes: list[str]) -> TestResult:
    """Return the result with its rerun outcomes; flaky if a rerun passed."""
    passed = "passed" in outcomes
    return replace(
        result, rerun_outcomes=tuple(outcomes), outcome="flaky" if passed else result.outcome
    )


def _float_or_none(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
