"""The suite stage: pytest in a subprocess, as plain ``python -m pytest PATH`` would run.

pytest starts in the directory the user launched from (``cwd``) with the test path as
given, so it picks the rootdir and loads every conftest.py it would on its own; the stage
records that directory, the rootdir, the command and the commit of the repository that
holds the tests. Counts and rows come from the plugin's record only; junit.xml is an
output (pytest's own, or written from the record after a crash or a timeout). Failed
tests can be re-run in a fresh subprocess; one that passes on a re-run is flaky.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kakeya_evidence.common.files import read_stage, write_stage
from kakeya_evidence.common.params import (
    DEFAULT_MODEL_ID,
    DEFAULT_OUTPUT_DIR,
    DEFAULT_TESTS,
    STAGE_TIMEOUT_S,
    TEST_TIMEOUT_S,
    check_device,
    check_dtype,
    check_number,
)
from kakeya_evidence.common.schema import FAILING, StageStatus, TestRow
from kakeya_evidence.errors import ParameterError, StageError
from kakeya_evidence.stages.junit import write_junit
from kakeya_evidence.stages.pytest_plugin import SHARD_ENV
from kakeya_evidence.stages.pytest_run import MODEL_LOAD_FILE, PytestJob, PytestRun, run_pytest
from kakeya_evidence.stages.results import count_outcomes, mark_rerun
from kakeya_evidence.stages.shard import parse_shard

__all__ = [
    "STAGE",
    "SuiteConfig",
    "SuiteOutcome",
    "resolve_launch",
    "run_inline",
    "run_suite",
    "run_suite_stage",
]

STAGE = "integration_suite"
_GIT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class SuiteConfig:
    """What the suite stage runs and where it writes.

    Relative paths (``tests``, ``cwd``) are taken from the current directory, as a shell
    would: from a notebook that is the notebook's folder.

    Attributes:
        tests: Test path (file or directory, optionally ``::`` node id) handed to pytest.
        output_dir: Where junit.xml, the record and the stage file go.
        model: Model id, passed to the tests as KAKEYA_MODEL.
        device: Device, passed as KAKEYA_DEVICE.
        dtype: Dtype, passed as KAKEYA_DTYPE.
        pytest_args: Extra pytest arguments.
        test_timeout_s: Per-test timeout (pytest-timeout).
        stage_timeout_s: Wall-clock limit for the whole stage, reruns included.
        rerun_failures: How many times to re-run failed tests.
        cwd: Working directory for pytest ("" for the current one).
        workers: pytest-xdist workers (0 runs the suite in one process).
        shard: "K/N" runs the K-th of N deterministic slices ("" runs everything).
    """

    tests: str = field(default=DEFAULT_TESTS, metadata={"help": "test path or node id"})
    output_dir: str = field(default=DEFAULT_OUTPUT_DIR, metadata={"cli": False})
    model: str = field(default=DEFAULT_MODEL_ID, metadata={"help": "model id"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N or mps"})
    dtype: str = field(default="auto", metadata={"help": "auto, float32, bfloat16 or float16"})
    pytest_args: tuple[str, ...] = field(
        default=(), metadata={"help": "extra pytest arguments (a string is split as a shell would)"}
    )
    test_timeout_s: float = field(
        default=TEST_TIMEOUT_S,
        metadata={"help": "per test, seconds", "aliases": ("--test-timeout",)},
    )
    stage_timeout_s: float = field(
        default=STAGE_TIMEOUT_S,
        metadata={"help": "per stage, seconds", "aliases": ("--stage-timeout",)},
    )
    rerun_failures: int = field(default=0, metadata={"help": "re-runs of failed tests (0..10)"})
    cwd: str = field(default="", metadata={"cli": False})
    workers: int = field(
        default=0, metadata={"help": "run the suite on N pytest-xdist workers (0: one process)"}
    )
    shard: str = field(default="", metadata={"help": "run the K-th of N slices of the suite: K/N"})

    def __post_init__(self) -> None:
        if isinstance(self.pytest_args, str):
            try:
                object.__setattr__(self, "pytest_args", tuple(shlex.split(self.pytest_args)))
            except ValueError as exc:
                raise ParameterError(f"pytest_args cannot be parsed: {exc}") from exc
        elif isinstance(self.pytest_args, list):
            object.__setattr__(self, "pytest_args", tuple(self.pytest_args))
        check_device(self.device)
        check_dtype(self.dtype)
        check_number("test_timeout_s", self.test_timeout_s)
        check_number("stage_timeout_s", self.stage_timeout_s)
        if not (isinstance(self.model, str) and self.model.strip()):
            raise ParameterError("model must be a non-empty model id")
        rerun = self.rerun_failures
        if isinstance(rerun, bool) or not isinstance(rerun, int) or not 0 <= rerun <= 10:
            raise ParameterError(f"rerun_failures must be 0..10, got {rerun!r}")
        workers = self.workers
        if isinstance(workers, bool) or not isinstance(workers, int) or not 0 <= workers <= 256:
            raise ParameterError(f"workers must be a whole number 0..256, got {workers!r}")
        try:
            parse_shard(self.shard)
        except ValueError as exc:
            raise ParameterError(str(exc)) from exc

    def preflight(self) -> None:
        """Check what the file system must offer before the suite runs.

        Raises:
            ParameterError: The tests path does not exist, or workers need pytest-xdist.
        """
        if not Path(self.tests.split("::", 1)[0]).exists():
            raise ParameterError(f"tests path {self.tests} does not exist")
        if self.workers and importlib.util.find_spec("xdist") is None:
            raise ParameterError("workers needs pytest-xdist: pip install 'kakeya[evidence]'")


@dataclass(frozen=True)
class SuiteOutcome:
    """The suite stage's result (the stage file is its to_dict())."""

    status: str
    reason: str
    results: list[TestRow]
    counts: dict[str, int]
    pytest_wall_s: float
    duration_s: float
    runs: list[dict[str, Any]] = field(default_factory=list)
    model_load: dict[str, Any] | None = None  # what the suite's model fixture recorded
    cwd: str = ""
    rootdir: str = ""
    command: list[str] = field(default_factory=list)
    tests_commit: str | None = None
    leftover_processes: list[dict[str, Any]] = field(default_factory=list)
    workers: int = 0
    shard: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "duration_s": round(self.duration_s, 3),
            "counts": self.counts,
            "pytest_wall_s": round(self.pytest_wall_s, 3),
            "tests": [r.to_dict() for r in self.results],
            "cwd": self.cwd,
            "rootdir": self.rootdir,
            "command": self.command,
            "tests_commit": self.tests_commit,
            "leftover_processes": self.leftover_processes,
            "workers": self.workers,
            "shard": self.shard,
            "runs": self.runs,
            "model_load": self.model_load,
        }


def resolve_launch(config: SuiteConfig) -> tuple[Path, str]:
    """The directory pytest starts in and the test target as pytest is given it.

    The target is relative to that directory when the tests lie under it (so the
    recorded command is the one a person would type there), else absolute.
    """
    cwd = Path(os.path.abspath(config.cwd or "."))
    path, sep, rest = config.tests.partition("::")
    full = Path(os.path.abspath(path))
    target = os.path.relpath(full, cwd) if full.is_relative_to(cwd) else str(full)
    return cwd, target + sep + rest


def run_suite(config: SuiteConfig) -> SuiteOutcome:
    """Run the suite, re-run failures, write junit.xml and stages/integration_suite.json.

    Args:
        config: The suite configuration.

    Returns:
        The outcome; the stage file is written before this returns, whatever happened.
    """
    started = time.monotonic()
    out = Path(config.output_dir)
    work = out / "pytest"
    cwd, target = resolve_launch(config)
    deadline = started + config.stage_timeout_s
    first = run_pytest(_job(config, cwd, (target,), deadline, first=True), work / "run0")
    _write_junit(first, work / "run0" / "junit.xml", out / "junit.xml")
    results, runs, wall = first.results, [_run_summary(first)], first.wall_s
    leftovers = list(first.leftovers)
    if first.status == StageStatus.OK:
        reruns = _rerun_failures(config, first, work, deadline)
        results, runs, wall = reruns[0], runs + reruns[1], wall + reruns[2]
        leftovers += reruns[3]
    outcome = SuiteOutcome(
        status=first.status,
        reason=first.reason,
        results=results,
        counts=count_outcomes(results),
        pytest_wall_s=wall,
        duration_s=time.monotonic() - started,
        runs=runs,
        model_load=_read_model_load(work / "run0" / MODEL_LOAD_FILE),
        cwd=str(cwd),
        rootdir=first.rootdir,
        command=first.command,
        tests_commit=_tests_commit(config),
        leftover_processes=[p.to_dict() for p in leftovers],
        workers=config.workers,
        shard=config.shard or None,
    )
    write_stage(out, STAGE, outcome.to_dict())
    return outcome


def run_suite_stage(config: SuiteConfig) -> SuiteOutcome:
    """Run the suite for a notebook: like run_suite, but a stage that is not ok raises.

    Test failures are results, not stage failures; a crash, a timeout or no tests is.

    Raises:
        StageError: The stage ended failed, crashed or timeout (after the stage file is written).
    """
    outcome = run_suite(config)
    if outcome.status != StageStatus.OK:
        raise StageError(outcome.reason, stage=STAGE, status=outcome.status)
    return outcome


def run_inline(nodeid: str, config: SuiteConfig) -> int:
    """Re-run one test inside this kernel with ipytest (for an engineer at the keyboard).

    CI never uses this: a crashing test would take the kernel down with it.

    Args:
        nodeid: The test's node id, relative to the rootdir of the last suite run
            (config.cwd when there was none).
        config: Supplies the model, device, dtype, timeout, directories.

    Returns:
        pytest's exit code.
    """
    import ipytest

    os.environ.update(
        KAKEYA_MODEL=config.model, KAKEYA_DEVICE=config.device, KAKEYA_DTYPE=config.dtype
    )
    stage = read_stage(config.output_dir, STAGE) or {}
    root = stage.get("rootdir") or config.cwd or "."
    path, _, rest = nodeid.partition("::")
    target = str(Path(root, path).resolve()) + (f"::{rest}" if rest else "")
    return int(ipytest.run(target, f"--timeout={config.test_timeout_s:g}", defopts=False))


def _job(
    config: SuiteConfig,
    cwd: Path,
    targets: tuple[str, ...],
    deadline: float,
    *,
    first: bool,
    rootdir: str = "",
) -> PytestJob:
    """The first run takes the configured workers and shard; re-runs run serially."""
    args = [f"--timeout={config.test_timeout_s:g}", "-q"]
    env = {"KAKEYA_MODEL": config.model, "KAKEYA_DEVICE": config.device}
    env.update(KAKEYA_DTYPE=config.dtype, HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1"))
    if first and config.workers > 0:
        args += ["-n", str(config.workers)]
    if first and config.shard:
        env[SHARD_ENV] = config.shard
    if rootdir:
        args.append(f"--rootdir={rootdir}")  # re-runs keep the first run's node ids
    return PytestJob(cwd, targets, (*args, *config.pytest_args), env, deadline)


def _rerun_failures(
    config: SuiteConfig, first: PytestRun, work: Path, deadline: float
) -> tuple[list[TestRow], list[dict[str, Any]], float, list[Any]]:
    results = first.results
    reruns: dict[str, list[str]] = {r.nodeid: [] for r in results if r.outcome in FAILING}
    runs: list[dict[str, Any]] = []
    leftovers: list[Any] = []
    wall = 0.0
    cwd = Path(first.cwd)
    for attempt in range(1, config.rerun_failures + 1):
        pending = [n for n, outs in reruns.items() if "passed" not in outs]
        if not pending or time.monotonic() >= deadline:
            break
        targets = tuple(f"{first.rootdir}/{n}" if first.rootdir else n for n in pending)
        job = _job(config, cwd, targets, deadline, first=False, rootdir=first.rootdir)
        run = run_pytest(job, work / f"rerun{attempt}")
        runs.append(_run_summary(run))
        wall += run.wall_s
        leftovers += run.leftovers
        by_id = {r.nodeid: r.outcome for r in run.results}
        for nodeid in pending:
            reruns[nodeid].append(by_id.get(nodeid, "error"))
    merged = [mark_rerun(r, reruns[r.nodeid]) if reruns.get(r.nodeid) else r for r in results]
    return merged, runs, wall, leftovers


def _write_junit(run: PytestRun, pytest_junit: Path, target: Path) -> None:
    """pytest's own junit.xml when it finished writing it, else one from the record."""
    if run.pytest_junit:
        os.replace(pytest_junit, target)
    elif run.results:
        write_junit(run.results, target)
    else:
        target.unlink(missing_ok=True)


def _tests_commit(config: SuiteConfig) -> str | None:
    """HEAD of the git repository holding the tests, or None outside one."""
    path = Path(os.path.abspath(config.tests.partition("::")[0]))
    folder = path if path.is_dir() else path.parent
    try:
        proc = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def _read_model_load(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _run_summary(run: PytestRun) -> dict[str, Any]:
    return {
        "returncode": run.returncode,
        "status": run.status,
        "reason": run.reason,
        "wall_s": round(run.wall_s, 3),
        "collected": len(run.collected),
        "log_tail": run.log_tail,
        "log_bytes": run.log_bytes,
        "stacks": run.stacks,
    }
