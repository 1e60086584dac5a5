"""The evidence runner: four notebooks in order, then the report, whatever happened.

``run_pipeline`` reads like the pipeline: check the output directory, validate
parameters, register the kernel, run host check, cache prewarm and the suite,
run the report notebook, then render the report once more from the library so
it exists even when the notebook failed. Every partial artifact stays in DIR.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import shlex
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kakeya_evidence.errors import EvidenceError, OutputDirError, ParameterError
from kakeya_evidence.interrupt import Interrupted, InterruptGuard, interrupted_stages
from kakeya_evidence.kernel import KernelQueue, NotebookRun, ensure_kernel, execute_notebook
from kakeya_evidence.progress import Progress
from kakeya_evidence.report import RUNNER_STAGE, ReportConfig, write_report
from kakeya_evidence.report.appendix import NotebookPrerender
from kakeya_evidence.report.gates import GateConfig
from kakeya_evidence.stages import STAGES, read_stage, write_stage
from kakeya_evidence.stages.commit import bench_commit_problem
from kakeya_evidence.stages.shard import parse_shard

__all__ = ["DEVICES", "DTYPES", "NOTEBOOKS", "RunConfig", "check_output_dir", "run_pipeline"]

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")
NOTEBOOKS = {
    "host_check": "00_host_check.ipynb",
    "cache_prewarm": "01_cache_prewarm.ipynb",
    "integration_suite": "02_integration_suite.ipynb",
    "results_report": "03_results_report.ipynb",
}
DEFAULT_NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
_SUITE_MARGIN_S = 120.0


@dataclass(frozen=True)
class RunConfig:
    """Parameters of one evidence run (built once at the CLI edge)."""

    model: str = "kakeya/tiny-qwen3"
    device: str = "auto"
    dtype: str = "auto"
    output: str = "evidence"
    tests: str = "tests/integration"
    pytest_args: str = ""
    test_timeout_s: float = 300.0
    stage_timeout_s: float = 3600.0
    baseline: str = ""
    bench: str = ""
    rerun_failures: int = 0
    prewarm: bool = True
    measure_load: bool = False  # the suite reports the load it does anyway
    notebooks_dir: str = ""
    workers: int = 0  # pytest-xdist workers for the suite (0: one process)
    shard: str = ""  # "K/N": run the K-th of N slices of the suite
    quiet: bool = False  # no progress lines
    # the report: history, size budget and quality gates (see report_config)
    history: str = ""
    max_report_mb: float = 10.0
    max_suite_s: float | None = None
    gate_new_failures: bool = True
    gate_perf: bool = True
    perf_noise_cap_pct: float = 50.0


def check_output_dir(output: str) -> Path:
    """Create the output directory and prove it is writable.

    Raises:
        OutputDirError: It cannot be created or written.
    """
    path = Path(output).resolve()
    probe = path / ".write-probe"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        raise OutputDirError(f"output directory {path} is not writable: {exc}") from exc
    return path


def validate_config(config: RunConfig) -> None:
    """Check every parameter, naming the field and the bound.

    Raises:
        ParameterError: A parameter is invalid.
    """
    _check_choice("device", config.device, DEVICES)
    _check_choice("dtype", config.dtype, DTYPES)
    for name in ("test_timeout_s", "stage_timeout_s"):
        value = getattr(config, name)
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ParameterError(f"{name} must be a number > 0 seconds, got {value!r}")
    if not 0 <= config.rerun_failures <= 10:
        raise ParameterError(f"rerun_failures must be 0..10, got {config.rerun_failures}")
    if not config.model.strip():
        raise ParameterError("model must be a non-empty model id")
    if not Path(config.tests.split("::", 1)[0]).exists():
        raise ParameterError(f"tests path {config.tests} does not exist")
    for name in ("baseline", "bench"):
        value = getattr(config, name)
        if value and not Path(value).is_file():
            raise ParameterError(f"{name} file {value} does not exist")
    _check_bench_commit(config)
    if config.history and not Path(config.history).is_dir():
        raise ParameterError(f"history directory {config.history} does not exist")
    report_config(config)
    try:
        shlex.split(config.pytest_args)
    except ValueError as exc:
        raise ParameterError(f"pytest_args cannot be parsed: {exc}") from exc
    check_suite_options(config.workers, config.shard)


def _check_bench_commit(config: RunConfig) -> None:
    """A bench.json measured at another commit is refused, never reused (see stages/commit)."""
    path = Path(config.bench) if config.bench else Path(config.output) / "bench.json"
    problem = bench_commit_problem(path) if path.is_file() else None
    if problem:
        raise ParameterError(problem)


def check_suite_options(workers: int, shard: str) -> None:
    """Check the suite's --workers and --shard.

    Raises:
        ParameterError: workers is not 0..256, needs pytest-xdist that is missing, or shard
            is not K/N with 1 <= K <= N.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or not 0 <= workers <= 256:
        raise ParameterError(f"workers must be a whole number 0..256, got {workers!r}")
    if workers and importlib.util.find_spec("xdist") is None:
        raise ParameterError("workers needs pytest-xdist: pip install 'kakeya[evidence]'")
    try:
        parse_shard(shard)
    except ValueError as exc:
        raise ParameterError(str(exc)) from exc


def report_config(config: RunConfig) -> ReportConfig:
    """The report's part of the run's parameters.

    Raises:
        ParameterError: A report or gate parameter is out of its bounds.
    """
    gates = GateConfig(
        new_failures=config.gate_new_failures,
        perf=config.gate_perf,
        perf_noise_cap_pct=config.perf_noise_cap_pct,
        max_suite_s=config.max_suite_s,
    )
    return ReportConfig(
        baseline=config.baseline,
        bench=config.bench,
        history=config.history,
        max_report_mb=config.max_report_mb,
        gates=gates,
    )


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
    state: dict[str, Any] = {"parameters": asdict(config), "started_at": started, "stages": {}}
    try:
        validate_config(config)
        kernels = KernelQueue(ensure_kernel(), _notebooks_dir(config))
    except (EvidenceError, OSError) as exc:
        return _abort(out, state, exc)
    _clear_stage_files(out)
    _save_state(out, state)
    progress = Progress(enabled=not config.quiet)
    appendix = NotebookPrerender()  # renders each executed notebook while the next stage runs
    with InterruptGuard(state["stages"], STAGES) as guard:  # Ctrl-C, SIGTERM: see interrupt.py
        try:
            kernels.start(out / NOTEBOOKS[STAGES[0]])
            for index, name in enumerate(STAGES[:3], 1):
                kernels.start(out / NOTEBOOKS[STAGES[index]])  # boots while this stage runs
                with _stage_progress(progress, name, index, state):
                    state["stages"][name] = _run_stage(name, config, out, kernels, state, progress)
                _save_state(out, state)
                appendix.submit(out / NOTEBOOKS[name])
                guard.check()
            with _stage_progress(progress, "results_report", len(STAGES), state):
                state["stages"]["results_report"] = _run_report_notebook(config, out, kernels)
            appendix.submit(out / NOTEBOOKS["results_report"])
            return _finish(out, state, config, appendix)
        except Interrupted:
            return _finish_interrupted(out, state, config, appendix, guard)
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
    if name != "host_check" and host and host["status"] != "ok":
        # The host cannot give meaningful evidence (e.g. --device mps without MPS): stop here.
        return {"status": "skipped", "duration_s": 0.0, "reason": "host_check did not pass"}
    cache = state["stages"].get("cache_prewarm")
    if name == "integration_suite" and cache and cache["status"] != "ok":
        return {"status": "skipped", "duration_s": 0.0, "reason": "cache_prewarm did not pass"}
    timeout = config.stage_timeout_s + (_SUITE_MARGIN_S if name == "integration_suite" else 0)
    suite = name == "integration_suite"
    with progress.suite(out / "pytest") if suite else contextlib.nullcontext():
        run = _notebook(name, config, out, kernels, timeout)
    return _stage_status(name, out, run)


def _run_report_notebook(config: RunConfig, out: Path, kernels: KernelQueue) -> dict[str, Any]:
    run = _notebook("results_report", config, out, kernels, config.stage_timeout_s)
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
    common = {"output_dir": str(out)}
    if name == "host_check":
        # An explicit accelerator must really be there; auto and cpu need none.
        required = config.device if config.device in ("mps", "cuda") else ""
        return {**common, "require_device": required}
    if name == "cache_prewarm":
        return {
            **common,
            "model": config.model,
            "prewarm": config.prewarm,
            "measure_load": config.measure_load,
            "timeout_s": config.stage_timeout_s,
        }
    if name == "integration_suite":
        return {
            **common,
            "model": config.model,
            "device": config.device,
            "dtype": config.dtype,
            "tests": _as_given(config.tests),
            "pytest_args": config.pytest_args,
            "test_timeout_s": config.test_timeout_s,
            "stage_timeout_s": config.stage_timeout_s,
            "rerun_failures": config.rerun_failures,
            "cwd": os.getcwd(),
            "workers": config.workers,
            "shard": config.shard,
        }
    return {
        **common,
        "baseline": _absolute(config.baseline),
        "bench": _absolute(config.bench),
        "history": _absolute(config.history),
        "max_report_mb": config.max_report_mb,
        "max_suite_s": config.max_suite_s,
        "gate_new_failures": config.gate_new_failures,
        "gate_perf": config.gate_perf,
        "perf_noise_cap_pct": config.perf_noise_cap_pct,
        "appendix": False,  # the runner renders the report once more, appendix included
    }


def _stage_status(name: str, out: Path, run: NotebookRun) -> dict[str, Any]:
    data = read_stage(out, name) or {}
    status, reason = run.status, run.reason
    if data.get("status") and data["status"] != "ok":
        status, reason = data["status"], data.get("reason") or reason
    elif run.status == "ok" and not data:
        status, reason = "failed", "the notebook wrote no stage file"
    return {"status": status, "duration_s": round(run.duration_s, 3), "reason": reason}


def _finish(
    out: Path, state: dict[str, Any], config: RunConfig, appendix: NotebookPrerender
) -> int:
    """Write the report; return the exit code evidence.json holds (2 when there is none)."""
    total = time.time() - state["started_at"]
    try:
        report = write_report(
            out,
            report_config(config),
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


def _finish_interrupted(
    out: Path,
    state: dict[str, Any],
    config: RunConfig,
    appendix: NotebookPrerender,
    guard: InterruptGuard,
) -> int:
    """The report of an interrupted run; the exit code is the signal's (130, 143)."""
    state["stages"] = interrupted_stages(state["stages"], guard, STAGES)
    _save_state(out, state)
    _finish(out, state, config, appendix)
    return guard.exit_code


def _abort(out: Path, state: dict[str, Any], exc: BaseException) -> int:
    reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
    print(f"kakeya-evidence: error: {reason}", file=sys.stderr)
    state["stages"] = {
        name: {"status": "skipped", "duration_s": 0.0, "reason": f"not run: {reason}"}
        for name in STAGES
    }
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


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ParameterError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _as_given(tests: str) -> str:
    """The tests path made absolute without resolving symlinks (pytest must see the
    folder the user named, with the ini and conftest.py above it)."""
    path, sep, rest = tests.partition("::")
    return os.path.abspath(path) + sep + rest


def _absolute(path: str) -> str:
    return str(Path(path).resolve()) if path else ""
