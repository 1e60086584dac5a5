"""A real `kakeya-evidence run` gets a real SIGINT or SIGTERM while a test runs: pytest's
group stops, and the evidence is written with verdict interrupted and the signal's code."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

SUITE = """
import time


def test_quick():
    pass


def test_slow():
    print("kakeya-interrupt-slow-started", flush=True)
    time.sleep(120)


def test_never_reached():
    pass
"""


@pytest.fixture(autouse=True)
def _no_pytest_left_behind(tmp_path):
    """Whatever the test says, no pytest of its run outlives it."""
    yield
    for process in psutil.process_iter(["cmdline"]):
        if _is_slow_pytest(process, tmp_path):
            process.kill()


def _start(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_interrupt_me.py").write_text(SUITE, encoding="utf-8")
    out = tmp_path / "ev"
    command = [sys.executable, "-m", "kakeya_evidence.cli", "run", "--output", str(out)]
    proc = subprocess.Popen(
        [*command, "--tests", str(suite), "--quiet"],
        cwd=suite,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group, as a terminal gives a foreground job
    )
    return proc, out


def _wait_for_slow_test(out: Path, proc: subprocess.Popen[str], timeout_s: float = 240) -> None:
    record = out / "pytest" / "run0" / "record.jsonl"
    end = time.monotonic() + timeout_s
    while time.monotonic() < end and proc.poll() is None:
        if record.is_file() and "test_slow" in record.read_text(errors="replace"):
            time.sleep(0.5)
            return
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"the slow test never started: {proc.communicate()}")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_pytest_and_writes_the_interrupted_evidence(tmp_path, sig, code):
    proc, out = _start(tmp_path)
    _wait_for_slow_test(out, proc)
    started = time.monotonic()
    os.killpg(proc.pid, sig)
    stdout, stderr = proc.communicate(timeout=90)
    took = time.monotonic() - started
    assert proc.returncode == code, (stdout, stderr)
    assert took < 60
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and signal.Signals(sig).name in lines[0], stderr
    assert "Traceback" not in stderr
    time.sleep(0.5)
    assert [p.pid for p in psutil.process_iter(["cmdline"]) if _is_slow_pytest(p, tmp_path)] == []
    for name in ("report.html", "evidence.json", "summary.md"):
        assert (out / name).is_file(), name
    evidence = json.loads((out / "evidence.json").read_text())
    assert evidence["verdict"] == "interrupted"
    stages = {s["name"]: s for s in evidence["stages"]}
    assert stages["integration_suite"]["status"] == "interrupted"
    assert stages["results_report"]["status"] == "skipped"
    assert signal.Signals(sig).name in stages["results_report"]["reason"]
    suite_stage = json.loads((out / "stages" / "integration_suite.json").read_text())
    outcomes = {t["nodeid"].rsplit("::", 1)[-1]: t["outcome"] for t in suite_stage["tests"]}
    assert outcomes["test_quick"] == "passed"
    assert outcomes["test_never_reached"] == "not_run"
    log = out / "pytest" / "run0" / "log.txt.gz"
    assert log.stat().st_size > 0 and gzip.decompress(log.read_bytes())
    assert (out / "pytest" / "run0" / "record.jsonl.gz").is_file()
    assert "interrupted" in (out / "summary.md").read_text().lower()
    report = subprocess.run(
        [sys.executable, "-m", "kakeya_evidence.cli", "report", "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    again = json.loads((out / "evidence.json").read_text())
    stages = {s["name"]: s for s in again["stages"]}
    assert stages["integration_suite"]["status"] == "interrupted", report.stderr
    assert "did not run" not in stages["integration_suite"]["reason"]


def _is_slow_pytest(process: psutil.Process, root: Path) -> bool:
    """A pytest of this test's run (its --junitxml lies under root)."""
    try:
        cmdline = process.info["cmdline"] or []
        return "pytest" in cmdline and any(str(root) in part for part in cmdline)
    except psutil.Error:
        return False


def test_a_second_ctrl_c_exits_at_once_and_leaves_what_was_written_readable(tmp_path):
    proc, out = _start(tmp_path)
    _wait_for_slow_test(out, proc)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 130
    time.sleep(0.5)
    assert [p.pid for p in psutil.process_iter(["cmdline"]) if _is_slow_pytest(p, tmp_path)] == []
    for path in (out / "stages").glob("*.json"):
        json.loads(path.read_text())  # every stage file written so far is whole
