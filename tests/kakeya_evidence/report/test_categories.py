from __future__ import annotations

import json

from report_support import make_test, write_run

from kakeya_evidence.common.schema import TestRow
from kakeya_evidence.report import write_report
from kakeya_evidence.report.categories import categorize, exception_of, mask_message


def _row(nodeid: str, message: str, outcome: str = "failed", exception: str = "") -> TestRow:
    return TestRow.from_dict(
        {"nodeid": nodeid, "outcome": outcome, "message": message, "exception": exception}
    )


def test_masking_hides_numbers_addresses_paths_and_ids_but_not_names():
    assert mask_message("port 50123 refused at 0x7f3a2b10") == "port <n> refused at <addr>"
    assert mask_message("no file /tmp/pytest-of-ci/pytest-12/test_a0/x.txt") == "no file <path>"
    assert mask_message("session kX9_aB-cD3eF4gH5iJ6kL7 closed") == "session <id> closed"
    assert mask_message("id 123e4567-e89b-12d3-a456-426614174000") == "id <id>"
    assert mask_message("float32 differs from bfloat16 in test_x0") == (
        "float32 differs from bfloat16 in test_x0"
    )


def test_the_exception_comes_from_the_row_or_from_the_message():
    assert exception_of(_row("a", "boom", exception="KeyError")) == "KeyError"
    assert exception_of(_row("a", "grpc.RpcError: boom")) == "RpcError"
    assert exception_of(_row("a", "assert 1 == 2")) == "AssertionError"
    assert exception_of(_row("a", "something odd")) == ""


def test_failures_group_by_signature_largest_first_with_members():
    rows = [
        _row("t.py::a", "ConnectionError: port 50123 refused"),
        _row("t.py::b", "ConnectionError: port 50999 refused"),
        _row("t.py::c", "ConnectionError: port 1 refused", outcome="error"),
        _row("t.py::d", "assert 3 == 4"),
        _row("t.py::e", "skipped for a reason", outcome="skipped"),
        _row("t.py::f", "", outcome="passed"),
    ]
    categories = categorize(rows)
    assert categories[0] == {
        "signature": "ConnectionError: port <n> refused",
        "exception": "ConnectionError",
        "count": 3,
        "nodeids": ["t.py::a", "t.py::b", "t.py::c"],
    }
    assert categories[1]["signature"] == "AssertionError: assert <n> == <n>"
    assert len(categories) == 2


def test_categories_reach_evidence_json_and_the_report(tmp_path):
    tests = [
        make_test(
            f"t.py::test_{i}", "failed", message=f"TimeoutError: waited {i}.5 s", exception=""
        )
        for i in range(4)
    ]
    write_run(tmp_path, [*tests, make_test("t.py::ok")])
    write_report(tmp_path)
    categories = json.loads((tmp_path / "evidence.json").read_text())["categories"]
    assert [(c["signature"], c["count"]) for c in categories] == [("TimeoutError: waited <n> s", 4)]
    html = (tmp_path / "report.html").read_text()
    section = html[html.index('id="categories"') : html.index('id="tests"')]
    assert "TimeoutError: waited &lt;n&gt; s" in section and "t.py::test_3" in section
