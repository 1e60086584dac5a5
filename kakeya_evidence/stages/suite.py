"""Run pytest in a subprocess under a wall-clock watchdog and collect its results.

The subprocess writes JUnit XML and the plugin's JSONL record. A crash (signal,
``os._exit``) is recognised by a record that never reached the end of the
session; the last started test is named. A hang past the stage timeout gets a
stack dump (SIGUSR1 to the plugin's faulthandler) before the process group is
killed. Failed tests can be re-run in a fresh subprocess; one that passes on a
re-run is flaky.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kakeya_evidence.errors import StageError
from kakeya_evidence.stages import pytest_plugin
from kakeya_evidence.stages.files import write_stage
from kakeya_evidence.stages.redact import redact_files, secret_values
from kakeya_evidence.stages.results import (
    FAILING,
    TestResult,
    count_outcomes,
    mark_rerun,
    merge_results,
    nodeid_tail,
    parse_junit,
    parse_record,
)

__all__ = [
    "PytestRun",
    "SuiteConfig",
    "SuiteOutcome",
    "run_inline",
    "run_pytest",
    "run_suite",
    "run_suite_stage",
]

# The suite's model fixture writes how long its load took here (tests/runtime_fixtures.py):
# the cache facts report that load instead of timing a second one.
MODEL_LOAD_ENV = "KAKEYA_MODEL_LOAD_FILE"
MODEL_LOAD_FILE = "model_load.json"
STAGE = "integration_suite"
_STACK_WAIT_S = 3.0
_LOG_TAIL = 4000


@dataclass(frozen=True)
class SuiteConfig:
    """What the suite stage runs and where it writes.

    Attributes:
        tests: Test path (file or directory) handed to pytest.
        output_dir: Where junit.xml, the record and the stage file go.
        model: Model id, passed to the tests as KAKEYA_MODEL.
        device: Device, passed as KAKEYA_DEVICE.
        dtype: Dtype, passed as KAKEYA_DTYPE.
        pytest_args: Extra pytest arguments.
        test_timeout_s: Per-test timeout (pytest-timeout).
        stage_timeout_s: Wall-clock limit for the whole stage, reruns included.
        rerun_failures: How many times to re-run failed tests.
        cwd: Working directory for pytest ("" for the current one).
    """

    tests: str = "tests/integration"
    output_dir: str = "evidence"
    model: str = "kakeya/tiny-qwen3"
    device: str = "auto"
    dtype: str = "auto"
    pytest_args: tuple[str, ...] = ()
    test_timeout_s: float = 300.0
    stage_timeout_s: float = 3600.0
    rerun_failures: int = 0
    cwd: str = ""

    @classmethod
    def from_parameters(cls, values: dict[str, Any]) -> SuiteConfig:
        """Build a config from a notebook's parameters (unknown names are ignored).

        ``pytest_args`` may be one string; it is split like a shell would.
        """
        known = {name: values[name] for name in cls.__dataclass_fields__ if name in values}
        if isinstance(known.get("pytest_args"), str):
            known["pytest_args"] = tuple(shlex.split(known["pytest_args"]))
        return cls(**known)


@dataclass(frozen=True)
class PytestRun:
    """One pytest subprocess: its exit, its results and why it ended."""

    returncode: int | None
    results: list[TestResult]
    collected: list[str]
    status: str
    reason: str
    wall_s: float
    log_tail: str = ""
    stacks: str = ""
    rootdir: str = ""


@dataclass(frozen=True)
class SuiteOutcome:
    """The suite stage's result."""

    status: str
    reason: str
    results: list[TestResult]
    counts: dict[str, int]
    pytest_wall_s: float
    duration_s: float
    runs: list[dict[str, Any]] = field(default_factory=list)
    model_load: dict[str, Any] | None = None  # what the suite's model fixture recorded

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "duration_s": round(self.duration_s, 3),
            "counts": self.counts,
            "pytest_wall_s": round(self.pytest_wall_s, 3),
            "tests": [r.to_dict() for r in self.results],
            "runs": self.runs,
            "model_load": self.model_load,
        }


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
    work.mkdir(parents=True, exist_ok=True)
    deadline = started + config.stage_timeout_s
    first = run_pytest(config, [config.tests], work / "run0", deadline)
    _copy_junit(work / "run0" / "junit.xml", out / "junit.xml")
    results, runs, wall = first.results, [_run_summary(first)], first.wall_s
    if first.status == "ok":
        root = first.rootdir
        results, more, more_wall = _rerun_failures(config, results, work, deadline, root)
        runs, wall = runs + more, wall + more_wall
    outcome = SuiteOutcome(
        status=first.status,
        reason=first.reason,
        results=results,
        counts=count_outcomes(results),
        pytest_wall_s=wall,
        duration_s=time.monotonic() - started,
        runs=runs,
        model_load=_read_model_load(work / "run0" / MODEL_LOAD_FILE),
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
    if outcome.status != "ok":
        raise StageError(outcome.reason, stage=STAGE, status=outcome.status)
    return outcome


def run_inline(nodeid: str, config: SuiteConfig) -> int:
    """Re-run one test inside this kernel with ipytest (for an engineer at the keyboard).

    CI never uses this: a crashing test would take the kernel down with it.

    Args:
        nodeid: The test's node id, relative to config.cwd.
        config: Supplies the model, device, dtype, timeout and working directory.

    Returns:
        pytest's exit code.
    """
    import ipytest

    os.environ.update(
        KAKEYA_MODEL=config.model, KAKEYA_DEVICE=config.device, KAKEYA_DTYPE=config.dtype
    )
    path, _, rest = nodeid.partition("::")
    target = str(Path(config.cwd or ".", path).resolve()) + (f"::{rest}" if rest else "")
    return int(ipytest.run(target, f"--timeout={config.test_timeout_s:g}", defopts=False))


def _rerun_failures(
    config: SuiteConfig, results: list[TestResult], work: Path, deadline: float, rootdir: str
) -> tuple[list[TestResult], list[dict[str, Any]], float]:
    reruns: dict[str, list[str]] = {r.nodeid: [] for r in results if r.outcome in FAILING}
    runs: list[dict[str, Any]] = []
    wall = 0.0
    for attempt in range(1, config.rerun_failures + 1):
        pending = [n for n, outs in reruns.items() if "passed" not in outs]
        if not pending or time.monotonic() >= deadline:
            break
        targets = [str(Path(rootdir, n)) if rootdir else n for n in pending]
        run = run_pytest(config, targets, work / f"rerun{attempt}", deadline)
        runs.append(_run_summary(run))
        wall += run.wall_s
        by_tail = {nodeid_tail(r.nodeid): r.outcome for r in run.results}
        for nodeid in pending:
            reruns[nodeid].append(by_tail.get(nodeid_tail(nodeid), "error"))
    merged = [mark_rerun(r, reruns[r.nodeid]) if reruns.get(r.nodeid) else r for r in results]
    return merged, runs, wall


def run_pytest(config: SuiteConfig, targets: list[str], work: Path, deadline: float) -> PytestRun:
    """Run one pytest subprocess on targets and read back what it recorded.

    Args:
        config: The suite configuration (env, timeouts, extra args).
        targets: Paths or node ids.
        work: A directory for this run's record, JUnit and log.
        deadline: time.monotonic() value after which the process is killed.

    Returns:
        The run, with status ok, failed, crashed or timeout.
    """
    work.mkdir(parents=True, exist_ok=True)
    record, junit, log, stacks = (work / n for n in ("record.jsonl", "junit.xml", "log", "stacks"))
    for path in (record, junit, stacks):
        path.unlink(missing_ok=True)
    started = time.monotonic()
    with log.open("wb") as log_file:
        try:
            proc = subprocess.Popen(
                _command(config, targets, junit),
                cwd=config.cwd or None,
                env=_environment(config, record, stacks),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            return PytestRun(None, [], [], "failed", f"could not start pytest: {exc}", 0.0)
        returncode, timed_out = _wait(proc, deadline, stacks)
    wall = time.monotonic() - started
    redact_files((record, junit, log, stacks), secret_values())
    return _read_run(returncode, timed_out, wall, record, junit, log, stacks)


def _command(config: SuiteConfig, targets: list[str], junit: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        *targets,
        "-p",
        pytest_plugin.__name__,
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        f"--rootdir={_rootdir(config)}",
        f"--timeout={config.test_timeout_s:g}",
        "-q",
        *config.pytest_args,
    ]


def _read_model_load(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _rootdir(config: SuiteConfig) -> Path:
    """Node ids are relative to this: the working directory when the tests live under it
    (so a repro command runs from there), else the tests' own directory. Left to pytest,
    the root of a suite outside the checkout depends on where the checkout happens to be."""
    cwd = Path(config.cwd or ".").resolve()
    tests = (cwd / config.tests.split("::", 1)[0]).resolve()
    if tests.is_relative_to(cwd):
        return cwd
    return tests if tests.is_dir() else tests.parent


def _environment(config: SuiteConfig, record: Path, stacks: Path) -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.update(
        KAKEYA_MODEL=config.model,
        KAKEYA_DEVICE=config.device,
        KAKEYA_DTYPE=config.dtype,
        HF_HUB_OFFLINE=env.get("HF_HUB_OFFLINE", "1"),
        PYTHONFAULTHANDLER="1",
    )
    env[pytest_plugin.RECORD_ENV] = str(record.resolve())
    env[MODEL_LOAD_ENV] = str((record.parent / MODEL_LOAD_FILE).resolve())
    env[pytest_plugin.STACKS_ENV] = str(stacks.resolve())
    return env


def _wait(proc: subprocess.Popen[bytes], deadline: float, stacks: Path) -> tuple[int | None, bool]:
    try:
        return proc.wait(timeout=max(0.0, deadline - time.monotonic())), False
    except subprocess.TimeoutExpired:
        pass
    if hasattr(signal, "SIGUSR1"):
        _signal_group(proc, signal.SIGUSR1)
        _wait_for_file(stacks, _STACK_WAIT_S)
    _signal_group(proc, signal.SIGKILL)
    return proc.wait(), True


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _wait_for_file(path: Path, timeout_s: float) -> None:
    # faulthandler writes the dump from a signal handler; poll briefly until it lands.
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if path.is_file() and path.stat().st_size > 0:
            time.sleep(0.2)  # let the remaining threads' frames be written
            return
        time.sleep(0.05)


def _read_run(
    returncode: int | None,
    timed_out: bool,
    wall: float,
    record: Path,
    junit: Path,
    log: Path,
    stacks: Path,
) -> PytestRun:
    parsed = parse_record(record)
    results = merge_results(parsed.results, parse_junit(junit))
    tail = _tail(log)
    stack_text = stacks.read_text(errors="replace") if stacks.is_file() else ""
    status, reason = _classify(
        returncode, timed_out, parsed.finished, parsed.running, results, tail
    )
    if parsed.running and status in ("crashed", "timeout"):
        results.append(_running_result(parsed.running, status, reason, tail, stack_text, wall))
    if status == "ok" and not results:
        status, reason = "failed", "no tests were collected"
    return PytestRun(
        returncode,
        results,
        parsed.collected,
        status,
        reason,
        wall,
        tail,
        stack_text,
        parsed.rootdir,
    )


def _classify(
    returncode: int | None,
    timed_out: bool,
    finished: bool,
    running: str | None,
    results: list[TestResult],
    tail: str,
) -> tuple[str, str]:
    where = f" while running {running}" if running else ""
    if timed_out:
        return "timeout", f"pytest exceeded the stage timeout{where}; process killed"
    if returncode is not None and returncode < 0:
        name = _signal_name(-returncode)
        return "crashed", f"pytest process killed by {name}{where}"
    if returncode in (3, 4) and not running:
        return "failed", f"pytest could not run (exit code {returncode}): {_last_line(tail)}"
    if not finished and (running or returncode not in (0, 1, 2, 5)):
        return "crashed", f"pytest process exited with code {returncode}{where} before finishing"
    if returncode == 5 or (returncode == 2 and not results):
        return "failed", f"no tests were collected (pytest exit code {returncode})"
    return "ok", ""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _running_result(
    nodeid: str, status: str, reason: str, tail: str, stacks: str, wall: float
) -> TestResult:
    trace = "\n".join(
        part
        for part in (reason, "--- thread stacks ---\n" + stacks if stacks else "", tail)
        if part
    )
    return TestResult(nodeid, "error", 0.0, f"{status}: {reason}", trace)


def _tail(log: Path) -> str:
    if not log.is_file():
        return ""
    data = log.read_bytes()[-_LOG_TAIL:]
    return data.decode("utf-8", errors="replace")


def _copy_junit(source: Path, target: Path) -> None:
    if source.is_file():
        target.write_bytes(source.read_bytes())


def _run_summary(run: PytestRun) -> dict[str, Any]:
    return {
        "returncode": run.returncode,
        "status": run.status,
        "reason": run.reason,
        "wall_s": round(run.wall_s, 3),
        "collected": len(run.collected),
        "log_tail": run.log_tail,
        "stacks": run.stacks,
    }
