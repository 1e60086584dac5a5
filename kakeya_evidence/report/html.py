"""Render the self-contained HTML report (Jinja2 with autoescape; CSS and images inline)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

__all__ = ["render_html", "repro_command"]

TEMPLATES = Path(__file__).parent / "templates"
CHANGE_LABELS = (
    ("new_failures", "new failures"),
    ("fixed", "fixed"),
    ("still_failing", "still failing"),
    ("flaky", "flaky"),
    ("added", "added"),
    ("removed", "removed"),
)
_REPRO_ENV = (("KAKEYA_MODEL", "id"), ("KAKEYA_DEVICE", "device"), ("KAKEYA_DTYPE", "dtype"))
PERF_IMAGES = (
    ("turn_latency", "per-turn latency"),
    ("kv_bytes", "KV bytes over turns"),
    ("throughput", "decode tokens per second"),
)


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


def render_html(evidence: dict[str, Any], images: dict[str, str]) -> str:
    """Render the report.

    Args:
        evidence: The evidence dict.
        images: Figure name to ``data:`` URI (modules, slowest, turn_latency, kv_bytes,
            throughput); missing names are left out.

    Returns:
        One HTML document that fetches nothing.
    """
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.ChainableUndefined,
    )
    tests = evidence.get("tests") or []
    model = evidence.get("model") or {}
    return env.get_template("report.html.j2").render(
        evidence=evidence,
        model=model,
        verdict_title=_verdict_title(evidence),
        css=(TEMPLATES / "report.css").read_text(encoding="utf-8"),
        failures=[t for t in tests if t.get("outcome") in ("failed", "error")],
        skips=[t for t in tests if t.get("outcome") in ("skipped", "xfailed")],
        slowest=sorted(tests, key=lambda t: t.get("duration_s") or 0.0, reverse=True)[:15],
        baseline=evidence.get("baseline"),
        change_labels=CHANGE_LABELS,
        perf=evidence.get("perf"),
        perf_rows=_perf_rows(evidence.get("perf") or {}),
        perf_images=PERF_IMAGES,
        images=images,
        provenance=evidence.get("provenance") or {},
        data_json=_script_json(evidence),
        fmt=_fmt,
        repro=lambda nodeid: repro_command(nodeid, model),
    )


def _verdict_title(evidence: dict[str, Any]) -> str:
    counts = evidence.get("counts") or {}
    verdict = str(evidence.get("verdict", "error"))
    failing = int(counts.get("failed", 0)) + int(counts.get("error", 0))
    detail = {
        "passed": f"all {counts.get('passed', 0) + counts.get('flaky', 0)} tests passed",
        "failed": f"{failing} failing",
        "error": "a stage could not run",
    }.get(verdict, "")
    return f"{verdict.upper()}: {detail}"


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
    # JSON inside <script>: escape '<', '>' and '&' so no test string can close the tag.
    text = json.dumps(evidence, default=str, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def _fmt(value: Any, digits: int = 2) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, int | float):
        return f"{value:.{digits}f}"
    return str(value)
