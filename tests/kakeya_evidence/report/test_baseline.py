from __future__ import annotations

import json
from pathlib import Path

from kakeya_evidence.report.baseline import compare, compare_perf, compare_tests, perf_metrics

FIXTURES = Path(__file__).parents[1] / "fixtures"


def _tests(**outcomes: str) -> list[dict[str, str]]:
    return [{"nodeid": f"t.py::{name}", "outcome": outcome} for name, outcome in outcomes.items()]


def test_status_changes_against_the_baseline():
    before = _tests(a="passed", b="failed", c="failed", d="passed", gone="passed")
    now = _tests(a="failed", b="passed", c="error", d="flaky", new="passed")
    changes = compare_tests(now, before)
    assert changes == {
        "new_failures": ["t.py::a"],
        "new_tests_failing": [],
        "fixed": ["t.py::b"],
        "still_failing": ["t.py::c"],
        "added": ["t.py::new"],
        "removed": ["t.py::gone"],
        "flaky": ["t.py::d"],
    }


def test_a_failing_test_absent_from_the_baseline_is_a_new_failure():
    before = _tests(a="passed")
    now = _tests(a="failed", b="failed", c="error", d="passed")
    changes = compare_tests(now, before)
    assert changes["new_failures"] == ["t.py::a", "t.py::b", "t.py::c"]
    assert changes["new_tests_failing"] == ["t.py::b", "t.py::c"]
    assert changes["added"] == ["t.py::b", "t.py::c", "t.py::d"]


def test_perf_regression_is_flagged_only_beyond_the_measured_spread():
    now = json.loads((FIXTURES / "bench.json").read_text())
    before = json.loads((FIXTURES / "bench_baseline.json").read_text())
    rows = {row["metric"]: row for row in compare_perf(now, before)}
    # 410 vs 500 tok/s with spreads 12 + 10: a regression.
    assert rows["decode_tok_s.runtime"]["regression"] is True
    # 380 vs 390 with spreads 15 + 10: within noise.
    assert rows["decode_tok_s.sdk_grpc"]["regression"] is False
    assert rows["decode_tok_s.sdk_grpc"]["improvement"] is False
    # 300 vs 290 with spreads 9 + 8: within noise, not an improvement.
    assert rows["decode_tok_s.hf_loop"]["improvement"] is False
    # Lower is better for time to first token: 0.015 vs 0.010 beyond 0.003 is a regression.
    assert rows["ttft_s.sdk_grpc"]["regression"] is True
    assert rows["ttft_s.runtime"]["regression"] is False


def test_metrics_without_a_spread_use_the_default_noise_floor():
    rows = compare_perf({"decode_tok_s": {"runtime": 95.0}}, {"decode_tok_s": {"runtime": 100.0}})
    assert rows[0]["noise"] == 10.0
    assert rows[0]["regression"] is False
    rows = compare_perf({"decode_tok_s": {"runtime": 80.0}}, {"decode_tok_s": {"runtime": 100.0}})
    assert rows[0]["regression"] is True


def test_perf_metrics_flatten_bench_json():
    metrics = perf_metrics(json.loads((FIXTURES / "bench.json").read_text()))
    assert metrics["decode_tok_s.runtime"] == (410.0, 12.0, 1)
    assert metrics["long_session.ratio_last_first.full_reprefill"] == (5.0, None, -1)


def test_compare_whole_evidence_without_perf():
    evidence = {"tests": _tests(a="failed"), "perf": None}
    baseline = {"tests": _tests(a="passed"), "verdict": "passed", "provenance": {"commit": "abc"}}
    section = compare(evidence, baseline)
    assert section["tests"]["new_failures"] == ["t.py::a"]
    assert section["perf"] == []
    assert section["commit"] == "abc"
