"""Test results: one row per node id, folded from the plugin record, and the counts.

Counts are pytest's own: one per report in pytest's terminal category (a test that fails
in call and errors in teardown counts once in failed and once in error; a collection
error or module-level skip counts once), plus ``flaky`` (failed, then passed on a
re-run, counted instead of its failures) and ``not_run`` (collected, never ran).
"""

from __future__ import annotations

from dataclasses import replace

from kakeya_evidence.common.schema import FAILING, Outcome, Phase, TestRow
from kakeya_evidence.common.text import clip_end
from kakeya_evidence.stages.record import Phase as ReportedPhase
from kakeya_evidence.stages.record import Record

__all__ = [
    "COUNTED",
    "count_outcomes",
    "fold_record",
    "mark_rerun",
    "not_run",
]

# pytest's terminal-summary categories; flaky and not_run are the pipeline's own.
COUNTED = (
    Outcome.PASSED,
    Outcome.FAILED,
    Outcome.ERROR,
    Outcome.SKIPPED,
    Outcome.XFAILED,
    Outcome.XPASSED,
)
_RANK = {"passed": 0, "xpassed": 1, "skipped": 2, "xfailed": 2, "failed": 3, "error": 4}


def fold_record(record: Record) -> list[TestRow]:
    """One row per node id from the record's reports, in the order pytest reported them."""
    by_node: dict[str, list[ReportedPhase]] = {}
    for phase in record.phases:
        by_node.setdefault(phase.nodeid, []).append(phase)
    return [_fold(nodeid, phases, record.started_t) for nodeid, phases in by_node.items()]


def _fold(nodeid: str, phases: list[ReportedPhase], zero_t: float | None) -> TestRow:
    ranked = [p for p in phases if _outcome(p) in _RANK]
    worst = max(ranked, key=lambda p: _RANK[_outcome(p)], default=None)
    outcome = _outcome(worst) if worst else "passed"
    failing = [p for p in phases if p.category in FAILING]
    lead = failing[0] if failing else worst
    starts = [p.start for p in phases if p.start is not None]
    stops = [p.stop for p in phases if p.stop is not None]
    return TestRow(
        nodeid=nodeid,
        outcome=Outcome(outcome),
        duration_s=round(sum(p.duration_s for p in phases), 6),
        message=lead.message if lead else "",
        traceback=_traceback(failing, worst),
        stdout=clip_end("".join(p.stdout for p in phases)),
        stderr=clip_end("".join(p.stderr for p in phases)),
        exception=lead.exception if lead else "",
        path=(lead or phases[0]).path,
        line=lead.line if lead else None,
        phases=tuple(
            Phase(p.when, p.category, p.message) for p in phases if p.category and p.counted
        ),
        start_s=_since(min(starts), zero_t) if starts else None,
        stop_s=_since(max(stops), zero_t) if stops else None,
        worker=next((p.worker for p in phases if p.worker), ""),
    )


def _outcome(phase: ReportedPhase) -> str:
    # Plugins add categories ("subtests passed"); they rank as the outcome they end in.
    return phase.category.removeprefix("subtests ")


def _traceback(failing: list[ReportedPhase], worst: ReportedPhase | None) -> str:
    if len(failing) == 1:
        return failing[0].longrepr
    if failing:
        parts = [f"--- {p.when}: {p.category} ---\n{p.longrepr}" for p in failing]
        return clip_end("\n\n".join(parts))
    return worst.longrepr if worst and worst.category == "xfailed" else ""


def _since(t: float, zero_t: float | None) -> float | None:
    return round(t - zero_t, 6) if zero_t is not None else None


def not_run(nodeids: list[str], reason: str) -> list[TestRow]:
    """Rows for tests pytest collected but never ran (after a crash, timeout or stop)."""
    return [TestRow(n, Outcome.NOT_RUN, message=f"not run: {reason}") for n in nodeids]


def count_outcomes(rows: list[TestRow]) -> dict[str, int]:
    """Count as pytest's terminal summary does, plus flaky and not_run; every key present."""
    counts = dict.fromkeys((str(o) for o in Outcome), 0)
    for row in rows:
        if row.outcome in (Outcome.FLAKY, Outcome.NOT_RUN):
            counts[row.outcome] += 1
            continue
        for phase in row.phases:
            if phase.category in counts:
                counts[phase.category] += 1
    return counts


def mark_rerun(row: TestRow, outcomes: list[str]) -> TestRow:
    """Return the row with its rerun outcomes; flaky if a rerun passed."""
    flaky = Outcome.PASSED in outcomes
    return replace(
        row, rerun_outcomes=tuple(outcomes), outcome=Outcome.FLAKY if flaky else row.outcome
    )
