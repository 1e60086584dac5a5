"""summary.md: verdict, gates, changes, counts, stages and failures for a PR comment.

Kept under GitHub's 65,536-character comment limit by measuring rows: the failure
table takes rows (new failures first) while they fit, whatever their length, and
says how many it left out. Links are filled in: the CI run's URL when there is one,
else it says that this was a local run; no placeholder is ever left.
"""

from __future__ import annotations

from typing import Any

from kakeya_evidence.common.schema import FAILING
from kakeya_evidence.report.units import format_fact

__all__ = ["MAX_SUMMARY_CHARS", "escape_markdown", "model_line", "render_summary"]

MAX_SUMMARY_CHARS = 60_000
VERDICT_TITLES = {"passed": "PASSED", "failed": "FAILED", "error": "ERROR"}
_TABLE_HEAD = "\n| test | outcome | first error line | duration (s) |\n| --- | --- | --- | --- |\n"
_LEFT_OUT = "\n_{count} more failing tests not shown (size limit); see the report._\n"


def escape_markdown(text: str, limit: int = 300) -> str:
    """Make a test-provided string safe inside a Markdown table cell."""
    text = " ".join(str(text).split())[:limit]
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|")):
        text = text.replace(char, entity)
    return text.replace("`", "'")


def model_line(model: dict[str, Any]) -> str:
    """``id on device (requested auto), dtype bfloat16 (requested auto)``."""
    return (
        f"{model.get('id') or '?'} on {_resolved(model, 'device')}, "
        f"dtype {_resolved(model, 'dtype')}"
    )


def render_summary(evidence: dict[str, Any], max_chars: int = MAX_SUMMARY_CHARS) -> str:
    """Render the Markdown summary with as many failure rows as fit in max_chars.

    Args:
        evidence: The evidence dict.
        max_chars: Size limit for the whole text.

    Returns:
        Markdown text no longer than max_chars.
    """
    head = _head(evidence)
    foot = _foot(evidence)
    rows = _failure_rows(evidence)
    if not rows:
        return (head + "\nNo failing tests.\n" + foot)[:max_chars]
    reserve = len(_LEFT_OUT.format(count=len(rows)))
    room = max_chars - len(head) - len(_TABLE_HEAD) - len(foot) - reserve
    kept: list[str] = []
    for row in rows:
        if len(row) + 1 > room:
            break
        kept.append(row)
        room -= len(row) + 1
    left_out = len(rows) - len(kept)
    table = _TABLE_HEAD + "".join(row + "\n" for row in kept)
    note = _LEFT_OUT.format(count=left_out) if left_out else ""
    return (head + table + note + foot)[:max_chars]


def _head(evidence: dict[str, Any]) -> str:
    verdict = str(evidence.get("verdict", "error"))
    lines = [f"## Kakeya evidence: {VERDICT_TITLES.get(verdict, verdict.upper())}", ""]
    lines += _changes(evidence.get("baseline"))
    lines.append(
        f"Model {escape_markdown(model_line(evidence.get('model') or {}))}; "
        f"exit code {evidence.get('exit_code')}."
    )
    lines += ["", f"Host: {escape_markdown(_host_line(evidence.get('host') or {}))}."]
    if evidence.get("infrastructure_failed"):
        lines += ["", "**Infrastructure failed: results are not meaningful.**"]
    lines += _gates(evidence.get("gates") or [])
    lines += _warnings(evidence)
    counts = {k: v for k, v in (evidence.get("counts") or {}).items() if v or k != "not_run"}
    lines += ["", "| " + " | ".join(counts) + " |", "|" + " --- |" * len(counts)]
    lines += ["| " + " | ".join(str(v) for v in counts.values()) + " |", ""]
    lines += ["| stage | status | duration (s) | reason |", "| --- | --- | --- | --- |"]
    for stage in evidence.get("stages") or []:
        lines.append(
            f"| {stage['name']} | {stage['status']} | {_seconds(stage.get('duration_s'))} "
            f"| {escape_markdown(stage.get('reason') or '')} |"
        )
    return "\n".join(lines) + "\n"


def _changes(baseline: dict[str, Any] | None) -> list[str]:
    if not baseline:
        return ["No baseline: nothing to compare against.", ""]
    tests = baseline.get("tests") or {}
    parts = [
        f"{len(tests.get(key) or [])} {label}"
        for key, label in (("new_failures", "new failures"), ("fixed", "fixed"))
    ]
    parts.append(f"{len(tests.get('still_failing') or [])} still failing")
    regressions = [r["metric"] for r in baseline.get("perf") or [] if r.get("regression")]
    if regressions:
        parts.append("perf regressions: " + ", ".join(regressions))
    commit = escape_markdown(str(baseline.get("commit") or "unknown")[:12])
    return [f"**Against the baseline** (commit `{commit}`): " + "; ".join(parts) + ".", ""]


def _gates(gates: list[dict[str, Any]]) -> list[str]:
    if not gates:
        return []
    failed = [g for g in gates if not g.get("passed")]
    title = (
        f"**Quality gates: {len(failed)} of {len(gates)} failed**"
        if failed
        else f"Quality gates: all {len(gates)} passed"
    )
    lines = ["", title, "", "| gate | result | detail |", "| --- | --- | --- |"]
    for gate in gates:
        result = "passed" if gate.get("passed") else "**FAILED**"
        name = escape_markdown(gate.get("name", ""))
        lines.append(f"| {name} | {result} | {escape_markdown(gate.get('detail', ''))} |")
    return lines


def _warnings(evidence: dict[str, Any]) -> list[str]:
    leftovers = (evidence.get("suite") or {}).get("leftover_processes") or []
    if not leftovers:
        return []
    killed = sum(1 for p in leftovers if isinstance(p, dict) and p.get("killed"))
    return [
        "",
        f"**Warning:** the tests left {len(leftovers)} process(es) running "
        f"({killed} killed after the suite); see the report.",
    ]


def _failure_rows(evidence: dict[str, Any]) -> list[str]:
    new = set(((evidence.get("baseline") or {}).get("tests") or {}).get("new_failures") or [])
    failing = [t for t in evidence.get("tests") or [] if t.get("outcome") in FAILING]
    failing.sort(key=lambda t: t.get("nodeid") not in new)  # stable: new failures first
    return [
        f"| {'**new** ' if t.get('nodeid') in new else ''}{escape_markdown(t['nodeid'], 200)} "
        f"| {t['outcome']} | {escape_markdown(t.get('message') or '')} "
        f"| {_seconds(t.get('duration_s'))} |"
        for t in failing
    ]


def _foot(evidence: dict[str, Any]) -> str:
    run_url = (evidence.get("provenance") or {}).get("run_url")
    if run_url:
        return (
            f"\nRun: {escape_markdown(run_url, 500)} (the full report is `report.html` "
            "in the run's evidence artifact).\n"
        )
    return "\nLocal run: the full report is `report.html` in the evidence directory.\n"


def _host_line(host: dict[str, Any]) -> str:
    parts = [str(host.get(k)) for k in ("chip", "os") if host.get(k) not in (None, "")]
    if host.get("cpu_cores_logical"):
        parts.append(f"{host['cpu_cores_logical']} CPU cores")
    if host.get("memory_total_bytes"):
        parts.append(format_fact("memory_total_bytes", host["memory_total_bytes"]) + " memory")
    if host.get("disk_free_bytes"):
        parts.append(format_fact("disk_free_bytes", host["disk_free_bytes"]) + " disk free")
    return ", ".join(parts) or "unknown"


def _resolved(model: dict[str, Any], key: str) -> str:
    resolved, requested = model.get(key), model.get(f"{key}_requested")
    if not resolved:
        return f"{requested or 'auto'} (not resolved: the model was not loaded)"
    if requested and requested != resolved:
        return f"{resolved} (requested {requested})"
    return str(resolved)


def _seconds(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "-"
