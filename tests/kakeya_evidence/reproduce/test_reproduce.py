"""`kakeya-evidence reproduce` end to end on a scratch git repository with a scratch suite.

The scratch repository holds a copy of the project's notebooks and a two-test suite; the
evidence pipeline runs in it for real (tiny model, real kernels), then the reproduction
checks that evidence's commit out in a worktree and re-runs it (this interpreter: the
lock path is covered by the bootstrap and lock tests).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from kakeya_evidence.cli import main
from kakeya_evidence.reproduce.run import ReproduceConfig, reproduce
from kakeya_evidence.runner import RunConfig, run_pipeline

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
SUITE = """
def test_adds():
    assert 1 + 1 == 2


def test_joins():
    assert "-".join("ab") == "a-b"
"""


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=60
    )
    return proc.stdout.strip()


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A committed scratch repository (notebooks + suite), the working directory."""
    repo = tmp_path / "scratch"
    shutil.copytree(REPO / "notebooks", repo / "notebooks")
    (repo / "tests").mkdir()
    (repo / "tests" / "test_scratch.py").write_text(SUITE.lstrip(), encoding="utf-8")
    git(tmp_path, "init", "-q", str(repo))
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "scratch")
    monkeypatch.chdir(repo)
    return repo


def evidence_run(repo: Path, out: Path) -> dict:
    notebooks = str(repo / "notebooks")
    run_pipeline(RunConfig(output=str(out), tests="tests", notebooks_dir=notebooks, quiet=True))
    return json.loads((out / "evidence.json").read_text(encoding="utf-8"))


def report(out: Path) -> dict:
    return json.loads((out / "reproduction.json").read_text(encoding="utf-8"))


def test_a_clean_run_reproduces_and_a_changed_test_is_reported(scratch, tmp_path, capsys):
    original = evidence_run(scratch, tmp_path / "ev1")
    assert original["verdict"] == "passed", original["stages"]
    assert original["provenance"]["commit"] == git(scratch, "rev-parse", "HEAD")

    code = main(["reproduce", str(tmp_path / "ev1"), "--output", str(tmp_path / "r1"),
                 "--reuse-venv"])  # fmt: skip
    first = report(tmp_path / "r1")
    assert code == 0, first
    assert first["result"] == "outcomes match"
    assert first["verdict"] == {"then": "passed", "now": "passed"}
    assert first["tests_compared"] == 2 and first["tests_differ"] == []
    assert "reproduction: outcomes match" in capsys.readouterr().out
    assert "# Reproduction of" in (tmp_path / "r1" / "reproduction.md").read_text()
    assert not (tmp_path / "r1" / "worktree").exists()  # the scratch worktree is removed
    assert "r1" not in git(scratch, "worktree", "list")

    # A deliberately changed test, not committed: the evidence says dirty and failed.
    test_file = scratch / "tests" / "test_scratch.py"
    test_file.write_text(SUITE.replace('"a-b"', '"a+b"').lstrip(), encoding="utf-8")
    changed = evidence_run(scratch, tmp_path / "ev2")
    assert changed["verdict"] == "failed" and changed["provenance"]["dirty"] is True

    refused = ReproduceConfig(evidence=str(tmp_path / "ev2"), output=str(tmp_path / "r2"))
    assert reproduce(refused) == 2
    assert "uncommitted changes" in report(tmp_path / "r2")["reason"]

    allowed = ReproduceConfig(
        evidence=str(tmp_path / "ev2" / "evidence.json"),
        output=str(tmp_path / "r3"),
        allow_dirty=True,
        reuse_venv=True,
    )
    assert reproduce(allowed) == 1
    differs = report(tmp_path / "r3")
    assert differs["result"] == "outcomes differ"
    assert differs["verdict"] == {"then": "failed", "now": "passed"}
    assert [(t["nodeid"].split("/")[-1], t["then"], t["now"]) for t in differs["tests_differ"]] == [
        ("test_scratch.py::test_joins", "failed", "passed")
    ]
    assert differs["run"]["not reproduced"]  # says what could not be reproduced
    markdown = (tmp_path / "r3" / "reproduction.md").read_text()
    assert "test_joins | failed | passed" in markdown

    # --tests: one test only; the one that did not change reproduces
    one = ReproduceConfig(
        evidence=str(tmp_path / "ev2"),
        output=str(tmp_path / "r4"),
        allow_dirty=True,
        reuse_venv=True,
        tests="tests/test_scratch.py::test_adds",
    )
    assert reproduce(one) == 0, report(tmp_path / "r4")
    assert report(tmp_path / "r4")["tests_compared"] == 1
