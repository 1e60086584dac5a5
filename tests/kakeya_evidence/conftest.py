"""Shared fixtures for the evidence pipeline tests."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# The fixture suites fail, crash and hang on purpose; only the pipeline under test runs them.
collect_ignore = ["fixtures"]

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixture_suite(tmp_path: Path):
    """Copy a named fixture suite into a fresh temporary directory and return its path."""

    def copy(name: str) -> Path:
        target = tmp_path / f"suite_{name}"
        shutil.copytree(FIXTURES / name, target)
        return target

    return copy


_SUMMARY_WORDS = {"error": "error", "errors": "error", "warning": "warnings"}


def summary_counts(output: str) -> dict[str, int]:
    """The counts in pytest's closing summary line ("4 failed, 2 passed, 3 errors in 0.1s")."""
    lines = [line for line in output.splitlines() if line.strip()]
    words = re.findall(r"(\d+) (\w+)", lines[-1] if lines else "")
    counts = {_SUMMARY_WORDS.get(word, word): int(number) for number, word in words}
    counts.pop("warnings", None)
    return counts


@pytest.fixture
def plain_pytest():
    """Run plain `python -m pytest ARGS` in a directory; return its summary's counts."""

    def run(cwd: Path, *args: str) -> dict[str, int]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAKEYA_EVIDENCE")}
        env["NO_COLOR"] = "1"
        env.pop("FORCE_COLOR", None)
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        return summary_counts(proc.stdout)

    return run
