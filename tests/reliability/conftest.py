"""Fixtures for the reliability and security suite: real model, real servers, loopback only.

The model, engine and server fixtures come from tests/runtime_fixtures.py.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path

import pytest
from reliability_support import ARTIFACTS

# The fixture suites hang, crash and garble their JUnit on purpose; only the pipeline runs them.
collect_ignore = ["fixtures"]


@pytest.fixture
def artifacts_dir() -> Path:
    """`test-artifacts/` at the repository root (gitignored): figures kept after the run."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
