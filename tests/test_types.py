"""The three packages type-check clean (mypy, the project's configuration in pyproject.toml),
so a type error is caught by the README's test command, not only by `make lint`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("inference_engine", "kakeya", "kakeya_evidence")


@pytest.mark.slow
def test_mypy_finds_no_error_in_the_packages(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path), *PACKAGES],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success: no issues found" in proc.stdout
