"""``gate``: which events reach the Mac M4 runner, on which commit; run against a fake GitHub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_github import REPO

from kakeya_evidence.github.gate import MAIN_ARTIFACT, PR_ARTIFACT
from kakeya_evidence.github.paths import AUTO_LABEL, MAINTAINER_LABEL

HEAD = "1234567890abcdef1234567890abcdef12345678"
MAIN = "fedcba0987654321fedcba0987654321fedcba09"


def pr_event(action="synchronize", head_repo=REPO, labels=(), label=None) -> dict:
    event = {
        "action": action,
        "pull_request": {
            "number": 12,
            "head": {"sha": HEAD, "repo": {"full_name": head_repo} if head_repo else None},
            "labels": [{"name": name} for name in labels],
        },
    }
    if label:
        event["label"] = {"name": label}
    return event


@pytest.fixture
def gate(cli, tmp_path: Path):
    def run(event_name: str, event: dict) -> tuple[int, dict[str, str]]:
        path = tmp_path / "event.json"
        path.write_text(json.dumps(event))
        argv = ["gate", "--repo", REPO, "--event-name", event_name, "--event-path", str(path)]
        rc, out = cli([*argv, "--sha", MAIN])
        return rc, dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    return run


def test_a_same_repo_pr_that_changes_runtime_code_runs_on_its_head(fake, gate):
    fake.files[12] = ["README.md", *(f"docs/{i}.md" for i in range(150)), "kakeya/client.py"]
    rc, out = gate("pull_request_target", pr_event())
    assert rc == 0
    assert (out["run"], out["sha"], out["pr"], out["artifact"]) == ("true", HEAD, "12", PR_ARTIFACT)
    assert "kakeya/client.py" in out["reason"]


@pytest.mark.parametrize("path", ["tests/conftest.py", "tests/runtime_fixtures.py"])
def test_the_suites_fixtures_count_as_runtime_paths(fake, gate, path):
    """Fault 10: changing the suite's conftest or fixtures starts the Mac run."""
    fake.files[12] = ["README.md", path]
    assert gate("pull_request_target", pr_event())[1]["run"] == "true"


def test_a_docs_only_pr_does_not_run_and_gets_a_neutral_check(fake, gate):
    fake.files[12] = ["README.md", "docs/evidence.md", "kakeya_evidence_notes.txt"]
    rc, out = gate("pull_request_target", pr_event())
    assert (rc, out["run"], out["conclusion_if_not_run"]) == (0, "false", "neutral")


def test_a_fork_never_runs_even_with_the_maintainers_label(fake, gate):
    """Fault 1: a label names no commit, so fork code runs only by a dispatch naming one."""
    fake.files[12] = ["inference_engine/engine.py"]
    event = pr_event("labeled", "mallory/kakeya", (MAINTAINER_LABEL,), MAINTAINER_LABEL)
    rc, out = gate("pull_request_target", event)
    assert (rc, out["run"], out["conclusion_if_not_run"]) == (0, "false", "action_required")
    assert "dispatches the workflow from main with its full head SHA" in out["reason"]


def test_a_pr_from_a_deleted_fork_does_not_run(fake, gate):
    fake.files[12] = ["kakeya/client.py"]
    assert gate("pull_request_target", pr_event(head_repo=None))[1]["run"] == "false"


def test_only_the_maintainers_label_starts_a_run(fake, gate):
    """Fault 6: an unrelated label runs nothing and leaves no check behind."""
    rc, out = gate("pull_request_target", pr_event("labeled", label=MAINTAINER_LABEL))
    assert (rc, out["run"]) == (0, "true")
    for other in ("documentation", AUTO_LABEL):
        out = gate("pull_request_target", pr_event("labeled", label=other))[1]
        assert (out["run"], out["conclusion_if_not_run"]) == ("false", "")
    assert fake.requests == []  # label events never list files


def test_the_maintainers_label_on_the_pr_keeps_later_pushes_running(fake, gate):
    fake.files[12] = ["README.md"]
    out = gate("pull_request_target", pr_event(labels=(MAINTAINER_LABEL,)))[1]
    assert (out["run"], out["reason"]) == ("true", f"PR carries {MAINTAINER_LABEL}")


def test_the_automatic_label_alone_does_not_run_a_docs_pr(fake, gate):
    fake.files[12] = ["README.md"]
    assert gate("pull_request_target", pr_event(labels=(AUTO_LABEL,)))[1]["run"] == "false"


def test_push_and_schedule_on_main_keep_the_baseline(fake, gate):
    out = gate("push", {"ref": "refs/heads/main", "after": HEAD})[1]
    assert (out["run"], out["sha"], out["artifact"]) == ("true", HEAD, MAIN_ARTIFACT)
    out = gate("schedule", {"schedule": "23 5 * * 1"})[1]
    assert (out["run"], out["sha"], out["artifact"]) == ("true", MAIN, MAIN_ARTIFACT)


def test_a_dispatch_names_a_reviewed_full_sha_from_main(fake, gate):
    event = {"ref": "refs/heads/main", "inputs": {"sha": HEAD, "pr": "12"}}
    rc, out = gate("workflow_dispatch", event)
    assert (rc, out["run"], out["sha"], out["pr"]) == (0, "true", HEAD, "12")
    assert out["artifact"] == PR_ARTIFACT  # never mistaken for main's baseline


@pytest.mark.parametrize(
    "inputs, ref",
    [
        ({"sha": "1234567"}, "refs/heads/main"),  # short: not one certain commit
        ({"sha": "refs/pull/12/head"}, "refs/heads/main"),  # moves when the fork pushes
        ({"sha": HEAD}, "refs/heads/feature"),  # the definition must be main's
        ({"sha": HEAD, "pr": "twelve"}, "refs/heads/main"),
    ],
)
def test_a_dispatch_with_a_bad_sha_or_ref_fails_loudly(fake, gate, capsys, inputs, ref):
    rc, out = gate("workflow_dispatch", {"ref": ref, "inputs": inputs})
    assert rc == 2
    assert out == {}
    assert "gate:" in capsys.readouterr().err


@pytest.mark.parametrize(
    "event_name", ["pull_request", "pull_request_review", "issue_comment", "workflow_run"]
)
def test_events_that_must_never_reach_the_runner_are_refused(fake, gate, event_name):
    assert gate(event_name, pr_event())[0] == 2


def test_outputs_cannot_be_forged_by_a_file_name(fake, gate, tmp_path, monkeypatch):
    output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    fake.files[12] = ["kakeya/x\nrun=false\nsha=0000000000000000000000000000000000000000.py"]
    gate("pull_request_target", pr_event())
    lines = output.read_text().splitlines()
    assert [line.split("=", 1)[0] for line in lines] == [
        "run", "reason", "sha", "pr", "artifact", "conclusion_if_not_run", "pool",
    ]  # fmt: skip
    assert lines[0] == "run=true" and lines[2] == f"sha={HEAD}"


def test_a_pr_with_more_files_than_github_lists_counts_as_a_runtime_change(fake, gate):
    fake.files[12] = [f"docs/{i}.md" for i in range(3500)]
    assert gate("pull_request_target", pr_event())[1]["run"] == "true"


def test_an_unreadable_event_file_exits_2(cli, tmp_path):
    argv = ["gate", "--repo", REPO, "--event-name", "push", "--event-path"]
    assert cli([*argv, str(tmp_path / "missing.json")])[0] == 2
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert cli([*argv, str(tmp_path / "bad.json")])[0] == 2
