"""Progress while the suite runs: lines arrive during the run, a bar on a TTY, none quiet."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kakeya_evidence.progress import Progress, SuiteTally


def _events(path: Path, *events: dict) -> None:
    with path.open("a") as handle:
        for event in events:
            handle.write(json.dumps(event) + "\n")


def test_the_tally_reads_a_growing_record_including_a_torn_last_line(tmp_path: Path):
    record = tmp_path / "record.jsonl"
    _events(record, {"event": "collected", "nodeids": ["a", "b", "c"]})
    tally = SuiteTally()
    tally.read(record)
    assert tally.line(3.2) == "suite: 0/3 tests done, 0 failed, 3 s"
    _events(record, {"event": "report", "nodeid": "a", "category": "failed"})
    _events(record, {"event": "finished", "nodeid": "a"})
    with record.open("a") as handle:
        handle.write('{"event": "finished", "nod')  # pytest is writing this line right now
    tally.read(record)
    assert tally.line(4) == "suite: 1/3 tests done, 1 failed, 4 s"
    with record.open("a") as handle:
        handle.write('eid": "b"}\n')
    tally.read(record)
    assert tally.bar(5) == "suite [################--------] 2/3, 1 failed, 5 s".replace(
        "################--------", "#" * 16 + "-" * 8
    )
    tally.close()


def test_stage_lines_and_a_bar_drawn_in_place_on_a_tty(tmp_path: Path):
    stream = io.StringIO()
    progress = Progress(stream, tty=True, interval_s=0.1)
    progress.stage_started("integration_suite", 3, 4)
    run = tmp_path / "pytest" / "run0"
    run.mkdir(parents=True)
    with progress.suite(tmp_path / "pytest"):
        _events(run / "record.jsonl", {"event": "collected", "nodeids": ["a"]})
        _events(run / "record.jsonl", {"event": "finished", "nodeid": "a"})
    progress.stage_finished("integration_suite", 3, 4, "ok", 1.25)
    text = stream.getvalue()
    assert text.startswith("[3/4] integration_suite ...\n")
    assert "\rsuite [" + "#" * 24 + "] 1/1, 0 failed" in text
    assert text.endswith("[3/4] integration_suite ok in 1.2 s\n")


def test_quiet_prints_nothing(tmp_path: Path):
    stream = io.StringIO()
    progress = Progress(stream, enabled=False)
    progress.stage_started("host_check", 1, 4)
    with progress.suite(tmp_path):
        pass
    progress.stage_finished("host_check", 1, 4, "failed", 0.5, "no disk")
    assert stream.getvalue() == ""


@pytest.mark.slow
def test_progress_lines_arrive_while_the_suite_runs(fixture_suite, tmp_path):
    """The second test waits until the harness has seen "1/3" on stderr: no line during
    the run, and that test fails after 60 s."""
    go = tmp_path / "go"
    command = [sys.executable, "-m", "kakeya_evidence.cli", "suite", "--output", str(tmp_path)]
    lines = []
    with subprocess.Popen(
        [*command, "--tests", str(fixture_suite("progress"))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "KAKEYA_PROGRESS_GO": str(go)},
    ) as proc:
        for line in proc.stderr:  # type: ignore[union-attr]
            lines.append(line.rstrip("\n"))
            if "1/3 tests done" in line:
                go.touch()
        stdout = proc.stdout.read()  # type: ignore[union-attr]
    assert proc.returncode == 0, (lines, stdout)
    during = lines.index(next(x for x in lines if "1/3 tests done" in x))
    assert lines[-1].startswith("suite: 3/3 tests done, 0 failed, ")
    assert during < len(lines) - 1


@pytest.mark.slow
def test_quiet_suite_prints_no_progress(fixture_suite, tmp_path):
    tests = str(fixture_suite("passing"))
    command = [sys.executable, "-m", "kakeya_evidence.cli", "suite", "--quiet", "--tests", tests]
    proc = subprocess.run(
        [*command, "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.startswith("passed 2, ")


def test_errors_are_counted_apart_from_failures_as_pytest_counts_them(tmp_path: Path):
    record = tmp_path / "record.jsonl"
    _events(record, {"event": "collected", "nodeids": ["a", "b", "c", "d", "e"]})
    for nodeid in "abcd":
        _events(record, {"event": "report", "nodeid": nodeid, "category": "failed"})
    _events(record, {"event": "report", "nodeid": "e", "category": "error"})
    tally = SuiteTally()
    tally.read(record)
    tally.close()
    assert tally.line(1) == "suite: 0/5 tests done, 4 failed, 1 error, 1 s"
