"""JUnit XML written from the record's rows parses and names tests as pytest does."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from kakeya_evidence.stages.junit import junit_names, write_junit
from kakeya_evidence.stages.results import TestResult
from kakeya_evidence.stages.textsafe import safe_text


def test_names_follow_pytests_junitxml():
    assert junit_names("tests/x/test_a.py::TestG::test_b[1/2::x]") == (
        "tests.x.test_a.TestG",
        "test_b[1/2::x]",
    )
    assert junit_names("test_a.py::test_ok") == ("test_a", "test_ok")


def test_every_outcome_is_written_and_parses(tmp_path: Path):
    name = os.fsdecode(b"report-\xff.txt")
    odd = safe_text(f"cannot open {name} \x1b[31m\ufffe")
    rows = [
        TestResult("t.py::ok", "passed", 0.5, stdout="out"),
        TestResult("t.py::bad", "failed", 1.0, odd, "trace " + odd),
        TestResult("t.py::boom", "error", 0.0, "crashed: killed"),
        TestResult("t.py::skip", "skipped", message="no GPU"),
        TestResult("t.py::xf", "xfailed", message="known bug"),
        TestResult("t.py::never", "not_run", message="not run: pytest crashed"),
    ]
    path = write_junit(rows, tmp_path / "junit.xml")
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("6", "1", "1")
    assert suite.get("skipped") == "3"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    failure = cases["bad"].find("failure")
    assert failure is not None and failure.get("message", "").startswith("cannot open report-")
    assert cases["never"].find("skipped").get("type") == "not_run"
    assert cases["xf"].find("skipped").get("type") == "pytest.xfail"
    assert cases["ok"].findtext("system-out") == "out"
    assert not list(tmp_path.glob("*.tmp"))
