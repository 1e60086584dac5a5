"""The evidence runner: four notebooks in order, then the report, whatever happened.

``run_pipeline`` reads like the pipeline: check the output directory, validate
parameters, register the kernel, run host check, cache prewarm and the suite,
run the report notebook, then render the report once more from the library so
it exists even when the notebook failed. Every partial artifact stays in DIR.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from kakeya_evidence.common.files import STAGES, check_output_dir, read_stage, write_stage
from kakeya_evidence.common.schema import StageStatus
from kakeya_evidence.config import (
    NOTEBOOK_PIECES,
    RunConfig,
    flat_parameters,
    notebook_piece,
    run_config,
)
from kakeya_evidence.errors import EvidenceError, ParameterError
from kakeya_evidence.kernel import KernelQueue, NotebookRun, ensure_kernel, execute_notebook
from kakeya_evidence.progress import Progress
from kakeya_evidence.report import RUNNER_STAGE, write_report
from kakeya_evidence.report.appendix import NotebookPrerender

__all__ = [
    "NOTEBOOKS",
    "RunConfig",
    "check_output_dir",
    "run_pipeline",
    "run_with",
    "validate_config",
]

NOTEBOOKS = {
    "host_check": "00_host_check.ipynb",
    "cache_prewarm": "01_cache_prewarm.ipynb",
    "integration_suite": "02_integration_suite.ipynb",
    "results_report": "03_results_report.ipynb",
}
DEFAULT_NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
_SUITE_MARGIN_S = 120.0
_ACCELERATORS = ("mps", "cuda")


def validate_config(config: RunConfig) -> None:
    """Check what the file system must offer (each piece checked its bounds when built).

    Raises:
        ParameterError: A path does not exist, or workers need pytest-xdist.
    """
    config.suite.preflight()
    for name in ("baseline", "bench"):
        value = getattr(config.report, name)
        if value and not Path(value).is_file():
            raise ParameterError(f"{name} file {value} does not exist")
    if config.report.history and not Path(config.report.history).is_dir():
        raise ParameterError(f"history directory {config.report.history} does not exist")


def run_with(**values: Any) -> int:
    """Run the pipeline from flat parameters named as the flags; a bad one gives exit 2.

    Invalid parameters are reported like a stage that could not run: the report is
    written into the output directory, naming the field and its bound.

    Raises:
        OutputDirError: The output directory is not writable (nothing else was done).
    """
    try:
        config = run_config(values)
    except ParameterError as exc:
        out = check_output_dir(values.get("output") or RunConfig.output)
        state = {"parameters": _json_safe(values), "started_at": time.time(), "stages": {}}
        return _abort(out, state, exc)
    return run_pipeline(config)


def run_pipeline(config: RunConfig) -> int:
    """Run every stage and write the report; return the exit code (0, 1 or 2).

    Args:
        config: The run's parameters.

    Returns:
        0 all tests passed, 1 tests failed, 2 a stage could not run.

    Raises:
        OutputDirError: The output directory is not writable (nothing else was done).
    """
    started = time.time()
    out = check_output_dir(config.output)
    parameters = flat_parameters(config)
    state: dict[str, Any] = {"parameters": parameters, "started_at": started, "stages": {}}
    try:
        validate_config(config)
        kernels = KernelQueue(ensure_kernel(), _notebooks_dir(config))
    except (EvidenceError, OSError) as exc:
        return _abort(out, state, exc)
    _clear_stage_files(out)
    _save_state(out, state)
    progress = Progress(enabled=not config.quiet)
    appendix = NotebookPrerender()  # renders each executed notebook while the next stage runs
    try:
        kernels.start(out / NOTEBOOKS[STAGES[0]])
        for index, name in enumerate(STAGES[:3], 1):
            kernels.start(out / NOTEBOOKS[STAGES[index]])  # boots while this stage runs
            with _stage_progress(progress, name, index, state):
                state["stages"][name] = _run_stage(name, config, out, kernels, state, progress)
            _save_state(out, state)
            appendix.submit(out / NOTEBOOKS[name])
        with _stage_progress(progress, "results_report", len(STAGES), state):
            state["stages"]["results_report"] = _run_report_notebook(config, out, kernels)
        appendix.submit(out / NOTEBOOKS["results_report"])
        return _finish(out, state, config, appendix)
    finally:
        kernels.close()
        appendix.close()


@contextlib.contextmanager
def _stage_progress(
    progress: Progress, name: str, index: int, state: dict[str, Any]
) -> Iterator[None]:
    progress.stage_started(name, index, len(STAGES))
    yield
    row = state["stages"].get(name) or {}
    status, reason = row.get("status", "?"), row.get("reason", "")
    progress.stage_finished(name, index, len(STAGES), status, row.get("duration_s") or 0.0, reason)


def _run_stage(
    name: str,
    config: RunConfig,
    out: Path,
    kernels: KernelQueue,
    state: dict[str, Any],
    progress: Progress,
) -> dict[str, Any]:
    host = state["stages"].get("host_check")
    if name != "host_check" and host and host["status"] != StageStatus.OK:
        # The host cannot give meaningful evidence (e.g. --device mps without MPS): stop here.
        return _skipped("host_check did not pass")
    cache = state["stages"].get("cache_prewarm")
    if name == "integration_suite" and cache and cache["status"] != StageStatus.OK:
        return _skipped("cache_prewarm did not pass")
    timeout = config.suite.stage_timeout_s + (_SUITE_MARGIN_S if name == "integration_suite" else 0)
    suite = name == "integration_suite"
    with progress.suite(out / "pytest") if suite else contextlib.nullcontext():
        run = _notebook(name, config, out, kernels, timeout)
    return _stage_status(name, out, run)


def _run_report_notebook(config: RunConfig, out: Path, kernels: KernelQueue) -> dict[str, Any]:
    run = _notebook("results_report", config, out, kernels, config.suite.stage_timeout_s)
    return {"status": run.status, "duration_s": round(run.duration_s, 3), "reason": run.reason}


def _notebook(
    name: str, config: RunConfig, out: Path, kernels: KernelQueue, timeout_s: float
) -> NotebookRun:
    target = out / NOTEBOOKS[name]
    return execute_notebook(
        _notebooks_dir(config) / NOTEBOOKS[name],
        target,
        _parameters(name, config, out),
        kernel_name=kernels.kernel_name,
        timeout_s=timeout_s,
        cwd=kernels.cwd,
        started=kernels.take(target),
    )


def _notebooks_dir(config: RunConfig) -> Path:
    return Path(config.notebooks_dir) if config.notebooks_dir else DEFAULT_NOTEBOOKS_DIR


def _parameters(name: str, config: RunConfig, out: Path) -> dict[str, Any]:
    """What the runner hands a notebook: the output directory and its stage's piece."""
    common: dict[str, Any] = {"output_dir": str(out)}
    piece = NOTEBOOK_PIECES[name]
    if name == "host_check" and not config.host.require_device:
        # An explicit accelerator must really be there; auto and cpu need none.
        kind = config.suite.device.split(":", 1)[0].strip().lower()
        host = replace(config.host, require_device=kind if kind in _ACCELERATORS else "")
        config = replace(config, host=host)
    if name == "integration_suite":
        tests, sep, rest = config.suite.tests.partition("::")
        common.update(tests=str(Path(tests).resolve()) + sep + rest, cwd=os.getcwd())
    if name == "results_report":
        report = config.report
        # the runner renders the report once more, appendix included
        absolute = replace(
            report,
            baseline=_absolute(report.baseline),
            bench=_absolute(report.bench),
            history=_absolute(report.history),
            appendix=False,
        )
        config = replace(config, report=absolute)
    return {**common, piece: notebook_piece(config, name)}


def _stage_status(name: str, out: Path, run: NotebookRun) -> dict[str, Any]:
    data = read_stage(out, name) or {}
    status, reason = run.status, run.reason
    if data.get("status") and data["status"] != StageStatus.OK:
        status, reason = data["status"], data.get("reason") or reason
    elif run.status == StageStatus.OK and not data:
        status, reason = str(StageStatus.FAILED), "the notebook wrote no stage file"
    return {"status": status, "duration_s": round(run.duration_s, 3), "reason": reason}


def _finish(
    out: Path, state: dict[str, Any], config: RunConfig, appendix: NotebookPrerender
) -> int:
    """Write the report; return the exit code evidence.json holds (2 when there is none)."""
    total = time.time() - state["started_at"]
    try:
        report = write_report(
            out,
            config.report,
            parameters=state["parameters"],
            stage_overrides=state["stages"],
            total_wall_s=total,
            prerender=appendix,
        )
    except Exception as exc:  # the report writer failing must not make the exit code lie
        print(f"kakeya-evidence: error: report not written: {exc!r}", file=sys.stderr)
        (out / "evidence.json").unlink(missing_ok=True)
        return 2
    return report.exit_code


def _abort(out: Path, state: dict[str, Any], exc: BaseException) -> int:
    reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
    print(f"kakeya-evidence: error: {reason}", file=sys.stderr)
    state["stages"] = {name: _skipped(f"not run: {reason}") for name in STAGES}
    _clear_stage_files(out)
    _save_state(out, state)
    total = time.time() - state["started_at"]
    write_report(
        out, parameters=state["parameters"], stage_overrides=state["stages"], total_wall_s=total
    )
    return 2


def _save_state(out: Path, state: dict[str, Any]) -> None:
    write_stage(out, RUNNER_STAGE, state)


def _clear_stage_files(out: Path) -> None:
    # Stage files (and executed notebooks, shown in the report's appendix) from an earlier
    # run in the same DIR must not leak into this run's report.
    for name in STAGES:
        (out / "stages" / f"{name}.json").unlink(missing_ok=True)
        (out / NOTEBOOKS[name]).unlink(missing_ok=True)


def _skipped(reason: str) -> dict[str, Any]:
    return {"status": str(StageStatus.SKIPPED), "duration_s": 0.0, "reason": reason}


def _json_safe(values: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v if isinstance(v, str | int | float | bool | None) else repr(v)
        for k, v in values.items()
    }


def _absolute(path: str) -> str:
    return str(Path(path).resolve()) if path else ""
