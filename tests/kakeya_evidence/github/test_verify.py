"""The recheck against a real pytest run: the plugin's record and pytest's own junit.xml."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kakeya_evidence.github.verify import read_raw_suite, recheck
from kakeya_evidence.stages.record import parse_record
from kakeya_evidence.stages.results import fold_record

SUITE = """
import pytest

def test_pass(): pass
def test_fail(): assert 0
@pytest.fixture
def bad(): raise RuntimeError("setup")
def test_error(bad): pass
@pytest.fixture
def td():
    yield
    raise RuntimeError("teardown")
def test_fail_and_teardown(td): assert 0
def test_pass_teardown_error(td): pass
@pytest.mark.xfail(strict=True)
def test_xpass_strict(): pass
@pytest.mark.xfail
def test_xfail(): assert 0
def test_skip(): pytest.skip("no")
"""


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An evidence directory as the suite stage leaves it, from a real pytest run."""
    root = tmp_path_factory.mktemp("real")
    (root / "t").mkdir()
    (root / "t" / "test_mix.py").write_text(SUITE)
    out = root / "out"
    (out / "pytest" / "run0").mkdir(parents=True)
    env = {**os.environ, "KAKEYA_EVIDENCE_RECORD": str(out / "pytest" / "run0" / "record.jsonl")}
    argv = [sys.executable, "-m", "pytest", "t", "-q", "-p", "kakeya_evidence.stages.pytest_plugin"]
    argv += ["-p", "no:cacheprovider", "-o", "addopts=", f"--junitxml={out / 'junit.xml'}"]
    subprocess.run(argv, cwd=root, env=env, capture_output=True, timeout=120, check=False)
    return out


def pipeline_rows(out: Path) -> list[dict[str, object]]:
    """The rows the pipeline's own fold writes into evidence.json."""
    rows = fold_record(parse_record(out / "pytest" / "run0" / "record.jsonl"))
    return [{"nodeid": r.nodeid, "outcome": str(r.outcome)} for r in rows]


def test_a_real_runs_evidence_agrees_with_its_raw_files(real_run):
    raw = read_raw_suite(real_run)
    assert raw is not None and raw.finished
    assert raw.junit_failing == len(raw.failing) == 5  # fail+teardown counts once
    assert recheck({"exit_code": 1, "tests": pipeline_rows(real_run)}, raw).agrees


def test_a_real_run_reported_as_passed_disagrees(real_run):
    rows = [{**r, "outcome": "passed"} for r in pipeline_rows(real_run)]
    result = recheck({"exit_code": 0, "tests": rows}, read_raw_suite(real_run))
    assert not result.agrees
    assert "evidence.json lists 0 failing tests, the record 5" in result.reason
