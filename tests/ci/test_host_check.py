"""Fault 4: the host check can fail, names what is missing, and stops a run it cannot serve.

This Linux machine has no MPS, so asking for it must fail here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kakeya_evidence.cli import main
from kakeya_evidence.errors import ParameterError
from kakeya_evidence.stages.host import HostRequirements, unmet_requirements

ROOT = Path(__file__).resolve().parents[2]


def host_check(out: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from kakeya_evidence.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = [sys.executable, "-c", code, "host-check", "--output", str(out), *flags]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT, check=False)


def stage(out: Path) -> dict:
    return json.loads((out / "stages" / "host_check.json").read_text())


@pytest.fixture(scope="module")
def mps_available() -> bool:
    import torch

    return bool(torch.backends.mps.is_available())


def test_requiring_mps_on_a_host_without_it_exits_2_naming_it(tmp_path, mps_available):
    if mps_available:
        pytest.skip("this host has MPS")
    proc = host_check(tmp_path, "--require-device", "mps")
    assert proc.returncode == 2, proc.stderr
    assert "host requirement not met: device mps is not available" in proc.stderr
    assert stage(tmp_path)["status"] == "failed"
    assert "device mps is not available" in stage(tmp_path)["reason"]
    assert stage(tmp_path)["requirements"]["require_device"] == "mps"


def test_requirements_the_host_meets_exit_0(tmp_path):
    proc = host_check(
        tmp_path, "--require-device", "cpu", "--min-memory-gb", "0.5", "--min-free-disk-gb", "0.01"
    )
    assert proc.returncode == 0, proc.stderr
    assert stage(tmp_path)["status"] == "ok"
    assert stage(tmp_path)["unmet"] == []


def test_too_little_memory_and_disk_are_both_named(tmp_path):
    proc = host_check(tmp_path, "--min-memory-gb", "1e9", "--min-free-disk-gb", "1e12")
    assert proc.returncode == 2
    assert "memory is" in proc.stderr and "1e+09 GB required" in proc.stderr
    assert "free disk is" in proc.stderr and "1e+12 GB required" in proc.stderr


@pytest.mark.parametrize("flags", [["--min-memory-gb", "-1"], ["--min-free-disk-gb", "nan"]])
def test_bad_requirement_values_exit_2_naming_the_field(tmp_path, capsys, flags):
    assert main(["host-check", "--output", str(tmp_path), *flags]) == 2
    assert "must be a number >= 0" in capsys.readouterr().err


def test_an_unknown_device_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as caught:
        main(["host-check", "--output", str(tmp_path), "--require-device", "tpu"])
    assert caught.value.code == 2


def test_unmet_requirements_name_a_failed_probe_and_unknown_facts():
    facts = {"mps": None, "probe_error": "torch import failed", "memory_total_bytes": None}
    needs = HostRequirements("mps", min_memory_gb=8)
    assert unmet_requirements(facts, needs) == [
        "device mps is not available (torch import failed)",
        "memory is unknown, 8 GB required",
    ]
    assert unmet_requirements({"cuda": True}, HostRequirements("cuda")) == []
    with pytest.raises(ParameterError, match="require_device"):
        HostRequirements("auto")


@pytest.mark.notebook
@pytest.mark.slow
def test_run_with_device_mps_stops_at_the_host_check(tmp_path, mps_available):
    if mps_available:
        pytest.skip("this host has MPS")
    out = tmp_path / "ev"
    code = main(["run", "--device", "mps", "--output", str(out), "--tests", str(tmp_path)])
    evidence = json.loads((out / "evidence.json").read_text())
    stages = {s["name"]: s for s in evidence["stages"]}
    assert code == 2
    assert stages["host_check"]["status"] == "failed"
    assert "device mps is not available" in stages["host_check"]["reason"]
    for name in ("cache_prewarm", "integration_suite"):
        assert stages[name]["status"] == "skipped"
        assert stages[name]["reason"] == "host_check did not pass"
    assert (out / "report.html").is_file()
