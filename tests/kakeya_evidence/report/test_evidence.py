from __future__ import annotations

from pathlib import Path

from kakeya_evidence.report.evidence import SCHEMA, build_evidence, decide_verdict
from kakeya_evidence.stages import STAGES, write_stage


def _ok(name: str) -> dict:
    return {"name": name, "status": "ok"}


def test_verdict_is_error_when_a_stage_is_not_ok_else_from_the_tests():
    ok = [_ok(n) for n in STAGES]
    assert decide_verdict(ok, {"failed": 0, "error": 0}) == "passed"
    assert decide_verdict(ok, {"failed": 0, "error": 1}) == "failed"
    crashed = [*ok[:2], {"name": "integration_suite", "status": "crashed"}, ok[3]]
    assert decide_verdict(crashed, {"failed": 0}) == "error"


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
    for key in ("total_wall_s", "host", "model", "provenance", "perf", "baseline"):
        assert key in evidence
    assert evidence["schema"] == SCHEMA
    assert evidence["model"] == {"id": "m", "revision": "r1", "device": "mps", "dtype": "auto"}
    assert evidence["stages"][3] == {
        "name": "results_report",
        "status": "crashed",
        "duration_s": None,
        "reason": "kernel died",
    }
    assert (evidence["verdict"], evidence["exit_code"]) == ("error", 2)
    assert evidence["orchestration_overhead_s"] == 6.0
    assert evidence["counts"]["flaky"] == 0
    assert set(evidence["provenance"]) >= {"commit", "dirty", "parameters", "packages", "run_url"}


def test_missing_stage_files_are_skipped_stages(tmp_path: Path):
    evidence = build_evidence(tmp_path)
    assert [s["status"] for s in evidence["stages"]] == ["skipped"] * 4
    assert evidence["verdict"] == "error"
