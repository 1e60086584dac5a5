from __future__ import annotations

from kakeya_evidence.common.schema import (
    SLIM_FIELDS,
    Outcome,
    StageRow,
    StageStatus,
    TestRow,
)


def test_outcome_and_status_names_are_the_contracts():
    assert [str(o) for o in Outcome] == [
        "passed",
        "failed",
        "error",
        "skipped",
        "xfailed",
        "xpassed",
        "flaky",
        "not_run",
    ]
    assert {str(s) for s in StageStatus} == {"ok", "failed", "crashed", "timeout", "skipped"}


def test_a_row_from_todays_suite_without_the_new_fields_reads():
    row = TestRow.from_dict(
        {"nodeid": "tests/t.py::TestA::test_b[1]", "outcome": "failed", "message": "boom"}
    )
    assert row.outcome is Outcome.FAILED
    assert (row.module, row.name) == ("tests/t.py", "TestA::test_b[1]")
    assert (row.exception, row.line, row.start_s, row.worker, row.phases) == (
        "",
        None,
        None,
        "",
        (),
    )
    assert row.to_dict()["path"] == "tests/t.py"


def test_a_row_with_the_new_fields_keeps_them():
    row = TestRow.from_dict(
        {
            "nodeid": "t.py::x",
            "outcome": "error",
            "exception": "RuntimeError",
            "path": "sub/t.py",
            "line": 12,
            "phases": [{"when": "teardown", "category": "error", "message": "m"}],
            "start_s": 1.5,
            "stop_s": 2.0,
            "worker": "gw1",
        }
    )
    data = row.to_dict()
    assert (data["exception"], data["path"], data["line"], data["worker"]) == (
        "RuntimeError",
        "sub/t.py",
        12,
        "gw1",
    )
    assert data["phases"] == [{"when": "teardown", "category": "error", "message": "m"}]
    assert (data["start_s"], data["stop_s"]) == (1.5, 2.0)


def test_bad_values_get_defaults_and_an_unknown_outcome_is_an_error_not_a_pass():
    row = TestRow.from_dict(
        {"nodeid": "t.py::x", "outcome": "exploded", "duration_s": "slow", "line": -3}
    )
    assert row.outcome is Outcome.ERROR
    assert "exploded" in row.message
    assert (row.duration_s, row.line) == (0.0, None)
    assert TestRow.from_dict({"nodeid": "t", "duration_s": float("nan")}).duration_s == 0.0


def test_slim_rows_drop_outputs_but_keep_what_publish_reads():
    row = TestRow.from_dict(
        {"nodeid": "t.py::x", "outcome": "failed", "traceback": "T", "stdout": "O", "stderr": "E"}
    )
    slim = row.to_dict(outputs=False)
    assert not {"traceback", "stdout", "stderr"} & set(slim)
    assert set(SLIM_FIELDS) <= set(slim)
    assert {"nodeid", "outcome", "message", "exception", "path", "line", "duration_s"} <= set(slim)


def test_stage_rows_type_their_status():
    assert StageRow.from_dict({"name": "s", "status": "timeout"}).status is StageStatus.TIMEOUT
    odd = StageRow.from_dict({"name": "s", "status": "weird", "reason": "r"})
    assert odd.status is StageStatus.FAILED and "weird" in odd.reason
