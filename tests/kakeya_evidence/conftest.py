"""Shared fixtures for the evidence pipeline tests."""

from __future__ import annotations

import shutil
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
