"""The reproduction report: the original evidence and its re-run, side by side.

Outcomes *match* when the verdict is the same and every test (or the one asked for)
ended the same way, on the same model revision; anything else *differs*. Perf figures,
packages, host facts and the determinism facts are shown beside each other; they are
context for a reviewer and never decide the result (perf has its noise band for that).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from kakeya_evidence.report.baseline import compare_perf

__all__ = ["DIFFER", "HOST_KEYS", "MATCH", "compare_runs", "render_markdown"]

MATCH = "outcomes match"
DIFFER = "outcomes differ"
HOST_KEYS = (
    "chip",
    "machine",
    "cpu_cores_logical",
    "os",
    "python",
    "torch",
    "transformers",
    "mps",
    "cuda",
    "memory_total_bytes",
)
_MODEL_KEYS = ("id", "revision", "device", "dtype")
ABSENT = "absent"
_CONTEXT = (
    ("model_differs", "model"),
    ("packages_differ", "packages"),
    ("host_differs", "host facts"),
    ("determinism_differs", "determinism facts"),
)


def compare_runs(then: dict[str, Any], now: dict[str, Any], only_test: str = "") -> dict[str, Any]:
    """The reproduction report's data (without the how-it-ran section).

    Args:
        then: The original evidence.
        now: The re-run's evidence.
        only_test: A node id: compare that test alone.
    """
    outcomes_then, outcomes_now = _outcomes(then), _outcomes(now)
    if only_test:
        names = [n for n in {**outcomes_then, **outcomes_now} if _same_test(n, only_test)]
        verdict_then = _tally(outcomes_then.get(n, ABSENT) for n in names)
        verdict_now = _tally(outcomes_now.get(n, ABSENT) for n in names)
    else:
        names = sorted({*outcomes_then, *outcomes_now})
        verdict_then, verdict_now = str(then.get("verdict")), str(now.get("verdict"))
    tests = [
        {"nodeid": n, "then": outcomes_then.get(n, ABSENT), "now": outcomes_now.get(n, ABSENT)}
        for n in names
        if outcomes_then.get(n, ABSENT) != outcomes_now.get(n, ABSENT)
    ]
    model = _side_by_side(then.get("model"), now.get("model"), _MODEL_KEYS)
    revision_differs = any(row["key"] == "revision" for row in model)
    same = verdict_then == verdict_now and not tests and not revision_differs and bool(names)
    provenance_then, provenance_now = (
        _mapping(then.get("provenance")),
        _mapping(now.get("provenance")),
    )
    return {
        "result": MATCH if same else DIFFER,
        "only_test": only_test,
        "verdict": {"then": verdict_then, "now": verdict_now},
        "tests_compared": len(names),
        "tests_differ": tests,
        "model_differs": model,
        "perf": _perf(then, now),
        "packages_differ": _side_by_side(
            provenance_then.get("packages"), provenance_now.get("packages")
        ),
        "host_differs": _side_by_side(then.get("host"), now.get("host"), HOST_KEYS),
        "determinism_differs": _side_by_side(
            provenance_then.get("determinism"), provenance_now.get("determinism")
        ),
        "commit": provenance_then.get("commit"),
    }


def render_markdown(report: dict[str, Any]) -> str:
    """reproduction.md: the result first, then each difference as a table."""
    verdict = report.get("verdict") or {}
    lines = [
        f"# Reproduction of {report.get('commit')}: {report.get('result')}",
        "",
        f"- verdict then: **{verdict.get('then')}**, now: **{verdict.get('now')}**"
        + (f" (test {report['only_test']})" if report.get("only_test") else ""),
        f"- tests compared: {report.get('tests_compared', 0)}, "
        f"outcome differs: {len(report.get('tests_differ') or [])}",
    ]
    run = report.get("run") or {}
    lines += [f"- {key}: {value}" for key, value in run.items() if value not in (None, "", [])]
    same = [what for key, what in _CONTEXT if not report.get(key)]
    if same:
        lines.append(f"- the same then and now: {', '.join(same)}")
    lines += _table("Tests whose outcome differs", report.get("tests_differ"), "nodeid")
    lines += _table("Model", report.get("model_differs"), "key")
    lines += _perf_table(report.get("perf") or {})
    lines += _table("Packages that differ", report.get("packages_differ"), "key")
    lines += _table("Host facts that differ", report.get("host_differs"), "key")
    lines += _table("Determinism facts that differ", report.get("determinism_differs"), "key")
    return "\n".join(lines) + "\n"


def _outcomes(evidence: dict[str, Any]) -> dict[str, str]:
    tests = evidence.get("tests")
    rows = tests if isinstance(tests, list) else []
    return {
        str(t["nodeid"]): str(t.get("outcome"))
        for t in rows
        if isinstance(t, dict) and t.get("nodeid")
    }


def _tally(outcomes: Iterable[str]) -> str:
    """``2 passed, 1 failed`` (the selected tests' outcomes; "absent" when there are none)."""
    counts = Counter(outcomes)
    return ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or ABSENT


def _same_test(nodeid: str, wanted: str) -> bool:
    """Whether ``nodeid`` is what ``--tests`` asked for: that node, or a file or folder above
    it. A recorded node id is relative to pytest's rootdir; the one asked for may be longer."""
    wanted = wanted.removeprefix("./").rstrip("/")
    for tail in _tails(wanted):
        if nodeid == tail or nodeid.startswith((tail + "::", tail + "/", tail + "[")):
            return True
    return False


def _tails(path: str) -> list[str]:
    """``a/b/c.py::t``, ``b/c.py::t``, ``c.py::t``: the node id seen from each folder above."""
    head, sep, node = path.partition("::")
    parts = head.split("/")
    return ["/".join(parts[i:]) + sep + node for i in range(len(parts)) if parts[i]]


def _side_by_side(then: Any, now: Any, keys: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    before, after = _mapping(then), _mapping(now)
    names = keys or tuple(sorted({*before, *after}))
    return [
        {"key": k, "then": before.get(k), "now": after.get(k)}
        for k in names
        if before.get(k) != after.get(k)
    ]


def _perf(then: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    perf_then, perf_now = _mapping(then.get("perf")), _mapping(now.get("perf"))
    if not perf_then:
        return {"status": "the original run measured no perf figures", "rows": []}
    if not perf_now:
        return {"status": "not re-measured", "rows": []}
    rows = compare_perf(perf_now, perf_then)
    return {"status": "re-measured", "rows": rows}


def _table(title: str, rows: Any, first: str) -> list[str]:
    if not rows:
        return []
    lines = ["", f"## {title}", "", f"| {first} | then | now |", "| --- | --- | --- |"]
    for row in rows:
        lines.append(f"| {_cell(row.get(first))} | {_cell(row['then'])} | {_cell(row['now'])} |")
    return lines


def _perf_table(perf: dict[str, Any]) -> list[str]:
    lines = ["", "## Performance", "", f"{perf.get('status', '')}."]
    rows = perf.get("rows") or []
    if rows:
        lines += ["", "| metric | then | now | delta | noise band | beyond noise |"]
        lines.append("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        beyond = "regression" if row["regression"] else "improvement" if row["improvement"] else ""
        lines.append(
            f"| {row['metric']} | {row['baseline']:.4g} | {row['current']:.4g} | "
            f"{row['delta']:+.4g} | ±{row['noise']:.4g} | {beyond} |"
        )
    return lines


def _cell(value: Any) -> str:
    text = "not set" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")[:200]


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
