from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_support import make_test, write_run

from kakeya_evidence.report import ReportConfig, write_report
from kakeya_evidence.report.history import count_flips, load_history


def _earlier(directory: Path, name: str, when: str, outcomes: dict[str, str], **extra) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tests = [{"nodeid": n, "outcome": o} for n, o in outcomes.items()]
    passed = sum(o == "passed" for o in outcomes.values())
    failed = sum(o == "failed" for o in outcomes.values())
    data = {
        "generated_at": when,
        "verdict": "failed" if failed else "passed",
        "counts": {"passed": passed, "failed": failed},
        "tests": tests,
        "pytest_wall_s": 10.0 + len(when) % 3,
        "provenance": {"commit": "c" + when[-2:]},
        **extra,
    }
    (directory / name).write_text(json.dumps(data))


def test_flips_count_changes_between_pass_and_fail_ignoring_runs_without_a_result():
    assert count_flips("PPPP") == 0
    assert count_flips("PFP") == 2
    assert count_flips("PS-FNP") == 2
    assert count_flips("FKFP") == 1  # flaky counts as failing


def test_history_files_are_ordered_by_generated_at_and_junk_is_skipped(tmp_path):
    _earlier(tmp_path, "zz.json", "2025-01-01T00:00:00Z", {"a": "passed"})
    _earlier(tmp_path / "nested", "aa.json", "2025-01-03T00:00:00Z", {"a": "failed"})
    _earlier(tmp_path, "mm.json", "2025-01-02T00:00:00Z", {"a": "passed"})
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "stage.json").write_text(json.dumps({"status": "ok"}))
    runs, skipped = load_history(tmp_path)
    assert [r["generated_at"][:10] for r in runs] == ["2025-01-01", "2025-01-02", "2025-01-03"]
    assert sorted(s["path"] for s in skipped) == ["broken.json", "stage.json"]


def test_a_missing_history_directory_is_a_clear_error(tmp_path):
    with pytest.raises(NotADirectoryError, match="history directory"):
        load_history(tmp_path / "nope")


def test_history_gives_strips_unstable_tests_and_trends(tmp_path):
    history = tmp_path / "history"
    perf = {"decode_tok_s": {"runtime": 400.0}}
    _earlier(history, "1.json", "2025-01-01T00:00:00Z", {"t.py::wobbly": "passed"}, perf=perf)
    _earlier(
        history, "2.json", "2025-01-02T00:00:00Z", {"t.py::wobbly": "failed", "t.py::s": "passed"}
    )
    _earlier(
        history, "3.json", "2025-01-03T00:00:00Z", {"t.py::wobbly": "passed", "t.py::s": "passed"}
    )
    out = tmp_path / "ev"
    write_run(
        out, [make_test("t.py::wobbly", "failed"), make_test("t.py::s"), make_test("t.py::new")]
    )
    report = write_report(out, ReportConfig(history=str(history)))
    section = json.loads((out / "evidence.json").read_text())["history"]
    assert section["strips"] == {"t.py::wobbly": "PFPF", "t.py::s": "-PPP", "t.py::new": "---P"}
    assert section["unstable"] == [{"nodeid": "t.py::wobbly", "flips": 3, "strip": "PFPF"}]
    assert [r["pass_rate"] for r in section["runs"]] == [1.0, 0.5, 1.0, 0.6667]
    assert section["runs"][0]["perf"] == {"decode_tok_s.runtime": 400.0}
    assert section["runs"][-1]["source"] == "this run"
    assert "trends" in report.figures
    trend_axes = report.figures["trends"].axes
    assert [a.get_ylabel() for a in trend_axes] == ["pass rate (%)", "pytest (s)", "decode_tok_s"]
    html = report.html_path.read_text()
    history_html = html[html.index('id="history"') : html.index('id="timeline"')]
    assert 'class="unstable"' in history_html and "t.py::wobbly" in history_html
    assert 'alt="trends"' in history_html
    assert '<td class="strip">---P</td>' in html  # the test table's history column


def test_a_history_that_does_not_exist_fails_the_report_stage_not_the_report(tmp_path):
    write_run(tmp_path, [make_test("t.py::a")])
    report = write_report(tmp_path, ReportConfig(history=str(tmp_path / "missing")))
    stage = report.evidence["stages"][-1]
    assert stage["status"] == "failed" and "history" in stage["reason"]
    assert report.exit_code == 2 and (tmp_path / "report.html").is_file()
