"""JUnit XML written from the record's rows parses and names tests as pytest does."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from kakeya_evidence.common.schema import Outcome, TestRow
from kakeya_evidence.common.text import safe_text
from kakeya_evidence.stages.junit import junit_names, write_junit


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
        TestRow("t.py::ok", Outcome.PASSED, 0.5, stdout="out"),
        TestRow("t.py::bad", Outcome.FAILED, 1.0, odd, traceback="trace " + odd),
        TestRow("t.py::boom", Outcome.ERROR, 0.0, "crashed: killed"),
        TestRow("t.py::skip", Outcome.SKIPPED, message="no GPU"),
        TestRow("t.py::xf", Outcome.XFAILED, message="known bug"),
        TestRow("t.py::never", Outcome.NOT_RUN, message="not run: pytest crashed"),
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
