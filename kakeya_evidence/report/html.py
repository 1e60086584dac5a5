"""Render the self-contained HTML report (Jinja2 with autoescape; CSS, script and images inline).

Every test gets a row, rendered on the server, so the page reads with scripts off;
a small inline script adds search, outcome filters and sorting. The long outputs
appear once, in the rows; the embedded JSON holds the evidence without the test rows.
``render_report`` keeps the whole page under its byte budget (see ``budget``).
"""

from __future__ import annotations

import json
import shlex
from collections import Counter
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from kakeya_evidence.common.schema import FAILING, OUTPUT_FIELDS, Outcome, TestRow
from kakeya_evidence.report.appendix import NotebookHtml
from kakeya_evidence.report.budget import fit_outputs
from kakeya_evidence.report.peers import peer_table
from kakeya_evidence.report.summary import model_line
from kakeya_evidence.report.units import format_fact, format_number, human_bytes, to_ms

__all__ = ["order_rows", "render_html", "render_report", "repro_command"]

TEMPLATES = Path(__file__).parent / "templates"
CHANGE_LABELS = (
    ("new_failures", "new failures"),
    ("fixed", "fixed"),
    ("still_failing", "still failing"),
    ("flaky", "flaky"),
    ("added", "added"),
    ("removed", "removed"),
    ("new_tests_failing", "new test, failing"),
)
PERF_IMAGES = (
    ("turn_latency", "per-turn latency"),
    ("kv_bytes", "KV bytes over turns"),
    ("throughput", "decode tokens per second"),
    ("concurrency", "throughput and latency against concurrent sessions"),
)
# Shown in the page; evidence.json and tests.csv hold them all.
MAX_CATEGORY_MEMBERS = 20
MAX_HISTORY_ROWS = 200
MAX_SKIP_REASONS = 30
_SEVERITY = {Outcome.ERROR: 0, Outcome.FAILED: 1, Outcome.FLAKY: 2, Outcome.XPASSED: 3}
_RENDER_TRIES = 4


def repro_command(nodeid: str, model: dict[str, Any]) -> str:
    """One line that re-runs a single test the way the suite stage ran it."""
    env = " ".join(
        f"{name}={shlex.quote(str(model.get(key) or 'auto'))}"
        for name, key in (
            ("KAKEYA_MODEL", "id"),
            ("KAKEYA_DEVICE", "device"),
            ("KAKEYA_DTYPE", "dtype"),
        )
    )
    return f"HF_HUB_OFFLINE=1 {env} python -m pytest {shlex.quote(nodeid)}"


def order_rows(rows: Sequence[TestRow]) -> list[TestRow]:
    """Failing rows first (errors, failures, flaky, xpassed), then the rest in run order."""
    return sorted(rows, key=lambda r: _SEVERITY.get(r.outcome, len(_SEVERITY)))


def render_report(
    evidence: dict[str, Any],
    rows: Sequence[TestRow],
    images: dict[str, str],
    notebooks: Sequence[NotebookHtml] = (),
    max_bytes: int = 10_000_000,
) -> tuple[str, dict[str, Any]]:
    """Render the page within max_bytes, clipping the largest outputs first.

    Measures the page without outputs, gives the outputs what is left, and renders
    again until it fits; when even the page without outputs is too big, the
    notebook appendix goes first, then every output.

    Args:
        evidence: The evidence dict.
        rows: Every test row, with outputs.
        images: Figure name to ``data:`` URI.
        notebooks: The executed notebooks for the appendix.
        max_bytes: The budget for the whole page.

    Returns:
        The HTML, and the ``report_budget`` facts (what was clipped or dropped).
    """
    bare = [_without_outputs(r) for r in rows]
    base = _size(render_html(evidence, bare, images, notebooks))
    budget: dict[str, Any] = {"max_bytes": max_bytes, "appendix_dropped": False}
    if base > max_bytes and notebooks:
        notebooks, budget["appendix_dropped"] = (), True
        base = _size(render_html(evidence, bare, images))
    room = max_bytes - base
    for _ in range(_RENDER_TRIES):
        fitted, stats = fit_outputs(rows, max(0, room))
        budget.update(stats)
        html = render_html(evidence, fitted, images, notebooks, budget)
        excess = _size(html) - max_bytes
        if excess <= 0:
            return html, budget
        room -= excess + max(1024, excess // 4)
    budget.update(outputs_dropped=True, over_budget=base > max_bytes)
    return render_html(evidence, bare, images, notebooks, budget), budget


def render_html(
    evidence: dict[str, Any],
    rows: Sequence[TestRow],
    images: dict[str, str],
    notebooks: Sequence[NotebookHtml] = (),
    budget: dict[str, Any] | None = None,
) -> str:
    """Render the report once, as given (no budget applied).

    Args:
        evidence: The evidence dict.
        rows: The test rows to show, outputs as they should appear.
        images: Figure name to ``data:`` URI; missing names are left out.
        notebooks: The executed notebooks for the appendix.
        budget: What render_report clipped, for the note above the tests.

    Returns:
        One HTML document that fetches nothing.
    """
    model = evidence.get("model") or {}
    history = evidence.get("history") or {}
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            evidence=evidence,
            model=model,
            model_line=model_line(model),
            verdict_title=_verdict_title(evidence),
            changes=_changes(evidence.get("baseline")),
            counts=[
                (k, v) for k, v in (evidence.get("counts") or {}).items() if v or k != "not_run"
            ],
            failed_gates=[g for g in evidence.get("gates") or [] if not g.get("passed")],
            css=_asset("report.css"),
            script=Markup(_asset("report.js")),
            rows=order_rows(rows),
            outcomes=_outcome_counts(rows),
            failing=FAILING,
            strips=history.get("strips") or {},
            history_rows=_history_rows(history),
            skip_reasons=_skip_reasons(rows),
            categories=evidence.get("categories") or [],
            max_members=MAX_CATEGORY_MEMBERS,
            baseline=evidence.get("baseline"),
            change_labels=CHANGE_LABELS,
            perf=evidence.get("perf"),
            perf_rows=_perf_rows(evidence.get("perf") or {}),
            peers=peer_table(evidence.get("perf") or {}),
            perf_images=PERF_IMAGES,
            images=images,
            notebooks=notebooks,
            budget=budget or {},
            provenance=evidence.get("provenance") or {},
            data_json=_script_json(evidence),
            fmt=format_number,
            ms=to_ms,
            fact=format_fact,
            human_bytes=human_bytes,
            repro=lambda nodeid: repro_command(nodeid, model),
        )
    )


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def _asset(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def _size(html: str) -> int:
    return len(html.encode("utf-8", errors="replace"))


def _without_outputs(row: TestRow) -> TestRow:
    return row.with_outputs(dict.fromkeys(OUTPUT_FIELDS, ""))


def _verdict_title(evidence: dict[str, Any]) -> str:
    counts = evidence.get("counts") or {}
    verdict = str(evidence.get("verdict", "error"))
    failing = int(counts.get("failed", 0)) + int(counts.get("error", 0))
    gates = [g for g in evidence.get("gates") or [] if not g.get("passed")]
    detail = {
        "passed": f"all {counts.get('passed', 0) + counts.get('flaky', 0)} tests passed",
        "failed": f"{failing} failing" if failing else f"{len(gates)} gate(s) failed",
        "error": "a stage could not run",
    }.get(verdict, "")
    return f"{verdict.upper()}: {detail}"


def _changes(baseline: dict[str, Any] | None) -> str:
    if not baseline:
        return "No baseline given: nothing to compare against."
    tests = baseline.get("tests") or {}
    parts = [f"{len(tests.get(key) or [])} {label}" for key, label in CHANGE_LABELS[:3]]
    regressions = [r["metric"] for r in baseline.get("perf") or [] if r.get("regression")]
    parts.append(
        f"perf regressions: {', '.join(regressions)}" if regressions else "no perf regression"
    )
    commit = str(baseline.get("commit") or "unknown")[:12]
    return f"Against the baseline (commit {commit}): " + ", ".join(parts) + "."


def _outcome_counts(rows: Sequence[TestRow]) -> list[tuple[str, int]]:
    counts = Counter(str(r.outcome) for r in rows)
    return [(str(o), counts[str(o)]) for o in Outcome if counts[str(o)]]


def _history_rows(history: dict[str, Any]) -> list[tuple[str, str, int]]:
    """Tests that did not pass in every run, unstable ones first: (nodeid, strip, flips)."""
    flips = {u["nodeid"]: u["flips"] for u in history.get("unstable") or []}
    troubled = [
        (nodeid, strip, flips.get(nodeid, 0))
        for nodeid, strip in (history.get("strips") or {}).items()
        if any(letter in "FEKXN" for letter in strip)
    ]
    troubled.sort(key=lambda item: (-item[2], item[0]))
    return troubled[:MAX_HISTORY_ROWS]


def _skip_reasons(rows: Sequence[TestRow]) -> list[tuple[str, int]]:
    reasons = Counter(
        r.message or "(no reason)" for r in rows if r.outcome in (Outcome.SKIPPED, Outcome.XFAILED)
    )
    return reasons.most_common(MAX_SKIP_REASONS)


def _perf_rows(perf: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    rows = []
    for group in ("decode_tok_s", "ttft_s"):
        spreads = perf.get(f"{group}_spread") or {}
        for key, value in (perf.get(group) or {}).items():
            rows.append((f"{group}.{key}", value, spreads.get(key)))
    ratios = (perf.get("long_session") or {}).get("ratio_last_first") or {}
    rows += [(f"long_session.ratio_last_first.{k}", v, None) for k, v in ratios.items()]
    return rows


def _script_json(evidence: dict[str, Any]) -> Markup:
    """The evidence without its test rows and strips (those are in the table, once)."""
    data = {k: v for k, v in evidence.items() if k not in ("tests", "report_budget")}
    data["tests_count"] = len(evidence.get("tests") or [])
    if isinstance(data.get("history"), dict):
        data["history"] = {k: v for k, v in data["history"].items() if k != "strips"}
    text = json.dumps(data, default=str, separators=(",", ":"))
    # JSON inside <script>: escape '<', '>' and '&' so no test string can close the tag.
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)
