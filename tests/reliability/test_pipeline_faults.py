"""Evidence pipeline faults the stage-level tests do not reach through the whole run.

A hanging test through `kakeya-evidence run`; damaged JUnit (empty, truncated, malformed)
through the suite stage and the report; bad parameters and an unwritable output directory
through the command line. Each ends with its documented exit code and, where DIR is
writable, with report.html, evidence.json and summary.md naming the cause; nothing already
produced is lost.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from reliability_support import EVIDENCE_FIXTURES, FIXTURES, REPO

from kakeya_evidence.cli import main
from kakeya_evidence.report import write_report
from kakeya_evidence.runner import NOTEBOOKS, run_with
from kakeya_evidence.stages.cache import CacheConfig, run_cache_stage
from kakeya_evidence.stages.host import run_host_check
from kakeya_evidence.stages.suite import SuiteConfig, run_suite

ARTIFACTS = ("report.html", "evidence.json", "summary.md")
DAMAGED = {
    "empty": lambda text: text == "",
    "truncated": lambda text: "<testsuite" in text and "</testsuites>" not in text,
    "malformed": lambda text: "<testcase <<" in text,
}


def copy_suite(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / f"suite_{source.name}"
    shutil.copytree(source, target)
    return target


def evidence_of(out: Path) -> dict:
    found = sorted(os.listdir(out)) if out.is_dir() else "(no directory)"
    for name in ARTIFACTS:
        assert (out / name).is_file(), f"{name} missing from {found}"
    return json.loads((out / "evidence.json").read_text())


def stages_of(evidence: dict) -> dict[str, dict]:
    return {stage["name"]: stage for stage in evidence["stages"]}


@pytest.mark.notebook
@pytest.mark.slow
def test_a_hanging_test_through_the_cli_is_a_named_failure_and_keeps_everything(tmp_path):
    out = tmp_path / "ev"
    out.mkdir()
    earlier = out / "notes-from-an-earlier-step.txt"
    earlier.write_text("kept")
    tests = copy_suite(EVIDENCE_FIXTURES / "hang", tmp_path)
    argv = ["run", "--output", str(out), "--tests", str(tests), "--test-timeout", "2"]
    code = main(argv)
    evidence = evidence_of(out)
    assert code == 1 == evidence["exit_code"] and evidence["verdict"] == "failed"
    assert [s["status"] for s in evidence["stages"]] == ["ok"] * 4, evidence["stages"]
    hung = [t for t in evidence["tests"] if t["nodeid"].endswith("test_hangs_forever")]
    assert hung and hung[0]["outcome"] == "failed" and "Timeout" in hung[0]["message"]
    assert evidence["counts"]["passed"] == 1 and evidence["counts"]["failed"] == 1
    assert "test_hangs_forever" in (out / "summary.md").read_text()
    assert "test_hangs_forever" in (out / "report.html").read_text()
    assert earlier.read_text() == "kept"
    for notebook in NOTEBOOKS.values():
        assert (out / notebook).is_file(), notebook
    assert (out / "junit.xml").is_file()
    assert list((out / "pytest").glob("run0/log.txt.gz"))


@pytest.fixture(scope="module")
def setup_stages(tmp_path_factory) -> Path:
    """The stage files of a real host check and cache check, as the notebooks write them."""
    out = tmp_path_factory.mktemp("setup")
    run_host_check(out)
    run_cache_stage(out, CacheConfig(measure_load=False))
    return out / "stages"


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["empty", "truncated", "malformed"])
def test_damaged_junit_still_gives_the_full_results_and_report(
    tmp_path, monkeypatch, setup_stages, damage
):
    monkeypatch.setenv("GARBLE_JUNIT", damage)
    tests = copy_suite(FIXTURES / "garbled_junit", tmp_path)
    out = tmp_path / "ev"
    shutil.copytree(setup_stages, out / "stages")  # host check and cache, run once
    outcome = run_suite(SuiteConfig(tests=str(tests), output_dir=str(out), cwd=str(tests)))
    junit = (out / "junit.xml").read_text()
    assert DAMAGED[damage](junit), junit[:300]  # the stage kept the damaged file as it was
    assert outcome.status == "ok", outcome.reason
    assert (outcome.counts["passed"], outcome.counts["failed"]) == (1, 1)
    report = write_report(out)
    evidence = evidence_of(out)
    assert report.evidence["exit_code"] == 1 and evidence["verdict"] == "failed"
    failed = [t for t in evidence["tests"] if t["outcome"] == "failed"]
    assert [t["nodeid"].split("::")[-1] for t in failed] == ["test_fails_after_output"]
    assert "the failure the report must still name" in failed[0]["message"]
    assert "stdout of the failing test" in (out / "report.html").read_text()  # outputs live there
    assert "test_fails_after_output" in (out / "summary.md").read_text()


def test_a_bad_timeout_ends_with_exit_2_and_a_report_naming_it(tmp_path):
    out = tmp_path / "ev"
    config = dict(output=str(out), tests=str(tmp_path), test_timeout_s=-5.0)
    assert run_with(**config) == 2
    evidence = evidence_of(out)
    assert evidence["exit_code"] == 2 and evidence["verdict"] == "error"
    assert "test_timeout_s must be a number > 0" in stages_of(evidence)["host_check"]["reason"]
    assert "test_timeout_s" in (out / "summary.md").read_text()


@pytest.mark.parametrize(
    "flags",
    [["--device", "tpu"], ["--test-timeout", "-5"], ["--stage-timeout", "nan"]],
    ids=["unknown-device", "negative-test-timeout", "nan-stage-timeout"],
)
def test_invalid_cli_parameters_exit_2_with_the_report_in_a_writable_dir(tmp_path, flags):
    out = tmp_path / "ev"
    argv = ["run", "--output", str(out), "--tests", str(tmp_path), *flags]
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse refusing is still the documented exit code...
        code = stop.code
    assert code == 2
    evidence = evidence_of(out)  # ...but the run must leave its report in DIR
    reasons = " ".join(stage["reason"] for stage in evidence["stages"])
    assert flags[0].lstrip("-").split("-")[0] in reasons


def test_an_unwritable_output_dir_fails_fast_through_the_console_command(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    command = [sys.executable, "-m", "kakeya_evidence.cli", "run", "--output", str(blocker / "ev")]
    done = subprocess.run(
        [*command, "--tests", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "is not writable" in done.stderr and str(blocker) in done.stderr
    assert "Traceback" not in done.stderr
    assert blocker.read_text() == "not a directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # no work was started
