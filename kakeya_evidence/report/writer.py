"""The results-report stage: evidence.json, summary.md, tests.csv and report.html.

Notebook 03 calls write_report; the runner calls it again after the notebook (or
instead of it, when the notebook failed), so the report exists in every case.

Nothing a test printed can stop the report: strings are made safe where they come
in and files are written with replacement. What can still go wrong (a baseline
that does not parse, a full disk) marks the results_report stage failed, and
evidence.json is written last, so the exit code it holds is the one the run
returns; if evidence.json itself cannot be written, the run returns 2.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from kakeya_evidence.common.files import read_stage
from kakeya_evidence.common.params import check_number
from kakeya_evidence.common.schema import StageStatus, TestRow
from kakeya_evidence.common.text import safe_data, safe_text, write_text_file
from kakeya_evidence.report.appendix import NotebookHtml, NotebookPrerender, render_notebooks
from kakeya_evidence.report.baseline import compare
from kakeya_evidence.report.budget import DEFAULT_MAX_REPORT_MB
from kakeya_evidence.report.categories import categorize
from kakeya_evidence.report.csv import render_csv
from kakeya_evidence.report.evidence import (
    build_evidence,
    load_json,
    read_stages,
    set_verdict,
    suite_rows,
    write_json,
)
from kakeya_evidence.report.figures import draw_images, figure_specs
from kakeya_evidence.report.gates import GateConfig, evaluate_gates
from kakeya_evidence.report.history import build_history, load_history
from kakeya_evidence.report.html import order_rows, render_report
from kakeya_evidence.report.summary import render_summary

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "REPORT_FILES",
    "RUNNER_STAGE",
    "Report",
    "ReportConfig",
    "write_report",
]

RUNNER_STAGE = "runner"
REPORT_STAGE = "results_report"
REPORT_FILES = ("summary.md", "tests.csv", "report.html")
_T = TypeVar("_T")


@dataclass(frozen=True)
class ReportConfig:
    """What the report compares against and how big it may get (built once at the edge).

    Attributes:
        baseline: A baseline evidence.json ("" for none).
        bench: A bench.json ("" for DIR/bench.json when it exists).
        history: A directory of earlier evidence.json files ("" for none).
        max_report_mb: The budget for report.html, in MB (10**6 bytes).
        appendix: Render the executed notebooks into the report's appendix.
        gates: The quality gates.

    Raises:
        ParameterError: max_report_mb is not a finite number > 0.
    """

    baseline: str = field(default="", metadata={"help": "baseline evidence.json to compare with"})
    bench: str = field(default="", metadata={"help": "bench.json (default: DIR/bench.json)"})
    history: str = field(default="", metadata={"help": "directory of earlier evidence.json files"})
    max_report_mb: float = field(
        default=DEFAULT_MAX_REPORT_MB, metadata={"help": "size budget for report.html (MB)"}
    )
    appendix: bool = field(
        default=True, metadata={"help": "render the executed notebooks into the appendix"}
    )
    gates: GateConfig = field(default_factory=GateConfig)

    def __post_init__(self) -> None:
        if isinstance(self.gates, dict):  # from a notebook's parameters: GateConfig's fields
            object.__setattr__(self, "gates", GateConfig(**self.gates))
        check_number("max_report_mb", self.max_report_mb)

    @property
    def max_report_bytes(self) -> int:
        return int(self.max_report_mb * 1_000_000)


@dataclass
class Report:
    """What write_report produced."""

    evidence: dict[str, Any]
    summary: str
    figures: dict[str, Figure] = field(default_factory=dict)  # drawn by this call (not cached)
    html_path: Path | None = None
    html_bytes: int = 0
    images: dict[str, str] = field(default_factory=dict)  # every figure's PNG data URI

    @property
    def exit_code(self) -> int:
        """The exit code evidence.json holds (2 when it could not be written)."""
        return int(self.evidence["exit_code"])


def write_report(
    output_dir: Path | str,
    config: ReportConfig | None = None,
    *,
    parameters: dict[str, Any] | None = None,
    stage_overrides: dict[str, dict[str, Any]] | None = None,
    total_wall_s: float | None = None,
    prerender: NotebookPrerender | None = None,
) -> Report:
    """Build evidence from DIR/stages and write evidence.json, summary.md, tests.csv, report.html.

    Run alone (Jupyter), it reads what the runner left in stages/runner.json, if anything.

    Args:
        output_dir: The evidence directory.
        config: Baseline, bench, history, budget and gates (default: none of them, 10 MB).
        parameters: The run's parameters (default: the runner's, if recorded).
        stage_overrides: Per-stage status known to the runner.
        total_wall_s: The run's wall time so far.
        prerender: Notebooks the runner rendered for the appendix while it ran.

    Returns:
        The report: evidence, summary text, figures, and the HTML path and size.
    """
    config = config or ReportConfig()
    out = Path(output_dir)
    runner = read_stage(out, RUNNER_STAGE) or {}
    if total_wall_s is None and runner.get("started_at"):
        total_wall_s = time.time() - float(runner["started_at"])
    overrides = dict(stage_overrides if stage_overrides is not None else runner.get("stages") or {})
    # Called from the report notebook, this stage is running now, so it is ok so far.
    overrides.setdefault(REPORT_STAGE, {"status": "ok", "reason": ""})
    problems: list[str] = []
    stages = read_stages(out)
    rows = suite_rows(stages["integration_suite"])
    evidence = build_evidence(
        out,
        parameters=parameters if parameters is not None else runner.get("parameters"),
        stage_overrides=overrides,
        perf=_attempt(problems, "bench", lambda: _load_perf(out, config.bench)),
        total_wall_s=total_wall_s,
        stages=stages,
    )
    _add_sections(evidence, rows, config, problems)
    notebooks = _notebooks(out, prerender) if config.appendix else []
    return _write_files(out, evidence, rows, notebooks, config, problems)


def _add_sections(
    evidence: dict[str, Any], rows: list[TestRow], config: ReportConfig, problems: list[str]
) -> None:
    if config.baseline:
        baseline = _attempt(problems, "baseline", lambda: safe_data(load_json(config.baseline)))
        if baseline is not None:
            evidence["baseline"] = compare(evidence, baseline)
    evidence["categories"] = categorize(rows)
    if config.history:
        loaded = _attempt(problems, "history", lambda: load_history(config.history))
        if loaded is not None:
            earlier, skipped = loaded
            evidence["history"] = build_history(earlier, evidence, rows) | {"skipped": skipped}
    evidence["gates"] = evaluate_gates(evidence, config.gates)
    _fail_report_stage(evidence, problems)


def _write_files(
    out: Path,
    evidence: dict[str, Any],
    rows: list[TestRow],
    notebooks: list[NotebookHtml],
    config: ReportConfig,
    problems: list[str],
) -> Report:
    drawn = _attempt(problems, "figures", lambda: draw_images(out, figure_specs(evidence, rows)))
    images, figures = drawn or ({}, {})
    known = len(problems)
    texts = _render(evidence, rows, images, notebooks, config, problems)
    if len(problems) > known:
        # A part could not be rendered: the stage failed, and every file must say so.
        _fail_report_stage(evidence, problems)
        texts = _render(evidence, rows, images, notebooks, config, [])
    if _write_all(out, texts, problems):
        # A file could not be written: the same, for the files that still can be.
        _fail_report_stage(evidence, problems)
        texts = _render(evidence, rows, images, notebooks, config, [])
        _write_all(out, texts, [])
    try:
        write_json(out / "evidence.json", evidence)
    except OSError as exc:
        _fail_report_stage(evidence, [f"evidence.json: {type(exc).__name__}: {exc}"])
        with contextlib.suppress(OSError):  # never leave an older run's verdict behind
            (out / "evidence.json").unlink(missing_ok=True)
    html = texts["report.html"]
    return Report(
        evidence,
        texts["summary.md"],
        figures,
        out / "report.html",
        len(html.encode("utf-8", errors="replace")),
        images,
    )


def _render(
    evidence: dict[str, Any],
    rows: list[TestRow],
    images: dict[str, str],
    notebooks: list[NotebookHtml],
    config: ReportConfig,
    problems: list[str],
) -> dict[str, str]:
    def html() -> str:
        text, budget = render_report(evidence, rows, images, notebooks, config.max_report_bytes)
        evidence["report_budget"] = budget
        return text

    page = _attempt(problems, "report.html", html)
    if page is None:
        page = _fallback_page(evidence, problems)
    summary = _attempt(problems, "summary.md", lambda: render_summary(evidence))
    table = _attempt(problems, "tests.csv", lambda: render_csv(order_rows(rows)))
    return {"summary.md": summary or "", "tests.csv": table or "", "report.html": page}


def _write_all(out: Path, texts: dict[str, str], problems: list[str]) -> list[str]:
    failed = []
    for name in REPORT_FILES:
        try:
            write_text_file(out / name, texts[name])
        except OSError as exc:
            failed.append(name)
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
    return failed


def _fail_report_stage(evidence: dict[str, Any], problems: list[str]) -> None:
    """Mark the results_report stage failed with the problems, and decide the verdict again."""
    if problems:
        for stage in evidence["stages"]:
            if stage["name"] == REPORT_STAGE:
                stage["status"] = str(StageStatus.FAILED)
                stage["reason"] = safe_text("; ".join(dict.fromkeys(problems)))[:2000]
    set_verdict(evidence)


def _attempt(problems: list[str], what: str, action: Callable[[], _T]) -> _T | None:
    """Run one part of the report; a failure becomes a problem line, never a lost report."""
    try:
        return action()
    except Exception as exc:  # any failure of one part must leave the rest of the report
        problems.append(f"{what}: {type(exc).__name__}: {safe_text(str(exc))[:300]}")
        return None


def _notebooks(out: Path, prerender: NotebookPrerender | None) -> list[NotebookHtml]:
    paths = sorted(out.glob("*.ipynb"))
    return prerender.collect(paths) if prerender else render_notebooks(paths)


def _fallback_page(evidence: dict[str, Any], problems: list[str]) -> str:
    from markupsafe import escape

    lines = [f"{evidence.get('verdict')}: exit code {evidence.get('exit_code')}", *problems]
    body = "".join(f"<p>{escape(line)}</p>" for line in lines)
    return f"<!DOCTYPE html><meta charset='utf-8'><title>Kakeya evidence</title>{body}"


def _load_perf(out: Path, bench: str) -> dict[str, Any] | None:
    path = Path(bench) if bench else out / "bench.json"
    if not path.is_file():
        if bench:
            raise ValueError(f"bench file {bench} does not exist")
        return None
    return load_json(path)
