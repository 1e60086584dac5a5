"""``fetch-baseline`` and ``fetch-history``: main's evidence artifacts, on a fake GitHub."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from fake_github import REPO

from kakeya_evidence.github.gate import MAIN_ARTIFACT, PR_ARTIFACT

MAIN_1 = f"{MAIN_ARTIFACT}-1"  # attempt 1 of a run on main


def evidence_zip(exit_code: int, commit: str, name: str = "evidence.json") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("report.html", "<html></html>")
        archive.writestr("preflight/stages/host_check.json", "{}")
        payload = {"exit_code": exit_code, "provenance": {"commit": commit}}
        archive.writestr(name, json.dumps(payload))
    return buffer.getvalue()


def add_main_runs(fake, codes: list[int]) -> None:
    """One main run per exit code, oldest first (the fake lists them newest first)."""
    for i, code in enumerate(codes):
        fake.add_artifact(MAIN_1, evidence_zip(code, f"c{i}"), head_branch="main")


def test_the_baseline_is_mains_newest_completed_evidence(fake, cli, tmp_path):
    add_main_runs(fake, [0, 1])
    fake.add_artifact(MAIN_1, evidence_zip(2, "error-run"), head_branch="main")
    fake.add_artifact(MAIN_1, evidence_zip(0, "expired"), head_branch="main", expired=True)
    fake.add_artifact(MAIN_1, evidence_zip(0, "fork"), head_branch="main", head_repository_id=99)
    fake.add_artifact(MAIN_1, evidence_zip(0, "feature"), head_branch="feature")
    fake.add_artifact(f"{PR_ARTIFACT}-1", evidence_zip(0, "a-pr"), head_branch="main")
    # Same branch name, same artifact name, but not a push or schedule run of main:
    for event in ("pull_request_target", "workflow_dispatch", "pull_request"):
        fake.add_artifact(MAIN_1, evidence_zip(0, event), head_branch="main", event=event)
    out_file = tmp_path / "baseline" / "evidence.json"
    rc, out = cli(["fetch-baseline", "--repo", REPO, "--output", str(out_file)])
    assert rc == 0
    assert json.loads(out_file.read_text())["provenance"]["commit"] == "c1"  # exit 1 completed
    assert f"baseline={out_file}" in out
    storage = [r for r in fake.requests if r.path.startswith("/storage/")]
    assert storage and all(r.authorization is None for r in storage)


def test_no_artifact_is_not_an_error_and_writes_nothing(fake, cli, tmp_path):
    out_file = tmp_path / "evidence.json"
    rc, out = cli(["fetch-baseline", "--repo", REPO, "--output", str(out_file)])
    assert (rc, out) == (0, "baseline=\n")
    assert not out_file.exists()


def test_a_broken_artifact_is_skipped_for_an_older_good_one(fake, cli, tmp_path):
    add_main_runs(fake, [0])
    fake.add_artifact(MAIN_1, b"not a zip", head_branch="main")
    fake.add_artifact(MAIN_1, evidence_zip(0, "x", name="other.json"), head_branch="main")
    out_file = tmp_path / "evidence.json"
    assert cli(["fetch-baseline", "--repo", REPO, "--output", str(out_file)])[0] == 0
    assert json.loads(out_file.read_text())["provenance"]["commit"] == "c0"


def test_a_scheduled_run_counts_and_its_latest_attempt_wins(fake, cli, tmp_path):
    first = fake.add_artifact(MAIN_1, evidence_zip(0, "attempt-1"), head_branch="main")
    run = first["workflow_run"]
    fake.runs[run["id"]]["event"] = "schedule"
    fake.add_artifact(f"{MAIN_ARTIFACT}-2", evidence_zip(1, "attempt-2"), **run)
    out_file = tmp_path / "evidence.json"
    assert cli(["fetch-baseline", "--repo", REPO, "--output", str(out_file)])[0] == 0
    assert json.loads(out_file.read_text())["provenance"]["commit"] == "attempt-2"


def test_history_keeps_the_last_ten_completed_main_runs(fake, cli, tmp_path):
    """Fault 9: main's last 10 evidence files reach the run as history."""
    add_main_runs(fake, [0, 1, 2, 0, 0, 1, 0, 0, 0, 0, 0, 2, 0, 0])
    history = tmp_path / "history"
    rc, out = cli(["fetch-history", "--repo", REPO, "--output", str(history)])
    commits = sorted(json.loads(p.read_text())["provenance"]["commit"] for p in history.iterdir())
    assert rc == 0
    assert "history_count=10" in out
    assert len(commits) == 10
    assert "c2" not in commits and "c11" not in commits  # runs that did not complete
    assert {"c13", "c12", "c10", "c3"} <= set(commits) and "c0" not in commits


def test_history_with_fewer_runs_writes_what_there_is(fake, cli, tmp_path):
    add_main_runs(fake, [0, 0])
    history = tmp_path / "history"
    rc, _ = cli(["fetch-history", "--repo", REPO, "--output", str(history), "--count", "5"])
    assert (rc, len(list(history.iterdir()))) == (0, 2)


def test_a_failed_listing_exits_2(fake, cli, tmp_path):
    fake.fail_status = 502
    rc, _ = cli(["fetch-history", "--repo", REPO, "--output", str(tmp_path / "h")])
    assert rc == 2


def test_history_count_is_bounded(cli, tmp_path: Path):
    for count in ("0", "51", "ten"):
        with pytest.raises(SystemExit):
            cli(["fetch-history", "--repo", REPO, "--output", str(tmp_path), "--count", count])
