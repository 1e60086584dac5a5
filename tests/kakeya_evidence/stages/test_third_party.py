"""Real suites nobody here wrote: pyflakes' own tests (its wheel ships them) and the
tests of attrs and click (from their sdists, fetched with pip download into a cache).

Through the suite stage every test's outcome must equal plain pytest's, node id by node
id, run the same way from the same directory. Each test prints a line of the comparison
table (tests, plain and pipeline counts, wall times and the overhead ratio).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyflakes
import pytest

from kakeya_evidence.stages.results import COUNTED
from kakeya_evidence.stages.suite import SuiteConfig, run_suite

pytestmark = pytest.mark.slow

# The versions installed beside this project: their tests import the installed package.
SDISTS = {"attrs": "attrs", "click": "click"}
_VERBOSE = re.compile(r"^(\S.*?::.*?) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)(?: |$)")
_WORDS = {
    "PASSED": "passed",
    "FAILED": "failed",
    "ERROR": "error",
    "SKIPPED": "skipped",
    "XFAIL": "xfailed",
    "XPASS": "xpassed",
}
_RANK = {"passed": 0, "xpassed": 1, "skipped": 2, "xfailed": 2, "failed": 3, "error": 4}


def _plain_outcomes(cwd: Path, target: str) -> tuple[dict[str, str], float]:
    """Plain `python -m pytest -v TARGET`: each test's worst reported outcome, and wall s."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAKEYA_EVIDENCE")}
    env["NO_COLOR"] = "1"
    env.pop("FORCE_COLOR", None)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", target, "-v", "-p", "no:cacheprovider"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    wall = time.monotonic() - started
    outcomes: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        match = _VERBOSE.match(line)
        if match:
            nodeid, word = match.group(1), _WORDS[match.group(2)]
            if _RANK[word] >= _RANK.get(outcomes.get(nodeid, "passed"), 0):
                outcomes[nodeid] = word
    return outcomes, wall


def _compare(name: str, cwd: Path, target: str, out: Path) -> None:
    plain, plain_s = _plain_outcomes(cwd, target)
    started = time.monotonic()
    tests = str(cwd / target)  # SuiteConfig takes a relative path from the current directory
    outcome = run_suite(SuiteConfig(tests=tests, output_dir=str(out), cwd=str(cwd)))
    total_s = time.monotonic() - started
    assert outcome.status == "ok", outcome.reason
    pipeline = {
        _as_printed(r.nodeid, outcome.rootdir, cwd): str(r.outcome)
        for r in outcome.results
        if "::" in r.nodeid
    }
    counts = {k: v for k, v in outcome.counts.items() if k in COUNTED and v}
    print(
        f"\n| {name} | {len(pipeline)} | plain {_count(plain)} | pipeline {counts} "
        f"| plain {plain_s:.1f} s | pipeline pytest {outcome.pytest_wall_s:.1f} s, stage "
        f"{total_s:.1f} s | overhead x{total_s / plain_s:.2f} |"
    )
    assert len(plain) > 100
    differ = {n: (plain.get(n), pipeline.get(n)) for n in set(plain) | set(pipeline)}
    assert {n: pair for n, pair in differ.items() if pair[0] != pair[1]} == {}


def _as_printed(nodeid: str, rootdir: str, cwd: Path) -> str:
    """The node id as `pytest -v` prints it: its file relative to where pytest ran."""
    path, _, rest = nodeid.partition("::")
    return f"{Path(os.path.relpath(Path(rootdir, path), cwd)).as_posix()}::{rest}"


def _count(outcomes: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for word in outcomes.values():
        counts[word] = counts.get(word, 0) + 1
    return dict(sorted(counts.items()))


@pytest.fixture(scope="session")
def sdist_root(tmp_path_factory):
    """Download and unpack the sdist of an installed package (its version), once."""
    from importlib.metadata import version

    cache = tmp_path_factory.mktemp("sdists")

    def fetch(package: str) -> Path:
        pinned = f"{package}=={version(package)}"
        download = ["download", "--no-deps", "--no-binary", ":all:", pinned, "-d", str(cache)]
        proc = subprocess.run(
            [sys.executable, "-m", "pip", *download, "-q"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        archives = sorted(cache.glob(f"{package}-*.tar.gz"))
        if not archives:
            pytest.skip(f"pip download {pinned} failed (no package index?): {proc.stderr[-300:]}")
        with tarfile.open(archives[-1]) as archive:
            archive.extractall(cache, filter="data")
        return cache / archives[-1].name.removesuffix(".tar.gz")

    return fetch


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


def test_pyflakes_every_outcome_equals_plain_pytest_node_by_node(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")  # nothing written beside the package
    tests = Path(pyflakes.__file__).parent / "test"
    _compare("pyflakes", tmp_path, str(tests), tmp_path / "ev")


@pytest.mark.parametrize("package", sorted(SDISTS))
def test_an_sdists_own_suite_every_outcome_equals_plain_pytest(package, sdist_root, tmp_path):
    if package == "attrs":
        pytest.importorskip("hypothesis")  # attrs' conftest imports it (the test extra pins it)
    root = sdist_root(package)
    _compare(package, root, "tests", tmp_path / "ev")
