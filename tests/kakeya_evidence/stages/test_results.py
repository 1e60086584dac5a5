"""The plugin record folded into rows and counted as pytest counts."""

from __future__ import annotations

import json
from pathlib import Path

from kakeya_evidence.common.schema import Outcome, Phase, TestRow
from kakeya_evidence.stages.record import parse_record
from kakeya_evidence.stages.results import count_outcomes, fold_record, mark_rerun, not_run


def _report(nodeid: str, when: str, category: str, **extra) -> dict:
    return {"event": "report", "nodeid": nodeid, "when": when, "category": category, **extra}


def _write(path: Path, events: list[dict], tail: str = "") -> Path:
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n" + tail)
    return path


def test_parse_record_names_the_running_test_and_skips_a_torn_line(tmp_path: Path):
    record = _write(
        tmp_path / "record.jsonl",
        [
            {"event": "session_started", "rootdir": "/r", "cwd": "/c", "t": 100.0},
            {"event": "collected", "nodeids": ["t.py::a", "t.py::b"]},
            {"event": "started", "nodeid": "t.py::a"},
            _report("t.py::a", "call", "passed", duration_s=0.5, start=100.5, stop=101.0),
            {"event": "finished", "nodeid": "t.py::a"},
            {"event": "started", "nodeid": "t.py::b"},
        ],
        tail='{"event": "resu',
    )
    parsed = parse_record(record)
    assert parsed.running == ["t.py::b"]
    assert parsed.finished is False
    assert (parsed.rootdir, parsed.cwd, parsed.started_t) == ("/r", "/c", 100.0)
    assert parsed.collected == ["t.py::a", "t.py::b"]
    rows = fold_record(parsed)
    assert [(r.nodeid, r.outcome, r.duration_s) for r in rows] == [("t.py::a", "passed", 0.5)]
    assert (rows[0].start_s, rows[0].stop_s) == (0.5, 1.0)  # on the suite's clock


def test_a_record_that_is_garbage_or_missing_is_empty(tmp_path: Path):
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(b"\x00\xff not json\n[1, 2]\n")
    assert parse_record(garbage).phases == []
    assert parse_record(tmp_path / "absent.jsonl").collected == []


def test_every_string_from_the_record_is_made_safe(tmp_path: Path):
    hostile = "\x1b[31mred\x1b[0m \udcff bell\x07"
    record = _write(
        tmp_path / "record.jsonl",
        [
            _report(
                "t.py::x",
                "call",
                "failed",
                message=hostile,
                longrepr=hostile,
                stdout=hostile,
                stderr=hostile,
            )
        ],
    )
    row = fold_record(parse_record(record))[0]
    for text in (row.message, row.traceback, row.stdout, row.stderr):
        assert text == "red \ufffd bell\\x07"


def test_a_failure_then_a_teardown_error_keeps_both_phases_and_counts_both(tmp_path: Path):
    nodeid = "t.py::test_x"
    record = _write(
        tmp_path / "record.jsonl",
        [
            _report(nodeid, "setup", "", stdout="setup out\n"),
            _report(
                nodeid,
                "call",
                "failed",
                message="AssertionError: the call's own assertion",
                exception="AssertionError",
                longrepr="call traceback",
                stdout="call out\n",
                line=7,
            ),
            _report(
                nodeid,
                "teardown",
                "error",
                message="RuntimeError: teardown exploded",
                longrepr="teardown traceback",
            ),
        ],
    )
    row = fold_record(parse_record(record))[0]
    assert row.outcome == "error"  # the worst phase
    assert row.message == "AssertionError: the call's own assertion"  # the first failure
    assert (row.exception, row.line) == ("AssertionError", 7)
    assert "call traceback" in row.traceback and "teardown traceback" in row.traceback
    assert row.stdout == "setup out\ncall out\n"
    assert [p.when for p in row.phases] == ["call", "teardown"]
    counts = count_outcomes([row])
    assert (counts["failed"], counts["error"]) == (1, 1)


def test_counts_follow_pytests_categories_and_have_every_key(tmp_path: Path):
    events = [
        _report("m.py", "collect", "skipped", message="module skipped"),
        _report("bad.py", "collect", "error", message="bad.py:3: SyntaxError: x"),
        _report("t.py::p", "call", "passed"),
        _report("t.py::s", "setup", "skipped"),
        _report("t.py::xf", "call", "xfailed"),
        _report("t.py::xp", "call", "xpassed"),
        _report("t.py::strict", "call", "failed", message="[XPASS(strict)] must fail"),
        _report("t.py::e", "setup", "error"),
        _report("t.py::sub", "call", "subtests passed"),
        _report("t.py::uncounted", "call", "failed", counted=False),
    ]
    rows = fold_record(parse_record(_write(tmp_path / "r.jsonl", events)))
    rows += not_run(["t.py::never"], "pytest crashed")
    counts = count_outcomes(rows)
    assert counts == {
        "passed": 1,
        "failed": 1,
        "error": 2,
        "skipped": 2,
        "xfailed": 1,
        "xpassed": 1,
        "flaky": 0,
        "not_run": 1,
    }
    by_id = {r.nodeid: r for r in rows}
    assert by_id["m.py"].outcome == "skipped" and by_id["m.py"].message == "module skipped"
    assert by_id["t.py::never"].message == "not run: pytest crashed"
    assert by_id["t.py::sub"].outcome == "passed"


def test_a_rerun_pass_is_flaky_and_counts_instead_of_its_failure():
    failing = TestRow("t.py::x", Outcome.FAILED, phases=(Phase("call", "failed"),))
    flaky = mark_rerun(failing, ["failed", "passed"])
    still = mark_rerun(failing, ["failed"])
    assert flaky.outcome == "flaky" and flaky.rerun_outcomes == ("failed", "passed")
    counts = count_outcomes([flaky, still])
    assert (counts["flaky"], counts["failed"]) == (1, 1)


def test_folded_rows_round_trip_through_the_stage_file(tmp_path: Path):
    events = [
        _report(
            "tests/x/test_a.py::test_b",
            "call",
            "failed",
            message="AssertionError: no",
            exception="AssertionError",
            path="tests/x/test_a.py",
            line=3,
            start=100.25,
            stop=101.75,
        )
    ]
    [row] = fold_record(parse_record(_write(tmp_path / "r.jsonl", events)))
    data = json.loads(json.dumps(row.to_dict()))
    assert data["module"] == "tests/x/test_a.py" and data["phases"][0]["category"] == "failed"
    assert TestRow.from_dict(data) == row
