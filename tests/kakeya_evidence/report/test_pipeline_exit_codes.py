"""Through the real runner: hostile test output reaches every file safely, and the exit code
the run returns is the one evidence.json holds even when a report file cannot be written."""

from __future__ import annotations

import json

import pytest

from kakeya_evidence.runner import run_with

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

HOSTILE_TEST = """
import os


def test_odd_bytes():
    name = os.fsdecode(b"report-\\xff.txt")
    print("out", name, "\\x00\\x1b[31mred\\x1b[0m\\x07")
    assert False, "bad " + name + " \\x00 \\x1b[1mbold"


def test_fine():
    pass
"""


def _suite(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_hostile.py").write_text(HOSTILE_TEST)
    return suite


def test_a_lone_surrogate_and_control_bytes_in_test_output_give_a_full_report(tmp_path):
    out = tmp_path / "ev"
    code = run_with(output=str(out), tests=str(_suite(tmp_path)))
    evidence = json.loads((out / "evidence.json").read_text(encoding="utf-8"))
    assert code == evidence["exit_code"] == 1
    for name in ("report.html", "summary.md", "tests.csv"):
        text = (out / name).read_text(encoding="utf-8")
        assert "\x00" not in text and "\x1b" not in text, name
    assert "test_odd_bytes" in (out / "summary.md").read_text()


def test_the_exit_code_matches_evidence_json_when_report_html_cannot_be_written(tmp_path):
    out = tmp_path / "ev"
    (out / "report.html").mkdir(parents=True)  # every write of report.html fails
    code = run_with(output=str(out), tests=str(_suite(tmp_path)))
    evidence = json.loads((out / "evidence.json").read_text())
    assert code == evidence["exit_code"] == 2
    stage = evidence["stages"][-1]
    assert stage["status"] == "failed" and "report.html" in stage["reason"]
    assert "results_report | failed" in (out / "summary.md").read_text()
