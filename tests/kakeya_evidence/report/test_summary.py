from __future__ import annotations

import re

import pytest

from kakeya_evidence.report.summary import MAX_SUMMARY_CHARS, escape_markdown, render_summary


def _evidence(failures: int, nodeid_width: int = 10, **extra) -> dict:
    tests = [
        {
            "nodeid": f"t.py::test_{i}_" + "x" * nodeid_width,
            "outcome": "failed",
            "message": "x" * 250,
            "duration_s": 1.0,
        }
        for i in range(failures)
    ]
    evidence = {
        "verdict": "failed" if failures else "passed",
        "exit_code": 1 if failures else 0,
        "model": {
            "id": "kakeya/tiny-qwen3",
            "device_requested": "auto",
            "device": "cpu",
            "dtype_requested": "auto",
            "dtype": "bfloat16",
        },
        "host": {"os": "Linux", "cpu_cores_logical": 2, "memory_total_bytes": 8 * 2**30},
        "counts": {"passed": 3, "failed": failures},
        "stages": [{"name": "integration_suite", "status": "ok", "duration_s": 2.0, "reason": ""}],
        "tests": tests,
        "provenance": {"run_url": None},
    }
    evidence.update(extra)
    return evidence


def test_summary_holds_verdict_counts_failures_model_and_host_in_human_units():
    text = render_summary(_evidence(2))
    assert "## Kakeya evidence: FAILED" in text
    assert "| 3 | 2 |" in text
    assert "t.py::test_1" in text
    assert "cpu (requested auto), dtype bfloat16 (requested auto)" in text
    assert "8.0 GiB memory" in text and "8589934592" not in text


def test_a_local_run_leaves_no_placeholder_and_says_so():
    text = render_summary(_evidence(0))
    assert not re.search(r"\{[a-z_]+\}", text)
    assert "Local run" in text


def test_a_ci_run_links_its_run():
    url = "https://github.com/o/r/actions/runs/1"
    text = render_summary(_evidence(0, provenance={"run_url": url}))
    assert f"Run: {url}" in text and "{" not in text


@pytest.mark.parametrize("nodeid_width", [10, 150, 190])
def test_the_failure_table_takes_every_row_that_fits_whatever_its_length(nodeid_width):
    text = render_summary(_evidence(2000, nodeid_width))
    assert len(text) <= MAX_SUMMARY_CHARS
    rows = [line for line in text.splitlines() if line.startswith("| t.py::test_")]
    left_out = int(re.search(r"_(\d+) more failing tests not shown", text).group(1))
    assert len(rows) + left_out == 2000
    # one more row would not have fitted: the table is as full as the limit allows
    assert len(text) + len(rows[-1]) + 1 > MAX_SUMMARY_CHARS - 100
    assert len(rows) >= 50


def test_new_failures_come_first_and_are_marked():
    evidence = _evidence(3, baseline={"tests": {"new_failures": ["t.py::test_2_xxxxxxxxxx"]}})
    rows = [line for line in render_summary(evidence).splitlines() if "t.py::test_" in line]
    assert rows[0].startswith("| **new** t.py::test_2")


def test_the_baseline_changes_come_before_the_tables():
    evidence = _evidence(
        1,
        baseline={
            "commit": "abcdef1234567890",
            "tests": {"new_failures": ["a"], "fixed": ["b", "c"], "still_failing": []},
            "perf": [{"metric": "decode_tok_s.runtime", "regression": True}],
        },
    )
    text = render_summary(evidence)
    changes = text.index("**Against the baseline** (commit `abcdef123456`)")
    assert changes < text.index("| stage |")
    assert (
        "1 new failures; 2 fixed; 0 still failing; perf regressions: decode_tok_s.runtime" in text
    )


def test_markdown_escaping_neutralises_html_and_table_syntax():
    assert escape_markdown("<script>a|b</script>") == "&lt;script&gt;a\\|b&lt;/script&gt;"
