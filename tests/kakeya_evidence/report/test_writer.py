"""Nothing a test printed stops the report, and the exit code matches evidence.json's."""

from __future__ import annotations

import json
import os

from report_support import make_test, write_run

from kakeya_evidence.report import ReportConfig, write_report

SURROGATE = os.fsdecode(b"report-\xff.txt")
HOSTILE = f"{SURROGATE} \x00 \x07 \x1b[31mred\x1b[0m \ud800"


def test_lone_surrogates_nul_and_escapes_in_any_string_cannot_stop_a_write(tmp_path):
    tests = [
        make_test(
            f"t.py::test_{SURROGATE}",
            "failed",
            message=HOSTILE,
            traceback=HOSTILE,
            stdout=HOSTILE,
            stderr=HOSTILE,
            exception=HOSTILE,
        )
    ]
    write_run(tmp_path, tests, host={"os": HOSTILE}, suite={"cwd": HOSTILE})
    report = write_report(tmp_path, parameters={"model": HOSTILE})
    assert report.exit_code == 1
    for name in ("report.html", "summary.md", "tests.csv", "evidence.json"):
        text = (tmp_path / name).read_text(encoding="utf-8")  # valid UTF-8 throughout
        assert "\x00" not in text and "\x1b" not in text and "\x07" not in text, name
    assert json.loads((tmp_path / "evidence.json").read_text())["exit_code"] == 1
    summary = (tmp_path / "summary.md").read_text()
    assert "report-\ufffd.txt" in summary and "\\x00" in summary


def test_a_file_that_cannot_be_written_fails_the_stage_and_evidence_json_says_2(tmp_path):
    write_run(tmp_path, [make_test("t.py::a")])
    (tmp_path / "summary.md").mkdir()  # the write of summary.md fails (IsADirectoryError)
    report = write_report(tmp_path)
    evidence = json.loads((tmp_path / "evidence.json").read_text())
    assert report.exit_code == evidence["exit_code"] == 2
    stage = evidence["stages"][-1]
    assert stage["status"] == "failed" and "summary.md" in stage["reason"]
    html = (tmp_path / "report.html").read_text()
    assert html.split("<h1>")[1].startswith("ERROR")  # the page says what evidence.json says


def test_when_evidence_json_cannot_be_written_the_exit_code_is_2_and_no_stale_file_stays(tmp_path):
    write_run(tmp_path, [make_test("t.py::a")])
    (tmp_path / "evidence.json").mkdir()  # cannot be replaced by a file
    report = write_report(tmp_path)
    assert report.exit_code == 2
    assert (tmp_path / "report.html").is_file()


def test_a_baseline_that_does_not_parse_costs_the_stage_not_the_report(tmp_path):
    write_run(tmp_path / "ev", [make_test("t.py::a")])
    (tmp_path / "bad.json").write_text("[1, 2")
    report = write_report(tmp_path / "ev", ReportConfig(baseline=str(tmp_path / "bad.json")))
    assert report.exit_code == 2
    assert "baseline" in report.evidence["stages"][-1]["reason"]
    assert (tmp_path / "ev" / "report.html").is_file()


def test_a_baseline_of_the_wrong_shape_still_compares_what_it_can(tmp_path):
    write_run(tmp_path / "ev", [make_test("t.py::a", "failed")])
    odd = {"tests": [1, {"nodeid": "t.py::a", "outcome": "passed"}, {}], "perf": "fast"}
    (tmp_path / "odd.json").write_text(json.dumps(odd))
    report = write_report(tmp_path / "ev", ReportConfig(baseline=str(tmp_path / "odd.json")))
    assert report.evidence["baseline"]["tests"]["new_failures"] == ["t.py::a"]
    assert report.exit_code == 1


def test_the_notebook_shows_the_same_figures_the_page_embeds_without_drawing_them_again(tmp_path):
    from kakeya_evidence.display import figure_images

    write_run(tmp_path, [make_test("t.py::a"), make_test("t.py::b", "failed")])
    report = write_report(tmp_path)
    assert report.images.keys() == report.figures.keys() and report.images
    html = (tmp_path / "report.html").read_text()
    shown = figure_images(report.images)
    assert len(shown) == len(report.images)
    for image, uri in zip(shown, report.images.values(), strict=True):
        assert uri in html  # the page embeds exactly these PNGs
        assert image.data.startswith(b"\x89PNG")
