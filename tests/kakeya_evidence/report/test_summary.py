from __future__ import annotations

from kakeya_evidence.report.summary import MAX_SUMMARY_CHARS, escape_markdown, render_summary


def _evidence(failures: int) -> dict:
    tests = [
        {"nodeid": f"t.py::test_{i}", "outcome": "failed", "message": "x" * 250, "duration_s": 1.0}
        for i in range(failures)
    ]
    return {
        "verdict": "failed" if failures else "passed",
        "exit_code": 1 if failures else 0,
        "model": {"id": "kakeya/tiny-qwen3", "device": "cpu"},
        "counts": {"passed": 3, "failed": failures},
        "stages": [{"name": "integration_suite", "status": "ok", "duration_s": 2.0, "reason": ""}],
        "tests": tests,
    }


def test_summary_holds_verdict_counts_failures_and_link_placeholders():
    text = render_summary(_evidence(2))
    assert "## Kakeya evidence: FAILED" in text
    assert "| 3 | 2 |" in text
    assert "t.py::test_1" in text
    assert "{report_url}" in text and "{run_url}" in text


def test_summary_stays_under_the_comment_limit_and_says_what_it_dropped():
    text = render_summary(_evidence(2000))
    assert len(text) <= MAX_SUMMARY_CHARS
    assert "more failing tests not shown" in text
    assert "{report_url}" in text


def test_markdown_escaping_neutralises_html_and_table_syntax():
    assert escape_markdown("<script>a|b</script>") == "&lt;script&gt;a\\|b&lt;/script&gt;"
