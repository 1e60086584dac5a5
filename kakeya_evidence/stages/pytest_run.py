"""One pytest subprocess under a wall-clock watchdog, and what it left behind.

pytest runs where the user launched from, with the rootdir it chooses itself, colours
off. Its console output goes to a capped, compressed log; the plugin's record is read
back into rows. A crash (signal, ``os._exit``) is recognised by a record that never
reached the end of the session; the tests that were running are named and those never
run are listed. A hang past the stage timeout gets a stack dump (SIGUSR1 to the plugin's
faulthandler) before the process group is killed. Whatever the tests left running is
killed and listed.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from kakeya_evidence.common.schema import Outcome, Phase, TestRow
from kakeya_evidence.common.text import clip_end, safe_text
from kakeya_evidence.stages import pytest_plugin
from kakeya_evidence.stages.capped_log import CappedLog
from kakeya_evidence.stages.leftovers import Leftover, ProcessWatch, become_subreaper
from kakeya_evidence.stages.record import Record, parse_record
from kakeya_evidence.stages.redact import redact_files, redact_text, secret_values
from kakeya_evidence.stages.results import fold_record, not_run

__all__ = [
    "COLOUR_ENV_VARS",
    "MODEL_LOAD_ENV",
    "MODEL_LOAD_FILE",
    "PytestJob",
    "PytestRun",
    "run_pytest",
]

COLOUR_ENV_VARS = ("FORCE_COLOR", "PY_COLORS", "CLICOLOR_FORCE")  # ipykernel sets FORCE_COLOR
MODEL_LOAD_ENV = "KAKEYA_MODEL_LOAD_FILE"
MODEL_LOAD_FILE = "model_load.json"
_STACK_WAIT_S = 3.0
_POLL_S = 0.5
_LOG_TAIL = 4000
_NEXT_PHASE = {"": "setup", "setup": "call", "call": "teardown"}


@dataclass(frozen=True)
class PytestJob:
    """How to start one pytest run.

    Attributes:
        cwd: Working directory (where the user launched from).
        targets: Paths or node ids, as given to pytest.
        args: Every other pytest argument.
        env: Environment variables set on top of this process's.
        deadline: time.monotonic() value after which the process is killed.
        test_timeout_s: Per-test timeout, applied only if the suite sets none itself.
    """

    cwd: Path
    targets: tuple[str, ...]
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    deadline: float = float("inf")
    test_timeout_s: float | None = None


@dataclass(frozen=True)
class PytestRun:
    """One pytest subprocess: its exit, its rows and why it ended."""

    returncode: int | None
    results: list[TestRow]
    collected: list[str]
    status: str
    reason: str
    wall_s: float
    command: list[str]
    cwd: str
    rootdir: str = ""
    log_tail: str = ""
    stacks: str = ""
    log_bytes: int = 0
    started_t: float | None = None
    leftovers: list[Leftover] = field(default_factory=list)
    pytest_junit: bool = False  # pytest wrote its own junit.xml to the end
    added: list[str] = field(default_factory=list)  # options the suite had not set itself
    deselected: int = 0


def run_pytest(job: PytestJob, work: Path) -> PytestRun:
    """Run pytest for job and read back what it recorded (never raises for test trouble).

    Args:
        job: What to run, where, and until when.
        work: A directory for this run's record, JUnit, log and stacks.

    Returns:
        The run, with status ok, failed, crashed or timeout.
    """
    work.mkdir(parents=True, exist_ok=True)
    record, junit, stacks = work / "record.jsonl", work / "junit.xml", work / "stacks"
    for stale in (record, junit, *work.glob("stacks*"), *work.glob("record.jsonl*")):
        stale.unlink(missing_ok=True)
    command = _command(job, junit)
    log = CappedLog(work / "log.txt.gz")
    started, started_t = time.monotonic(), time.time()
    # before pytest starts: a test's child that exits at once must find its orphans
    # re-parented here, not to init (ProcessWatch keeps the setting and clears it at reap)
    subreaper = become_subreaper()
    try:
        proc = subprocess.Popen(
            command,
            cwd=job.cwd,
            env=_environment(job, work),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        if subreaper:
            become_subreaper(False)
        log.close()
        reason = f"could not start pytest: {exc}"
        return PytestRun(None, [], [], "failed", reason, 0.0, command, str(job.cwd))
    log.start(proc.stdout)  # type: ignore[arg-type]
    watch = ProcessWatch(proc.pid, started_t)
    returncode, timed_out = _wait(proc, job.deadline, stacks, watch)
    leftovers = watch.reap()
    log.close()
    wall = time.monotonic() - started
    secrets = secret_values()
    redact_files((record, junit, log.path, *work.glob("stacks*")), secrets)
    tail = redact_text(safe_text(log.tail(_LOG_TAIL)), secrets)
    run = _read_run(returncode, timed_out, record, tail, _read_stacks(work))
    _compress(record)
    return replace(
        run,
        wall_s=wall,
        command=command,
        cwd=str(job.cwd),
        log_bytes=log.total_bytes,
        leftovers=leftovers,
        pytest_junit=run.status in ("ok", "failed") and junit.is_file(),
    )


def _command(job: PytestJob, junit: Path) -> list[str]:
    plugin = ("-p", pytest_plugin.__name__)
    return [sys.executable, "-m", "pytest", *job.targets, *plugin, f"--junitxml={junit}", *job.args]


def _environment(job: PytestJob, work: Path) -> dict[str, str]:
    record, stacks = work / "record.jsonl", work / "stacks"
    env = dict(os.environ)
    for name in COLOUR_ENV_VARS:
        env.pop(name, None)
    env.pop(pytest_plugin.SHARD_ENV, None)
    root = str(Path(__file__).resolve().parents[2])  # the plugin must import from here
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.update(NO_COLOR="1", PYTHONFAULTHANDLER="1")
    env.update(job.env)
    env[pytest_plugin.RECORD_ENV] = str(record.resolve())
    env[pytest_plugin.STACKS_ENV] = str(stacks.resolve())
    env[MODEL_LOAD_ENV] = str((record.parent / MODEL_LOAD_FILE).resolve())
    env[pytest_plugin.CACHE_ENV] = str((work / "pytest_cache").resolve())
    if job.test_timeout_s:
        env[pytest_plugin.TIMEOUT_ENV] = f"{job.test_timeout_s:g}"
    return env


def _wait(
    proc: subprocess.Popen[bytes], deadline: float, stacks: Path, watch: ProcessWatch
) -> tuple[int | None, bool]:
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            return proc.wait(timeout=min(_POLL_S, remaining)), False
        except subprocess.TimeoutExpired:
            watch.poll()
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


def _read_stacks(work: Path) -> str:
    """The stack dumps of pytest (and each xdist worker); empty dump files are removed."""
    parts = []
    for path in sorted(work.glob("stacks*")):
        text = safe_text(path.read_bytes())
        if not text.strip():
            path.unlink()
            continue
        parts.append(f"[{path.name}]\n{text}" if path.name != "stacks" else text)
    return clip_end("\n".join(parts))


def _compress(record: Path) -> None:
    """Keep the record, compressed: the stage file holds the same rows."""
    if not record.is_file():
        return
    with record.open("rb") as raw, gzip.open(record.with_name(record.name + ".gz"), "wb") as gz:
        shutil.copyfileobj(raw, gz)
    record.unlink()


def _read_run(
    returncode: int | None, timed_out: bool, record_path: Path, tail: str, stacks: str
) -> PytestRun:
    record = parse_record(record_path)
    results = fold_record(record)
    status, reason = _classify(returncode, timed_out, record, results, tail)
    if record.exited and status not in ("crashed", "timeout"):
        status, reason = _exited(record.exited, returncode)
        results = _mark_running(results, record, reason, "", "")
    if status in ("crashed", "timeout"):
        results = _mark_running(results, record, f"{status}: {reason}", tail, stacks)
    ran = {r.nodeid for r in results}
    missing = [n for n in record.collected if n not in ran]
    if missing:
        results += not_run(missing, _not_run_reason(status, reason, returncode))
    if status == "ok" and not results:
        status, reason = "failed", "no tests were collected"
    return PytestRun(
        returncode,
        results,
        record.collected,
        status,
        reason,
        0.0,
        [],
        "",
        rootdir=record.rootdir,
        added=record.added,
        deselected=record.deselected,
        log_tail=tail,
        stacks=stacks,
        started_t=record.started_t,
    )


def _classify(
    returncode: int | None,
    timed_out: bool,
    record: Record,
    results: list[TestRow],
    tail: str,
) -> tuple[str, str]:
    where = f" while running {', '.join(record.running)}" if record.running else ""
    if timed_out:
        return "timeout", f"pytest exceeded the stage timeout{where}; process killed"
    if returncode is not None and returncode < 0:
        return "crashed", f"pytest process killed by {_signal_name(-returncode)}{where}"
    if returncode in (3, 4) and not record.running:
        return "failed", f"pytest could not run (exit code {returncode}): {_error_line(tail)}"
    started = record.started_t is not None  # os._exit(0) in a conftest still ends early
    if not record.finished and (record.running or started or returncode not in (0, 1, 2, 5)):
        return "crashed", f"pytest process exited with code {returncode}{where} before finishing"
    if returncode == 5 or (returncode == 2 and not results):
        return "failed", f"no tests were collected (pytest exit code {returncode})"
    return "ok", ""


def _exited(exited: dict[str, object], returncode: int | None) -> tuple[str, str]:
    """pytest.exit() (or SIGINT to pytest) ended the session early: not a pass."""
    where = f" in {exited['nodeid']}" if exited.get("nodeid") else ""
    if exited.get("kind") == "interrupt":
        return "interrupted", f"pytest was interrupted{where} (exit code {returncode})"
    reason = f"exited: pytest.exit(){where}: {exited.get('reason')} (exit code {returncode})"
    return "failed", reason


def _not_run_reason(status: str, reason: str, returncode: int | None) -> str:
    if status in ("crashed", "timeout", "interrupted"):
        return reason
    return f"pytest stopped before running it (exit code {returncode})"


def _mark_running(
    results: list[TestRow], record: Record, message: str, tail: str, stacks: str
) -> list[TestRow]:
    """The tests that were running when pytest died become errors, with what is known."""
    last_when = {phase.nodeid: phase.when for phase in record.phases}
    trace = "\n".join(
        p for p in (message, f"--- thread stacks ---\n{stacks}" if stacks else "", tail) if p
    )
    by_id = {r.nodeid: r for r in results}
    for nodeid in record.running:
        earlier = by_id.get(nodeid, TestRow(nodeid, Outcome.ERROR))
        when = _NEXT_PHASE.get(last_when.get(nodeid, ""), "teardown")
        phase = Phase(when, Outcome.ERROR, message)
        by_id[nodeid] = replace(
            earlier,
            outcome=Outcome.ERROR,
            message=message,
            traceback=clip_end("\n".join(p for p in (earlier.traceback, trace) if p)),
            phases=(*earlier.phases, phase),
        )
    return list(by_id.values())


def _error_line(text: str) -> str:
    """The last line that says "error:" (pytest's usage errors end in "rootdir: ..."), or
    the last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line.lower()]
    return (errors or lines or ["(no output)"])[-1][:300]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
