from __future__ import annotations

import json

import pytest
from report_support import BASELINE_PERF, PERF, make_test, write_run

from kakeya_evidence.cli import main
from kakeya_evidence.errors import ParameterError
from kakeya_evidence.report import ReportConfig, write_report
from kakeya_evidence.report.gates import GateConfig, evaluate_gates


def _baseline(tmp_path, tests, perf=None):
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps({"verdict": "passed", "tests": tests, "perf": perf}))
    return str(path)


def _perf(runtime: float, spread: float) -> dict:
    return {"decode_tok_s": {"runtime": runtime}, "decode_tok_s_spread": {"runtime": spread}}


def test_default_gates_pass_and_say_why_without_a_baseline(tmp_path):
    write_run(tmp_path, [make_test("t.py::a")])
    report = write_report(tmp_path)
    gates = json.loads((tmp_path / "evidence.json").read_text())["gates"]
    assert [g["name"] for g in gates] == ["no_new_failures", "perf:decode_tok_s.runtime"]
    assert all(g["passed"] and g["detail"].startswith("not evaluated") for g in gates)
    assert report.exit_code == 0


def test_a_new_failure_fails_its_gate_the_verdict_and_the_exit_code(tmp_path):
    write_run(tmp_path / "ev", [make_test("t.py::a", "failed"), make_test("t.py::b", "failed")])
    baseline = _baseline(tmp_path, [{"nodeid": "t.py::a", "outcome": "passed"}])
    report = write_report(tmp_path / "ev", ReportConfig(baseline=baseline))
    gate = report.evidence["gates"][0]
    assert gate == {
        "name": "no_new_failures",
        "passed": False,
        "detail": "1 new failing test(s): t.py::a",
    }
    assert report.exit_code == 1
    html = report.html_path.read_text()
    header = html[: html.index('id="gates"')]
    assert "Gates failed" in header and "no_new_failures" in header
    assert "**FAILED**" in report.summary and "Quality gates: 1 of 2 failed" in report.summary


def test_a_perf_gate_alone_fails_a_run_whose_tests_pass(tmp_path):
    write_run(tmp_path / "ev", [make_test("t.py::a")], perf=PERF)
    baseline = _baseline(tmp_path, [{"nodeid": "t.py::a", "outcome": "passed"}], BASELINE_PERF)
    report = write_report(tmp_path / "ev", ReportConfig(baseline=baseline))
    perf_gate = report.evidence["gates"][1]
    assert perf_gate["name"] == "perf:decode_tok_s.runtime" and not perf_gate["passed"]
    assert perf_gate["detail"].startswith("regressed: 410 against 500")
    assert (report.evidence["verdict"], report.exit_code) == ("failed", 1)
    assert report.html_path.read_text().split("<h1>")[1].startswith("FAILED: 1 gate(s) failed")


@pytest.mark.parametrize(
    ("current", "spreads", "passes"),
    [
        (95.0, (3.0, 3.0), True),  # -5 % within the measured noise of 6
        (80.0, (3.0, 3.0), False),  # -20 % beyond it
        (10.0, (200.0, 200.0), False),  # -90 %: huge measured noise is capped, still fails
        (130.0, (1.0, 1.0), True),  # faster is never a regression
    ],
)
def test_the_decode_gate_fails_beyond_the_noise_and_always_on_a_90_percent_drop(
    current, spreads, passes
):
    from kakeya_evidence.report.baseline import compare

    evidence = {"tests": [], "perf": _perf(current, spreads[0])}
    evidence["baseline"] = compare(evidence, {"tests": [], "perf": _perf(100.0, spreads[1])})
    gates = evaluate_gates(evidence, GateConfig(new_failures=False))
    assert gates[0]["passed"] is passes, gates[0]


def test_the_suite_time_bound_is_a_gate_when_given(tmp_path):
    write_run(tmp_path, [make_test("t.py::a")])  # the suite stage took 12 s
    report = write_report(tmp_path, ReportConfig(gates=GateConfig(max_suite_s=5)))
    assert report.evidence["gates"][-1] == {
        "name": "max_suite_s",
        "passed": False,
        "detail": "suite took 12.0 s, bound 5 s",
    }
    assert report.exit_code == 1
    report = write_report(tmp_path, ReportConfig(gates=GateConfig(max_suite_s=60)))
    assert report.evidence["gates"][-1]["passed"] and report.exit_code == 0


def test_a_failed_gate_does_not_hide_a_stage_error(tmp_path):
    write_run(tmp_path, [make_test("t.py::a")], status="crashed")
    report = write_report(tmp_path, ReportConfig(gates=GateConfig(max_suite_s=1)))
    assert (report.evidence["verdict"], report.exit_code) == ("error", 2)


def test_gates_are_configured_from_the_command_line(tmp_path):
    write_run(tmp_path / "ev", [make_test("t.py::a", "failed")])
    baseline = _baseline(tmp_path, [{"nodeid": "t.py::a", "outcome": "passed"}])
    out = str(tmp_path / "ev")
    assert main(["report", "--output", out, "--baseline", baseline, "--max-suite-s", "1"]) == 1
    names = [
        g["name"] for g in json.loads((tmp_path / "ev" / "evidence.json").read_text())["gates"]
    ]
    assert names == ["no_new_failures", "perf:decode_tok_s.runtime", "max_suite_s"]
    main(["report", "--output", out, "--no-gate-new-failures", "--no-gate-perf"])
    assert json.loads((tmp_path / "ev" / "evidence.json").read_text())["gates"] == []


def test_gates_are_configured_from_the_notebook_parameters():
    gates = {"new_failures": False, "max_suite_s": 30.0, "perf_noise_cap_pct": 20.0}
    config = ReportConfig(**{"gates": gates})
    assert config.gates == GateConfig(new_failures=False, max_suite_s=30.0, perf_noise_cap_pct=20.0)
    assert ReportConfig(gates={"max_suite_s": None}).gates.max_suite_s is None
    with pytest.raises(TypeError, match="max_suite"):
        ReportConfig(gates={"max_suite": 30.0})  # an unknown name is refused, not ignored


@pytest.mark.parametrize(
    "kwargs",
    [{"max_suite_s": 0}, {"max_suite_s": float("inf")}, {"perf_noise_cap_pct": 0}],
)
def test_bad_gate_bounds_are_parameter_errors_naming_the_field(kwargs):
    with pytest.raises(ParameterError, match=next(iter(kwargs))):
        GateConfig(**kwargs)
