"""kakeya_evidence.github against a fake GitHub API served on 127.0.0.1."""

from __future__ import annotations

import argparse
import io
import json
import zipfile
from pathlib import Path

import pytest
from fake_github import FakeGitHub, serve_fake_github

from kakeya_evidence import github

TOKEN = "ghs_secretTOKENvalue123"
REPO = "octo/kakeya"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.delenv("GH_TOKEN", raising=False)
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    with serve_fake_github() as state:
        monkeypatch.setenv("GITHUB_API_URL", state.base_url)
        yield state


def run_cli(argv: list[str]) -> tuple[int, str]:
    """Parse argv with the registered subcommands and run the handler, capturing stdout."""
    parser = argparse.ArgumentParser()
    github.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    out = io.StringIO()
    return args.func(args, out), out.getvalue()


def write_summary(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "summary.md"
    path.write_text(text, encoding="utf-8")
    return path


def comment_argv(summary: Path, pr: int = 7, *extra: str) -> list[str]:
    return ["pr-comment", "--summary", str(summary), "--repo", REPO, "--pr", str(pr), *extra]


# ------------------------------------------------------------------ pr-comment


def test_pr_comment_creates_one_when_no_marked_comment(fake: FakeGitHub, tmp_path: Path) -> None:
    fake.add_comment(7, "an unrelated review comment")
    summary = write_summary(tmp_path, "## Evidence: PASS\n[report]({report_url})\n")
    rc, out = run_cli(comment_argv(summary, 7, "--artifact-url", "https://a/1"))
    assert rc == 0
    assert "created" in out
    bodies = [c["body"] for c in fake.comments[7]]
    assert len(bodies) == 2
    assert bodies[1].startswith(github.MARKER + "\n## Evidence: PASS")
    assert "[report](https://a/1)" in bodies[1]
    assert [r.method for r in fake.requests] == ["GET", "POST"]


def test_pr_comment_updates_the_marked_comment_in_place(fake: FakeGitHub, tmp_path: Path) -> None:
    fake.add_comment(7, "first")
    marked = fake.add_comment(7, github.MARKER + "\nold summary")
    summary = write_summary(tmp_path, "## Evidence: FAIL\n")
    rc, out = run_cli(comment_argv(summary, 7, "--run-url", "https://run/9"))
    assert rc == 0
    assert "updated" in out
    assert len(fake.comments[7]) == 2
    assert "old summary" not in marked["body"]
    assert "## Evidence: FAIL" in marked["body"]
    assert "[Workflow run](https://run/9)" in marked["body"]
    assert fake.requests[-1].method == "PATCH"
    assert fake.requests[-1].path.endswith(f"/issues/comments/{marked['id']}")


def test_pr_comment_follows_pagination_to_find_the_marker(fake: FakeGitHub, tmp_path: Path) -> None:
    for i in range(230):  # per_page is 100: the marker sits on page 3
        fake.add_comment(3, f"chatter {i}")
    marked = fake.add_comment(3, "intro\n" + github.MARKER + "\nold")
    rc, _ = run_cli(comment_argv(write_summary(tmp_path, "new"), 3))
    assert rc == 0
    assert len(fake.comments[3]) == 231
    assert marked["body"].endswith("new")
    gets = [r.path for r in fake.requests if r.method == "GET"]
    assert len(gets) == 3
    assert "page=3" in gets[-1]


def test_pr_comment_sends_bearer_token_and_never_prints_it(
    fake: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out = run_cli(comment_argv(write_summary(tmp_path, "x"), 5))
    assert rc == 0
    assert all(r.authorization == f"Bearer {TOKEN}" for r in fake.requests)
    captured = capsys.readouterr()
    assert TOKEN not in out + captured.out + captured.err
    config = github.CommentConfig(repo=REPO, pr=5, token=TOKEN)
    assert TOKEN not in repr(config)


def test_pr_comment_api_error_exits_2_without_leaking_token(
    fake: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.fail_status = 403
    rc, _ = run_cli(comment_argv(write_summary(tmp_path, "x"), 5))
    err = capsys.readouterr().err
    assert rc == 2
    assert "HTTP 403" in err
    assert TOKEN not in err


def test_pr_comment_dry_run_reports_action_and_posts_nothing(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    marked = fake.add_comment(4, github.MARKER + "\nold")
    rc, out = run_cli(comment_argv(write_summary(tmp_path, "fresh"), 4, "--dry-run"))
    assert rc == 0
    assert f"would update comment {marked['id']}" in out
    assert github.MARKER + "\nfresh" in out
    assert {r.method for r in fake.requests} == {"GET"}
    assert marked["body"].endswith("old")


def test_pr_comment_without_token_fails_clearly(
    fake: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_TOKEN")
    rc, _ = run_cli(comment_argv(write_summary(tmp_path, "x"), 4))
    assert rc == 2
    assert fake.requests == []


@pytest.mark.parametrize(
    ("repo", "pr"), [("not-a-repo", "1"), ("a/b; rm -rf /", "1"), ("octo/kakeya", "0")]
)
def test_pr_comment_rejects_bad_repo_or_pr(
    fake: FakeGitHub, tmp_path: Path, repo: str, pr: str
) -> None:
    summary = write_summary(tmp_path, "x")
    rc, _ = run_cli(["pr-comment", "--summary", str(summary), "--repo", repo, "--pr", pr])
    assert rc == 2
    assert fake.requests == []


def test_long_summary_is_truncated_below_github_limit(fake: FakeGitHub, tmp_path: Path) -> None:
    rows = "".join(f"| tests/x.py::test_{i} | failed | {'e' * 80} |\n" for i in range(2000))
    summary = write_summary(tmp_path, "## Evidence\n" + rows)
    rc, _ = run_cli(comment_argv(summary, 8))
    body = fake.comments[8][0]["body"]
    assert rc == 0
    assert len(body) < github.MAX_COMMENT_CHARS
    assert body.startswith(github.MARKER)
    assert body.endswith(github.TRUNCATION_NOTE)
    kept_rows = body.split("\n")[2:-5]
    assert all(row.endswith("|") for row in kept_rows if row.startswith("| tests"))


def test_links_without_placeholders_are_appended() -> None:
    text = github.fill_links("body\n", "https://a", None)
    assert text == "body\n\n[Evidence artifact](https://a)\n"
    assert github.fill_links("see {run_url}", None, None) == "see (not available)"


def test_truncate_refuses_a_limit_smaller_than_the_note() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        github.truncate_text("x" * 500, 10)


# ---------------------------------------------------------------- annotations

EVIDENCE = {
    "verdict": "failed",
    "stages": [
        {"name": "host_check", "status": "ok", "reason": ""},
        {"name": "integration_suite", "status": "timeout", "reason": "stage ran past 900 s"},
    ],
    "failures": [
        {
            "test_id": "tests/integration/test_gen.py::test_chunked[a,b]",
            "outcome": "failed",
            "message": "AssertionError: 100% wrong\nsecond line\r",
            "line": 42,
        },
        {"test_id": "tests/integration/test_x.py::test_y", "outcome": "error", "message": ""},
    ],
}


def test_annotate_escapes_messages_and_properties(tmp_path: Path) -> None:
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps(EVIDENCE))
    rc, out = run_cli(["annotate", "--evidence", str(path)])
    lines = out.splitlines()
    assert rc == 0
    assert len(lines) == 3
    assert lines[0] == ("::error title=stage integration_suite%3A timeout::stage ran past 900 s")
    assert lines[1] == (
        "::error file=tests/integration/test_gen.py,line=42,"
        "title=failed%3A tests/integration/test_gen.py%3A%3Atest_chunked[a%2Cb]"
        "::AssertionError: 100%25 wrong%0Asecond line%0D"
    )
    assert lines[2].startswith("::error file=tests/integration/test_x.py,title=error%3A")


def test_annotate_caps_the_count_and_says_how_many_are_left(tmp_path: Path) -> None:
    failures = [{"test_id": f"t.py::test_{i}", "outcome": "failed"} for i in range(80)]
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps({"failures": failures}))
    rc, out = run_cli(["annotate", "--evidence", str(path), "--max", "10"])
    lines = out.splitlines()
    assert rc == 0
    assert len(lines) == 11
    assert lines[-1].startswith("::warning") and "70 more failures" in lines[-1]


def test_annotate_reads_failed_tests_from_a_tests_list() -> None:
    tests = [
        {"nodeid": "a.py::t1", "outcome": "passed"},
        {"nodeid": "a.py::t2", "outcome": "failed", "message": "boom"},
    ]
    evidence = {"tests": tests}
    assert github.format_annotations(evidence) == [
        "::error file=a.py,title=failed%3A a.py%3A%3At2::boom"
    ]


def test_annotate_unreadable_evidence_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "evidence.json"
    path.write_text("{not json")
    assert run_cli(["annotate", "--evidence", str(path)])[0] == 2
    assert run_cli(["annotate", "--evidence", str(tmp_path / "missing.json")])[0] == 2


# --------------------------------------------------------------- step-summary


def test_step_summary_appends_to_the_summary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "step_summary.md"
    target.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    summary = write_summary(tmp_path, "## Evidence\n[artifact]({report_url})")
    rc, out = run_cli(["step-summary", "--summary", str(summary), "--artifact-url", "https://a"])
    assert rc == 0
    assert out == ""
    assert target.read_text() == "earlier step\n## Evidence\n[artifact](https://a)\n"


def test_step_summary_prints_when_not_on_github(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    rc, out = run_cli(["step-summary", "--summary", str(write_summary(tmp_path, "hello\n"))])
    assert (rc, out) == (0, "hello\n")
    assert run_cli(["step-summary", "--summary", str(tmp_path / "nope.md")])[0] == 2


# ------------------------------------------------------------------------ gate


def pr_event(action: str = "synchronize", head: str = REPO, labels: tuple[str, ...] = ()) -> dict:
    return {
        "action": action,
        "pull_request": {
            "number": 12,
            "head": {"repo": {"full_name": head}},
            "labels": [{"name": name} for name in labels],
        },
    }


def gate(fake: FakeGitHub, tmp_path: Path, event_name: str, event: dict) -> tuple[int, str]:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    argv = ["gate", "--repo", REPO, "--event-name", event_name, "--event-path", str(path)]
    return run_cli(argv)


def test_gate_runs_when_a_runtime_path_changed(fake: FakeGitHub, tmp_path: Path) -> None:
    fake.files[12] = ["README.md", *(f"docs/{i}.md" for i in range(150)), "kakeya/client.py"]
    rc, out = gate(fake, tmp_path, "pull_request", pr_event())
    assert rc == 0
    assert "run=true" in out
    assert "kakeya/client.py" in out


def test_gate_skips_docs_only_pr(fake: FakeGitHub, tmp_path: Path) -> None:
    fake.files[12] = ["README.md", "docs/evidence.md", "kakeya_evidence_notes.txt"]
    rc, out = gate(fake, tmp_path, "pull_request", pr_event())
    assert (rc, out.splitlines()[0]) == (0, "run=false")


def test_gate_never_runs_a_fork(fake: FakeGitHub, tmp_path: Path) -> None:
    fake.files[12] = ["inference_engine/engine.py"]
    event = pr_event("labeled", head="mallory/kakeya", labels=(github.LABEL,))
    event["label"] = {"name": github.LABEL}
    rc, out = gate(fake, tmp_path, "pull_request", event)
    assert rc == 0
    assert out.splitlines()[0] == "run=false"
    assert "fork" in out
    assert fake.requests == []


def test_gate_label_events_run_only_for_the_mac_label(fake: FakeGitHub, tmp_path: Path) -> None:
    event = pr_event("labeled")
    event["label"] = {"name": github.LABEL}
    assert "run=true" in gate(fake, tmp_path, "pull_request", event)[1]
    event["label"] = {"name": "documentation"}
    assert "run=false" in gate(fake, tmp_path, "pull_request", event)[1]
    assert fake.requests == []


def test_gate_writes_github_output_and_honours_existing_label(
    fake: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    rc, _ = gate(fake, tmp_path, "pull_request", pr_event(labels=(github.LABEL,)))
    assert rc == 0
    assert output.read_text().splitlines() == ["run=true", f"reason=PR carries {github.LABEL}"]
    assert "run=true" in gate(fake, tmp_path, "workflow_dispatch", {})[1]


def test_runtime_path_matching() -> None:
    assert github.matches_runtime_path("proto/kakeya/v1/runtime.proto")
    assert github.matches_runtime_path("pyproject.toml")
    assert not github.matches_runtime_path("kakeyaX/thing.py")
    assert not github.matches_runtime_path("docs/pyproject.toml")


# -------------------------------------------------------------- fetch-baseline


def evidence_zip(payload: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("report.html", "<html></html>")
        archive.writestr("evidence.json", json.dumps(payload))
    return buffer.getvalue()


def test_fetch_baseline_takes_newest_main_artifact_without_forwarding_token(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    def artifact(aid: int, branch: str, expired: bool = False) -> dict:
        run = {"id": aid * 10, "head_branch": branch}
        return {"id": aid, "name": "evidence-mac-m4", "expired": expired, "workflow_run": run}

    fake.artifacts = [
        artifact(3, "feature"),
        artifact(2, "main", expired=True),
        artifact(1, "main"),
    ]
    fake.zips[1] = evidence_zip({"verdict": "passed", "run": 1})
    out_file = tmp_path / "baseline" / "evidence.json"
    argv = ["fetch-baseline", "--repo", REPO, "--artifact", "evidence-mac-m4"]
    rc, out = run_cli([*argv, "--output", str(out_file)])
    assert rc == 0
    assert json.loads(out_file.read_text()) == {"verdict": "passed", "run": 1}
    assert f"baseline={out_file}" in out
    storage = [r for r in fake.requests if r.path.startswith("/storage/")]
    assert len(storage) == 1
    assert storage[0].authorization is None


def test_fetch_baseline_without_artifact_is_not_an_error(fake: FakeGitHub, tmp_path: Path) -> None:
    out_file = tmp_path / "evidence.json"
    argv = ["fetch-baseline", "--repo", REPO, "--artifact", "evidence-mac-m4"]
    rc, out = run_cli([*argv, "--output", str(out_file)])
    assert (rc, out) == (0, "baseline=\n")
    assert not out_file.exists()
