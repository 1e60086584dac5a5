from __future__ import annotations

import json
from pathlib import Path

from kakeya_evidence.stages.results import (
    TestResult,
    count_outcomes,
    mark_rerun,
    merge_results,
    module_of,
    parse_junit,
    parse_record,
)

JUNIT = Path(__file__).parent / "fixtures" / "junit"


def test_parse_junit_reads_every_outcome():
    results = {r.nodeid: r for r in parse_junit(JUNIT / "good.xml")}
    assert results["tests/test_a.py::test_ok"].outcome == "passed"
    assert results["tests/test_a.py::TestGroup::test_bad"].outcome == "failed"
    assert results["tests/test_a.py::TestGroup::test_bad"].message == "assert 1 == 2"
    assert results["tests/test_a.py::test_err"].outcome == "error"
    assert results["tests/test_b.py::test_skip"].outcome == "skipped"
    assert results["tests/test_b.py::test_xf"].outcome == "xfailed"


def test_parse_junit_salvages_complete_cases_from_truncated_file():
    results = parse_junit(JUNIT / "truncated.xml")
    assert [r.nodeid for r in results] == ["tests/test_a.py::test_ok"]


def test_parse_junit_survives_malformed_empty_and_missing_files(tmp_path: Path):
    assert [r.nodeid for r in parse_junit(JUNIT / "malformed.xml")] == ["tests/test_a.py::test_ok"]
    assert parse_junit(JUNIT / "empty.xml") == []
    assert parse_junit(tmp_path / "absent.xml") == []
    garbage = tmp_path / "garbage.xml"
    garbage.write_bytes(b"\x00\xff not xml at all")
    assert parse_junit(garbage) == []


def test_parse_record_names_the_running_test_and_skips_a_torn_line(tmp_path: Path):
    lines = [
        {"event": "session_started", "rootdir": "/r"},
        {"event": "collected", "nodeids": ["t.py::a", "t.py::b"]},
        {"event": "started", "nodeid": "t.py::a"},
        {"event": "result", "nodeid": "t.py::a", "outcome": "passed", "duration_s": 0.5},
        {"event": "started", "nodeid": "t.py::b"},
    ]
    record = tmp_path / "record.jsonl"
    record.write_text("\n".join(json.dumps(x) for x in lines) + '\n{"event": "resu')
    parsed = parse_record(record)
    assert parsed.running == "t.py::b"
    assert parsed.finished is False
    assert parsed.rootdir == "/r"
    assert parsed.collected == ["t.py::a", "t.py::b"]
    assert [(r.nodeid, r.outcome, r.duration_s) for r in parsed.results] == [
        ("t.py::a", "passed", 0.5)
    ]


def test_merge_prefers_record_and_fills_gaps_from_junit():
    record = [TestResult("tests/test_a.py::test_ok", "passed", stdout="captured")]
    junit = [
        TestResult("tests/test_a.py::test_ok", "failed"),
        TestResult("tests/test_b.py::test_new", "error"),
    ]
    merged = {r.nodeid: r for r in merge_results(record, junit)}
    assert merged["tests/test_a.py::test_ok"].stdout == "captured"
    assert merged["tests/test_b.py::test_new"].outcome == "error"


def test_counts_have_every_key_and_rerun_pass_is_flaky():
    flaky = mark_rerun(TestResult("t.py::x", "failed"), ["failed", "passed"])
    still = mark_rerun(TestResult("t.py::y", "failed"), ["failed"])
    counts = count_outcomes([flaky, still, TestResult("t.py::z", "passed")])
    assert counts == {
        "passed": 1,
        "failed": 1,
        "error": 0,
        "skipped": 0,
        "xfailed": 0,
        "xpassed": 0,
        "flaky": 1,
    }
    assert flaky.rerun_outcomes == ("failed", "passed")


def test_module_is_the_file_part_of_the_node_id():
    assert (
        module_of("tests/integration/test_x.py::TestA::test_b[1]") == "tests/integration/test_x.py"
    )
