"""``annotate`` (``::error`` lines for the Linux gate) and ``step-summary``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kakeya_evidence.github.annotations import annotations_for_tests, safe_path

EVIDENCE = {
    "stages": [
        {"name": "host_check", "status": "ok", "reason": ""},
        {"name": "integration_suite", "status": "timeout", "reason": "stage ran past 900 s"},
    ],
    "tests": [
        {
            "nodeid": "tests/integration/test_gen.py::test_chunked[a,b]",
            "outcome": "failed",
            "exception": "AssertionError",
            "message": "100% wrong\nsecond line\r",
            "path": "tests/integration/test_gen.py",
            "line": 42,
        },
        {"nodeid": "tests/integration/test_x.py::test_y", "outcome": "error", "message": ""},
        {"nodeid": "tests/integration/test_x.py::test_ok", "outcome": "passed"},
    ],
}


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps(data))
    return path


def test_annotate_escapes_and_carries_file_and_line(cli, tmp_path):
    rc, out = cli(["annotate", "--evidence", str(write(tmp_path, EVIDENCE))])
    lines = out.splitlines()
    assert rc == 0
    assert lines[0] == "::error title=stage integration_suite%3A timeout::stage ran past 900 s"
    assert lines[1] == (
        "::error file=tests/integration/test_gen.py,line=42,"
        "title=failed%3A tests/integration/test_gen.py%3A%3Atest_chunked[a%2Cb]"
        "::AssertionError: 100%25 wrong%0Asecond line%0D"
    )
    assert lines[2].startswith("::error file=tests/integration/test_x.py,line=1,title=error%3A")
    assert len(lines) == 3


def test_annotate_says_how_many_it_left_out_past_githubs_10(cli, tmp_path):
    """Fault 7: GitHub shows 10 errors per step; failures 11 and on are counted, not lost."""
    tests = [{"nodeid": f"t.py::test_{i}", "outcome": "failed"} for i in range(30)]
    rc, out = cli(["annotate", "--evidence", str(write(tmp_path, {"tests": tests}))])
    lines = out.splitlines()
    assert rc == 0
    assert len(lines) == 11
    assert lines[-1].startswith("::warning") and "20 more failures" in lines[-1]


def test_annotate_rejects_unreadable_evidence(cli, tmp_path):
    (tmp_path / "evidence.json").write_text("{not json")
    assert cli(["annotate", "--evidence", str(tmp_path / "evidence.json")])[0] == 2
    assert cli(["annotate", "--evidence", str(tmp_path / "missing.json")])[0] == 2
    assert (
        cli(["annotate", "--evidence", str(write(tmp_path, {"tests": []})), "--max", "-1"])[0] == 2
    )


@pytest.mark.parametrize(
    "path, expected",
    [
        ("tests/a.py", "tests/a.py"),
        ("tests/./x/../a.py", "tests/a.py"),
        ("/etc/passwd", None),
        ("../outside.py", None),
        ("tests/../../outside.py", None),
        ("C:/x.py", None),
        ("a\\b.py", None),
        ("tests/a\n.py", None),
        ("", None),
        (None, None),
    ],
)
def test_annotation_paths_stay_inside_the_repository(path, expected):
    assert safe_path(path) == expected


def test_a_row_with_a_hostile_path_falls_back_to_its_node_id():
    rows = [{"nodeid": "tests/a.py::t", "outcome": "failed", "path": "/etc/passwd", "line": True}]
    (note,) = annotations_for_tests({"tests": rows})
    assert (note.path, note.line) == ("tests/a.py", 1)


def test_step_summary_appends_with_links(cli, tmp_path, monkeypatch):
    target = tmp_path / "step_summary.md"
    target.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    summary = tmp_path / "summary.md"
    summary.write_text("## Evidence\n")
    argv = ["step-summary", "--summary", str(summary), "--report-url", "https://r", "--run-url", ""]
    rc, out = cli(argv)
    assert (rc, out) == (0, "")
    assert target.read_text() == "earlier step\n## Evidence\n\n[Report](https://r)\n"


def test_step_summary_stays_under_one_mib(cli, tmp_path, monkeypatch):
    target = tmp_path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    summary = tmp_path / "summary.md"
    summary.write_text("| é😀 row |\n" * 200_000, encoding="utf-8")  # ~3 MB of UTF-8
    assert cli(["step-summary", "--summary", str(summary)])[0] == 0
    assert target.stat().st_size <= 1024 * 1024
    assert target.read_text(encoding="utf-8").endswith("the report has everything._\n")


def test_step_summary_prints_off_github_and_needs_its_file(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    summary = tmp_path / "summary.md"
    summary.write_text("hello\n")
    assert cli(["step-summary", "--summary", str(summary)]) == (0, "hello\n")
    assert cli(["step-summary", "--summary", str(tmp_path / "nope.md")])[0] == 2
