"""``publish``: check run, annotations, the one PR comment and the job summary, on a fake GitHub."""

from __future__ import annotations

import gzip
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from fake_github import BOT, REPO, USER_TOKEN, FakeGitHub
from markdown_it import MarkdownIt

from kakeya_evidence.github.comment import DEFAULT_BOT_LOGIN, MAX_COMMENT_CHARS
from kakeya_evidence.github.publish import FALLBACK_WARNING
from kakeya_evidence.github.render import MARKER

SHA = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
NEXT_SHA = "ffeeddccbbaa99887766554433221100ffeeddcc"
RUN_URL = "https://github.com/octo/kakeya/actions/runs/42"
REPORT_URL = "https://github.com/octo/kakeya/actions/runs/42/artifacts/7"


def test_row(i: int, outcome: str = "failed", **extra: Any) -> dict[str, Any]:
    row = {
        "nodeid": f"tests/integration/test_gen.py::test_case[{i}]",
        "outcome": outcome,
        "message": f"assert {i} == 0" if outcome in {"failed", "error"} else "",
        "exception": "AssertionError" if outcome in {"failed", "error"} else "",
        "path": "tests/integration/test_gen.py",
        "line": 100 + i,
        "duration_s": 0.1,
    }
    return {**row, **extra}


test_row.__test__ = False  # a helper, not a test


def evidence(tests: list[dict], exit_code: int | None = None, **extra: Any) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for row in tests:
        counts[row["outcome"]] = counts.get(row["outcome"], 0) + 1
    failing = counts.get("failed", 0) + counts.get("error", 0)
    code = exit_code if exit_code is not None else (1 if failing else 0)
    data = {
        "schema": 1,
        "verdict": {0: "passed", 1: "failed", 2: "error"}[code],
        "exit_code": code,
        "stages": [{"name": "integration_suite", "status": "ok", "reason": ""}],
        "counts": counts,
        "tests": tests,
        "provenance": {"commit": SHA},
        "model": {"id": "Qwen/Qwen3-0.6B", "device": "mps", "dtype": "bfloat16"},
        "baseline": None,
        "generated_at": "2026-01-01T00:00:00Z",
    }
    return {**data, **extra}


def write(tmp_path: Path, data: dict[str, Any] | None, raw: bool = True) -> Path:
    """The evidence directory: evidence.json and, as the pipeline leaves them, the raw
    files publish rechecks it against (the first run's record, a re-run's, junit.xml)."""
    directory = tmp_path / "artifact"
    directory.mkdir(exist_ok=True)
    if data is not None:
        (directory / "evidence.json").write_text(json.dumps(data), encoding="utf-8")
        if raw:
            write_raw(directory, data["tests"])
    return directory


def write_raw(directory: Path, rows: list[dict[str, Any]], finished: bool = True) -> None:
    first = {"failed": "failed", "error": "error", "flaky": "failed"}
    run0 = [(r["nodeid"], first.get(r["outcome"], r["outcome"])) for r in rows]
    write_record(directory / "pytest" / "run0", run0, finished)
    reruns = [(r["nodeid"], "passed") for r in rows if r["outcome"] == "flaky"]
    reruns += [
        (r["nodeid"], r["outcome"])
        for r in rows
        if r["outcome"] in first and r["outcome"] != "flaky"
    ]
    if reruns:
        write_record(directory / "pytest" / "rerun1", reruns, True)
    suite = ET.Element("testsuite", name="pytest")
    for nodeid, outcome in run0:
        case = ET.SubElement(suite, "testcase", classname=nodeid.split("::")[0], name=nodeid)
        if outcome in ("failed", "error"):
            ET.SubElement(case, "failure" if outcome == "failed" else "error", message="x")
    ET.ElementTree(suite).write(directory / "junit.xml", encoding="utf-8")


def write_record(run_dir: Path, results: list[tuple[str, str]], finished: bool) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    events = [{"event": "session_started", "rootdir": "/w", "t": 1.0}]
    events.append({"event": "collected", "nodeids": [n for n, _ in results]})
    for nodeid, outcome in results:
        when = "setup" if outcome == "error" else "call"
        events.append({"event": "report", "nodeid": nodeid, "when": when, "category": outcome})
    if finished:
        events.append({"event": "session_finished", "exitstatus": 0, "t": 2.0})
    data = "".join(json.dumps(e) + "\n" for e in events).encode()
    (run_dir / "record.jsonl.gz").write_bytes(gzip.compress(data))


def title(run: dict[str, Any]) -> str:
    """The check's title without the GITHUB_TOKEN warning (these tests have no App)."""
    text = run["output"]["title"]
    assert text.startswith(FALLBACK_WARNING)
    return text.removeprefix(FALLBACK_WARNING)


@pytest.fixture(autouse=True)
def head_of_the_pr(fake: FakeGitHub) -> None:
    fake.heads[7] = SHA  # the tested commit is the pull request's head


def publish_argv(directory: Path, sha: str = SHA, *extra: str) -> list[str]:
    return [
        "publish", "--evidence", str(directory), "--repo", REPO, "--sha", sha, "--pr", "7",
        "--run-url", RUN_URL, "--report-url", REPORT_URL, *extra,
    ]  # fmt: skip


def only_check_run(fake: FakeGitHub) -> dict[str, Any]:
    (run,) = fake.check_runs.values()
    return run


def bot_comments(fake: FakeGitHub, pr: int = 7) -> list[dict[str, Any]]:
    return [c for c in fake.comments.get(pr, []) if c["user"]["login"] == BOT["login"]]


# ------------------------------------------------------------------- check run


def test_passing_evidence_is_a_successful_check_on_the_commit(fake, cli, tmp_path):
    rc, out = cli(publish_argv(write(tmp_path, evidence([test_row(1, "passed")]))))
    run = only_check_run(fake)
    assert rc == 0, out
    assert (run["name"], run["head_sha"]) == ("Mac M4 evidence", SHA)
    assert (run["status"], run["conclusion"]) == ("completed", "success")
    # GitHub ignores details_url for GITHUB_TOKEN's app: the summary carries both links.
    assert run["details_url"] != REPORT_URL
    assert REPORT_URL in run["output"]["summary"] and RUN_URL in run["output"]["summary"]
    assert title(run).startswith("passed")


def test_every_failing_test_is_annotated_in_batches_of_50(fake, cli, tmp_path):
    rows = [test_row(i) for i in range(120)] + [test_row(999, "passed")]
    rows.append({"nodeid": "tests/integration/test_x.py::test_old", "outcome": "error"})
    rc, _ = cli(publish_argv(write(tmp_path, evidence(rows))))
    run = only_check_run(fake)
    checks = [r for r in fake.requests if "/check-runs" in r.path and r.method != "GET"]
    sizes = [len((r.body.get("output") or {}).get("annotations") or []) for r in checks]
    assert rc == 0
    assert run["conclusion"] == "failure"
    assert sizes == [50, 50, 21, 0]  # create, two appends, complete
    notes = fake.annotations(run["id"])
    assert len(notes) == 121
    assert notes[0]["path"] == "tests/integration/test_gen.py"
    assert (notes[0]["start_line"], notes[0]["end_line"]) == (100, 100)
    assert notes[0]["annotation_level"] == "failure"
    assert notes[0]["message"] == "AssertionError: assert 0 == 0"
    assert notes[-1]["path"] == "tests/integration/test_x.py"  # from the node id
    assert notes[-1]["start_line"] == 1  # pytest did not know the line


def test_a_flaky_test_is_a_warning_and_named(fake, cli, tmp_path):
    rows = [test_row(1, "passed"), test_row(2, "flaky", message="")]
    cli(publish_argv(write(tmp_path, evidence(rows))))
    run = only_check_run(fake)
    assert run["conclusion"] == "success"
    assert [a["annotation_level"] for a in fake.annotations(run["id"])] == ["warning"]
    assert "Flaky" in bot_comments(fake)[0]["body"]
    assert "test_case[2]" in bot_comments(fake)[0]["body"]


def test_a_failing_gate_fails_the_check(fake, cli, tmp_path):
    gates = [{"name": "max_suite_s", "passed": False, "detail": "suite took 900 s > 600 s"}]
    data = evidence([test_row(1, "passed")], exit_code=1, gates=gates)
    cli(publish_argv(write(tmp_path, data)))
    run = only_check_run(fake)
    assert run["conclusion"] == "failure"
    assert "gate" in title(run)
    assert "max_suite_s" in bot_comments(fake)[0]["body"]


def test_a_stage_error_fails_the_check_naming_the_stage(fake, cli, tmp_path):
    stages = [{"name": "cache_prewarm", "status": "failed", "reason": "model missing"}]
    cli(publish_argv(write(tmp_path, evidence([], exit_code=2, stages=stages))))
    run = only_check_run(fake)
    assert run["conclusion"] == "failure"
    assert title(run) == "error: stage cache_prewarm failed"


def test_no_evidence_is_a_failure_naming_the_failed_step(fake, cli, tmp_path):
    steps = "checkout=success,venv=success,host-check=failure,cache=skipped,pipeline=skipped"
    argv = publish_argv(write(tmp_path, None), SHA, "--steps", steps, "--job-result", "failure")
    rc, _ = cli(argv)
    run = only_check_run(fake)
    body = bot_comments(fake)[0]["body"]
    assert rc == 0
    assert run["conclusion"] == "failure"
    assert title(run) == "no evidence: step host-check failure"
    assert "NO EVIDENCE" in body and SHA[:7] in body and RUN_URL in body


def test_evidence_of_another_commit_is_no_evidence(fake, cli, tmp_path):
    data = evidence([test_row(1, "passed")], provenance={"commit": NEXT_SHA})
    cli(publish_argv(write(tmp_path, data)))
    run = only_check_run(fake)
    assert run["conclusion"] == "failure"
    assert "not this one" in title(run)


def test_unreadable_evidence_is_no_evidence(fake, cli, tmp_path):
    directory = write(tmp_path, None)
    (directory / "evidence.json").write_bytes(b"\xff{not json")
    cli(publish_argv(directory, SHA, "--job-result", "failure"))
    run = only_check_run(fake)
    assert run["conclusion"] == "failure"
    assert title(run) == "no evidence: the Mac job ended failure"


def test_not_run_posts_its_conclusion_and_no_comment(fake, cli, tmp_path):
    argv = publish_argv(write(tmp_path, None), SHA, "--not-run", "fork PR from x/y")
    rc, _ = cli([*argv, "--not-run-conclusion", "action_required"])
    run = only_check_run(fake)
    assert rc == 0
    assert run["conclusion"] == "action_required"
    assert title(run) == "not run: fork PR from x/y"
    assert fake.comments == {}


# ---------------------------------------------------------------- the comment


def test_a_stale_verdict_never_stands_for_a_new_head(fake, cli, tmp_path):
    """Fault 2: a run that dies before the report still rewrites the comment for its SHA."""
    cli(publish_argv(write(tmp_path, evidence([test_row(1, "passed")]))))
    assert "PASSED" in bot_comments(fake)[0]["body"]
    (tmp_path / "artifact" / "evidence.json").unlink()
    fake.heads[7] = NEXT_SHA
    rc, _ = cli(publish_argv(tmp_path / "artifact", NEXT_SHA, "--job-result", "failure"))
    (comment,) = bot_comments(fake)
    assert rc == 0
    assert "PASSED" not in comment["body"]
    assert f"`{NEXT_SHA[:7]}`: NO EVIDENCE" in comment["body"]
    assert fake.check_runs[max(fake.check_runs)]["head_sha"] == NEXT_SHA


def test_a_humans_comment_with_the_marker_is_never_edited(fake, cli, tmp_path):
    """Fault 3: the marker alone does not make a comment ours."""
    human = fake.add_comment(7, MARKER + "\nI pasted the marker on purpose")
    impostor = fake.add_comment(7, MARKER + "\nnot a bot", {**BOT, "type": "User"})
    directory = write(tmp_path, evidence([test_row(1, "passed")]))
    cli(publish_argv(directory))
    cli(publish_argv(directory))
    assert human["body"] == MARKER + "\nI pasted the marker on purpose"
    assert impostor["body"] == MARKER + "\nnot a bot"
    (ours,) = [c for c in bot_comments(fake) if c["user"]["type"] == "Bot"]
    assert "PASSED" in ours["body"]
    assert len(fake.comments[7]) == 3
    assert [r.method for r in fake.requests if "/comments" in r.path][-2:] == ["GET", "PATCH"]


def test_the_bot_comment_is_found_on_a_later_page(fake, cli, tmp_path):
    for i in range(230):  # 100 per page: ours sits on page 3
        fake.add_comment(7, f"chatter {i}")
    ours = fake.add_comment(7, MARKER + "\nold verdict", BOT)
    cli(publish_argv(write(tmp_path, evidence([test_row(1, "passed")]))))
    gets = [r.path for r in fake.requests if r.method == "GET" and "/comments" in r.path]
    assert "old verdict" not in ours["body"] and "PASSED" in ours["body"]
    assert len(fake.comments[7]) == 231
    assert len(gets) == 3 and "page=3" in gets[-1]


def test_the_installation_token_identity_is_github_actions_bot(fake, cli, tmp_path):
    cli(publish_argv(write(tmp_path, evidence([test_row(1, "passed")]))))
    user = [r for r in fake.requests if r.path == "/user"]
    assert len(user) == 1  # asked, got 403 "Resource not accessible by integration"
    assert bot_comments(fake)[0]["user"]["login"] == DEFAULT_BOT_LOGIN


def test_a_personal_token_edits_only_its_own_user_comment(fake, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", USER_TOKEN)
    bot = fake.add_comment(7, MARKER + "\nbot's", BOT)
    mine = fake.add_comment(7, MARKER + "\nmine", {"login": "maintainer", "id": 7, "type": "User"})
    cli(publish_argv(write(tmp_path, evidence([test_row(1, "passed")]))))
    assert bot["body"] == MARKER + "\nbot's"
    assert "PASSED" in mine["body"]


def test_the_comment_names_head_run_verdict_baseline_perf_and_report(fake, cli, tmp_path):
    base = {
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "tests": {
            "new_failures": ["tests/a.py::test_new"],
            "fixed": ["tests/a.py::test_fixed"],
            "still_failing": ["tests/a.py::test_old"],
            "flaky": ["tests/a.py::test_wobbly"],
        },
        "perf": [
            {"metric": "decode_tok_s.runtime", "baseline": 50.0, "current": 40.0,
             "delta": -10.0, "delta_pct": -20.0, "noise": 2.0, "regression": True},
            {"metric": "ttft_s.runtime", "baseline": 0.2, "current": 0.2,
             "delta": 0.0, "delta_pct": 0.0, "noise": 0.02, "regression": False},
        ],
    }  # fmt: skip
    cli(publish_argv(write(tmp_path, evidence([test_row(1)], baseline=base))))
    body = bot_comments(fake)[0]["body"]
    assert body.startswith(MARKER)
    assert f"`{SHA[:7]}`: FAILED" in body
    assert f"]({RUN_URL})" in body and f"]({REPORT_URL})" in body
    for label in ("New failures (1)", "Fixed (1)", "Still failing (1)", "Flaky (1)"):
        assert label in body
    assert "decode_tok_s.runtime" in body and "-20.0%" in body
    assert "ttft_s.runtime" not in body  # not a regression


def test_huge_evidence_stays_within_every_github_limit(fake, cli, tmp_path, monkeypatch):
    summary = tmp_path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    noise = "😀" * 150 + "x" * 5000
    rows = [
        test_row(i, message=noise, nodeid=f"tests/t.py::test_{i}[{noise[:300]}]")
        for i in range(3000)
    ]
    rc, _ = cli(publish_argv(write(tmp_path, evidence(rows))))
    body = bot_comments(fake)[0]["body"]
    run = only_check_run(fake)
    assert rc == 0  # the fake answers 422 to anything over the limits
    assert len(body.encode("utf-16-le")) // 2 <= MAX_COMMENT_CHARS
    assert len(run["output"]["summary"]) <= 65_535
    assert len(fake.annotations(run["id"])) == 3000
    assert 0 < summary.stat().st_size <= 1024 * 1024


def test_test_text_cannot_inject_markup_or_mentions(fake, cli, tmp_path):
    hostile = "@octocat <script>alert(1)</script> ``` | [x](javascript:alert(1)) <!-- -->"
    rows = [test_row(1, nodeid=f"tests/a.py::test[{hostile}]", message=hostile)]
    stages = [{"name": "integration_suite", "status": "ok", "reason": hostile}]
    cli(publish_argv(write(tmp_path, evidence(rows, stages=stages))))
    html = MarkdownIt("commonmark").enable("table").render(bot_comments(fake)[0]["body"])
    outside_code = re.sub(r"<code>.*?</code>", "", html, flags=re.S)
    assert "<script" not in html
    assert "javascript:" not in outside_code and "@octocat" not in outside_code
    assert "&lt;script&gt;" in html


# -------------------------------------------------------------- failures, input


def test_api_failure_exits_2_keeps_the_summary_and_never_prints_the_token(
    fake, cli, tmp_path, monkeypatch, capsys
):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    fake.fail_status = 403
    rc, out = cli(publish_argv(write(tmp_path, evidence([test_row(1, "passed")]))))
    captured = capsys.readouterr()
    assert rc == 2
    assert "HTTP 403" in captured.err
    assert "PASSED" in summary.read_text()
    assert "ghs_" not in out + captured.out + captured.err


def test_without_a_token_nothing_is_sent(fake, cli, tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN")
    rc, _ = cli(publish_argv(write(tmp_path, evidence([]))))
    assert rc == 2
    assert fake.requests == []


@pytest.mark.parametrize(
    "bad",
    [
        ["--sha", "a1b2c3d"],  # a short SHA names no single commit for sure
        ["--sha", "main"],
        ["--repo", "a/b; rm -rf /"],
        ["--pr", "0"],
        ["--steps", "venv=exploded"],
    ],
)
def test_bad_arguments_are_refused_before_any_request(fake, cli, tmp_path, bad):
    argv = publish_argv(write(tmp_path, evidence([])))
    with pytest.raises(SystemExit) as caught:
        cli([*argv, *bad])
    assert caught.value.code == 2
    assert fake.requests == []


def test_an_unwritable_job_summary_does_not_stop_the_check_or_the_comment(
    fake, cli, tmp_path, monkeypatch
):
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path))  # a directory: cannot append
    rc, _ = cli(publish_argv(write(tmp_path, evidence([test_row(1, "passed")]))))
    assert rc == 2
    assert only_check_run(fake)["conclusion"] == "success"
    assert "PASSED" in bot_comments(fake)[0]["body"]
