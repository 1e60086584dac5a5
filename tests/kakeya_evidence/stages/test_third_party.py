"""A real suite nobody here wrote: pyflakes' own tests (pinned in the `test` extra).

Its counts through the suite stage must equal plain pytest's, run the same way from the
same directory.
"""

from __future__ import annotations

from pathlib import Path

import pyflakes
import pytest

from kakeya_evidence.stages.results import COUNTED
from kakeya_evidence.stages.suite import SuiteConfig, run_suite

pytestmark = pytest.mark.slow


def test_pyflakes_own_suite_counts_equal_plain_pytest(plain_pytest, tmp_path):
    tests = Path(pyflakes.__file__).parent / "test"
    assert tests.is_dir(), "the pyflakes wheel ships its tests"
    plain = plain_pytest(tmp_path, str(tests))
    config = SuiteConfig(tests=str(tests), output_dir=str(tmp_path / "ev"), cwd=str(tmp_path))
    outcome = run_suite(config)
    assert outcome.status == "ok", outcome.reason
    pipeline = {k: v for k, v in outcome.counts.items() if k in COUNTED and v}
    print(f"plain pytest {plain}; pipeline {pipeline}; pytest {outcome.pytest_wall_s:.1f} s")
    assert pipeline == plain
    assert plain.get("passed", 0) > 500 and plain.get("skipped", 0) > 0
    skipped = [r for r in outcome.results if r.outcome == "skipped"]
    assert all(r.message and r.path.endswith(".py") for r in skipped)
