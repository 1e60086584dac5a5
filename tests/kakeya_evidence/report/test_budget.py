"""Bounded outputs: per test (the end is kept) and for the whole report (largest first)."""

from __future__ import annotations

import json

from report_support import make_test, write_run

from kakeya_evidence.common.schema import TestRow
from kakeya_evidence.common.text import MAX_TEXT_CHARS, clip_end
from kakeya_evidence.report import ReportConfig, write_report
from kakeya_evidence.report.budget import fit_outputs, water_level


def test_clipping_keeps_the_end_and_says_how_much_went():
    text = "start " + "x" * 1000 + " the failure is here"
    clipped = clip_end(text, 100)
    assert clipped.endswith(" the failure is here")
    assert "start" not in clipped
    assert clipped.startswith("[... 926 characters cut ...]\n")
    assert clip_end("short", 100) == "short"


def test_the_water_level_caps_only_the_largest():
    assert water_level([10, 20, 30], 100) is None
    assert water_level([10, 20, 1000], 100) == 70
    assert water_level([500, 500, 10], 110) == 50
    assert water_level([5, 5], 0) == 0


def test_fit_outputs_clips_the_largest_first_and_per_field():
    rows = [
        TestRow.from_dict({"nodeid": "a", "outcome": "failed", "stdout": "a" * 100}),
        TestRow.from_dict({"nodeid": "b", "outcome": "failed", "stdout": "b" * 50_000}),
        TestRow.from_dict({"nodeid": "c", "outcome": "passed", "stderr": "c" * 200}),
    ]
    fitted, stats = fit_outputs(rows, 2_000)
    assert fitted[0].stdout == rows[0].stdout and fitted[2].stderr == rows[2].stderr
    assert len(fitted[1].stdout) < 2_000 and fitted[1].stdout.endswith("b" * 1000)
    assert stats["clipped_fields"] == 1
    per_field, _ = fit_outputs(rows[1:2], 10**9)
    assert len(per_field[0].stdout) <= MAX_TEXT_CHARS + 60


def test_a_suite_that_prints_50_mb_gives_a_report_within_its_budget(tmp_path):
    chunk = "<line with markup & noise>\n" * 6_000  # ~160 KB per output, escaped larger
    tests = [
        make_test(f"t.py::test_{i}", "failed" if i % 2 else "passed", stdout=chunk, stderr=chunk)
        for i in range(160)
    ]
    write_run(tmp_path, tests)
    report = write_report(tmp_path, ReportConfig(max_report_mb=2))
    assert 1_000_000 < report.html_bytes <= 2_000_000
    budget = json.loads((tmp_path / "evidence.json").read_text())["report_budget"]
    assert budget["clipped_fields"] == 320 and budget["max_bytes"] == 2_000_000
    html = report.html_path.read_text()
    assert 'id="budget-note"' in html and "largest first" in html
    assert html.count("characters cut ...]") == 320
    assert (tmp_path / "evidence.json").stat().st_size < 200_000


def test_the_default_budget_is_ten_megabytes(tmp_path):
    tests = [make_test(f"t.py::test_{i}", "failed", stdout="y" * 20_000) for i in range(700)]
    write_run(tmp_path, tests)
    report = write_report(tmp_path)
    assert 9_000_000 < report.html_bytes <= 10_000_000


def test_max_report_mb_is_a_flag_and_is_validated(tmp_path, capsys):
    from kakeya_evidence.cli import main

    write_run(tmp_path, [make_test("t.py::a", stdout="z" * 600_000)])
    assert main(["report", "--output", str(tmp_path), "--max-report-mb", "0.5"]) == 0
    assert (tmp_path / "report.html").stat().st_size <= 500_000
    assert main(["report", "--output", str(tmp_path), "--max-report-mb", "-1"]) == 2
    assert "max_report_mb must be a number > 0" in capsys.readouterr().err
