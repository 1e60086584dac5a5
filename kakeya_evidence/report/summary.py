"""summary.md: verdict, counts, stages and failures for a GitHub job summary or PR comment.

Kept under GitHub's 65,536-character comment limit by dropping failure rows
(with a note saying how many). ``{report_url}`` and ``{run_url}`` are left as
placeholders for CI to fill in.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_SUMMARY_CHARS", "escape_markdown", "render_summary"]

MAX_SUMMARY_CHARS = 60_000
VERDICT_TITLES = {"passed": "PASSED", "failed": "FAILED", "error": "ERROR"}
_FAILING = ("failed", "error")


def escape_markdown(text: str, limit: int = 300) -> str:
    """Make a test-provided string safe inside a Markdown table cell."""
    text = " ".join(str(text).split())[:limit]
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|")):
        text = text.replace(char, entity)
    return text.replace("`", "'")


def render_summary(evidence: dict[str, Any], max_chars: int = MAX_SUMMARY_CHARS) -> str:
    """Render the Markdown summary, truncating the failure table to fit max_chars.

    Args:
        evidence: The evidence dict.
        max_chars: Size limit for the whole text.

    Returns:
        Markdown text no longer than max_chars.
    """
    head = _head(evidence)
    rows = _failure_rows(evidence)
    foot = "\nFull report: {report_url} (run: {run_url})\n"
    kept = len(rows)
    while True:
        text = head + _failure_table(rows[:kept], len(rows) - kept) + foot
        if len(text) <= max_chars or kept == 0:
            return text[:max_chars]
        kept = max(0, kept - max(1, (len(text) - max_chars) // 80))


def _head(evidence: dict[str, Any]) -> str:
    verdict = evidence.get("verdict", "error")
    model = evidence.get("model") or {}
    lines = [
        f"## Kakeya evidence: {VERDICT_TITLES.get(verdict, verdict.upper())}",
        "",
        f"Model `{escape_markdown(model.get('id') or '?')}` on "
        f"`{escape_markdown(model.get('device') or '?')}`, exit code {evidence.get('exit_code')}.",
    ]
    if evidence.get("infrastructure_failed"):
        lines += ["", "**Infrastructure failed: results are not meaningful.**"]
    counts = evidence.get("counts") or {}
    lines += ["", "| " + " | ".join(counts) + " |", "|" + " --- |" * len(counts)]
    lines += ["| " + " | ".join(str(v) for v in counts.values()) + " |", ""]
    lines += ["| stage | status | duration (s) | reason |", "| --- | --- | --- | --- |"]
    for stage in evidence.get("stages") or []:
        lines.append(
            f"| {stage['name']} | {stage['status']} | {_seconds(stage.get('duration_s'))} "
            f"| {escape_markdown(stage.get('reason') or '')} |"
        )
    return "\n".join(lines) + "\n"


def _failure_rows(evidence: dict[str, Any]) -> list[str]:
    return [
        f"| {escape_markdown(t['nodeid'], 200)} | {t['outcome']} "
        f"| {escape_markdown(t.get('message') or '')} | {_seconds(t.get('duration_s'))} |"
        for t in evidence.get("tests") or []
        if t.get("outcome") in _FAILING
    ]


def _failure_table(rows: list[str], dropped: int) -> str:
    if not rows and not dropped:
        return "\nNo failing tests.\n"
    lines = [
        "",
        "| test | outcome | first error line | duration (s) |",
        "| --- | --- | --- | --- |",
    ]
    lines += rows
    if dropped:
        lines.append(f"\n_{dropped} more failing tests not shown (size limit); see the report._")
    return "\n".join(lines) + "\n"


def _seconds(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "-"
