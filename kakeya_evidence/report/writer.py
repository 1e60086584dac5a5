"""The results-report stage: evidence.json, summary.md and report.html from the stage files.

Notebook 03 calls write_report; the runner calls it again after the notebook (or
instead of it, when the notebook failed), so the report exists in every case.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from kakeya_evidence.report import plots
from kakeya_evidence.report.baseline import compare
from kakeya_evidence.report.evidence import build_evidence, load_json, write_json
from kakeya_evidence.report.html import render_html
from kakeya_evidence.report.summary import render_summary
from kakeya_evidence.stages import read_stage

__all__ = ["RUNNER_STAGE", "Report", "build_figures", "write_report"]

RUNNER_STAGE = "runner"


@dataclass
class Report:
    """What write_report produced."""

    evidence: dict[str, Any]
    summary: str
    figures: dict[str, Figure] = field(default_factory=dict)
    html_path: Path | None = None
    html_bytes: int = 0


def build_figures(evidence: dict[str, Any]) -> dict[str, Figure]:
    """Make every figure the evidence supports (perf plots only when perf is present)."""
    tests = evidence.get("tests") or []
    figures: dict[str, Figure] = {}
    if tests:
        figures["modules"] = plots.plot_module_outcomes(tests)
        figures["slowest"] = plots.plot_slowest_tests(tests)
    perf = evidence.get("perf")
    if perf:
        figures["turn_latency"] = plots.plot_turn_latency(perf)
        figures["kv_bytes"] = plots.plot_kv_bytes(perf)
        figures["throughput"] = plots.plot_throughput(perf)
    return figures


def write_report(
    output_dir: Path | str,
    *,
    baseline: str = "",
    bench: str = "",
    parameters: dict[str, Any] | None = None,
    stage_overrides: dict[str, dict[str, Any]] | None = None,
    total_wall_s: float | None = None,
) -> Report:
    """Build evidence from DIR/stages and write evidence.json, summary.md and report.html.

    Run alone (Jupyter), it reads what the runner left in stages/runner.json, if anything.

    Args:
        output_dir: The evidence directory.
        baseline: Path to a baseline evidence.json ("" for none).
        bench: Path to a bench.json ("" for DIR/bench.json when it exists).
        parameters: The run's parameters (default: the runner's, if recorded).
        stage_overrides: Per-stage status known to the runner.
        total_wall_s: The run's wall time so far.

    Returns:
        The report: evidence, summary text, figures, and the HTML path and size.

    Raises:
        OSError: The output directory cannot be written.
        ValueError: The baseline or bench file does not hold JSON.
    """
    out = Path(output_dir)
    runner = read_stage(out, RUNNER_STAGE) or {}
    if total_wall_s is None and runner.get("started_at"):
        total_wall_s = time.time() - float(runner["started_at"])
    overrides = dict(stage_overrides if stage_overrides is not None else runner.get("stages") or {})
    # Called from the report notebook, this stage is running now, so it is ok so far.
    overrides.setdefault("results_report", {"status": "ok", "reason": ""})
    evidence = build_evidence(
        out,
        parameters=parameters if parameters is not None else runner.get("parameters"),
        stage_overrides=overrides,
        perf=_load_perf(out, bench),
        total_wall_s=total_wall_s,
    )
    if baseline:
        evidence["baseline"] = compare(evidence, load_json(baseline))
    return _write_files(out, evidence)


def _write_files(out: Path, evidence: dict[str, Any]) -> Report:
    write_json(out / "evidence.json", evidence)
    summary = render_summary(evidence)
    (out / "summary.md").write_text(summary, encoding="utf-8")
    figures = build_figures(evidence)
    images = {name: plots.figure_to_data_uri(fig) for name, fig in figures.items()}
    html = render_html(evidence, images)
    html_path = out / "report.html"
    html_path.write_text(html, encoding="utf-8")
    return Report(evidence, summary, figures, html_path, len(html.encode("utf-8")))


def _load_perf(out: Path, bench: str) -> dict[str, Any] | None:
    path = Path(bench) if bench else out / "bench.json"
    if not path.is_file():
        if bench:
            raise ValueError(f"bench file {bench} does not exist")
        return None
    return load_json(path)
