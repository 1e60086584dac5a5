from __future__ import annotations

import csv
import io
import os

from report_support import make_test, write_run

from kakeya_evidence.report import write_report
from kakeya_evidence.report.csv import CSV_COLUMNS, spreadsheet_safe


def test_tests_csv_has_one_row_per_test_beside_evidence_json(tmp_path):
    tests = [
        make_test("t.py::a", "failed", message='=HYPERLINK("http://x","y")', start_s=-0.5),
        make_test("t.py::b", "passed", message="+1, @me, -2\nsecond line"),
        make_test("t.py::c", "skipped", message=os.fsdecode(b"odd-\xff\x00name")),
    ]
    write_run(tmp_path, tests)
    write_report(tmp_path)
    text = (tmp_path / "tests.csv").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["nodeid"] for r in rows] == ["t.py::a", "t.py::b", "t.py::c"]
    assert rows[0]["message"].startswith("'=HYPERLINK")
    assert rows[0]["start_s"] == "-0.5"  # a number stays a number
    assert rows[1]["message"] == "'+1, @me, -2\nsecond line"
    assert rows[2]["message"] == "odd-\ufffd\\x00name"
    assert rows[0]["line"] == "3" and rows[0]["path"] == "t.py"


def test_formula_starts_are_defused():
    for text in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert spreadsheet_safe(text) == "'" + text
    assert spreadsheet_safe("plain -1") == "plain -1"
    assert spreadsheet_safe(None) == ""
