"""The suite stage against fixture suites: every outcome, reruns, a crash, hangs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kakeya_evidence.errors import StageError
from kakeya_evidence.stages.suite import SuiteConfig, run_suite, run_suite_stage

pytestmark = pytest.mark.slow


def _config(tests: Path, out: Path, **overrides) -> SuiteConfig:
    return SuiteConfig(tests=str(tests), output_dir=str(out), cwd=str(tests), **overrides)


def test_every_outcome_is_recorded_and_a_rerun_pass_is_flaky(fixture_suite, tmp_path):
    out = tmp_path / "ev"
    outcome = run_suite(_config(fixture_suite("outcomes"), out, rerun_failures=1))
    by_name = {r.nodeid.split("::")[-1]: r for r in outcome.results}
    assert outcome.status == "ok"
    assert by_name["test_passes"].outcome == "passed"
    assert by_name["test_fails"].outcome == "failed"
    assert by_name["test_fails"].message == "AssertionError: arithmetic is broken"
    assert "stdout of a failing test" in by_name["test_fails"].stdout
    assert by_name["test_errors"].outcome == "error"
    assert by_name["test_skipped"].outcome == "skipped"
    assert by_name["test_skipped"].message.endswith("not on this host")
    assert by_name["test_xfails"].outcome == "xfailed"
    assert by_name["test_flaky"].outcome == "flaky"
    assert by_name["test_flaky"].rerun_outcomes == ("passed",)
    assert by_name["test_fails"].rerun_outcomes == ("failed",)
    assert outcome.counts["flaky"] == 1
    stage = json.loads((out / "stages" / "integration_suite.json").read_text())
    assert stage["counts"] == outcome.counts
    assert (out / "junit.xml").is_file()


def test_a_killed_pytest_process_names_the_running_test(fixture_suite, tmp_path):
    outcome = run_suite(_config(fixture_suite("crash"), tmp_path / "ev"))
    assert outcome.status == "crashed"
    assert "SIGKILL" in outcome.reason
    assert "test_kills_process" in outcome.reason
    crashed = [r for r in outcome.results if r.nodeid.endswith("test_kills_process")]
    assert crashed[0].outcome == "error"
    assert [r.outcome for r in outcome.results if r.nodeid.endswith("test_before_crash")] == [
        "passed"
    ]


def test_a_test_past_its_timeout_fails_with_its_stack(fixture_suite, tmp_path):
    outcome = run_suite(_config(fixture_suite("hang"), tmp_path / "ev", test_timeout_s=1.0))
    hung = next(r for r in outcome.results if r.nodeid.endswith("test_hangs_forever"))
    assert outcome.status == "ok"
    assert hung.outcome == "failed"
    assert "Timeout" in hung.message
    assert "test_hang.py" in hung.traceback


def test_the_stage_watchdog_kills_a_hang_and_keeps_its_stack(fixture_suite, tmp_path):
    config = _config(fixture_suite("hang"), tmp_path / "ev", test_timeout_s=600, stage_timeout_s=3)
    with pytest.raises(StageError) as caught:
        run_suite_stage(config)
    assert caught.value.status == "timeout"
    assert "test_hangs_forever" in caught.value.reason
    stage = json.loads((tmp_path / "ev" / "stages" / "integration_suite.json").read_text())
    hung = next(t for t in stage["tests"] if t["nodeid"].endswith("test_hangs_forever"))
    assert "test_hang.py" in hung["traceback"]
    assert "thread stacks" in hung["traceback"]


def test_no_tests_is_a_failed_stage(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    outcome = run_suite(_config(empty, tmp_path / "ev"))
    assert outcome.status == "failed"
    assert "no tests" in outcome.reason


def test_the_suites_own_model_load_is_recorded_and_reported(tmp_path):
    """The model fixture's load time reaches the stage file and the evidence's cache facts."""
    from kakeya_evidence.report.evidence import build_evidence
    from kakeya_evidence.stages import write_stage

    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_load.py").write_text(
        "import json, os\n"
        "def test_loads():\n"
        "    path = os.environ['KAKEYA_MODEL_LOAD_FILE']\n"
        "    open(path, 'w').write(json.dumps({'model_id': 'm', 'load_s': 1.25}))\n"
    )
    out = tmp_path / "ev"
    outcome = run_suite(SuiteConfig(tests=str(suite), output_dir=str(out), cwd=str(suite)))
    assert outcome.model_load == {"model_id": "m", "load_s": 1.25}
    write_stage(out, "cache_prewarm", {"status": "ok", "cache": {"id": "m", "load_s": None}})
    assert build_evidence(out)["cache"]["load_s"] == 1.25
