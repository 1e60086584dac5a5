from __future__ import annotations

import json
from pathlib import Path

from report_support import make_test, write_run

from kakeya_evidence.report import write_report
from kakeya_evidence.report.evidence import SCHEMA, build_evidence, decide_verdict
from kakeya_evidence.stages import STAGES, write_stage


def _ok(name: str) -> dict:
    return {"name": name, "status": "ok"}


def test_verdict_is_error_when_a_stage_is_not_ok_else_from_the_tests_and_gates():
    ok = [_ok(n) for n in STAGES]
    assert decide_verdict(ok, {"failed": 0, "error": 0}) == "passed"
    assert decide_verdict(ok, {"failed": 0, "error": 1}) == "failed"
    crashed = [*ok[:2], {"name": "integration_suite", "status": "crashed"}, ok[3]]
    assert decide_verdict(crashed, {"failed": 0}) == "error"
    gate = {"name": "g", "passed": False, "detail": ""}
    assert decide_verdict(ok, {}, [gate]) == "failed"
    assert decide_verdict(crashed, {}, [gate]) == "error"


def test_evidence_has_the_schema_fields_and_overrides_win(tmp_path: Path):
    write_stage(tmp_path, "host_check", {"status": "ok", "duration_s": 1.0, "host": {"mps": True}})
    write_stage(tmp_path, "cache_prewarm", {"status": "ok", "cache": {"revision": "r1"}})
    write_stage(
        tmp_path,
        "integration_suite",
        {"status": "ok", "pytest_wall_s": 4.0, "counts": {"passed": 2}, "tests": []},
    )
    overrides = {"results_report": {"status": "crashed", "reason": "kernel died"}}
    evidence = build_evidence(
        tmp_path,
        parameters={"model": "m", "device": "auto", "dtype": "auto"},
        stage_overrides=overrides,
        total_wall_s=10.0,
    )
    for key in ("schema", "verdict", "exit_code", "stages", "counts", "tests", "pytest_wall_s"):
        assert key in evidence
    for key in ("total_wall_s", "host", "model", "provenance", "perf", "baseline", "suite"):
        assert key in evidence
    assert evidence["schema"] == SCHEMA
    # today's suite records no resolved dtype: the device falls back to the host, dtype unknown
    assert evidence["model"] == {
        "id": "m",
        "revision": "r1",
        "device_requested": "auto",
        "device": "mps",
        "dtype_requested": "auto",
        "dtype": None,
    }
    assert evidence["stages"][3] == {
        "name": "results_report",
        "status": "crashed",
        "duration_s": None,
        "reason": "kernel died",
    }
    assert (evidence["verdict"], evidence["exit_code"]) == ("error", 2)
    assert evidence["orchestration_overhead_s"] == 6.0
    assert evidence["counts"]["flaky"] == 0 and evidence["counts"]["not_run"] == 0
    assert set(evidence["provenance"]) >= {"commit", "dirty", "parameters", "packages", "run_url"}


def test_missing_stage_files_are_skipped_stages(tmp_path: Path):
    evidence = build_evidence(tmp_path)
    assert [s["status"] for s in evidence["stages"]] == ["skipped"] * 4
    assert evidence["verdict"] == "error"


def test_the_model_names_requested_and_resolved_device_and_dtype(tmp_path: Path):
    load = {"model_id": "m", "load_s": 0.5, "device": "cpu", "dtype": "bfloat16"}
    write_run(tmp_path, [make_test("t.py::a")], model_load=load)
    report = write_report(tmp_path, parameters={"model": "m", "device": "auto", "dtype": "auto"})
    model = json.loads((tmp_path / "evidence.json").read_text())["model"]
    assert (model["device_requested"], model["device"]) == ("auto", "cpu")
    assert (model["dtype_requested"], model["dtype"]) == ("auto", "bfloat16")
    header = report.html_path.read_text().split('id="gates"')[0]
    assert "cpu (requested auto)" in header and "dtype bfloat16 (requested auto)" in header
    assert "dtype bfloat16 (requested auto)" in report.summary


def test_an_explicit_dtype_is_the_resolved_one_when_the_model_never_loaded(tmp_path: Path):
    write_run(tmp_path, [make_test("t.py::a")])
    write_report(tmp_path, parameters={"model": "m", "device": "cpu", "dtype": "float32"})
    model = json.loads((tmp_path / "evidence.json").read_text())["model"]
    assert (model["device"], model["dtype"]) == ("cpu", "float32")


def test_the_suite_section_copies_where_pytest_ran_and_accepts_its_absence(tmp_path: Path):
    suite = {
        "cwd": "/repo",
        "rootdir": "/repo",
        "command": ["python", "-m", "pytest", "tests"],
        "tests_commit": "abc",
        "leftover_processes": [{"pid": 42, "cmdline": "sleep 100", "killed": True}],
        "workers": 2,
        "shard": "1/3",
    }
    write_run(tmp_path / "new", [make_test("t.py::a")], suite=suite)
    evidence = write_report(tmp_path / "new").evidence
    assert evidence["suite"] == {**suite, "deselected": None, "added_options": None}
    html = (tmp_path / "new" / "report.html").read_text()
    assert "python -m pytest tests" in html and "sleep 100" in html
    assert "left 1 process(es) running" in (tmp_path / "new" / "summary.md").read_text()
    write_run(tmp_path / "old", [make_test("t.py::a")])
    assert set(write_report(tmp_path / "old").evidence["suite"].values()) == {None}


def test_evidence_json_holds_no_test_output_the_report_holds_it_once(tmp_path: Path):
    marker = "UNIQUE-OUTPUT-MARKER"
    tests = [
        make_test("t.py::a", "failed", traceback=f"tb {marker}-T", stdout=f"{marker}-O"),
        make_test("t.py::b", "passed", stderr=f"{marker}-E"),
    ]
    write_run(tmp_path, tests)
    write_report(tmp_path)
    evidence_text = (tmp_path / "evidence.json").read_text()
    assert marker not in evidence_text
    rows = json.loads(evidence_text)["tests"]
    assert {"nodeid", "outcome", "message", "exception", "path", "line", "duration_s"} <= set(
        rows[0]
    )
    html = (tmp_path / "report.html").read_text()
    for suffix in ("-T", "-O", "-E"):
        assert html.count(marker + suffix) == 1
